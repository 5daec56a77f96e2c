#include "provision.hpp"

#include <openssl/evp.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <set>

#include "http.hpp"
#include "otp.hpp"
#include "report.hpp"

namespace parley::bench {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The exp claim of a JWT (0 when it cannot be read: treated as expired).
std::int64_t JwtExp(const std::string& token) {
  const auto a = token.find('.');
  const auto b = token.find('.', a == std::string::npos ? a : a + 1);
  if (a == std::string::npos || b == std::string::npos) return 0;
  std::string p = token.substr(a + 1, b - a - 1);
  for (auto& c : p) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (p.size() % 4 != 0) p.push_back('=');
  std::string out(p.size(), '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(p.data()), static_cast<int>(p.size()));
  if (n < 0) return 0;
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '\0') out.pop_back();  // padding decodes to zeros
  boost::system::error_code ec;
  auto v = json::parse(out, ec);
  if (ec || !v.is_object()) return 0;
  const auto* exp = v.as_object().if_contains("exp");
  return exp != nullptr && exp->is_number() ? exp->to_number<std::int64_t>() : 0;
}

std::string Str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Fills the account from a tokens answer; false if it is not one.
bool FromTokens(const std::string& body, Account* a) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  const auto& o = v.as_object();
  a->user_id = Str(o, "user_id");
  a->device_id = Str(o, "device_id");
  a->access_token = Str(o, "access_token");
  a->refresh_token = Str(o, "refresh_token");
  a->access_exp_s = JwtExp(a->access_token);
  return !a->user_id.empty() && !a->access_token.empty();
}

// The error code of an HTTP answer: the body's error.code, else http_<status>.
std::string ErrorOf(const HttpResponse& r) {
  if (r.status == 0) return "transport: " + r.error;
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      const std::string code = Str(e->as_object(), "code");
      if (!code.empty()) return code;
    }
  }
  return "http_" + std::to_string(r.status);
}

std::vector<Account> LoadCache(const std::string& path) {
  std::vector<Account> out;
  std::ifstream in(path);
  std::string line;
  // Bounded by the file: one account a line.
  while (std::getline(in, line)) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.as_object();
    Account a{Str(o, "phone"),
              Str(o, "user_id"),
              Str(o, "device_id"),
              Str(o, "access_token"),
              Str(o, "refresh_token"),
              0,
              0};
    if (a.phone.empty() || a.refresh_token.empty()) continue;
    a.access_exp_s = JwtExp(a.access_token);
    out.push_back(std::move(a));
  }
  return out;
}

bool SaveCache(const std::string& path, const std::vector<Account>& accounts) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& a : accounts) {
      json::object o;
      o["phone"] = a.phone;
      o["user_id"] = a.user_id;
      o["device_id"] = a.device_id;
      o["access_token"] = a.access_token;
      o["refresh_token"] = a.refresh_token;
      out << json::serialize(o) << '\n';
    }
    if (!out) return false;
  }
  // A rename, so that an interrupted run never leaves half a file.
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::string DefaultPrefix(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  return "+1999" + std::to_string(1000 + rng() % 9000);
}

struct Work {
  const Options& opt;
  ProvisionReport& report;
  OtpFile otp;
  std::vector<Account>* slots;     // one per wanted account
  std::vector<std::size_t> tasks;  // slot indices
  std::vector<std::string> phones;
  std::size_t next = 0;
  std::size_t done = 0;
  bool refresh_phase = false;
};

void CountError(ProvisionReport& r, const std::string& code) { ++r.errors[code]; }

asio::awaitable<bool> SignUp(Work& w, HttpConn& http, const std::string& phone, Account* out) {
  auto ex = co_await asio::this_coro::executor;
  const auto t0 = Clock::now();
  w.otp.Poll();
  const auto since = w.otp.lines();
  json::object req;
  req["phone"] = phone;
  auto r = co_await http.Request("POST", "/v1/auth/otp", json::serialize(req));
  if (r.status != 202) {
    CountError(w.report, "otp: " + ErrorOf(r));
    co_return false;
  }
  // The file provider writes the code before the server answers 202, but
  // poll a while anyway (bounded: 10 s) in case the file is on slow storage.
  std::optional<std::string> code;
  asio::steady_timer timer(ex);
  for (int i = 0; i < 2000 && !code; ++i) {
    w.otp.Poll();
    code = w.otp.Take(phone, since);
    if (code) break;
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable);
  }
  if (!code) {
    CountError(w.report, "no code in " + w.opt.otp_file);
    co_return false;
  }
  json::object device;
  device["name"] = "parley-bench";
  device["platform"] = "cli";
  json::object verify;
  verify["phone"] = phone;
  verify["code"] = *code;
  verify["device"] = std::move(device);
  r = co_await http.Request("POST", "/v1/auth/verify", json::serialize(verify));
  if (r.status != 200 || !FromTokens(r.body, out)) {
    CountError(w.report, "verify: " + ErrorOf(r));
    co_return false;
  }
  out->phone = phone;
  w.report.signup.Record(Clock::now() - t0);
  co_return true;
}

asio::awaitable<bool> Refresh(Work& w, HttpConn& http, Account* a) {
  const auto t0 = Clock::now();
  json::object req;
  req["refresh_token"] = a->refresh_token;
  auto r = co_await http.Request("POST", "/v1/auth/refresh", json::serialize(req));
  Account fresh = *a;
  if (r.status != 200 || !FromTokens(r.body, &fresh)) {
    CountError(w.report, "refresh: " + ErrorOf(r));
    co_return false;
  }
  *a = std::move(fresh);
  w.report.refresh.Record(Clock::now() - t0);
  co_return true;
}

