#include "core/account/sms.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/log.hpp"

namespace parley::core {

std::string SmsJson(std::string_view phone, std::string_view code, std::int64_t ts_ms) {
  boost::json::object o;
  o["phone"] = phone;
  o["code"] = code;
  o["ts_ms"] = ts_ms;
  return boost::json::serialize(o);
}

namespace {

class LogSms final : public SmsSender {
 public:
  void Send(std::string_view phone, std::string_view code, std::int64_t) override {
    PLOG_INFO("one-time code", "phone={} code={}", phone, code);
  }
};

class FileSms final : public SmsSender {
 public:
  explicit FileSms(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("config: sms_provider: cannot open " + path);
  }
  ~FileSms() override { ::close(fd_); }
  void Send(std::string_view phone, std::string_view code, std::int64_t ts_ms) override {
    // One write(2) of a whole line on an O_APPEND file: lines never interleave.
    const std::string line = SmsJson(phone, code, ts_ms) + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      PLOG_ERROR("sms file write failed", "path={}", LogQuote(path_));
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;
};

Url ParseUrl(const std::string& url) {
  Url u;
  std::string rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else {
    throw std::runtime_error("config: sms_provider: webhook URL must be http:// or https://");
  }
  const auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = hostport.rfind(':');
  if (colon != std::string::npos && hostport.find(']') == std::string::npos) {
    u.host = hostport.substr(0, colon);
    u.port = hostport.substr(colon + 1);
  } else {
    u.host = hostport;
    u.port = u.tls ? "443" : "80";
  }
  if (u.host.empty()) throw std::runtime_error("config: sms_provider: webhook URL has no host");
  return u;
}

// Posts each code to the gateway from a few worker threads. Every attempt is
// bounded (connect and read timeouts), a failed one is retried later with a
// growing backoff while other codes go ahead, and the queue is bounded: a
// hung gateway delays codes, it never blocks the server or its shutdown
// (which cuts off the requests in flight).
class WebhookSms final : public SmsSender {
 public:
  WebhookSms(const std::string& url, const SmsOptions& options)
      : url_(ParseUrl(url)), options_(options) {
    if (url_.tls) {
      ctx_ = SSL_CTX_new(TLS_client_method());
      if (ctx_ == nullptr) throw std::runtime_error("sms webhook: cannot create a TLS context");
      SSL_CTX_set_default_verify_paths(ctx_);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    for (unsigned i = 0; i < std::max(1u, options_.workers); ++i) {
      workers_.emplace_back([this] { Run(); });
    }
  }
  ~WebhookSms() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      // Requests in flight end now instead of at their timeouts.
      for (int fd : in_flight_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    if (!queue_.empty())
      PLOG_WARN("sms webhook: codes not sent at shutdown", "count={}", queue_.size());
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }
  void Send(std::string_view phone, std::string_view code, std::int64_t ts_ms) override {
    {
      std::lock_guard lock(mu_);
      if (queue_.size() >= options_.queue_max) {
        PLOG_ERROR("sms webhook queue full, code dropped", "phone={}", phone);
        return;
      }
      queue_.push_back(Job{SmsJson(phone, code, ts_ms), 0, Clock::now()});
    }
    cv_.notify_one();
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Job {
    std::string body;
    unsigned tries = 0;
    Clock::time_point not_before;
  };

  void Run() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (stop_) return;
      // The job whose time has come first (the queue is small and bounded).
      auto next = queue_.end();
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (next == queue_.end() || it->not_before < next->not_before) next = it;
      }
      if (next == queue_.end()) {
        cv_.wait(lock);
        continue;
      }
      if (next->not_before > Clock::now()) {
        cv_.wait_until(lock, next->not_before);
        continue;
      }
      Job job = std::move(*next);
      queue_.erase(next);
      lock.unlock();
      const bool sent = Post(job.body);
      lock.lock();
      if (sent || stop_) continue;
      if (++job.tries >= options_.tries) {
        PLOG_ERROR("sms webhook failed, code dropped", "host={} tries={}", url_.host, job.tries);
        continue;
      }
      job.not_before = Clock::now() + options_.backoff * (1u << std::min(job.tries - 1, 10u));
      queue_.push_back(std::move(job));
      cv_.notify_one();
    }
  }

  // A TCP connection to the gateway within the connect timeout, with the
  // read timeout on every later send and receive; -1 on failure.
  int Connect() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(url_.host.c_str(), url_.port.c_str(), &hints, &res) != 0) return -1;
    int fd = -1;
    for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
      fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      {
        std::lock_guard lock(mu_);
        if (stop_) {
          ::close(fd);
          fd = -1;
          break;
        }
        in_flight_.insert(fd);
      }
      bool ok = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
      if (!ok && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(options_.connect_timeout.count())) == 1) {
          int err = 0;
          socklen_t len = sizeof err;
          ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
      }
      if (!ok) {
        Release(fd);
        fd = -1;
        continue;
      }
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{};
      tv.tv_sec = static_cast<time_t>(options_.read_timeout.count() / 1000);
      tv.tv_usec = static_cast<suseconds_t>((options_.read_timeout.count() % 1000) * 1000);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    ::freeaddrinfo(res);
    return fd;
  }

  void Release(int fd) {
    {
      std::lock_guard lock(mu_);
      in_flight_.erase(fd);
    }
    ::close(fd);
  }

  bool Post(const std::string& body) {
    const int fd = Connect();
    if (fd < 0) return false;
    const std::string request =
        "POST " + url_.path + " HTTP/1.1\r\nHost: " + url_.host +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n\r\n" + body;
    SSL* ssl = nullptr;
    bool ok = false;
    auto write_all = [&](const char* p, std::size_t n) {
      while (n > 0) {
        const long w = ssl != nullptr ? SSL_write(ssl, p, static_cast<int>(n))
                                      : ::send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
      }
      return true;
    };
    auto read_some = [&](char* p, std::size_t n) -> long {
      return ssl != nullptr ? SSL_read(ssl, p, static_cast<int>(n)) : ::recv(fd, p, n, 0);
    };
    do {
      if (url_.tls) {
        ssl = SSL_new(ctx_);
        if (ssl == nullptr) break;
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, url_.host.c_str());
        SSL_set1_host(ssl, url_.host.c_str());
        if (SSL_connect(ssl) != 1) break;
      }
      if (!write_all(request.data(), request.size())) break;
      // "HTTP/1.1 2xx": the status line is all we need.
      char buf[64];
      std::size_t got = 0;
      while (got < 12) {
        const long n = read_some(buf + got, sizeof buf - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
      }
      ok = got >= 12 && std::string_view(buf, 5) == "HTTP/" && buf[9] == '2';
    } while (false);
    if (ssl != nullptr) SSL_free(ssl);
    ERR_clear_error();
    Release(fd);
    if (!ok) PLOG_WARN("sms webhook attempt failed", "host={}", url_.host);
    return ok;
  }

  Url url_;
  SmsOptions options_;
  SSL_CTX* ctx_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::set<int> in_flight_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

std::unique_ptr<SmsSender> MakeSmsSender(const std::string& spec, const SmsOptions& options) {
  if (spec == "log") return std::make_unique<LogSms>();
  if (spec.starts_with("file:")) return std::make_unique<FileSms>(spec.substr(5));
  if (spec.starts_with("webhook:")) return std::make_unique<WebhookSms>(spec.substr(8), options);
  throw std::runtime_error("config: sms_provider: expected log, file:<path> or webhook:<url>");
}

}  // namespace parley::core
