// One of two translation units that include every public header (see odr_tu.inc): linking them
// into one program (odr.test.cpp) fails on any definition in a header that is not inline.
#define ODR_NAMESPACE odr_a
#include "odr_tu.inc"
