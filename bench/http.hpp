// A small HTTP/1.1 client for the public API (sign-up, refresh, /metrics):
// coroutines over Beast, keep-alive, a deadline on every request.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace parley::bench {

struct HttpResponse {
  int status = 0;  // 0: no response (see error)
  std::string body;
  std::string error;  // transport error
};

// One keep-alive connection, used by one coroutine at a time.
class HttpConn {
 public:
  HttpConn(boost::asio::any_io_executor ex, std::string host, std::uint16_t port);
  ~HttpConn();
  HttpConn(const HttpConn&) = delete;
  HttpConn& operator=(const HttpConn&) = delete;

  // Never throws; a reused connection that the server has closed is reopened once.
  boost::asio::awaitable<HttpResponse> Request(
      std::string_view method, std::string target, std::string body,
      std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A blocking request on a fresh connection and a private io_context (no
// threads, so it is safe before fork()).
HttpResponse HttpBlocking(const std::string& host, std::uint16_t port, std::string_view method,
                          const std::string& target, const std::string& body = "",
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace parley::bench
