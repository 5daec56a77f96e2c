#include "common/result.hpp"

namespace parley {

const char* ErrcName(Errc code) {
  switch (code) {
    case Errc::kNotFound:
      return "not_found";
    case Errc::kConflict:
      return "conflict";
    case Errc::kInvalid:
      return "invalid";
    case Errc::kLimit:
      return "limit";
    case Errc::kUnavailable:
      return "unavailable";
    case Errc::kNoSpace:
      return "no_space";
    case Errc::kCorruption:
      return "corruption";
    case Errc::kInternal:
      return "internal";
  }
  return "internal";
}

}  // namespace parley
