// The second of the two translation units; see odr_a.cpp.
#define ODR_NAMESPACE odr_b
#include "odr_tu.inc"
