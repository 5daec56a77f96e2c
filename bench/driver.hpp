// The parent's side of a run: provision, fork, start together, merge, report.
#pragma once

#include <boost/json/object.hpp>
#include <map>
#include <string>
#include <vector>

#include "options.hpp"
#include "provision.hpp"
#include "report.hpp"
#include "scenario.hpp"
#include "workers.hpp"

namespace parley::bench {

class Driver {
 public:
  Driver(const Options& opt, Scenario& scenario);
  // Returns the process exit code (0: ran and reported; 1: could not run).
  int Run();

  // For Scenario::AfterReady: waits `seconds` while showing workers'
  // progress; false if a worker died meanwhile.
  bool Hold(double seconds, const std::string& label);
  // Reads the server's /metrics and keeps it under `label` in the report.
  // Several nodes: their sum (ok when every node answered), and each node's
  // under label.nodes in the report and NodeMetrics(label) here.
  ServerMetrics Scrape(const std::string& label);
  // What Scrape(label) read (ok == false when it was not read).
  ServerMetrics Metrics(const std::string& label) const;
  std::vector<ServerMetrics> NodeMetrics(const std::string& label) const;
  const Merged& setup() const { return setup_; }
  int procs() const { return pool_.size(); }
  // While the run goes on: to every worker; and when it started (go).
  void Broadcast(const boost::json::object& msg) { pool_.Broadcast(msg); }
  std::int64_t start_ns() const { return start_ns_; }

 private:
  int Fail(const std::string& message);
  int DecideProcs(std::size_t accounts, std::string* note);
  void OnProgress(int worker, const boost::json::object& msg);
  void ShowProgress(const std::string& phase);
  boost::json::object Params() const;

  const Options& opt_;
  Scenario& sc_;
  ProgressLine progress_;
  WorkerPool pool_;
  std::vector<boost::json::object> latest_;  // progress, by worker
  std::int64_t phase_start_ns_ = 0;
  double last_rate_value_ = 0;
  std::int64_t last_rate_ns_ = 0;
  double rate_ = 0;
  Merged setup_;
  boost::json::object server_;  // label -> metrics, for the report
  std::map<std::string, ServerMetrics> metrics_;
  std::map<std::string, std::vector<ServerMetrics>> node_metrics_;
  std::int64_t start_ns_ = 0;
};

}  // namespace parley::bench
