// Where one-time codes go (PROTOCOL.md section 1): `log` (one log line per
// code), `file:<path>` (one JSON line per code, how tests read codes) or
// `webhook:<url>` (an HTTP POST of that JSON line to an SMS gateway, from
// worker threads with timeouts, retries and a bounded queue, so that a slow
// or hung gateway never holds an I/O thread or the shutdown).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace parley::core {

class SmsSender {
 public:
  virtual ~SmsSender() = default;
  // Hands the code over for delivery; never blocks on the network.
  virtual void Send(std::string_view phone, std::string_view code, std::int64_t ts_ms) = 0;
};

// How the webhook provider talks to its gateway.
struct SmsOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{10000};  // for every send and receive
  std::size_t queue_max = 1000;                   // codes waiting; past it a code is dropped
  unsigned tries = 3;                             // attempts per code
  std::chrono::milliseconds backoff{500};         // before the 2nd try, doubled for each next
  unsigned workers = 4;                           // requests at once
};

// Throws std::runtime_error for a spec it cannot use (an unwritable file, a
// malformed URL).
std::unique_ptr<SmsSender> MakeSmsSender(const std::string& spec, const SmsOptions& options = {});

// {"phone":...,"code":...,"ts_ms":...}
std::string SmsJson(std::string_view phone, std::string_view code, std::int64_t ts_ms);

}  // namespace parley::core
