// Where one-time codes go (PROTOCOL.md section 1): `log` (one log line per
// code), `file:<path>` (one JSON line per code, how tests read codes) or
// `webhook:<url>` (an HTTP POST of that JSON line to an SMS gateway, from a
// worker thread so that a slow gateway never holds an I/O thread).
#pragma once

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

// Throws std::runtime_error for a spec it cannot use (an unwritable file, a
// malformed URL).
std::unique_ptr<SmsSender> MakeSmsSender(const std::string& spec);

// {"phone":...,"code":...,"ts_ms":...}
std::string SmsJson(std::string_view phone, std::string_view code, std::int64_t ts_ms);

}  // namespace parley::core