// One of signup_concurrency coroutines: takes tasks until none are left.
asio::awaitable<void> Worker(Work& w) {
  HttpConn http(co_await asio::this_coro::executor, w.opt.host, w.opt.port);
  // Bounded by the task list.
  while (w.next < w.tasks.size()) {
    const std::size_t slot = w.tasks[w.next++];
    Account& a = (*w.slots)[slot];
    if (w.refresh_phase) {
      if (co_await Refresh(w, http, &a)) {
        ++w.report.refreshed;
      } else {
        a.user_id.clear();  // signed up again in the next phase
      }
    } else if (co_await SignUp(w, http, w.phones[slot], &a)) {
      ++w.report.signed_up;
    } else {
      ++w.report.failed;
      a.user_id.clear();
    }
    ++w.done;
  }
}

// Runs `w.tasks` with the configured concurrency, showing progress.
void RunTasks(Work& w, const char* what, ProgressLine& progress) {
  asio::io_context ioc;
  w.next = w.done = 0;
  const int n =
      std::max(1, std::min<int>(w.opt.signup_concurrency, static_cast<int>(w.tasks.size())));
  int running = n;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(ioc, Worker(w), [&running](std::exception_ptr) { --running; });
  }
  const auto t0 = Clock::now();
  // Bounded: every request has a deadline, so the workers finish.
  while (running > 0 && !ioc.stopped()) {
    ioc.run_for(std::chrono::milliseconds(250));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    progress.Show(std::string(what) + " " + std::to_string(w.done) + "/" +
                  std::to_string(w.tasks.size()) + "  " +
                  std::to_string(static_cast<long>(s > 0 ? w.done / s : 0)) + "/s");
  }
}

}  // namespace

json::object ProvisionReport::ToJson() const {
  json::object o;
  o["wanted"] = wanted;
  o["reused"] = reused;
  o["refreshed"] = refreshed;
  o["signed_up"] = signed_up;
  o["failed"] = failed;
  o["seconds"] = seconds;
  o["signups_per_s"] = signup_seconds > 0 ? static_cast<double>(signed_up) / signup_seconds : 0.0;
  o["signup_latency"] = signup.Summary();
  o["refresh_latency"] = refresh.Summary();
  json::object e;
  for (const auto& [k, v] : errors) e[k] = v;
  o["errors"] = std::move(e);
  return o;
}

std::vector<Account> Provision(const Options& opt, std::size_t count, double valid_for_s,
                               ProvisionReport* report) {
  const auto t0 = Clock::now();
  report->wanted = count;
  ProgressLine progress(opt.progress != 0);

  std::vector<Account> cache;
  if (!opt.accounts_file.empty()) cache = LoadCache(opt.accounts_file);
  std::vector<Account> slots(count);
  std::set<std::string> known;
  for (const auto& a : cache) known.insert(a.phone);
  const std::size_t from_cache = std::min(count, cache.size());
  for (std::size_t i = 0; i < from_cache; ++i) slots[i] = cache[i];

  Work w{opt, *report, OtpFile(opt.otp_file), &slots, {}, {}};
  // Refresh what would expire during the run (with a minute to spare).
  const std::int64_t need_until = UnixNow() + static_cast<std::int64_t>(valid_for_s) + 60;
  w.refresh_phase = true;
  for (std::size_t i = 0; i < from_cache; ++i) {
    if (slots[i].access_exp_s < need_until) {
      w.tasks.push_back(i);
    } else {
      ++report->reused;
    }
  }
  if (!w.tasks.empty()) RunTasks(w, "refreshing tokens", progress);

  // Sign up whatever the cache did not give (or could not refresh).
  const std::string prefix =
      opt.phone_prefix.empty() ? DefaultPrefix(opt.seed ^ 0x9e3779b97f4a7c15ull) : opt.phone_prefix;
  w.refresh_phase = false;
  w.tasks.clear();
  w.phones.assign(count, "");
  std::size_t index = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!slots[i].user_id.empty()) continue;
    std::string phone;
    // Bounded: each try consumes one index, and the cache is finite.
    do {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%06zu", index++);
      phone = prefix + buf;
    } while (known.contains(phone));
    known.insert(phone);
    w.phones[i] = phone;
    w.tasks.push_back(i);
  }
  if (!w.tasks.empty() && opt.otp_file.empty()) {
    report->failed = w.tasks.size();
    report->errors["--otp-file not given (needed to sign up)"] = w.tasks.size();
    w.tasks.clear();
  }
  if (!w.tasks.empty()) {
    const auto s0 = Clock::now();
    RunTasks(w, "signing up", progress);
    report->signup_seconds = std::chrono::duration<double>(Clock::now() - s0).count();
  }
  progress.Clear();

  std::vector<Account> out;
  for (auto& a : slots) {
    if (!a.user_id.empty()) out.push_back(a);
  }
  if (!opt.accounts_file.empty()) {
    // Everything usable: what this run has, then cached accounts it did not need.
    std::vector<Account> keep = out;
    for (std::size_t i = from_cache; i < cache.size(); ++i) keep.push_back(cache[i]);
    if (!SaveCache(opt.accounts_file, keep)) {
      std::fprintf(stderr, "parley-bench: cannot write %s\n", opt.accounts_file.c_str());
    }
  }
  report->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

}  // namespace parley::bench
