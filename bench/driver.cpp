#include "driver.hpp"

#include "http.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

namespace parley::bench {

namespace json = boost::json;

namespace {

double Num(const json::value& v) { return v.is_number() ? v.to_number<double>() : 0.0; }

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Raises the soft open-files limit to the hard one; returns the limit.
rlim_t RaiseNoFile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

// Counts are summed as doubles; whole numbers are written as integers.
void Tidy(json::value& v) {
  if (v.is_object()) {
    for (auto& kv : v.as_object()) Tidy(kv.value());
  } else if (v.is_array()) {
    for (auto& e : v.as_array()) Tidy(e);
  } else if (v.is_double()) {
    const double d = v.as_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      v = static_cast<std::int64_t>(d);
    }
  }
}

void Tidy(json::object& o) {
  for (auto& kv : o) Tidy(kv.value());
}

}  // namespace

// ---- payloads ----

void Merged::Add(const json::object& p) {
  if (const auto* c = p.if_contains("counters"); c && c->is_object()) {
    for (const auto& kv : c->as_object()) counters[std::string(kv.key())] += Num(kv.value());
  }
  if (const auto* c = p.if_contains("max"); c && c->is_object()) {
    for (const auto& kv : c->as_object()) {
      auto& m = max[std::string(kv.key())];
      m = std::max(m, Num(kv.value()));
    }
  }
  if (const auto* c = p.if_contains("hists"); c && c->is_object()) {
    for (const auto& kv : c->as_object()) hists[std::string(kv.key())].MergeJson(kv.value());
  }
  if (const auto* c = p.if_contains("errors"); c && c->is_object()) {
    for (const auto& kv : c->as_object()) {
      errors[std::string(kv.key())] += static_cast<std::uint64_t>(Num(kv.value()));
    }
  }
  if (const auto* c = p.if_contains("info"); c && c->is_object() && info.empty()) {
    info = c->as_object();
  }
}

double Merged::Counter(const std::string& name) const {
  auto it = counters.find(name);
  return it == counters.end() ? 0.0 : it->second;
}

double Merged::Max(const std::string& name) const {
  auto it = max.find(name);
  return it == max.end() ? 0.0 : it->second;
}

const Histogram& Merged::Hist(const std::string& name) const {
  static const Histogram empty;
  auto it = hists.find(name);
  return it == hists.end() ? empty : it->second;
}

json::object Merged::ErrorsJson() const {
  json::object o;
  for (const auto& [k, v] : errors) o[k] = v;
  return o;
}

void Payload::Hist(std::string_view name, const Histogram& h) { hists[name] = h.ToJson(); }

void Payload::Errors(const std::map<std::string, std::uint64_t>& e) {
  for (const auto& [k, v] : e) {
    auto* cur = errors.if_contains(k);
    errors[k] = (cur ? Num(*cur) : 0.0) + static_cast<double>(v);
  }
}

json::object Payload::Build() const {
  json::object o;
  o["counters"] = counters;
  o["max"] = max;
  o["hists"] = hists;
  o["errors"] = errors;
  o["info"] = info;
  return o;
}

// ---- the worker's side ----

namespace {
double ProcessCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
}  // namespace

std::optional<std::int64_t> WorkerContext::ReadyAndWait(json::object payload,
                                                        Clock::time_point deadline) {
  payload["type"] = "ready";
  link.Send(payload);
  auto go = link.Receive(deadline);
  if (!go) return std::nullopt;
  const auto* t = go->if_contains("type");
  if (t == nullptr || !t->is_string() || t->as_string() != "go") return std::nullopt;
  go_cpu_s = ProcessCpuSeconds();
  go_wall_ns = MonoNs();
  return go->at("start_ns").to_number<std::int64_t>();
}

void WorkerContext::Progress(json::object payload) {
  if (opt.progress == 0) return;
  payload["type"] = "progress";
  link.Send(payload);
}

