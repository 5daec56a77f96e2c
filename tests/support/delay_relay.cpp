#include "support/delay_relay.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace parley::test {
namespace {

using Clock = std::chrono::steady_clock;

// The value of `key=` in the URL's query.
std::string QueryValue(const std::string& url, const std::string& key) {
  const auto q = url.find('?');
  if (q == std::string::npos) return "";
  std::size_t at = q + 1;
  while (at < url.size()) {
    const auto end = std::min(url.find('&', at), url.size());
    const std::string part = url.substr(at, end - at);
    if (part.starts_with(key + "=")) return part.substr(key.size() + 1);
    at = end + 1;
  }
  return "";
}

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw std::runtime_error("socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// One direction of one connection: bytes read from `from` are written to
// `to` one_way after they arrived.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<Clock::time_point, std::string>> queue;
  bool eof = false;
};

void ReadSide(int from, Pipe& pipe, std::chrono::milliseconds one_way) {
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const ssize_t n = read(from, buf.data(), buf.size());
    std::lock_guard lock(pipe.mu);
    if (n <= 0) {
      pipe.eof = true;
      pipe.cv.notify_all();
      return;
    }
    pipe.queue.emplace_back(Clock::now() + one_way, std::string(buf.data(), n));
    pipe.cv.notify_all();
  }
}

void WriteSide(int to, Pipe& pipe) {
  for (;;) {
    std::pair<Clock::time_point, std::string> item;
    {
      std::unique_lock lock(pipe.mu);
      pipe.cv.wait(lock, [&] { return pipe.eof || !pipe.queue.empty(); });
      if (pipe.queue.empty()) {
        shutdown(to, SHUT_WR);  // the other side's EOF, passed on
        return;
      }
      item = std::move(pipe.queue.front());
      pipe.queue.pop_front();
    }
    std::this_thread::sleep_until(item.first);
    std::size_t done = 0;
    while (done < item.second.size()) {
      const ssize_t n =
          send(to, item.second.data() + done, item.second.size() - done, MSG_NOSIGNAL);
      if (n <= 0) {
        shutdown(to, SHUT_RDWR);
        return;
      }
      done += static_cast<std::size_t>(n);
    }
  }
}

}  // namespace

struct DelayRelay::Impl {
  std::string dir;
  std::string url;
  std::string target;
  std::chrono::milliseconds one_way{};
  int listener = -1;
  std::atomic<bool> stop{false};
  std::thread acceptor;
  std::mutex mu;
  std::vector<int> fds;  // every relayed socket, to cut them at the end
  std::vector<std::thread> threads;
  std::deque<Pipe> pipes;  // stable addresses

  void Accept() {
    while (!stop.load()) {
      pollfd p{.fd = listener, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int client = accept(listener, nullptr, nullptr);
      if (client < 0) continue;
      const int server = socket(AF_UNIX, SOCK_STREAM, 0);
      const sockaddr_un addr = UnixAddress(target);
      if (server < 0 ||
          connect(server, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        if (server >= 0) close(server);
        close(client);
        continue;
      }
      std::lock_guard lock(mu);
      fds.push_back(client);
      fds.push_back(server);
      Pipe& up = pipes.emplace_back();
      Pipe& down = pipes.emplace_back();
      const auto d = one_way;
      threads.emplace_back([client, &up, d] { ReadSide(client, up, d); });
      threads.emplace_back([server, &up] { WriteSide(server, up); });
      threads.emplace_back([server, &down, d] { ReadSide(server, down, d); });
      threads.emplace_back([client, &down] { WriteSide(client, down); });
    }
  }
};

DelayRelay::DelayRelay(const std::string& url, std::chrono::milliseconds one_way)
    : impl_(std::make_unique<Impl>()) {
  const std::string host = QueryValue(url, "host");
  const std::string port = QueryValue(url, "port");
  if (host.empty() || port.empty()) throw std::runtime_error("relay: no host= or port= in " + url);
  char dir[] = "/tmp/parley-relay-XXXXXX";
  if (mkdtemp(dir) == nullptr) throw std::runtime_error("relay: mkdtemp failed");
  impl_->dir = dir;
  impl_->one_way = one_way;
  impl_->target = host + "/.s.PGSQL." + port;
  impl_->url = url;
  impl_->url.replace(impl_->url.find("host=" + host), 5 + host.size(), "host=" + impl_->dir);
  impl_->listener = socket(AF_UNIX, SOCK_STREAM, 0);
  const sockaddr_un addr = UnixAddress(impl_->dir + "/.s.PGSQL." + port);
  if (impl_->listener < 0 ||
      bind(impl_->listener, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(impl_->listener, 64) != 0) {
    throw std::runtime_error("relay: cannot listen in " + impl_->dir);
  }
  impl_->acceptor = std::thread([impl = impl_.get()] { impl->Accept(); });
}

DelayRelay::~DelayRelay() {
  impl_->stop = true;
  impl_->acceptor.join();
  close(impl_->listener);
  {
    std::lock_guard lock(impl_->mu);
    for (int fd : impl_->fds) shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : impl_->threads) t.join();
  for (int fd : impl_->fds) close(fd);
  std::error_code ec;
  std::filesystem::remove_all(impl_->dir, ec);
}

const std::string& DelayRelay::url() const { return impl_->url; }

}  // namespace parley::test
