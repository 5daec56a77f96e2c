#include "core/sms.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

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

// Posts each code to the gateway from one worker thread, a few tries each.
class WebhookSms final : public SmsSender {
 public:
  explicit WebhookSms(const std::string& url) : url_(ParseUrl(url)) {
    worker_ = std::thread([this] { Run(); });
  }
  ~WebhookSms() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void Send(std::string_view phone, std::string_view code, std::int64_t ts_ms) override {
    {
      std::lock_guard lock(mu_);
      if (queue_.size() >= 10000) {
        PLOG_ERROR("sms webhook queue full, code dropped", "phone={}", phone);
        return;
      }
      queue_.push_back(SmsJson(phone, code, ts_ms));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    for (;;) {
      std::string body;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        body = std::move(queue_.front());
        queue_.pop_front();
      }
      bool sent = false;
      for (int attempt = 0; attempt < 3 && !sent; ++attempt) {
        sent = Post(body);
        if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
      }
      if (!sent) PLOG_ERROR("sms webhook failed", "host={}", url_.host);
    }
  }

  bool Post(const std::string& body) {
    const std::string target = url_.host + ":" + url_.port;
    SSL_CTX* ctx = nullptr;
    BIO* bio = nullptr;
    if (url_.tls) {
      ctx = SSL_CTX_new(TLS_client_method());
      SSL_CTX_set_default_verify_paths(ctx);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      bio = BIO_new_ssl_connect(ctx);
      SSL* ssl = nullptr;
      BIO_get_ssl(bio, &ssl);
      SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      SSL_set1_host(ssl, url_.host.c_str());
      BIO_set_conn_hostname(bio, target.c_str());
    } else {
      bio = BIO_new_connect(target.c_str());
    }
    bool ok = false;
    if (bio != nullptr && BIO_do_connect(bio) > 0) {
      const std::string request =
          "POST " + url_.path + " HTTP/1.1\r\nHost: " + url_.host +
          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n\r\n" + body;
      if (BIO_write(bio, request.data(), static_cast<int>(request.size())) ==
          static_cast<int>(request.size())) {
        char buf[256];
        const int n = BIO_read(bio, buf, sizeof buf - 1);
        if (n > 12) {
          buf[n] = '\0';
          // "HTTP/1.1 2xx"
          ok = buf[9] == '2';
        }
      }
    }
    if (bio != nullptr) BIO_free_all(bio);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok;
  }

  Url url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<SmsSender> MakeSmsSender(const std::string& spec) {
  if (spec == "log") return std::make_unique<LogSms>();
  if (spec.starts_with("file:")) return std::make_unique<FileSms>(spec.substr(5));
  if (spec.starts_with("webhook:")) return std::make_unique<WebhookSms>(spec.substr(8));
  throw std::runtime_error("config: sms_provider: expected log, file:<path> or webhook:<url>");
}

}  // namespace parley::core