void WorkerContext::MaybeProgress(const std::function<json::object()>& make) {
  if (opt.progress == 0) return;
  const std::int64_t now = MonoNs();
  if (now - last_progress_ns < 1'000'000'000) return;
  last_progress_ns = now;
  Progress(make());
}

void WorkerContext::Result(json::object payload) {
  payload["type"] = "result";
  // The bench's own CPU from go to here: on a small machine it competes
  // with the server, and the report should show by how much.
  if (go_wall_ns > 0) {
    if (!payload["counters"].is_object()) payload["counters"] = json::object();
    if (!payload["max"].is_object()) payload["max"] = json::object();
    payload["counters"].as_object()["bench_cpu_seconds"] = ProcessCpuSeconds() - go_cpu_s;
    payload["max"].as_object()["bench_run_seconds"] =
        static_cast<double>(MonoNs() - go_wall_ns) / 1e9;
  }
  link.Send(payload);
}

std::string Scenario::ProgressText(const Merged& m, double elapsed_s, double rate) const {
  std::string s = "sessions " + Fmt("%.0f", m.Counter("sessions"));
  s += "  " + RateCounter() + " " + Fmt("%.0f", m.Counter(RateCounter()));
  s += " (" + Fmt("%.0f", rate) + "/s)";
  const auto& h = m.Hist("progress");
  if (h.count() > 0) s += "  p99 " + Fmt("%.2f", h.PercentileUs(0.99) / 1000.0) + " ms";
  std::uint64_t errors = 0;
  for (const auto& [k, v] : m.errors) errors += v;
  s += "  errors " + std::to_string(errors);
  return Fmt("%5.0fs  ", elapsed_s) + s;
}

// ---- the parent ----

Driver::Driver(const Options& opt, Scenario& scenario)
    : opt_(opt), sc_(scenario), progress_(opt.progress != 0) {}

int Driver::Fail(const std::string& message) {
  progress_.Clear();
  std::fprintf(stderr, "parley-bench: %s\n", message.c_str());
  return 1;
}

ServerMetrics Driver::Scrape(const std::string& label) {
  if (opt_.nodes.size() <= 1) {
    ServerMetrics m = ScrapeMetrics(opt_.host, opt_.port);
    server_[label] = m.ToJson();
    metrics_[label] = m;
    return m;
  }
  ServerMetrics sum;
  sum.ok = true;
  std::vector<ServerMetrics> each;
  json::array nodes;
  for (const auto& n : opt_.nodes) {
    each.push_back(ScrapeMetrics(n.host, n.port));
    const ServerMetrics& m = each.back();
    sum.ok = sum.ok && m.ok;
    sum.rss_bytes += m.rss_bytes;
    sum.cpu_seconds += m.cpu_seconds;
    sum.open_fds += m.open_fds;
    sum.mono_s = std::max(sum.mono_s, m.mono_s);
    json::object o = m.ToJson();
    o["url"] = n.url;
    nodes.push_back(std::move(o));
  }
  json::object o = sum.ToJson();
  o["nodes"] = std::move(nodes);
  server_[label] = std::move(o);
  metrics_[label] = sum;
  node_metrics_[label] = std::move(each);
  return sum;
}

std::vector<ServerMetrics> Driver::NodeMetrics(const std::string& label) const {
  if (opt_.nodes.size() <= 1) {
    auto one = metrics_.find(label);
    return one == metrics_.end() ? std::vector<ServerMetrics>{} : std::vector{one->second};
  }
  auto it = node_metrics_.find(label);
  return it == node_metrics_.end() ? std::vector<ServerMetrics>{} : it->second;
}

ServerMetrics Driver::Metrics(const std::string& label) const {
  auto it = metrics_.find(label);
  return it == metrics_.end() ? ServerMetrics{} : it->second;
}

void Driver::OnProgress(int worker, const json::object& msg) {
  const auto* t = msg.if_contains("type");
  if (t == nullptr || !t->is_string()) return;
  if (t->as_string() == "progress") latest_[static_cast<std::size_t>(worker)] = msg;
}

void Driver::ShowProgress(const std::string& phase) {
  if (!progress_.enabled()) return;
  Merged m;
  for (const auto& p : latest_) m.Add(p);
  const std::int64_t now = MonoNs();
  const double v = m.Counter(sc_.RateCounter());
  if (last_rate_ns_ == 0 || v < last_rate_value_) {
    last_rate_ns_ = now;
    last_rate_value_ = v;
  } else if (now - last_rate_ns_ >= 1'000'000'000) {
    rate_ = (v - last_rate_value_) / (static_cast<double>(now - last_rate_ns_) / 1e9);
    last_rate_ns_ = now;
    last_rate_value_ = v;
  }
  const double elapsed = static_cast<double>(now - phase_start_ns_) / 1e9;
  progress_.Show(opt_.scenario + " " + phase + " " + sc_.ProgressText(m, elapsed, rate_));
}

bool Driver::Hold(double seconds, const std::string& label) {
  std::vector<json::object> none;
  std::string error;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(seconds));
  phase_start_ns_ = MonoNs();
  // A message type that never comes: this only pumps progress until the deadline.
  pool_.Gather(
      "(hold)", deadline, &none, [this](int w, const json::object& m) { OnProgress(w, m); },
      [this, &label] { ShowProgress(label); }, &error);
  return error.starts_with("timed out");
}

