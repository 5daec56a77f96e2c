// Errors as values on the data path. Result<T> is std::expected<T, Error>;
// Status is Result<void>. Exceptions are for start-up and configuration only.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace parley {

// Backend-neutral error kinds. Store backends map their own failures onto
// these; src/proto/errors.hpp maps them onto wire error codes in one place.
enum class Errc {
  kNotFound,     // the thing does not exist (or must look as if it did not)
  kConflict,     // a uniqueness or precondition check failed
  kInvalid,      // the caller passed something malformed
  kLimit,        // a quota or size limit was reached
  kUnavailable,  // a backend is down or shutting down; retryable
  kNoSpace,      // the backend's volume is full; retryable once space is freed
  kCorruption,   // stored data is unreadable
  kInternal,     // anything else; retryable, nothing half-applied
};

struct Error {
  Errc code = Errc::kInternal;
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

inline std::unexpected<Error> Fail(Errc code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

inline Status Ok() { return {}; }

const char* ErrcName(Errc code);

}  // namespace parley
