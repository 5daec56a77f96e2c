#include "bus/bus.hpp"

#include <sodium.h>

#include <algorithm>
#include <chrono>

namespace parley::bus {

BusMetrics::BusMetrics(Registry& r)
    : published(r.GetCounter("parley_bus_published_total", "Messages this node handed to the bus")),
      received(r.GetCounter("parley_bus_received_total",
                            "Messages from other nodes handed to this node")),
      dropped(r.GetCounter("parley_bus_dropped_total",
                           "Malformed or foreign bus messages, counted and dropped")),
      publish_lost(r.GetCounter("parley_bus_publish_lost_total",
                                "Publications that never reached the bus (down or overloaded)")),
      reconnects(r.GetCounter("parley_bus_reconnects_total",
                              "Bus connections re-established after a loss")),
      connected(r.GetGauge("parley_bus_connected", "1 while the bus is reachable")),
      wake_latency(r.GetHistogram("parley_bus_wake_latency_seconds",
                                  "Cross-node delivery: wake published by one node -> received "
                                  "by this one")) {}

void BusMetrics::ObserveWake(const Wake& wake) {
  if (wake.sent_us <= 0) return;
  wake_latency.Observe(static_cast<double>(std::max<std::int64_t>(0, NowUs() - wake.sent_us)) /
                       1e6);
}

std::int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
std::string RandomHex(std::size_t bytes) {
  static const bool ready = sodium_init() >= 0;
  (void)ready;
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}
}  // namespace

std::string NewInstanceId() { return RandomHex(8); }

std::string GenerateNodeId() { return "node-" + RandomHex(4); }

bool ValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace parley::bus