int Driver::DecideProcs(std::size_t accounts, std::string* note) {
  const rlim_t limit = RaiseNoFile();
  const std::size_t sockets = sc_.Sockets(opt_);
  // Room for the loops, pipes and the odd HTTP connection.
  const std::size_t budget = limit > 512 ? limit - 256 : limit / 2;
  const std::size_t needed = std::max<std::size_t>(1, (sockets + budget - 1) / budget);
  std::size_t procs = opt_.procs > 0 ? static_cast<std::size_t>(opt_.procs) : needed;
  if (sc_.SingleProcess()) procs = 1;
  procs = std::max<std::size_t>(1, std::min(procs, accounts));
  *note = std::to_string(sockets) + " sockets over " + std::to_string(procs) + " worker process" +
          (procs == 1 ? "" : "es") + " (open-files limit " + std::to_string(limit) +
          " per process" +
          (opt_.procs > 0 ? ", --procs " + std::to_string(opt_.procs) : ", automatic") + ")";
  if (procs < needed) {
    *note += "; WARNING: " + std::to_string(needed) + " would be needed for that many sockets";
  }
  return static_cast<int>(procs);
}

json::object Driver::Params() const {
  json::object p;
  const std::string& s = opt_.scenario;
  const bool timed = s == "chat" || s == "storm" || s == "fanout" || s == "scale";
  p["url"] = opt_.url;
  if (opt_.nodes.size() > 1) {
    json::array urls;
    for (const auto& n : opt_.nodes) urls.push_back(json::value(n.url));
    p["urls"] = std::move(urls);
  }
  if (s == "chat" || s == "connect" || s == "storm" || s == "scale")
    p["users"] = sc_.Accounts(opt_);
  if (timed) {
    p["rate"] = opt_.rate_max ? json::value("max") : json::value(opt_.rate);
    p["duration_s"] = opt_.duration_s;
    p["warmup_s"] = opt_.warmup_s;
    p["drain_s"] = opt_.drain_s;
  }
  if (s == "sync" || (opt_.rate_max && s != "fanout")) p["window"] = opt_.window;
  if (s == "sync") p["messages"] = opt_.messages;
  if (s == "connect") p["hold_s"] = opt_.hold_s;
  if (s == "fanout") {
    p["members"] = opt_.members;
    p["random_sender"] = opt_.random_sender;
  }
  p["threads"] = opt_.threads;
  p["source_addrs"] = opt_.source_addrs;
  p["connect_concurrency"] = opt_.connect_concurrency;
  p["body_bytes"] = opt_.body_bytes;
  p["own_copy"] = opt_.own_copy;
  std::string cmd;
  for (const auto& a : opt_.argv) cmd += (cmd.empty() ? "" : " ") + a;
  p["command"] = cmd;
  return p;
}

