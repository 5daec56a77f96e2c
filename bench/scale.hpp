// The parent's side of `parley-bench scale` (its workers are chat's, in
// scenario_chat.cpp): hold the sessions and measure every node, run the
// caller's --at-ready command, SIGKILL --kill-pid once the traffic is over,
// and turn what the workers saw into per-node memory and kill figures.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "options.hpp"

namespace parley::bench {

class Driver;
struct Merged;

class ScaleParent {
 public:
  // Once every session is open: holds them --hold seconds, reads each
  // node's /metrics ("held"), then runs --at-ready (sh -c) and waits for it.
  void AfterReady(const Options& o, Driver& d);
  // From go on, every ~200 ms: at go + warmup + duration + drain, SIGKILLs
  // --kill-pid (only if /proc/PID/comm is "parleyd") and tells the workers
  // {"type":"killed","at_ns":T} (0: not killed), so they time from T.
  void DuringRun(const Options& o, Driver& d);
  // Adds sessions and memory per node, and the kill's figures.
  void Summarize(const Options& o, const Merged& m, Driver& d, boost::json::object& out) const;

 private:
  int at_ready_status_ = 0;
  bool kill_sent_ = false;
  double kill_late_ms_ = 0;
  std::string kill_error_;
};

}  // namespace parley::bench
