#include "report.hpp"

#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "http.hpp"

namespace parley::bench {

namespace json = boost::json;

std::int64_t MonoNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled) {}
ProgressLine::~ProgressLine() { Clear(); }

void ProgressLine::Show(const std::string& text, bool force) {
  if (!enabled_) return;
  const std::int64_t now = MonoNs();
  if (!force && shown_ && now - last_ns_ < 1'000'000'000) return;
  last_ns_ = now;
  shown_ = true;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
}

void ProgressLine::Clear() {
  if (!enabled_ || !shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

json::object ServerMetrics::ToJson() const {
  json::object o;
  o["ok"] = ok;
  o["rss_bytes"] = rss_bytes;
  o["cpu_seconds"] = cpu_seconds;
  o["open_fds"] = open_fds;
  return o;
}

ServerMetrics ScrapeMetrics(const std::string& host, std::uint16_t port) {
  ServerMetrics m;
  m.mono_s = static_cast<double>(MonoNs()) / 1e9;
  auto r = HttpBlocking(host, port, "GET", "/metrics", "", std::chrono::seconds(5));
  if (r.status != 200) return m;
  std::istringstream in(r.body);
  std::string line;
  int found = 0;
  // Bounded by the body.
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    const std::string name = line.substr(0, sp);
    const double value = std::strtod(line.c_str() + sp + 1, nullptr);
    if (name == "process_resident_memory_bytes") {
      m.rss_bytes = value, ++found;
    } else if (name == "process_cpu_seconds_total") {
      m.cpu_seconds = value, ++found;
    } else if (name == "process_open_fds") {
      m.open_fds = value, ++found;
    }
  }
  m.ok = found == 3;
  return m;
}

double LoadAverage1() {
  std::ifstream in("/proc/loadavg");
  double v = 0;
  in >> v;
  return v;
}

std::string JsonText(const json::value& v) {
  if (v.is_double()) {
    const double d = v.as_double();
    if (!std::isfinite(d)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", d);
    return buf;
  }
  if (v.is_object()) {
    std::string out = "{";
    for (const auto& kv : v.as_object()) {
      if (out.size() > 1) out += ',';
      out += json::serialize(json::value(kv.key()));
      out += ':';
      out += JsonText(kv.value());
    }
    return out + "}";
  }
  if (v.is_array()) {
    std::string out = "[";
    for (const auto& e : v.as_array()) {
      if (out.size() > 1) out += ',';
      out += JsonText(e);
    }
    return out + "]";
  }
  return json::serialize(v);
}

namespace {

std::string Scalar(const json::value& v) {
  if (v.is_double()) {
    const double d = v.as_double();
    char buf[64];
    if (std::fabs(d) >= 1e6 || d == std::floor(d)) {
      std::snprintf(buf, sizeof buf, "%.0f", d);
    } else if (std::fabs(d) >= 100) {
      std::snprintf(buf, sizeof buf, "%.1f", d);
    } else {
      std::snprintf(buf, sizeof buf, "%.3f", d);
    }
    return buf;
  }
  if (v.is_string()) return std::string(v.as_string());
  return json::serialize(v);
}

bool IsLatency(const json::object& o) {
  return o.contains("p50_ms") && o.contains("p99_ms") && o.contains("count");
}

void Print(const json::object& o, int depth) {
  const std::string pad(static_cast<std::size_t>(depth) * 2, ' ');
  for (const auto& kv : o) {
    const std::string key(kv.key());
    if (kv.value().is_object() && IsLatency(kv.value().as_object())) {
      const auto& l = kv.value().as_object();
      std::printf("%s%-28s n=%s p50=%s p90=%s p99=%s p99.9=%s max=%s ms\n", pad.c_str(),
                  key.c_str(), Scalar(l.at("count")).c_str(), Scalar(l.at("p50_ms")).c_str(),
                  Scalar(l.at("p90_ms")).c_str(), Scalar(l.at("p99_ms")).c_str(),
                  Scalar(l.at("p999_ms")).c_str(), Scalar(l.at("max_ms")).c_str());
    } else if (kv.value().is_object()) {
      if (kv.value().as_object().empty()) continue;
      std::printf("%s%s:\n", pad.c_str(), key.c_str());
      Print(kv.value().as_object(), depth + 1);
    } else {
      std::printf("%s%-28s %s\n", pad.c_str(), key.c_str(), Scalar(kv.value()).c_str());
    }
  }
}

}  // namespace

void PrintTable(const json::object& report) {
  Print(report, 0);
  std::fflush(stdout);
}

}  // namespace parley::bench
