// parley-bench: a load generator that drives a running parleyd through its
// public protocol only (HTTP sign-up, WebSocket ops). See docs/benchmarks.md.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "client.hpp"
#include "driver.hpp"
#include "options.hpp"
#include "scenario.hpp"
#include "summary.hpp"

namespace {

using parley::bench::Options;

constexpr const char* kUsage = R"(usage: parley-bench SCENARIO [options]

Drives a running parleyd (loopback only) through the public protocol and
reports throughput and latency percentiles.

Scenarios:
  connect   open --users sessions (default 1000), hold them --hold seconds;
            server memory and descriptors per session from /metrics
  chat      --users online users (default 1000) send 1:1 messages to random
            online peers at --rate messages/s in total (default 1000), or
            --rate max (closed loop, --window sends in flight per user,
            default 8); recipients ack; latency send->ok and send->delivered
  sync      a device comes back to a backlog of --messages events (default
            10000) and receives them all; seconds and events/s
  fanout    a group of --members (default 256) all online; the creator sends
            at --rate (default 100/s); latency to each member and to the last
  storm     new sessions (connect, upgrade, hello, close) at --rate per second
            (default 200) or max (--window at once, default 64)
  scale     chat over a cluster (several --url): --users sessions spread over
            the nodes are held --hold seconds (parleyd RSS per session per
            node; --at-ready CMD runs then), then 1:1 traffic at --rate
            (send->delivered split cross-node / same node), then with
            --kill-pid PID that parleyd is SIGKILLed and its clients reconnect
            (hello with resume_after) to the other nodes: kill -> back p50/p99
  summary FILE...  one line per --json report (what `make bench` prints)

Target and accounts:
  --url URL[,URL...]         parleyd, http://HOST:PORT (default http://127.0.0.1:8080);
                             HOST must be loopback: 127.x.x.x, ::1 or localhost.
                             Repeated (or a comma list): the nodes of a cluster;
                             account i connects to node i mod N, sign-up and
                             the one-time codes go through the first
  --otp-file PATH            the file parleyd writes one-time codes to
                             (parleyd --sms-provider file:PATH); needed to sign up
  --accounts FILE            cache of signed-up accounts (JSON lines), reused by
                             later runs; tokens are refreshed when needed
  --phone-prefix +NNNN       phones are PREFIX + 6 digits (default +1999 and a
                             random 4-digit run id)
  --signup-concurrency N     sign-ups in flight (default 32)

  Sign-up goes through POST /v1/auth/otp and /v1/auth/verify, so start parleyd
  without the limits that protect them:
    parleyd --sms-provider file:/tmp/bench-codes.jsonl \
            --otp-per-address-per-hour 0 --otp-per-phone 0 --device-send-rate 0 \
            --device-write-rate 0 --device-fanout-rate 0

Load:
  --users N        accounts/sessions (connect, chat, storm pool)
  --rate R|max     target rate (chat: messages/s in total; storm: sessions/s;
                   fanout: messages/s)
  --window N       in-flight sends per user at max (chat 8; sync 64; storm:
                   concurrent handshakes, 64)
  --duration S     measured seconds (default 20)
  --warmup S       seconds before measuring (default 2)
  --drain S        at most this long after the run for answers and deliveries (default 5)
  --messages N     sync backlog size (default 10000)
  --hold S         connect: seconds to hold the sessions (default 10)
  --members N      fanout group size, creator included (default 256, the maximum)
  --random-sender  fanout: random members send, not only the creator
  --body-bytes N   extra bytes of padding in each message body (default 0)
  --at-ready CMD   scale: run CMD (sh -c) once every session is open and held
  --kill-pid PID   scale: SIGKILL this parleyd (its /proc comm must be parleyd)
                   after the traffic and the drain
  --kill-wait S    scale: wait at most this long for its clients (default 30)

Execution:
  --threads N               io threads per worker process (default 1: on a small
                            machine the bench shares the CPU with parleyd)
  --procs N                 worker processes (default: as many as the open-files
                            limit requires for the sockets, usually 1)
  --source-addrs N          spread sockets over 127.0.0.1..127.0.0.N (default 8)
  --connect-concurrency N   handshakes in flight while connecting (default 256)
  --setup-timeout S         limit for provisioning+connecting (default 180)
  --seed N                  random seed (default: random)
  --own-copy                do not ask hello to skip the copies of a session's own
                            sends (skip_own_copy); for comparing with the old behaviour

Output:
  --json           one JSON object on stdout with every figure and parameter
  --progress       force the live progress line on stderr (default: if a terminal)
  --no-progress
  -h, --help
)";

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "parley-bench: %s\n(parley-bench --help for usage)\n", msg.c_str());
  std::exit(2);
}

