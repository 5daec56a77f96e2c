#include "common/metrics.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace parley {
namespace {

// std::atomic<double>::fetch_add exists in C++20, but GCC 12 lowers it to the
// same CAS loop; writing it out keeps the behaviour obvious and portable.
void AtomicAdd(std::atomic<double>& target, double by) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

// Prometheus renders floats the way Go does: +Inf, -Inf, NaN, otherwise the
// shortest text that reads back as the same double.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// {a="1",b="2"}, with `extra` (the histogram's le) appended last.
std::string RenderLabels(const Labels& labels, std::string_view extra_name = {},
                         std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += EscapeLabelValue(v);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
  return out;
}

enum class Type { kCounter, kGauge, kHistogram };

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string FamilyHeader(std::string_view name, std::string_view help, Type type) {
  return fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, EscapeHelp(help), name, TypeName(type));
}

// --- Process metrics, read from /proc at render time. ---

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Fields of /proc/self/stat after the command name, which may itself contain
// spaces and parentheses, so we split after the last ')'. Index 0 is field 3
// (state) in proc(5)'s numbering.
std::vector<std::string> StatFields() {
  std::vector<std::string> fields;
  auto text = ReadFile("/proc/self/stat");
  if (!text) return fields;
  const auto close = text->rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream ss(text->substr(close + 1));
  std::string f;
  while (ss >> f) fields.push_back(f);
  return fields;
}

double StatField(const std::vector<std::string>& fields, int proc5_number) {
  const auto index = static_cast<std::size_t>(proc5_number - 3);
  if (index >= fields.size()) return 0;
  return std::strtod(fields[index].c_str(), nullptr);
}

// The system boot time (Unix seconds), the origin of /proc/self/stat's starttime.
std::optional<double> BootTime() {
  auto text = ReadFile("/proc/stat");
  if (!text) return std::nullopt;
  std::istringstream ss(*text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("btime ", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  }
  return std::nullopt;
}

// name -> rendered family block, merged with the registry's own families so
// that the whole output stays sorted by name.
void AddProcessMetrics(std::map<std::string, std::string>& out) {
  auto add = [&](const std::string& name, std::string_view help, Type type, double value) {
    out.emplace(name, FamilyHeader(name, help, type) + name + " " + FormatValue(value) + "\n");
  };
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));

  if (auto statm = ReadFile("/proc/self/statm")) {
    std::istringstream ss(*statm);
    double size_pages = 0;
    double resident_pages = 0;
    if (ss >> size_pages >> resident_pages) {
      add("process_virtual_memory_bytes", "Virtual memory size in bytes.", Type::kGauge,
          size_pages * page);
      add("process_resident_memory_bytes", "Resident memory size in bytes.", Type::kGauge,
          resident_pages * page);
    }
  }

  const auto fields = StatFields();
  if (!fields.empty() && ticks > 0) {
    add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
        Type::kCounter, (StatField(fields, 14) + StatField(fields, 15)) / ticks);
    add("process_threads", "Number of OS threads in the process.", Type::kGauge,
        StatField(fields, 20));
    if (auto boot = BootTime()) {
      add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          Type::kGauge, *boot + StatField(fields, 22) / ticks);
    }
  }

  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  if (!ec) {
    double fds = 0;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      if (ec) break;
      ++fds;
    }
    // The iterator holds one descriptor open itself while counting.
    add("process_open_fds", "Number of open file descriptors.", Type::kGauge,
        std::max(0.0, fds - 1));
  }

  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    add("process_max_fds", "Maximum number of open file descriptors.", Type::kGauge,
        lim.rlim_cur == RLIM_INFINITY ? INFINITY : static_cast<double>(lim.rlim_cur));
  }
}

}  // namespace

void Counter::Inc(double by) { AtomicAdd(value_, by); }
double Counter::Value() const { return value_.load(std::memory_order_relaxed); }

void Gauge::Set(double v) { value_.store(v, std::memory_order_relaxed); }
void Gauge::Add(double by) { AtomicAdd(value_, by); }
double Gauge::Value() const { return value_.load(std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end()) {
    throw std::invalid_argument("histogram bounds must be strictly increasing");
  }
  // An explicit +Inf bound would duplicate the implicit last bucket.
  if (!bounds_.empty() && std::isinf(bounds_.back())) bounds_.pop_back();
}

