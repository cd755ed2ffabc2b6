// Asio's own functions, compiled once (WORKSPACE_SEPARATE_COMPILATION): every other translation
// unit of the program then sees ASIO_SEPARATE_COMPILATION and only declares them, which saves
// each one including the library about an eighth of its compile time (benchmarks/build_time.sh).
#include <asio/impl/src.hpp>
#include <asio/ssl/impl/src.hpp>