double ToDouble(const std::string& flag, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(d >= lo && d <= hi)) {
    Die(flag + ": expected a number from " + std::to_string(lo) + " to " + std::to_string(hi) +
        ", got \"" + v + "\"");
  }
  return d;
}

int ToInt(const std::string& flag, const std::string& v, int lo, int hi) {
  const double d = ToDouble(flag, v, lo, hi);
  if (d != static_cast<int>(d)) Die(flag + ": expected a whole number, got \"" + v + "\"");
  return static_cast<int>(d);
}

// http://HOST[:PORT][/], HOST loopback only: a load generator aimed at
// someone else's server is an attack, not a benchmark.
parley::bench::Node ParseUrl(const std::string& url) {
  parley::bench::Node o;
  o.url = url;
  std::string rest = o.url;
  if (rest.starts_with("https://"))
    Die("--url: https is not supported; use parleyd's plain listener");
  if (rest.starts_with("http://")) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) Die("--url: no path, please: " + o.url);
  std::string host = rest;
  std::string port = "8080";
  if (rest.starts_with("[")) {
    const auto close = rest.find(']');
    if (close == std::string::npos) Die("--url: unbalanced [ in " + o.url);
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') Die("--url: bad port in " + o.url);
      port = rest.substr(close + 2);
    }
  } else if (const auto c = rest.rfind(':'); c != std::string::npos) {
    host = rest.substr(0, c);
    port = rest.substr(c + 1);
  }
  o.port = static_cast<std::uint16_t>(ToInt("--url port", port, 1, 65535));
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(host, ec);
  const bool loopback = !ec && addr.is_loopback();
  if (!loopback) {
    Die("--url: refusing " + host +
        ": parley-bench only targets this machine (127.0.0.0/8, ::1 or localhost)");
  }
  o.host = addr.to_string();
  o.ipv6 = addr.is_v6();
  return o;
}

// Every --url (each may be a comma list) as nodes; the first is also
// opt.url/host/port/ipv6, where sign-up goes.
void ParseUrls(Options& o, const std::vector<std::string>& urls) {
  for (const auto& arg : urls.empty() ? std::vector<std::string>{o.url} : urls) {
    std::size_t from = 0;
    // Bounded by the argument's length.
    while (from <= arg.size()) {
      const auto comma = std::min(arg.find(',', from), arg.size());
      const std::string one = arg.substr(from, comma - from);
      if (one.empty()) Die("--url: empty URL in \"" + arg + "\"");
      o.nodes.push_back(ParseUrl(one));
      from = comma + 1;
    }
  }
  if (o.nodes.size() > 64) Die("--url: at most 64 nodes");
  for (const auto& n : o.nodes) {
    if (n.ipv6 != o.nodes.front().ipv6) Die("--url: nodes must all be IPv4 or all IPv6");
  }
  const auto& first = o.nodes.front();
  o.url = first.url;
  o.host = first.host;
  o.port = first.port;
  o.ipv6 = first.ipv6;
}

