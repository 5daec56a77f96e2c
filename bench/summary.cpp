// `parley-bench summary FILE...`: one line per --json report, the figures
// that matter for each scenario (what `make bench` prints at the end).
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "summary.hpp"

namespace parley::bench {

namespace json = boost::json;

namespace {

double Get(const json::value& v, std::initializer_list<const char*> path) {
  const json::value* cur = &v;
  for (const char* k : path) {
    const auto* o = cur->if_object();
    if (o == nullptr) return 0;
    cur = o->if_contains(k);
    if (cur == nullptr) return 0;
  }
  return cur->is_number() ? cur->to_number<double>() : 0;
}

std::string Lat(const json::value& v, const char* section, const char* name) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "p50 %.2f p99 %.2f p99.9 %.2f ms",
                Get(v, {section, name, "p50_ms"}), Get(v, {section, name, "p99_ms"}),
                Get(v, {section, name, "p999_ms"}));
  return buf;
}

std::string Line(const json::value& r) {
  const auto* sc = r.as_object().if_contains("scenario");
  const std::string s = sc && sc->is_string() ? std::string(sc->as_string()) : "?";
  char buf[512];
  const double load = Get(r, {"machine", "loadavg_1m_start"});
  std::uint64_t errors = 0;
  if (const auto* e = r.as_object().if_contains("errors"); e && e->is_object()) {
    for (const auto& kv : e->as_object()) {
      if (kv.value().is_number()) errors += kv.value().to_number<std::uint64_t>();
    }
  }
  if (s == "connect") {
    std::snprintf(buf, sizeof buf,
                  "held %.0f sessions (%.0f failed), %.0f sessions/s, hello %s, server RSS %.0f "
                  "bytes/session",
                  Get(r, {"results", "sessions_held_at_end"}),
                  Get(r, {"results", "sessions_failed"}), Get(r, {"setup", "sessions_per_s"}),
                  Lat(r, "setup", "hello_latency").c_str(),
                  Get(r, {"results", "server_rss_per_session_bytes"}));
  } else if (s == "chat") {
    // Which chat run this is: the rate it was asked for.
    std::string rate = "?";
    if (const auto* res = r.as_object().if_contains("results"); res && res->is_object()) {
      if (const auto* t = res->as_object().if_contains("target_rate"); t && t->is_string()) {
        rate = std::string(t->as_string());
      } else if (t && t->is_number()) {
        rate = std::to_string(static_cast<long long>(t->to_number<double>())) + "/s";
      }
    }
    std::snprintf(buf, sizeof buf, "at %s: %.0f ok/s, %.0f delivered/s; ok %s; delivered %s",
                  rate.c_str(), Get(r, {"results", "ok_per_s"}),
                  Get(r, {"results", "delivered_per_s"}),
                  Lat(r, "results", "latency_send_to_ok").c_str(),
                  Lat(r, "results", "latency_send_to_delivered").c_str());
  } else if (s == "sync") {
    std::snprintf(buf, sizeof buf, "%.0f events in %.3f s = %.0f events/s (send %.0f msgs/s)",
                  Get(r, {"results", "received"}), Get(r, {"results", "sync_seconds"}),
                  Get(r, {"results", "sync_events_per_s"}), Get(r, {"results", "send_msgs_per_s"}));
  } else if (s == "storm") {
    std::snprintf(buf, sizeof buf, "%.0f sessions/s; session %s",
                  Get(r, {"results", "sessions_per_s"}),
                  Lat(r, "results", "session_latency").c_str());
  } else if (s == "fanout") {
    std::snprintf(buf, sizeof buf, "%.0f msgs/s to %.0f members; last member %s",
                  Get(r, {"results", "ok_per_s"}), Get(r, {"results", "members"}),
                  Lat(r, "results", "latency_send_to_last_member").c_str());
  } else {
    std::snprintf(buf, sizeof buf, "(unknown scenario)");
  }
  char tail[160];
  std::snprintf(tail, sizeof tail, "  [errors %llu; load %.2f; cores: server %.2f, bench %.2f]",
                static_cast<unsigned long long>(errors), load,
                Get(r, {"server", "cpu_cores_during_run"}),
                Get(r, {"bench", "cpu_cores_during_run"}));
  return "  " + s + std::string(9 - std::min<std::size_t>(8, s.size()), ' ') + buf + tail;
}

}  // namespace

int Summary(int argc, char** argv) {
  int rc = 0;
  for (int i = 0; i < argc; ++i) {
    std::ifstream in(argv[i]);
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto v = json::parse(ss.str(), ec);
    if (ec || !v.is_object()) {
      std::printf("  %s: no report (the run failed; see its log)\n", argv[i]);
      rc = 1;
      continue;
    }
    std::printf("%s\n", Line(v).c_str());
  }
  return rc;
}

}  // namespace parley::bench
