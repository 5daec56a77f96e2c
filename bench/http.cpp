#include "http.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace parley::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpConn::Impl {
  Impl(asio::any_io_executor ex, std::string h, std::uint16_t p)
      : stream(ex), host(std::move(h)), port(p) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::string host;
  std::uint16_t port;
  bool connected = false;

  void Drop() {
    boost::system::error_code ignored;
    stream.socket().close(ignored);
    buffer.clear();
    connected = false;
  }
};

HttpConn::HttpConn(asio::any_io_executor ex, std::string host, std::uint16_t port)
    : impl_(std::make_unique<Impl>(std::move(ex), std::move(host), port)) {}

HttpConn::~HttpConn() = default;

asio::awaitable<HttpResponse> HttpConn::Request(std::string_view method, std::string target,
                                                std::string body,
                                                std::chrono::milliseconds timeout) {
  HttpResponse out;
  Impl& c = *impl_;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = c.connected;
    try {
      if (!c.connected) {
        c.stream.expires_after(timeout);
        co_await c.stream.async_connect(tcp::endpoint(asio::ip::make_address(c.host), c.port),
                                        asio::use_awaitable);
        c.stream.socket().set_option(tcp::no_delay(true));
        c.connected = true;
      }
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, c.host + ":" + std::to_string(c.port));
      req.set(http::field::user_agent, "parley-bench");
      if (!body.empty()) req.set(http::field::content_type, "application/json");
      req.keep_alive(true);
      req.body() = body;
      req.prepare_payload();
      c.stream.expires_after(timeout);
      co_await http::async_write(c.stream, req, asio::use_awaitable);
      http::response_parser<http::string_body> parser;
      parser.body_limit(64ull * 1024 * 1024);
      co_await http::async_read(c.stream, c.buffer, parser, asio::use_awaitable);
      auto res = parser.release();
      out.status = res.result_int();
      out.body = std::move(res.body());
      out.error.clear();
      if (!res.keep_alive()) c.Drop();
      co_return out;
    } catch (const boost::system::system_error& e) {
      out.error = e.code().message();
      c.Drop();
      // Only a kept-alive connection that the server closed meanwhile is
      // worth one more try; a fresh one failing means the server is gone.
      if (!reused) break;
    }
  }
  co_return out;
}

HttpResponse HttpBlocking(const std::string& host, std::uint16_t port, std::string_view method,
                          const std::string& target, const std::string& body,
                          std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  HttpConn conn(ioc.get_executor(), host, port);
  std::optional<HttpResponse> result;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        result = co_await conn.Request(method, target, body, timeout);
      },
      [](std::exception_ptr) {});
  ioc.run_for(timeout + std::chrono::seconds(1));
  if (!result) return HttpResponse{0, "", "timed out"};
  return *result;
}

}  // namespace parley::bench