Options Parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> urls;
  for (int i = 0; i < argc; ++i) o.argv.emplace_back(argv[i]);
  if (argc < 2) Die("which scenario? connect, chat, sync, fanout, storm or scale");
  std::map<std::string, std::function<void(const std::string&)>> with_value = {
      {"--url", [&](const std::string& v) { urls.push_back(v); }},
      {"--otp-file", [&](const std::string& v) { o.otp_file = v; }},
      {"--accounts", [&](const std::string& v) { o.accounts_file = v; }},
      {"--phone-prefix", [&](const std::string& v) { o.phone_prefix = v; }},
      {"--signup-concurrency",
       [&](const std::string& v) {
         o.signup_concurrency = ToInt("--signup-concurrency", v, 1, 1024);
       }},
      {"--users", [&](const std::string& v) { o.users = ToInt("--users", v, 1, 1'000'000); }},
      {"--rate",
       [&](const std::string& v) {
         if (v == "max") {
           o.rate_max = true;
         } else {
           o.rate = ToDouble("--rate", v, 0.001, 10'000'000);
         }
       }},
      {"--window", [&](const std::string& v) { o.window = ToInt("--window", v, 1, 100'000); }},
      {"--duration",
       [&](const std::string& v) { o.duration_s = ToDouble("--duration", v, 0.1, 86'400); }},
      {"--warmup", [&](const std::string& v) { o.warmup_s = ToDouble("--warmup", v, 0, 3600); }},
      {"--drain", [&](const std::string& v) { o.drain_s = ToDouble("--drain", v, 0, 600); }},
      {"--messages",
       [&](const std::string& v) { o.messages = ToInt("--messages", v, 1, 10'000'000); }},
      {"--hold", [&](const std::string& v) { o.hold_s = ToDouble("--hold", v, 0, 86'400); }},
      {"--members", [&](const std::string& v) { o.members = ToInt("--members", v, 2, 256); }},
      {"--body-bytes",
       [&](const std::string& v) { o.body_bytes = ToInt("--body-bytes", v, 0, 60'000); }},
      {"--threads", [&](const std::string& v) { o.threads = ToInt("--threads", v, 1, 256); }},
      {"--procs", [&](const std::string& v) { o.procs = ToInt("--procs", v, 1, 64); }},
      {"--source-addrs",
       [&](const std::string& v) { o.source_addrs = ToInt("--source-addrs", v, 1, 250); }},
      {"--connect-concurrency",
       [&](const std::string& v) {
         o.connect_concurrency = ToInt("--connect-concurrency", v, 1, 100'000);
       }},
      {"--setup-timeout",
       [&](const std::string& v) {
         o.setup_timeout_s = ToDouble("--setup-timeout", v, 1, 86'400);
       }},
      {"--seed", [&](const std::string& v) { o.seed = std::strtoull(v.c_str(), nullptr, 10); }},
      {"--at-ready", [&](const std::string& v) { o.at_ready = v; }},
      {"--kill-pid",
       [&](const std::string& v) { o.kill_pid = ToInt("--kill-pid", v, 2, 1 << 30); }},
      {"--kill-wait",
       [&](const std::string& v) { o.kill_wait_s = ToDouble("--kill-wait", v, 1, 3600); }},
  };
  std::map<std::string, std::function<void()>> flags = {
      {"--json", [&] { o.json = true; }},
      {"--progress", [&] { o.progress = 1; }},
      {"--no-progress", [&] { o.progress = 0; }},
      {"--random-sender", [&] { o.random_sender = true; }},
      {"--own-copy", [&] { o.own_copy = true; }},
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    std::string value;
    bool has_value = false;
    if (const auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    if (auto it = with_value.find(a); it != with_value.end()) {
      if (!has_value) {
        if (i + 1 >= argc) Die(a + ": needs a value");
        value = argv[++i];
      }
      it->second(value);
    } else if (auto f = flags.find(a); f != flags.end() && !has_value) {
      f->second();
    } else if (!a.starts_with("-") && o.scenario.empty()) {
      o.scenario = a;
    } else {
      Die("unknown option " + a);
    }
  }
  ParseUrls(o, urls);
  if (o.progress < 0) o.progress = ::isatty(STDERR_FILENO) ? 1 : 0;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace parley::bench;
  if (argc >= 2 && std::string(argv[1]) == "summary") return Summary(argc - 2, argv + 2);
  Options opt = Parse(argc, argv);
  std::unique_ptr<Scenario> scenario;
  if (opt.scenario == "connect") {
    scenario = MakeConnect();
  } else if (opt.scenario == "chat") {
    scenario = MakeChat();
    if (!opt.rate_max && opt.rate == 0) opt.rate = 1000;
    if (opt.users == 1) Die("chat: --users must be at least 2");
  } else if (opt.scenario == "sync") {
    scenario = MakeSync();
  } else if (opt.scenario == "fanout") {
    scenario = MakeFanout();
    if (!opt.rate_max && opt.rate == 0) opt.rate = 100;
  } else if (opt.scenario == "scale") {
    scenario = MakeScale();
    if (!opt.rate_max && opt.rate == 0) opt.rate = 1000;
    if (opt.users == 1) Die("scale: --users must be at least 2");
  } else if (opt.scenario == "storm") {
    scenario = MakeStorm();
    if (!opt.rate_max && opt.rate == 0) opt.rate = 200;
  } else {
    Die(opt.scenario.empty() ? "which scenario? connect, chat, sync, fanout, storm or scale"
                             : "unknown scenario \"" + opt.scenario + "\"");
  }
  if (opt.window == 0) opt.window = opt.scenario == "chat" || opt.scenario == "scale" ? 8 : 64;
  if ((!opt.at_ready.empty() || opt.kill_pid != 0) && opt.scenario != "scale") {
    Die("--at-ready and --kill-pid are for the scale scenario");
  }
  // A worker that dies must not take the parent with it through a pipe write.
  ::signal(SIGPIPE, SIG_IGN);
  Target target;
  for (const auto& n : opt.nodes) target.nodes.push_back(Endpoint{n.host, n.port});
  target.ipv6 = opt.ipv6;
  target.source_addrs = opt.ipv6 ? 1 : opt.source_addrs;
  target.own_copy = opt.own_copy;
  SetTarget(target);
  Driver driver(opt, *scenario);
  return driver.Run();
}
