#include "proto/errors.hpp"

namespace parley::proto {

WireError ToWire(const Error& error) {
  switch (error.code) {
    case Errc::kNotFound:
      return {code::kNotFound, "not found"};
    case Errc::kInvalid:
      return {code::kBadRequest, error.message};
    case Errc::kLimit:
      return {code::kTooLarge, error.message};
    case Errc::kUnavailable:
      return {code::kInternal, "temporarily unavailable, retry"};
    case Errc::kNoSpace:
      return {code::kStorageFull, "the server's storage is full; nothing was stored, retry later"};
    case Errc::kConflict:
    case Errc::kCorruption:
    case Errc::kInternal:
      break;
  }
  return {code::kInternal, "internal error, retry"};
}

}  // namespace parley::proto
