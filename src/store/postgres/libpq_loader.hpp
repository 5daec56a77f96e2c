// libpq, loaded on first use instead of linked (libpq_loader.cpp says why).
#pragma once

#include "common/result.hpp"

namespace parley::store::pg {

// The library's name, or path: $PARLEY_LIBPQ when set.
inline constexpr const char* kLibpqName = "libpq.so.5";

// Loads libpq once; an error names the library and why it could not be used.
// Conn::Open calls it before connecting; any other libpq call loads it too.
Status LoadLibpq();

}  // namespace parley::store::pg
