// Output: the live progress line, the server's /metrics figures, and the
// final report (one JSON object with --json, else a readable table).
#pragma once

#include <boost/json/fwd.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <string>

namespace parley::bench {

// One line on stderr, rewritten in place at most once a second; nothing
// when disabled (stderr is not a terminal, or --no-progress).
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  ~ProgressLine();
  void Show(const std::string& text, bool force = false);
  void Clear();
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool shown_ = false;
  std::int64_t last_ns_ = 0;
};

// The process_* figures parleyd exports on GET /metrics.
struct ServerMetrics {
  bool ok = false;
  double rss_bytes = 0;
  double cpu_seconds = 0;
  double open_fds = 0;
  double mono_s = 0;  // when it was read (steady clock)
  boost::json::object ToJson() const;
};

ServerMetrics ScrapeMetrics(const std::string& host, std::uint16_t port);
// The 1-minute load average of this machine.
double LoadAverage1();

// JSON text with fractions as %.6g (Boost.JSON would write 5.90765E-1).
std::string JsonText(const boost::json::value& v);

// Prints the final report as an indented table of every figure.
void PrintTable(const boost::json::object& report);

// Steady-clock nanoseconds (same clock in every process on this machine,
// so message bodies can carry send times across worker processes).
std::int64_t MonoNs();

}  // namespace parley::bench
