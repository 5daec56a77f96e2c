// Structured log lines (logfmt: ts=... level=... msg="..." key=value ...)
// on standard error through spdlog. Standard output is kept for the one
// "parleyd listening on ..." line that tests and scripts read.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace parley {

// Sets the level (trace, debug, info, warn, error) and the logfmt pattern.
void InitLogging(std::string_view level);

// Quotes a value for logfmt when it needs it.
std::string LogQuote(std::string_view value);

}  // namespace parley

// PLOG_INFO("msg", "key={} other={}", a, b) -> msg="msg" key=a other=b
#define PLOG(level, msg, ...) spdlog::log(level, "msg=\"" msg "\" " __VA_ARGS__)
#define PLOG_INFO(msg, ...) PLOG(spdlog::level::info, msg, __VA_ARGS__)
#define PLOG_WARN(msg, ...) PLOG(spdlog::level::warn, msg, __VA_ARGS__)
#define PLOG_ERROR(msg, ...) PLOG(spdlog::level::err, msg, __VA_ARGS__)
#define PLOG_DEBUG(msg, ...) PLOG(spdlog::level::debug, msg, __VA_ARGS__)
