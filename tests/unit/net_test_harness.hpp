// The net unit tests' fixture: a small Service (HTTP routes and a WebSocket
// echo with a few commands), a Server running on a background thread, and
// Beast clients that never block past a deadline, so that a broken server
// fails a test instead of hanging it. Standalone on purpose: it tests the
// layer that tests/support's client is built on.
#pragma once

#include <fcntl.h>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.hpp"
#include "net/server.hpp"
#include "net/service.hpp"

namespace parley::net::nettest {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- the service

class TestService;

class EchoHandler final : public WsHandler {
 public:
  EchoHandler(std::shared_ptr<WsConnection> c, TestService& s) : conn_(std::move(c)), service_(s) {}
  void OnFrame(std::string_view text) override;
  void OnClose() override;
  bool Idle() override { return busy_->load() == 0; }

 private:
  std::shared_ptr<WsConnection> conn_;
  TestService& service_;
  bool closed_ = false;
  // "later" frames still to be answered (from another thread).
  std::shared_ptr<std::atomic<int>> busy_ = std::make_shared<std::atomic<int>>(0);
};

class TestService final : public Service {
 public:
  ~TestService() override {
    for (auto& t : threads_) t.join();
  }

  void HandleHttp(HttpRequest req, HttpRespond respond) override {
    if (req.path == "/echo") {
      HttpResponse r;
      r.content_type = "text/plain";
      r.body = req.method + "|" + req.path + "|" + req.query + "|" +
               std::string(req.GetHeader("x-TEST")) + "|" + req.body + "|" + req.remote_address;
      r.headers.push_back({"X-Extra", "yes"});
      return respond(std::move(r));
    }
    if (req.path == "/later") {
      // Answered from a thread that is not an I/O thread.
      const auto delay = std::chrono::milliseconds(std::atoi(req.query.c_str()));
      std::lock_guard lock(mu_);
      threads_.emplace_back([respond, delay] {
        std::this_thread::sleep_for(delay);
        respond(HttpResponse{200, "text/plain", "later", {}});
      });
      return;
    }
    if (req.path == "/nocontent") {
      // A body on a 204 and a header that tries to forge another are dropped.
      return respond(HttpResponse{
          204, "text/plain", "ignored", {{"X-Bad", "a\r\nInjected: 1"}, {"X-Ok", "1"}}});
    }
    if (req.path == "/file") {
      // Bytes 2..6 of a file on disk, streamed from its descriptor.
      const auto path = std::filesystem::temp_directory_path() / "parley_net_file_test";
      { std::ofstream(path) << "0123456789"; }
      HttpResponse r;
      r.content_type = "application/octet-stream";
      r.headers.push_back({"Content-Range", "bytes 2-6/10"});
      r.status = 206;
      r.file = std::make_shared<FileRange>(::open(path.c_str(), O_RDONLY), 2, 5);
      return respond(std::move(r));
    }
    if (req.path == "/v1/ws") return respond(HttpResponse{426, "application/json", "{}", {}});
    respond(HttpResponse{404, "application/json", R"({"error":{"code":"not_found"}})", {}});
  }

  BodyMode BodyModeFor(const HttpRequest& head) override {
    return head.path.starts_with("/stream") ? BodyMode::kStream : BodyMode::kBuffer;
  }

  // Collects a streamed body, acknowledging each chunk from another thread
  // after a pause (a slow disk); /stream/limit?N answers 413 past N bytes.
  class Sink final : public RequestBody {
   public:
    Sink(HttpRespond r, std::size_t limit, TestService& s)
        : respond_(std::move(r)), limit_(limit), service_(s) {}
    void OnChunk(std::string chunk, std::function<void()> consumed) override {
      body_ += chunk;
      service_.chunks++;
      if (body_.size() > limit_) {
        return respond_(HttpResponse{413, "text/plain", "too big", {}});
      }
      std::thread([consumed] {
        std::this_thread::sleep_for(1ms);
        consumed();
      }).detach();
    }
    void OnEnd() override {
      respond_(HttpResponse{200, "text/plain", std::to_string(body_.size()) + ":" + body_, {}});
    }
    void OnAbort() override { service_.aborts++; }

