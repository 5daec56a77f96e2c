#include "common/metrics.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace parley {
namespace {

// Sample lines of a rendering (comments skipped): "name{labels}" -> value.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

double SampleValue(const std::string& text, const std::string& series) {
  const auto samples = Samples(text);
  const auto it = samples.find(series);
  if (it == samples.end()) {
    ADD_FAILURE() << "no sample " << series << " in\n" << text;
    return -1;
  }
  return std::strtod(it->second.c_str(), nullptr);
}

TEST(MetricsTest, CounterAndGaugeRecord) {
  Counter c;
  c.Inc();
  c.Inc(2.5);
  EXPECT_DOUBLE_EQ(c.Value(), 3.5);
  Gauge g;
  g.Set(10);
  g.Add(-4);
  EXPECT_DOUBLE_EQ(g.Value(), 6);
}

TEST(MetricsTest, CounterIsExactUnderConcurrentIncrements) {
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) c.Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(c.Value(), 80000);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.0, 7.0}) h.Observe(v);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<std::uint64_t>{2, 4, 5, 6}));
  EXPECT_DOUBLE_EQ(h.Sum(), 16.0);
  EXPECT_EQ(h.Count(), 6u);
}

TEST(MetricsTest, LatencyBucketsSpan50usTo10s) {
  const auto b = LatencyBuckets();
  ASSERT_EQ(b.size(), 17u);
  EXPECT_DOUBLE_EQ(b.front(), 0.00005);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(MetricsTest, SameNameAndLabelsGiveTheSameObject) {
  Registry r;
  auto& a = r.GetCounter("x_total", "help", {{"op", "send"}, {"code", "ok"}});
  auto& b = r.GetCounter("x_total", "other help", {{"code", "ok"}, {"op", "send"}});
  auto& c = r.GetCounter("x_total", "help", {{"op", "ack"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_EQ(&r.GetHistogram("h", "h"), &r.GetHistogram("h", "h"));
}

TEST(MetricsTest, RejectsATypeClashAndBadNames) {
  Registry r;
  r.GetCounter("thing", "help");
  EXPECT_THROW(r.GetGauge("thing", "help"), std::invalid_argument);
  EXPECT_THROW(r.GetGauge("9lives", "help"), std::invalid_argument);
  EXPECT_THROW(r.GetGauge("ok", "help", {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.GetHistogram("lat", "help", {{"le", "1"}}), std::invalid_argument);
}

TEST(MetricsTest, RendersCountersAndGaugesWithEscapedLabels) {
  Registry r;
  r.GetCounter("parley_sends_total", "Sends by result.", {{"result", "ok"}}).Inc(3);
  r.GetCounter("parley_sends_total", "Sends by result.", {{"result", "a\"b\\c\nd"}}).Inc();
  r.GetGauge("parley_connections", "Open connections.\nSecond line").Set(7);
  const std::string text = r.Render();

  EXPECT_NE(text.find("# HELP parley_sends_total Sends by result.\n"
                      "# TYPE parley_sends_total counter\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("parley_sends_total{result=\"ok\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("parley_sends_total{result=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP parley_connections Open connections.\\nSecond line\n"
                      "# TYPE parley_connections gauge\n"
                      "parley_connections 7\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, RendersHistogramBucketsSumAndCount) {
  Registry r;
  auto& h = r.GetHistogram("parley_op_seconds", "Op latency.", {{"op", "send"}}, {0.001, 0.01});
  h.Observe(0.0005);
  h.Observe(0.005);
  h.Observe(3);
  const std::string text = r.Render();
  EXPECT_NE(text.find("# TYPE parley_op_seconds histogram\n"
                      "parley_op_seconds_bucket{op=\"send\",le=\"0.001\"} 1\n"
                      "parley_op_seconds_bucket{op=\"send\",le=\"0.01\"} 2\n"
                      "parley_op_seconds_bucket{op=\"send\",le=\"+Inf\"} 3\n"
                      "parley_op_seconds_sum{op=\"send\"} 3.0055\n"
                      "parley_op_seconds_count{op=\"send\"} 3\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, FamiliesAreSortedByNameIncludingProcessMetrics) {
  Registry r;
  r.GetGauge("zeta", "z").Set(1);
  r.GetGauge("alpha", "a").Set(1);
  r.GetGauge("queue", "q").Set(1);
  const std::string text = r.Render();
  std::vector<std::string> names;
  std::istringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.starts_with("# TYPE ")) names.push_back(line.substr(7, line.find(' ', 7) - 7));
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << text;
  EXPECT_EQ(names.front(), "alpha");
  EXPECT_EQ(names.back(), "zeta");
}

TEST(MetricsTest, ProcessMetricsArePresentAndPlausible) {
  Registry r;
  // Burn a little CPU so cpu seconds is positive on a coarse clock.
  volatile double sink = 0;
  for (int i = 0; i < 20'000'000; ++i) sink = sink + i * 0.5;
  const std::string text = r.Render();

  const double rss = SampleValue(text, "process_resident_memory_bytes");
  const double vm = SampleValue(text, "process_virtual_memory_bytes");
  EXPECT_GT(rss, 1024 * 1024);
  EXPECT_LT(rss, 64.0 * 1024 * 1024 * 1024);
  EXPECT_GE(vm, rss);

  const double cpu = SampleValue(text, "process_cpu_seconds_total");
  EXPECT_GE(cpu, 0);
  EXPECT_LT(cpu, 3600);

  const double fds = SampleValue(text, "process_open_fds");
  EXPECT_GE(fds, 3);  // stdin, stdout, stderr
  const double max_fds = SampleValue(text, "process_max_fds");
  EXPECT_GE(max_fds, fds);

  const double start = SampleValue(text, "process_start_time_seconds");
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 2);
  EXPECT_GT(start, now - 24 * 3600);

  EXPECT_GE(SampleValue(text, "process_threads"), 1);
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE process_resident_memory_bytes gauge\n"), std::string::npos);
}

TEST(MetricsTest, OpenFdsFollowsOpenDescriptors) {
  Registry r;
  const double before = SampleValue(r.Render(), "process_open_fds");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const double after = SampleValue(r.Render(), "process_open_fds");
  close(fds[0]);
  close(fds[1]);
  // Other threads of the test binary may open descriptors too, hence >=.
  EXPECT_GE(after, before + 2);
}

}  // namespace
}  // namespace parley
