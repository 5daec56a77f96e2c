// Media decoding in child processes (processor.hpp, ProcessIsolated): each
// processing thread keeps one `parleyd media-process` worker, spawned with
// posix_spawn (safe in a threaded parent), and sends it one job at a time
// over a socket pair, waiting for the answer with a deadline.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "media/processor.hpp"

extern char** environ;

namespace parley::media {
namespace {

// Result encoding on the pipe: fixed fields, then two length-prefixed strings.
void PutU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

bool GetU64(std::string_view& in, std::uint64_t& v) {
  if (in.size() < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(8);
  return true;
}

bool GetStr(std::string_view& in, std::string& s) {
  std::uint64_t n = 0;
  if (!GetU64(in, n) || n > in.size()) return false;
  s.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

std::string Encode(const ProcessResult& r) {
  std::string out = "PMR1";
  out.push_back(r.ok ? 1 : 0);
  out.push_back(r.unavailable ? 1 : 0);
  PutU64(out, r.width);
  PutU64(out, r.height);
  PutU64(out, static_cast<std::uint64_t>(r.duration_ms));
  PutU64(out, r.reason.size());
  out += r.reason;
  PutU64(out, r.thumbnail_jpeg.size());
  out += r.thumbnail_jpeg;
  return out;
}

bool Decode(std::string_view in, ProcessResult& r) {
  if (!in.starts_with("PMR1") || in.size() < 6) return false;
  in.remove_prefix(4);
  r.ok = in[0] == 1;
  r.unavailable = in[1] == 1;
  in.remove_prefix(2);
  std::uint64_t w = 0, h = 0, d = 0;
  if (!GetU64(in, w) || !GetU64(in, h) || !GetU64(in, d)) return false;
  r.width = static_cast<std::uint32_t>(w);
  r.height = static_cast<std::uint32_t>(h);
  r.duration_ms = static_cast<std::int64_t>(d);
  return GetStr(in, r.reason) && GetStr(in, r.thumbnail_jpeg) && in.empty();
}

ProcessResult Failed(std::string reason) {
  ProcessResult r;
  r.reason = std::move(reason);
  return r;
}

std::string g_program;  // set before the first job, or this executable

std::string SelfPath() {
  if (!g_program.empty()) return g_program;
  std::array<char, 4096> exe{};
  const auto n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  return n > 0 ? std::string(exe.data(), static_cast<std::size_t>(n)) : std::string();
}

// The frame on the socket both ways: an 8-byte length, then the payload.
std::string Framed(std::string payload) {
  std::string out;
  PutU64(out, payload.size());
  return out + payload;
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads one frame; false at EOF or on an error.
bool ReadFrame(int fd, std::string& payload) {
  std::string head;
  auto read_n = [&](std::string& out, std::size_t n) {
    out.clear();
    char buf[65536];
    while (out.size() < n) {
      const ssize_t r = ::read(fd, buf, std::min(sizeof(buf), n - out.size()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      out.append(buf, static_cast<std::size_t>(r));
    }
    return true;
  };
  if (!read_n(head, 8)) return false;
  std::string_view h = head;
  std::uint64_t n = 0;
  GetU64(h, n);
  if (n > (64u << 20)) return false;
  return read_n(payload, n);
}

// A worker: one `media-process` child that serves jobs one after another
// over a socket, started on the first job and again after one died, hung
// or served kJobsPerWorker jobs (what a decoder leaks goes with it).
constexpr int kJobsPerWorker = 200;

class Worker {
 public:
  ~Worker() { Stop(); }

  bool Start(std::string* error) {
    const std::string program = SelfPath();
    if (program.empty()) {
      *error = "no path to this program";
      return false;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      *error = std::string("socketpair: ") + std::strerror(errno);
      return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, sv[1], 0);
    posix_spawn_file_actions_adddup2(&actions, sv[1], 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Default signal dispositions and an empty mask in the child (the
    // parent blocks SIGTERM and friends for its own signal handling).
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> argv = {const_cast<char*>(program.c_str()),
                               const_cast<char*>("media-process"), nullptr};
    const int rc = ::posix_spawn(&pid_, program.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(sv[1]);
    if (rc != 0) {
      ::close(sv[0]);
      pid_ = -1;
      *error = std::string("spawn: ") + std::strerror(rc);
      return false;
    }
    fd_ = sv[0];
    jobs_ = 0;
    return true;
  }

  // Closes the socket (the child exits at EOF) or kills it, and reaps it;
  // the child's wait status, or -1.
  int Stop(bool kill = false) {
    if (pid_ < 0) return -1;
    if (kill) ::kill(pid_, SIGKILL);
    ::close(fd_);
    fd_ = -1;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

  ProcessResult Run(const std::string& request, std::uint32_t timeout_s) {
    if (pid_ >= 0 && jobs_ >= kJobsPerWorker) Stop();
    if (pid_ < 0) {
      std::string error;
      if (!Start(&error)) return Failed("media processing failed: " + error);
    }
    ++jobs_;
    if (!SendAll(fd_, request)) return Died();
    // The answer, within the budget.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) {
        Stop(/*kill=*/true);
        return Failed("processing took longer than " + std::to_string(timeout_s) +
                      " s and was stopped");
      }
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
      if (ready < 0 && errno != EINTR) return Died();
      if (ready > 0) break;
    }
    std::string payload;
    if (!ReadFrame(fd_, payload)) return Died();
    ProcessResult r;
    if (!Decode(payload, r)) {
      Stop(/*kill=*/true);
      return Failed("the decoder gave no readable answer");
    }
    return r;
  }

 private:
  ProcessResult Died() {
    const int status = Stop(/*kill=*/true);
    if (status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
      return Failed("the decoder crashed (signal " + std::to_string(WTERMSIG(status)) + ")");
    }
    return Failed("the decoder crashed");
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  int jobs_ = 0;
};

}  // namespace

void SetMediaProcessProgram(std::string path) { g_program = std::move(path); }

ProcessResult ProcessIsolated(const std::string& path, std::string_view content_type,
                              std::uint64_t max_pixels, std::uint32_t timeout_s) {
  // One worker per calling thread: media_workers threads, as many children.
  thread_local Worker worker;
  std::string request;
  PutU64(request, path.size());
  request += path;
  PutU64(request, content_type.size());
  request += content_type;
  PutU64(request, max_pixels);
  return worker.Run(Framed(std::move(request)), timeout_s);
}

int RunMediaProcess(int argc, char** /*argv*/) {
  if (argc != 1) return 2;
  // Requests come on standard input, answers go out on the descriptor that
  // was standard output; whatever a library prints goes to standard error
  // (the server's log).
  const int answer = ::dup(1);
  if (answer < 0 || ::dup2(2, 1) < 0) return 1;
  rlimit core{0, 0};  // no core files of decoders
  ::setrlimit(RLIMIT_CORE, &core);
  for (;;) {
    std::string payload;
    if (!ReadFrame(0, payload)) return 0;  // the server closed: done
    std::string_view in = payload;
    std::string path, type;
    std::uint64_t max_pixels = 0;
    if (!GetStr(in, path) || !GetStr(in, type) || !GetU64(in, max_pixels)) return 2;
    const ProcessResult r = Process(path, type, max_pixels);
    if (!SendAll(answer, Framed(Encode(r)))) return 1;
  }
}

}  // namespace parley::media
