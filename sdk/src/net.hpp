// The SDK's transport: one-shot HTTP requests and a WebSocket connection,
// plain or TLS, on the Client's io_context. Internal to the SDK. Beast and
// Asio are instantiated only in http_client.cpp and ws_transport.cpp (and
// compiled once, in parley_net's asio_impl.cpp: the project builds Asio and
// Beast separately).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "parley/types.hpp"

namespace parley::sdk::detail {

namespace asio = boost::asio;

// http[s]://host[:port][/base] (ws[s]:// too). IPv6 hosts in brackets.
struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string base;  // "" or "/prefix", without a trailing slash

  static Result<Url> Parse(std::string_view text);
  std::string HostHeader() const;  // host:port as the Host header wants it
  std::string ToString() const;
};

struct HttpResponse {
  int status = 0;     // 0 when the request did not complete
  std::string error;  // the transport error, when status is 0
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
};

struct HttpRequestSpec {
  std::string method = "GET";
  std::string target;  // path and query, appended to the URL's base
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10000};
};

// One request on a fresh connection; `done` runs on the io_context's thread
// exactly once.
void HttpRequest(asio::io_context& io, asio::ssl::context& tls, const Url& url,
                 HttpRequestSpec spec, std::function<void(HttpResponse)> done);

// One WebSocket connection. Handlers run on the io_context's thread.
// Connect answers on_open exactly once (nullopt: open; else why not). After
// a successful open, on_closed runs exactly once, however the connection
// ends: the close code and reason from the server's close frame, 1005 for
// a close frame without a code, 1006 when the socket just dropped.
class WsTransport {
 public:
  struct Handlers {
    std::function<void(std::optional<std::string> error)> on_open;
    std::function<void(std::string frame)> on_frame;
    std::function<void(int code, std::string reason)> on_closed;
  };
  struct Settings {
    std::string target = "/v1/ws";
    std::chrono::milliseconds connect_timeout{10000};
    std::chrono::seconds idle_timeout{75};
    std::string user_agent = "parley-sdk";
  };

  static std::shared_ptr<WsTransport> Create(asio::io_context& io, asio::ssl::context& tls,
                                             const Url& url, Settings settings, Handlers handlers);
  virtual ~WsTransport() = default;

  virtual void Connect() = 0;
  // Queues one text frame. Frames queued before the open are dropped.
  virtual void Send(std::string frame) = 0;
  // The closing handshake (or, before the open, giving up the attempt).
  virtual void Close(int code, std::string reason) = 0;
  // Drops the TCP connection without a closing handshake.
  virtual void Abort() = 0;
};

// A TLS client context: system CAs (and ca_file), peer verification unless
// verify is false.
std::unique_ptr<asio::ssl::context> MakeTlsContext(bool verify, const std::string& ca_file);

}  // namespace parley::sdk::detail