int Driver::Run() {
  const std::int64_t wall_start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
  const double load_start = LoadAverage1();
  for (const auto& n : opt_.nodes) {
    auto health = HttpBlocking(n.host, n.port, "GET", "/health", "", std::chrono::seconds(5));
    if (health.status != 200) {
      return Fail("no parleyd answers GET /health at " + n.url +
                  (health.error.empty() ? "" : " (" + health.error + ")"));
    }
  }

  // Accounts, in this (still single-threaded) process, before any fork.
  const std::size_t wanted = sc_.Accounts(opt_);
  ProvisionReport prov;
  const double valid_for = opt_.setup_timeout_s + sc_.Seconds(opt_) + 120;
  std::vector<Account> accounts = Provision(opt_, wanted, valid_for, &prov);
  if (accounts.size() < wanted) {
    std::string why;
    for (const auto& [k, v] : prov.errors) why += " " + k + " x" + std::to_string(v) + ";";
    std::string hint;
    if (why.find("rate_limited") != std::string::npos) {
      hint = " Start parleyd with --otp-per-address-per-hour 0 --otp-per-phone 0.";
    }
    if (why.find("no code") != std::string::npos) {
      hint = " Is parleyd started with --sms-provider file:" + opt_.otp_file + "?";
    }
    return Fail("only " + std::to_string(accounts.size()) + " of " + std::to_string(wanted) +
                " accounts could be made:" + why + hint);
  }

  // Account i's sessions go to node i mod N: the accounts of one worker
  // (a contiguous share) reach every node.
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    accounts[i].node = static_cast<int>(i % opt_.nodes.size());
  }

  std::string note;
  const int procs = DecideProcs(accounts.size(), &note);
  if (!opt_.json || opt_.progress != 0) std::fprintf(stderr, "parley-bench: %s\n", note.c_str());

  std::mt19937_64 rng(opt_.seed == 0 ? std::random_device{}() : opt_.seed);
  char run_id[17];
  std::snprintf(run_id, sizeof run_id, "%016llx", static_cast<unsigned long long>(rng()));

  Scrape("before");
  std::string error;
  const WorkerMain main_fn = [&](const WorkerInfo& info, ParentLink& link) {
    WorkerContext ctx{opt_, accounts, info, link, run_id};
    return sc_.Worker(ctx);
  };
  if (!pool_.Start(procs, accounts.size(), main_fn, &error)) return Fail(error);
  latest_.assign(static_cast<std::size_t>(procs), json::object());

  // Setup: every worker connects its share.
  phase_start_ns_ = MonoNs();
  std::vector<json::object> ready;
  const auto setup_deadline =
      Clock::now() + std::chrono::seconds(static_cast<long>(opt_.setup_timeout_s) + 30);
  if (!pool_.Gather(
          "ready", setup_deadline, &ready,
          [this](int w, const json::object& m) { OnProgress(w, m); },
          [this] { ShowProgress("setup"); }, &error)) {
    return Fail(error);
  }
  for (const auto& r : ready) setup_.Add(r);
  progress_.Clear();
  Scrape("ready");
  sc_.AfterReady(opt_, *this);
  progress_.Clear();

  // Go: a common start a little ahead, so every worker begins on time.
  const std::int64_t start_ns = MonoNs() + 100'000'000;
  start_ns_ = start_ns;
  json::object go;
  go["type"] = "go";
  go["start_ns"] = start_ns;
  pool_.Broadcast(go);
  const ServerMetrics at_go = Scrape("go");
  phase_start_ns_ = start_ns;
  last_rate_ns_ = 0;
  latest_.assign(static_cast<std::size_t>(procs), json::object());
  std::vector<json::object> results;
  const auto result_deadline =
      Clock::now() + std::chrono::seconds(static_cast<long>(sc_.ResultTimeout(opt_)));
  if (!pool_.Gather(
          "result", result_deadline, &results,
          [this](int w, const json::object& m) { OnProgress(w, m); },
          [this] {
            sc_.DuringRun(opt_, *this);
            ShowProgress("run");
          },
          &error)) {
    return Fail(error);
  }
  progress_.Clear();
  // Workers exit right after their result; reaped first, so that "after"
  // sees the server without their sockets.
  pool_.Reap(std::chrono::seconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const ServerMetrics after = Scrape("after");

  Merged merged;
  for (const auto& r : results) merged.Add(r);
  json::object results_json;
  sc_.Summarize(opt_, merged, *this, results_json);

  json::object report;
  report["scenario"] = opt_.scenario;
  report["params"] = Params();
  json::object bench;
  bench["procs"] = procs;
  bench["procs_note"] = note;
  bench["threads_per_proc"] = opt_.threads;
  bench["run_id"] = run_id;
  bench["started_unix_ms"] = wall_start_ms;
  if (merged.Max("bench_run_seconds") > 0) {
    bench["cpu_cores_during_run"] =
        merged.Counter("bench_cpu_seconds") / merged.Max("bench_run_seconds");
  }
  report["bench"] = std::move(bench);
  json::object machine;
  machine["cpus"] = std::thread::hardware_concurrency();
  machine["loadavg_1m_start"] = load_start;
  machine["loadavg_1m_end"] = LoadAverage1();
  report["machine"] = std::move(machine);
  report["provision"] = prov.ToJson();
  json::object setup;
  setup["sessions_ok"] = setup_.Counter("setup_ok");
  setup["sessions_failed"] = setup_.Counter("setup_failed");
  const double setup_s = setup_.Max("setup_seconds");
  setup["seconds"] = setup_s;
  setup["sessions_per_s"] = setup_s > 0 ? setup_.Counter("setup_ok") / setup_s : 0.0;
  setup["connect_latency"] = setup_.Hist("setup_connect").Summary();
  setup["hello_latency"] = setup_.Hist("setup_hello").Summary();
  setup["session_latency"] = setup_.Hist("setup_total").Summary();
  setup["errors"] = setup_.ErrorsJson();
  report["setup"] = std::move(setup);
  json::object server = server_;
  if (at_go.ok && after.ok && after.mono_s > at_go.mono_s) {
    server["cpu_cores_during_run"] =
        (after.cpu_seconds - at_go.cpu_seconds) / (after.mono_s - at_go.mono_s);
  }
  report["server"] = std::move(server);
  report["results"] = std::move(results_json);
  report["errors"] = merged.ErrorsJson();

  Tidy(report);
  if (opt_.json) {
    std::printf("%s\n", JsonText(report).c_str());
    std::fflush(stdout);
  } else {
    PrintTable(report);
  }
  return 0;
}

}  // namespace parley::bench