   private:
    HttpRespond respond_;
    std::size_t limit_;
    TestService& service_;
    std::string body_;
  };

  std::shared_ptr<RequestBody> HandleHttpStream(HttpRequest head, HttpRespond respond) override {
    std::size_t limit = SIZE_MAX;
    if (head.path == "/stream/limit") limit = std::stoul(head.query);
    return std::make_shared<Sink>(std::move(respond), limit, *this);
  }

  std::atomic<int> chunks{0};
  std::atomic<int> aborts{0};

  std::shared_ptr<WsHandler> OpenWebSocket(std::shared_ptr<WsConnection> connection,
                                           const HttpRequest& upgrade) override {
    if (upgrade.GetHeader("X-Auth") == "yes") connection->MarkAuthenticated();
    last_upgrade_path = upgrade.path;
    opened++;
    return std::make_shared<EchoHandler>(std::move(connection), *this);
  }

  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::atomic<int> frames_after_close{0};
  std::atomic<int> double_close{0};
  std::atomic<int> flood_accepted{0};
  std::atomic<bool> flood_refused{false};
  std::atomic<bool> send_after_close_refused{false};
  std::string last_upgrade_path;
  std::shared_ptr<WsConnection> last_connection;

  // Runs `fn` on a thread of its own after `delay` (joined at destruction).
  void Later(std::chrono::milliseconds delay, std::function<void()> fn) {
    std::lock_guard lock(mu_);
    threads_.emplace_back([delay, fn = std::move(fn)] {
      std::this_thread::sleep_for(delay);
      fn();
    });
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

inline void EchoHandler::OnFrame(std::string_view text) {
  if (closed_) service_.frames_after_close++;
  if (text == "auth") {
    conn_->MarkAuthenticated();
    conn_->Send("authed");
  } else if (text == "kick") {
    conn_->Send("before");
    conn_->Close(4409, "replaced \"by\" another");
    service_.send_after_close_refused = !conn_->Send("after");
  } else if (text == "post") {
    service_.last_connection = conn_;
    conn_->Post([c = conn_] { c->Send("posted"); });
  } else if (text == "later") {
    // A request waiting for something slow: answered 300 ms later.
    busy_->fetch_add(1);
    service_.Later(300ms, [c = conn_, busy = busy_] {
      c->Send("later");
      busy->fetch_sub(1);
    });
  } else if (text == "flood") {
    for (int i = 0; i < 1000; ++i) {
      if (!conn_->Send(std::string(1024, 'f'))) {
        service_.flood_refused = true;
        break;
      }
      service_.flood_accepted++;
    }
  } else {
    conn_->Send(std::string(text));
  }
}

inline void EchoHandler::OnClose() {
  if (closed_) service_.double_close++;
  closed_ = true;
  service_.closed++;
}

// ----------------------------------------------------------------- harness

class Harness {
 public:
  explicit Harness(ServerOptions o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    server = std::make_unique<Server>(o, service, metrics);
    address = server->Listen();
    port = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    runner = std::thread([this] {
      server->Run();
      run_returned = true;
    });
  }
  ~Harness() { Stop(); }

  void Stop() {
    server->Shutdown();
    if (runner.joinable()) runner.join();
  }

  bool WaitRunReturned(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!run_returned && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    return run_returned;
  }

  double Gauge(const char* kind) {
    return metrics.GetGauge("parley_connections_open", "", {{"kind", kind}}).Value();
  }
  double Responses(const char* status) {
    return metrics.GetCounter("parley_http_responses_total", "", {{"status", status}}).Value();
  }

  Registry metrics;
  TestService service;
  std::unique_ptr<Server> server;
  std::string address;
  std::uint16_t port = 0;
  std::thread runner;
  std::atomic<bool> run_returned{false};
};

template <class Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout = 3s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// ---------------------------------------------------------------- clients
// Asynchronous Beast driven to completion with a deadline, so that a broken
// server fails a test instead of hanging it.

using Plain = beast::tcp_stream;
using Tls = beast::ssl_stream<beast::tcp_stream>;

struct ClientIo {
  ClientIo() { tls.set_verify_mode(ssl::verify_none); }
  asio::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
};

// Runs `ioc` until the operation started by `start` completes. On timeout,
// `cancel` kills the socket and timed_out is returned.
template <class Start, class Cancel>
error_code Await(asio::io_context& ioc, Start start, Cancel cancel,
                 std::chrono::milliseconds timeout = 5s) {
  std::optional<error_code> result;
  start([&result](error_code ec, auto&&...) { result = ec; });
  const auto deadline = Clock::now() + timeout;
  while (!result && Clock::now() < deadline) {
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(deadline - Clock::now());
  }
  if (result) return *result;
  cancel();
  ioc.restart();
  ioc.run_for(1s);
  return asio::error::timed_out;
}

template <class Next>
Next MakeStream(ClientIo& io) {
  if constexpr (std::is_same_v<Next, Tls>) {
    return Next(io.ioc, io.tls);
  } else {
    return Next(io.ioc);
  }
}

template <class Next>
error_code ConnectStream(ClientIo& io, Next& stream, std::uint16_t port) {
  auto& lowest = beast::get_lowest_layer(stream);
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  auto kill = [&] { lowest.close(); };
  error_code ec = Await(
      io.ioc, [&](auto h) { lowest.async_connect(ep, h); }, kill);
  if (ec) return ec;
  if constexpr (std::is_same_v<Next, Tls>) {
    ec = Await(
        io.ioc, [&](auto h) { stream.async_handshake(ssl::stream_base::client, h); }, kill);
  }
  return ec;
}

template <class Next>
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port) : stream_(MakeStream<Next>(io_)) {
    connect_error = ConnectStream(io_, stream_, port);
  }

