// parley-bench against a cluster (issue 13 item 5; docs/benchmarks.md,
// "Cluster scale run"): the real load generator, run as a process, against
// three real nodes (support/cluster.hpp). Its `scale` scenario must spread
// the sessions over every --url (account i on node i mod N), split
// send -> delivered into cross-node and same-node figures, and, once it has
// SIGKILLed a node, bring every client of that node back on the others and
// time it. A --url without a parleyd is refused before anything runs.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "integration/helpers.hpp"
#include "support/cluster.hpp"

namespace parley::test {
namespace {

std::string BenchPath() {
  if (const char* env = std::getenv("PARLEY_BENCH"); env != nullptr && *env != '\0') return env;
  return PARLEY_BENCH_PATH;
}

std::string Url(const Endpoint& ep) { return "http://" + ep.host + ":" + std::to_string(ep.port); }

// Runs `args` (shell words, already quoted) under `timeout`; stdout into *out.
int RunBench(const std::string& args, std::string* out) {
  const std::string cmd = "timeout 240 " + BenchPath() + " " + args;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  std::size_t n = 0;
  // Bounded by `timeout`: the pipe ends when the bench does.
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double Num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_number() ? v->to_number<double>() : -1;
}

const json::object& Obj(const json::object& o, std::string_view key) {
  static const json::object empty;
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->as_object() : empty;
}

TEST(ClusterBench, ScaleSpreadsSessionsAndBringsAKilledNodesClientsBack) {
  Cluster c({.nodes = 3,
             .args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0",
                      "--device-send-rate", "0"}});
  ASSERT_TRUE(c.Start());
  // Both forms: --url repeated, and a comma list.
  const std::string args = "scale --url " + Url(c.endpoint(0)) + " --url " + Url(c.endpoint(1)) +
                           "," + Url(c.endpoint(2)) + " --otp-file " + c.node(0).sms_file() +
                           " --users 30 --rate 60 --warmup 0.5 --duration 2 --drain 2" +
                           " --hold 0.5 --procs 2 --kill-pid " + std::to_string(c.pid(1)) +
                           " --kill-wait 20 --seed 7 --json --no-progress";
  std::string out;
  const int rc = RunBench(args, &out);
  c.Kill(1);  // reaps what the bench killed
  ASSERT_EQ(rc, 0) << out;
  boost::system::error_code ec;
  const json::value report = json::parse(out, ec);
  ASSERT_FALSE(ec) << out;
  const json::object& r = Obj(report.as_object(), "results");
  std::cerr << "results: " << json::serialize(r) << std::endl;

  // Account i on node i mod 3: ten sessions each.
  EXPECT_EQ(Num(r, "sessions_held"), 30);
  const auto* per_node = r.if_contains("per_node");
  ASSERT_TRUE(per_node != nullptr && per_node->is_array());
  ASSERT_EQ(per_node->as_array().size(), 3u);
  for (const auto& n : per_node->as_array()) {
    EXPECT_EQ(Num(n.as_object(), "sessions"), 10);
    EXPECT_GT(Num(n.as_object(), "rss_held_bytes"), 0);
  }

  // Traffic went across nodes and was timed as such.
  EXPECT_GT(Num(r, "ok"), 0);
  EXPECT_EQ(Num(r, "failed"), 0);
  EXPECT_GT(Num(r, "delivered_cross_node"), 0);
  EXPECT_EQ(Num(r, "delivered_cross_node") + Num(r, "delivered_same_node"), Num(r, "delivered"));
  EXPECT_EQ(Num(Obj(r, "latency_send_to_delivered_cross_node"), "count"),
            Num(r, "delivered_cross_node"));

  // The killed node's ten clients are all back on the other two.
  const json::object& kill = Obj(r, "kill");
  EXPECT_FALSE(kill.contains("error")) << json::serialize(kill);
  EXPECT_EQ(Num(kill, "clients_moved"), 10);
  EXPECT_EQ(Num(kill, "clients_back"), 10);
  EXPECT_EQ(Num(kill, "clients_not_back"), 0);
  const json::object& back = Obj(kill, "kill_to_back");
  EXPECT_EQ(Num(back, "count"), 10);
  EXPECT_GT(Num(back, "p99_ms"), 0);
  EXPECT_LT(Num(back, "p99_ms"), 10'000);
}

TEST(ClusterBench, RefusesANodeThatDoesNotAnswer) {
  Parleyd live;
  ASSERT_TRUE(live.Start());
  // Port 1 (tcpmux): nothing listens there.
  const Endpoint dead{"127.0.0.1", 1};
  ASSERT_EQ(Http(dead, "GET", "/health", "", {}, 1s).status, 0);
  // Every node is checked, wherever it is in the list.
  for (const auto& urls :
       {Url(dead) + " --url " + Url(live.endpoint()), Url(live.endpoint()) + "," + Url(dead)}) {
    std::string out;
    const int rc =
        RunBench("connect --url " + urls + " --users 2 --hold 0 --json --no-progress 2>&1", &out);
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("no parleyd answers GET /health at " + Url(dead)), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace parley::test
