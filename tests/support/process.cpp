// The process half of the test support library (client.hpp): a parleyd child
// process, the one-time codes of its file SMS provider, and `parleyd admin`.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "support/client.hpp"
#include "support/postgres.hpp"
#include "support/redis_server.hpp"

extern char** environ;

namespace parley::test {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr auto kStartTimeout = std::chrono::seconds(20);
constexpr auto kTerminateTimeout = std::chrono::seconds(15);
constexpr auto kKillTimeout = std::chrono::seconds(10);
constexpr auto kAdminTimeout = std::chrono::seconds(60);
constexpr auto kOpensslTimeout = std::chrono::seconds(60);
constexpr auto kCodeTimeout = std::chrono::seconds(5);
constexpr auto kCodePoll = std::chrono::milliseconds(20);
constexpr std::string_view kListening = "parleyd listening on ";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The environment of this process with `extra` added (replacing same names).
std::vector<std::string> Environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (extra.contains(std::string(kv.substr(0, kv.find('='))))) continue;
    env.emplace_back(kv);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Closes every descriptor from `from` on, except `keep`. Async-signal-safe.
void CloseFrom(int from, int keep, int max_fd) {
  auto close_range_or_loop = [max_fd](unsigned lo, unsigned hi) {
    if (lo > hi) return;
    if (::close_range(lo, hi, 0) == 0) return;
    for (unsigned fd = lo; fd <= hi && fd < static_cast<unsigned>(max_fd); ++fd) ::close(fd);
  };
  close_range_or_loop(static_cast<unsigned>(from), static_cast<unsigned>(keep) - 1);
  close_range_or_loop(static_cast<unsigned>(keep) + 1, ~0U);
}

// Forks and executes args[0] with the given standard descriptors (-1: /dev/null
// for stdin, inherit for stdout and stderr). The child gets SIGKILL when this
// thread dies. Returns the pid, or -1 with *error set (also when exec fails).
pid_t Spawn(std::vector<std::string> args, std::vector<std::string> env, int out_fd, int err_fd,
            std::string* error, std::uint64_t open_files_limit = 0) {
  std::vector<char*> argv = CStrings(args);
  std::vector<char*> envp = CStrings(env);
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int status_pipe[2];
  if (devnull < 0 || ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    if (devnull >= 0) ::close(devnull);
    return -1;
  }
  const long open_max = ::sysconf(_SC_OPEN_MAX);
  const int max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(devnull, 0);
    if (out_fd >= 0) ::dup2(out_fd, 1);
    if (err_fd >= 0) ::dup2(err_fd, 2);
    CloseFrom(3, status_pipe[1], max_fd);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) ::signal(sig, SIG_DFL);
    if (open_files_limit > 0) {
      const rlimit rl{static_cast<rlim_t>(open_files_limit), static_cast<rlim_t>(open_files_limit)};
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(126);
    }
    ::execve(argv[0], argv.data(), envp.data());
    const int err = errno;
    [[maybe_unused]] auto n = ::write(status_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(devnull);
  ::close(status_pipe[1]);
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(status_pipe[0]);
    return -1;
  }
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(status_pipe[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  if (n > 0) {
    *error = "cannot execute " + args[0] + ": " + std::strerror(exec_errno);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

int ExitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for pid to exit; its exit status, or nullopt when still running at the deadline.
std::optional<int> WaitExit(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return ExitStatus(status);
    if (r < 0 && errno != EINTR) return -1;  // not our child (any more)
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void KillAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  WaitExit(pid, Clock::now() + kKillTimeout);
}

// Parses "parleyd listening on http[s]://HOST:PORT\n" out of `out`.
std::optional<Endpoint> ParseListening(const std::string& out) {
  const auto at = out.find(kListening);
  if (at == std::string::npos) return std::nullopt;
  const auto eol = out.find('\n', at);
  if (eol == std::string::npos) return std::nullopt;  // not complete yet
  std::string_view url(out.data() + at + kListening.size(), eol - at - kListening.size());
  while (!url.empty() && (url.back() == '\r' || url.back() == ' ' || url.back() == '/')) {
    url.remove_suffix(1);
  }
  Endpoint ep;
  if (url.starts_with("https://")) {
    ep.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const auto colon = url.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = url.substr(0, colon);
  const std::string_view port = url.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  ep.port = static_cast<std::uint16_t>(value);
  ep.host = std::string(host);
  if (ep.host == "0.0.0.0" || ep.host.empty()) ep.host = "127.0.0.1";
  if (ep.host == "::") ep.host = "::1";
  return ep;
}

// The codes, oldest first, that the SMS file holds for the phone.
std::vector<std::string> CodesFor(const std::string& sms_file, const std::string& phone) {
  std::vector<std::string> codes;
  std::istringstream in(ReadFile(sms_file));
  std::string line;
  while (std::getline(in, line)) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;  // also a line still being written
    const auto& o = v.as_object();
    const auto* p = o.if_contains("phone");
    const auto* c = o.if_contains("code");
    if (p == nullptr || c == nullptr || !p->is_string() || p->get_string() != phone) continue;
    codes.push_back(c->is_string() ? std::string(c->get_string()) : json::serialize(*c));
  }
  return codes;
}

// The executable `name` in $PATH (execve does not search it), or name itself.
std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

std::string Tail(const std::string& text, std::size_t max = 8192) {
  return text.size() <= max ? text : "...\n" + text.substr(text.size() - max);
}

// With PARLEY_TEST_STORE=postgresql every parleyd started here runs on a
// database of the process's throwaway PostgreSQL (support/postgres.hpp), one
// database per data directory, so that a restart finds its data again.
std::optional<std::string> TestStoreUrl(const std::string& data_dir) {
  const char* which = std::getenv("PARLEY_TEST_STORE");
  if (which == nullptr || std::string_view(which) != "postgresql") return std::nullopt;
  static std::mutex mu;
  static std::map<std::string, std::string> urls;
  std::lock_guard lock(mu);
  auto it = urls.find(data_dir);
  if (it != urls.end()) return it->second;
  const std::string name = "it_" + std::to_string(getpid()) + "_" + std::to_string(urls.size());
  return urls[data_dir] = SharedPostgres().CreateDatabase(name);
}

}  // namespace

std::string ParleydPath() {
  if (const char* env = std::getenv("PARLEYD"); env != nullptr && *env != '\0') return env;
#ifdef PARLEYD_PATH
  return PARLEYD_PATH;
#else
  return "build/parleyd";
#endif
}

Parleyd::Parleyd() : Parleyd(Options{}) {}

Parleyd::Parleyd(Options options) : options_(std::move(options)) {
  if (options_.data_dir.empty()) {
    char tmpl[] = "/tmp/parley-test-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) {
      data_dir_ = tmpl;
      own_dir_ = true;
    } else {
      std::cerr << "parley-test: mkdtemp: " << std::strerror(errno) << "\n";
    }
  } else {
    data_dir_ = options_.data_dir;
    std::error_code ec;
    fs::create_directories(data_dir_, ec);
  }
  if (!data_dir_.empty()) {
    sms_file_ = data_dir_ + "/sms.jsonl";
    log_file_ = data_dir_ + "/parleyd.log";
  }
}

Parleyd::~Parleyd() {
  if (pid_ > 0) Terminate();
  if (own_dir_ && !data_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(data_dir_, ec);
  }
}

bool Parleyd::Start() {
  if (pid_ > 0) {
    std::cerr << "parley-test: parleyd is already running (pid " << pid_ << ")\n";
    return false;
  }
  if (data_dir_.empty()) return false;
  std::string error;
  std::vector<std::string> args = {ParleydPath(),      "--listen", "127.0.0.1:0",
                                   "--data-dir",       data_dir_,  "--sms-provider",
                                   "file:" + sms_file_};
  if (options_.tls) {
    const std::string cert = data_dir_ + "/cert.pem";
    const std::string key = data_dir_ + "/key.pem";
    if (!fs::exists(cert) || !fs::exists(key)) {
      const int quiet = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      const pid_t openssl =
          Spawn({FindInPath("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 key, "-out", cert, "-subj", "/CN=localhost", "-days", "2"},
                Environment({}), quiet, quiet, &error);
      if (quiet >= 0) ::close(quiet);
      if (openssl < 0) {
        std::cerr << "parley-test: " << error << "\n";
        return false;
      }
      std::optional<int> status = WaitExit(openssl, Clock::now() + kOpensslTimeout);
      if (!status) KillAndReap(openssl);
      if (status != 0) {
        std::cerr << "parley-test: openssl req failed\n";
        return false;
      }
    }
    args.insert(args.end(), {"--tls-cert", cert, "--tls-key", key});
  }
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  if (const char* bus = std::getenv("PARLEY_TEST_BUS");
      bus != nullptr && std::string_view(bus) == "redis" &&
      std::find(options_.args.begin(), options_.args.end(), "--bus") == options_.args.end()) {
    if (!redis_) {
      redis_ = std::make_unique<RedisServer>();
      if (!redis_->Start()) {
        std::cerr << "parley-test: PARLEY_TEST_BUS=redis but redis-server did not start\n";
        redis_.reset();
        return false;
      }
    }
    args.insert(args.end(), {"--bus", redis_->url()});
  }
  if (std::find(args.begin(), args.end(), "--store") == args.end()) {
    if (auto url = TestStoreUrl(data_dir_)) args.insert(args.end(), {"--store", *url});
  }

  const std::string out_file = data_dir_ + "/stdout.log";
  const int out_fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd >= 0 && err_fd >= 0) {
    pid_ =
        Spawn(args, Environment(options_.env), out_fd, err_fd, &error, options_.open_files_limit);
  } else {
    error = "cannot open " + out_file + " or " + log_file_ + ": " + std::strerror(errno);
  }
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  if (pid_ < 0) {
    std::cerr << "parley-test: " << error << "\n";
    return false;
  }

  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    if (auto ep = ParseListening(ReadFile(out_file))) {
      endpoint_ = *ep;
      return true;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      std::cerr << "parley-test: parleyd exited with status " << ExitStatus(status)
                << " before listening; its log:\n"
                << Tail(Log()) << "\n";
      pid_ = -1;
      return false;
    }
    if (Clock::now() >= deadline) {
      std::cerr << "parley-test: parleyd did not print \"" << kListening << "...\" within "
                << kStartTimeout.count() << " s; its log:\n"
                << Tail(Log()) << "\n";
      Kill();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int Parleyd::Terminate() {
  if (pid_ <= 0) return -1;
  const pid_t pid = std::exchange(pid_, -1);
  ::kill(pid, SIGTERM);
  if (auto status = WaitExit(pid, Clock::now() + kTerminateTimeout)) return *status;
  std::cerr << "parley-test: parleyd (pid " << pid << ") ignored SIGTERM for "
            << kTerminateTimeout.count() << " s; killing it\n";
  KillAndReap(pid);
  return -1;
}

void Parleyd::Kill() {
  if (pid_ <= 0) return;
  KillAndReap(std::exchange(pid_, -1));
}

bool Parleyd::Restart() {
  if (pid_ > 0) Terminate();
  return Start();
}

std::optional<std::string> Parleyd::WaitCode(const std::string& phone, std::size_t seen_before) {
  const auto deadline = Clock::now() + kCodeTimeout;
  for (;;) {
    auto codes = CodesFor(sms_file_, phone);
    if (codes.size() > seen_before) return codes.back();
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kCodePoll);
  }
}

std::size_t Parleyd::CodeCount(const std::string& phone) const {
  return CodesFor(sms_file_, phone).size();
}

std::string Parleyd::Log() const { return ReadFile(log_file_); }

std::string RunAdmin(const std::vector<std::string>& args, int* exit_code) {
  if (exit_code != nullptr) *exit_code = -1;
  std::vector<std::string> argv = {ParleydPath(), "admin"};
  // On PostgreSQL the data directory's parleyd keeps its records in its
  // database: the admin command reads them there.
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "--data-dir") continue;
    if (auto url = TestStoreUrl(args[i + 1])) argv.insert(argv.end(), {"--store", *url});
    break;
  }
  argv.insert(argv.end(), args.begin(), args.end());
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return "";
  std::string error;
  const pid_t pid = Spawn(argv, Environment({}), out[1], -1, &error);
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    std::cerr << "parley-test: " << error << "\n";
    return "";
  }
  std::string output;
  const auto deadline = Clock::now() + kAdminTimeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{out[0], POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of output
    output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  std::optional<int> status = WaitExit(pid, deadline);
  if (!status) {
    std::cerr << "parley-test: parleyd admin did not finish within " << kAdminTimeout.count()
              << " s; killing it\n";
    KillAndReap(pid);
    return output;
  }
  if (exit_code != nullptr) *exit_code = *status;
  return output;
}

}  // namespace parley::test