  // One request on this connection; status 0 when it failed.
  http::response<http::string_body> Request(
      http::verb method, const std::string& target, const std::string& body = "",
      const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::response<http::string_body> failed;
    failed.result(0);
    auto kill = [&] { beast::get_lowest_layer(stream_).close(); };
    error = Await(
        io_.ioc, [&](auto h) { http::async_write(stream_, req, h); }, kill);
    if (error) return failed;
    http::response_parser<http::string_body> parser;
    parser.skip(method == http::verb::head);
    error = Await(
        io_.ioc, [&](auto h) { http::async_read(stream_, buf_, parser, h); }, kill);
    if (error) return failed;
    return parser.release();
  }

  // Waits for the server to close the connection.
  bool PeerClosed() {
    char c;
    auto ec = Await(
        io_.ioc, [&](auto h) { stream_.async_read_some(asio::buffer(&c, 1), h); },
        [&] { beast::get_lowest_layer(stream_).close(); });
    return ec && ec != asio::error::timed_out;
  }

  error_code connect_error;
  error_code error;

 private:
  ClientIo io_;
  Next stream_;
  beast::flat_buffer buf_;
};

template <class Next>
class WsClient {
 public:
  explicit WsClient(std::uint16_t port, const std::map<std::string, std::string>& headers = {})
      : ws_(MakeStream<Next>(io_)) {
    error = ConnectStream(io_, ws_.next_layer(), port);
    if (error) return;
    ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (auto& [k, v] : headers) req.set(k, v);
    }));
    error = Await(
        io_.ioc, [&](auto h) { ws_.async_handshake(response, "localhost", "/v1/ws", h); }, Kill());
  }

  bool Send(const std::string& text) {
    ws_.text(true);
    return !Await(
        io_.ioc, [&](auto h) { ws_.async_write(asio::buffer(text), h); }, Kill());
  }

  // The next message; an error once the socket is closed (error::closed
  // after a clean close handshake, see CloseCode()).
  error_code Read(std::string& out, std::chrono::milliseconds timeout = 5s) {
    beast::flat_buffer buf;
    auto ec = Await(
        io_.ioc, [&](auto h) { ws_.async_read(buf, h); }, Kill(), timeout);
    out = beast::buffers_to_string(buf.data());
    return ec;
  }

  // Reads until the socket closes; returns the text frames seen.
  std::vector<std::string> ReadUntilClosed(error_code& final_error) {
    std::vector<std::string> frames;
    std::string text;
    while (!(final_error = Read(text))) frames.push_back(text);
    return frames;
  }

  std::uint16_t CloseCode() const { return ws_.reason().code; }
  std::string CloseReason() const { return std::string(ws_.reason().reason.c_str()); }
  asio::io_context& ioc() { return io_.ioc; }
  websocket::stream<Next>& ws() { return ws_; }

  error_code error;
  websocket::response_type response;

 private:
  std::function<void()> Kill() {
    return [this] { beast::get_lowest_layer(ws_).close(); };
  }
  ClientIo io_;
  websocket::stream<Next> ws_;
};

