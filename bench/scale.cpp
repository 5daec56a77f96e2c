#include "scale.hpp"

#include <signal.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "driver.hpp"
#include "report.hpp"
#include "scenario.hpp"

namespace parley::bench {

namespace json = boost::json;

void ScaleParent::AfterReady(const Options& o, Driver& d) {
  d.Hold(o.hold_s, "hold");
  d.Scrape("held");
  if (!o.at_ready.empty()) {
    std::fprintf(stderr, "parley-bench: sessions held; running --at-ready\n");
    std::fflush(stderr);
    at_ready_status_ = std::system(o.at_ready.c_str());
  }
}

void ScaleParent::DuringRun(const Options& o, Driver& d) {
  if (o.kill_pid == 0 || kill_sent_) return;
  const auto planned =
      d.start_ns() + static_cast<std::int64_t>((o.warmup_s + o.duration_s + o.drain_s) * 1e9);
  if (MonoNs() < planned) return;
  kill_sent_ = true;
  json::object msg;
  msg["type"] = "killed";
  msg["at_ns"] = 0;
  std::ifstream comm_file("/proc/" + std::to_string(o.kill_pid) + "/comm");
  std::string comm;
  std::getline(comm_file, comm);
  if (comm != "parleyd") {
    kill_error_ = "pid " + std::to_string(o.kill_pid) + " is not a parleyd (comm \"" + comm +
                  "\"); not killed";
  } else {
    const std::int64_t at = MonoNs();
    if (::kill(o.kill_pid, SIGKILL) == 0) {
      msg["at_ns"] = at;
      kill_late_ms_ = static_cast<double>(at - planned) / 1e6;
    } else {
      kill_error_ = "kill(" + std::to_string(o.kill_pid) + ") failed: " + std::strerror(errno);
    }
  }
  if (!kill_error_.empty()) std::fprintf(stderr, "parley-bench: %s\n", kill_error_.c_str());
  d.Broadcast(msg);
}

void ScaleParent::Summarize(const Options& o, const Merged& m, Driver& d, json::object& out) const {
  // Memory per session, node by node: RSS held - RSS before, over the
  // sessions that node holds.
  const auto before = d.NodeMetrics("before");
  const auto held = d.NodeMetrics("held");
  json::array nodes;
  double sessions = 0, delta = 0, worst = 0;
  for (std::size_t n = 0; n < o.nodes.size(); ++n) {
    json::object node;
    const double k = d.setup().Counter("node_sessions_" + std::to_string(n));
    node["url"] = o.nodes[n].url;
    node["sessions"] = k;
    sessions += k;
    if (n < before.size() && n < held.size() && before[n].ok && held[n].ok) {
      const double dn = held[n].rss_bytes - before[n].rss_bytes;
      delta += dn;
      node["rss_before_bytes"] = before[n].rss_bytes;
      node["rss_held_bytes"] = held[n].rss_bytes;
      node["open_fds_held"] = held[n].open_fds;
      if (k > 0) {
        node["rss_per_session_bytes"] = dn / k;
        worst = std::max(worst, dn / k);
      }
    }
    nodes.push_back(std::move(node));
  }
  out["sessions_held"] = sessions;
  out["per_node"] = std::move(nodes);
  if (sessions > 0) out["server_rss_per_session_bytes"] = delta / sessions;
  out["server_rss_per_session_bytes_worst_node"] = worst;
  if (!o.at_ready.empty()) out["at_ready_exit_status"] = at_ready_status_;
  if (o.kill_pid == 0) return;
  json::object kill;
  kill["pid"] = o.kill_pid;
  if (!kill_error_.empty()) kill["error"] = kill_error_;
  kill["late_ms"] = kill_late_ms_;  // after the planned time: the parent polls every 200 ms
  kill["clients_moved"] = m.Counter("kill_moved");
  kill["clients_back"] = m.Counter("kill_back");
  kill["clients_not_back"] = m.Counter("kill_not_back");
  kill["reconnect_tries"] = m.Counter("kill_reconnect_tries");
  kill["reconnect_failed_tries"] = m.Counter("kill_reconnect_failed");
  kill["kill_to_back"] = m.Hist("kill_back").Summary();
  kill["close_to_back"] = m.Hist("kill_reconnect").Summary();
  // When each client saw its connection close: the dying process's sockets
  // are closed by its kernel teardown, which shares the cores here.
  kill["kill_to_close"] = m.Hist("kill_closed").Summary();
  out["kill"] = std::move(kill);
}

}  // namespace parley::bench