void Histogram::Observe(double v) {
  // Buckets are "less than or equal": the first bound >= v. NaN lands in +Inf.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  const auto index = static_cast<std::size_t>(it - bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::CumulativeCounts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

double Histogram::Sum() const { return sum_.load(std::memory_order_relaxed); }

// Read separately from the buckets, so a concurrent Observe may make _count
// and the +Inf bucket differ by a few for one scrape; scrapers tolerate that,
// and it keeps recording lock-free.
std::uint64_t Histogram::Count() const { return count_.load(std::memory_order_relaxed); }

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
}

struct Registry::Impl {
  struct Series {
    Labels labels;  // sorted by name
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<Labels, Series> series;
  };

  mutable std::mutex mu;
  std::map<std::string, Family, std::less<>> families;

  // Finds or creates the series; the caller fills in the metric object.
  Series& Get(std::string_view name, std::string_view help, Type type, const Labels& labels) {
    if (!ValidName(name, true)) {
      throw std::invalid_argument(fmt::format("metrics: invalid metric name '{}'", name));
    }
    Labels sorted = labels;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      const auto& key = sorted[i].first;
      if (!ValidName(key, false) || key.starts_with("__") ||
          (type == Type::kHistogram && key == "le")) {
        throw std::invalid_argument(fmt::format("metrics: {}: invalid label name '{}'", name, key));
      }
      if (i > 0 && sorted[i - 1].first == key) {
        throw std::invalid_argument(fmt::format("metrics: {}: label '{}' given twice", name, key));
      }
    }
    auto it = families.find(name);
    if (it == families.end()) {
      it = families.emplace(std::string(name), Family{type, std::string(help), {}}).first;
    } else if (it->second.type != type) {
      throw std::invalid_argument(
          fmt::format("metrics: {} is already a {}", name, TypeName(it->second.type)));
    }
    auto& series = it->second.series[sorted];
    if (series.labels.empty()) series.labels = std::move(sorted);
    return series;
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(impl_->mu);
  auto& s = impl_->Get(name, help, Type::kCounter, labels);
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(impl_->mu);
  auto& s = impl_->Get(name, help, Type::kGauge, labels);
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const Labels& labels, std::vector<double> upper_bounds) {
  std::lock_guard lock(impl_->mu);
  auto& s = impl_->Get(name, help, Type::kHistogram, labels);
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *s.histogram;
}

std::string Registry::Render() const {
  std::map<std::string, std::string> blocks;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [name, family] : impl_->families) {
      std::string block = FamilyHeader(name, family.help, family.type);
      for (const auto& [key, s] : family.series) {
        switch (family.type) {
          case Type::kCounter:
            block += name + RenderLabels(s.labels) + " " + FormatValue(s.counter->Value()) + "\n";
            break;
          case Type::kGauge:
            block += name + RenderLabels(s.labels) + " " + FormatValue(s.gauge->Value()) + "\n";
            break;
          case Type::kHistogram: {
            const auto& h = *s.histogram;
            const auto counts = h.CumulativeCounts();
            const auto& bounds = h.UpperBounds();
            for (std::size_t i = 0; i < counts.size(); ++i) {
              const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
              block += fmt::format("{}_bucket{} {}\n", name, RenderLabels(s.labels, "le", le),
                                   counts[i]);
            }
            block +=
                fmt::format("{}_sum{} {}\n", name, RenderLabels(s.labels), FormatValue(h.Sum()));
            // _count matches the +Inf bucket so the exposition is self-consistent.
            block += fmt::format("{}_count{} {}\n", name, RenderLabels(s.labels), counts.back());
            break;
          }
        }
      }
      blocks.emplace(name, std::move(block));
    }
  }
  // A registered family of the same name wins over the built-in one.
  AddProcessMetrics(blocks);
  std::string out;
  for (const auto& [name, block] : blocks) out += block;
  return out;
}

}  // namespace parley