// A raw TCP client, for what a well-behaved client library cannot do.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : socket_(ioc_) {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    error = Await(
        ioc_, [&](auto h) { socket_.async_connect(ep, h); }, Kill());
  }
  bool Write(const std::string& bytes) {
    return !Await(
        ioc_, [&](auto h) { asio::async_write(socket_, asio::buffer(bytes), h); }, Kill());
  }
  // Appends what arrives next to `out`.
  error_code ReadSome(std::string& out, std::chrono::milliseconds timeout = 5s) {
    char buf[4096];
    std::size_t got = 0;
    auto ec = Await(
        ioc_,
        [&](auto h) {
          socket_.async_read_some(asio::buffer(buf),
                                  [h, &got](error_code e, std::size_t n) mutable {
                                    got = n;
                                    h(e);
                                  });
        },
        Kill(), timeout);
    out.append(buf, got);
    return ec;
  }
  // Everything until the peer closes (or the timeout).
  std::string ReadAll(std::chrono::milliseconds timeout) {
    std::string all;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (ReadSome(all, left)) break;
    }
    return all;
  }
  // Reads until `done(all)` holds or the socket fails.
  template <class Done>
  std::string ReadUntil(Done done) {
    std::string all;
    while (!done(all)) {
      if (ReadSome(all)) break;
    }
    return all;
  }

  error_code error;

 private:
  std::function<void()> Kill() {
    return [this] { socket_.close(); };
  }
  asio::io_context ioc_;
  tcp::socket socket_;
};

struct RawFrame {
  int opcode = 0;
  std::string payload;
};

// Server frames are unmasked; enough of RFC 6455 for what the server sends.
inline std::vector<RawFrame> ParseFrames(std::string_view data) {
  std::vector<RawFrame> frames;
  std::size_t i = 0;
  while (i + 2 <= data.size()) {
    const int opcode = static_cast<unsigned char>(data[i]) & 0x0F;
    std::size_t len = static_cast<unsigned char>(data[i + 1]) & 0x7F;
    std::size_t at = i + 2;
    if (len == 126) {
      if (at + 2 > data.size()) break;
      len = (static_cast<unsigned char>(data[at]) << 8) | static_cast<unsigned char>(data[at + 1]);
      at += 2;
    } else if (len == 127) {
      break;  // never sent by these tests
    }
    if (at + len > data.size()) break;
    frames.push_back({opcode, std::string(data.substr(at, len))});
    i = at + len;
  }
  return frames;
}

inline std::string Bye(int code, const std::string& reason) {
  return R"({"op":"bye","code":)" + std::to_string(code) + R"(,"reason":")" + reason + "\"}";
}

class TlsFiles {
 public:
  TlsFiles() {
    char tmpl[] = "/tmp/parley-net-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    cert = dir_ + "/cert.pem";
    key = dir_ + "/key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout " + key +
        " -out " + cert + " >/dev/null 2>&1";
    ok = std::system(cmd.c_str()) == 0;
  }
  ~TlsFiles() { std::filesystem::remove_all(dir_); }
  std::string cert;
  std::string key;
  bool ok = false;

 private:
  std::string dir_;
};

}  // namespace parley::net::nettest
