#include <algorithm>
// The test support library (tests/support/client.hpp) against real sockets:
// a small synchronous Beast HTTP + WebSocket server running in this process,
// and a fake parleyd shell script.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "support/client.hpp"

namespace parley::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// A directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/parley-support-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A synchronous HTTP + WebSocket server with a thread per connection.
//
// HTTP: /echo answers JSON describing the request, /error a 404 error body,
// /text a non-JSON body, /big 5 MiB, /slow after 1.5 s; HEAD gets headers only.
// WebSocket (any target but /ws-deny, which is refused with 403): echoes
// frames, except the commands handled in WsSession.
class TestServer {
 public:
  explicit TestServer(std::shared_ptr<ssl::context> tls = nullptr)
      : tls_(std::move(tls)),
        acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TestServer() {
    stopping_ = true;
    {
      // Wake the blocking accept.
      boost::system::error_code ec;
      tcp::socket wake(ioc_);
      wake.connect(acceptor_.local_endpoint(), ec);
      thread_.join();
    }
    {
      std::lock_guard lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : sessions_) t.join();
  }

  Endpoint endpoint() const {
    return Endpoint{.host = "127.0.0.1", .port = acceptor_.local_endpoint().port(), .tls = !!tls_};
  }
  // Close codes of the closing handshakes the clients started (0: dropped).
  std::vector<int> client_closes() {
    std::lock_guard lock(mu_);
    return client_closes_;
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec || stopping_) continue;
      std::lock_guard lock(mu_);
      open_fds_.insert(socket.native_handle());
      sessions_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }

  void Serve(tcp::socket socket) {
    const int fd = socket.native_handle();
    if (tls_) {
      ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
      boost::system::error_code ec;
      stream.handshake(ssl::stream_base::server, ec);
      if (!ec) Session(stream);
    } else {
      Session(socket);
    }
    std::lock_guard lock(mu_);
    open_fds_.erase(fd);  // before the socket closes: the fd is not reused meanwhile
  }

  template <class Stream>
  void Session(Stream& stream) {
    boost::system::error_code ec;
    beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read_header(stream, buffer, parser, ec);
    if (ec) return;
    if (parser.get().target() == "/early") {
      // Refuses the body without reading it, and keeps the connection open a while.
      http::response<http::string_body> res{http::status::payload_too_large, 11};
      res.body() = R"({"error":{"code":"too_large","message":"no"}})";
      res.prepare_payload();
      http::write(stream, res, ec);
      for (int i = 0; i < 20 && !stopping_; ++i) std::this_thread::sleep_for(50ms);
      return;
    }
    http::read(stream, buffer, parser, ec);
    if (ec) return;
    http::request<http::string_body> req = parser.release();
    if (websocket::is_upgrade(req)) {
      if (req.target() == "/ws-deny") {
        http::response<http::string_body> res{http::status::forbidden, 11};
        res.body() = R"({"error":{"code":"forbidden","message":"no"}})";
        res.prepare_payload();
        http::write(stream, res, ec);
        return;
      }
      websocket::stream<Stream&> ws(stream);
      ws.accept(req, ec);
      if (!ec) WsSession(ws, std::string(req["x-test"]));
      return;
    }
    HttpAnswer(stream, req);
    beast::get_lowest_layer(stream).shutdown(tcp::socket::shutdown_both, ec);
  }

  template <class Stream>
  void HttpAnswer(Stream& stream, const http::request<http::string_body>& req) {
    boost::system::error_code ec;
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    if (req.method() == http::verb::head) {
      http::response<http::empty_body> head{http::status::ok, 11};
      head.content_length(100);
      http::write(stream, head, ec);
      return;
    }
    const std::string target(req.target());
    if (target.starts_with("/echo")) {
      json::object o{{"method", std::string(req.method_string())},
                     {"target", target},
                     {"body", req.body()},
                     {"content_type", std::string(req[http::field::content_type])},
                     {"x_test", std::string(req["x-test"])}};
      res.body() = json::serialize(o);
      res.set("X-Echo", "yes");
      res.insert("X-Multi", "a");
      res.insert("X-Multi", "b");
    } else if (target == "/error") {
      res.result(http::status::not_found);
      res.body() = R"({"error":{"code":"not_found","message":"no such thing"}})";
    } else if (target == "/text") {
      res.set(http::field::content_type, "text/plain");
      res.body() = "hello";
    } else if (target == "/big") {
      res.body() = std::string(5 * 1024 * 1024, 'x');
    } else if (target == "/slow") {
      for (int i = 0; i < 30 && !stopping_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      res.body() = "{}";
    }
    res.prepare_payload();
    http::write(stream, res, ec);
  }

  template <class Ws>
  void WsSession(Ws& ws, const std::string& x_test) {
    boost::system::error_code ec;
    bool pong_seen = false;
    ws.control_callback([&](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::pong) pong_seen = true;
    });
    auto send = [&](const std::string& text) {
      ws.text(true);
      ws.write(asio::buffer(text), ec);
    };
    for (;;) {
      beast::flat_buffer buffer;
      ws.read(buffer, ec);
      if (ec) {
        std::lock_guard lock(mu_);
        client_closes_.push_back(ec == websocket::error::closed ? ws.reason().code : 0);
        return;
      }
      const std::string msg = beast::buffers_to_string(buffer.data());
      if (msg == "close4409") {
        send(R"({"op":"bye","code":4409,"reason":"replaced"})");
        ws.close(websocket::close_reason(static_cast<websocket::close_code>(4409), "replaced"), ec);
        return;
      } else if (msg == "close-drop") {
        // A close frame (4409), then the connection goes without waiting for the answer.
        const unsigned char frame[] = {0x88, 0x02, 0x11, 0x39};
        asio::write(ws.next_layer(), asio::buffer(frame), ec);
        beast::get_lowest_layer(ws).shutdown(tcp::socket::shutdown_both, ec);
        beast::get_lowest_layer(ws).close(ec);
        return;
      } else if (msg == "drop") {
        beast::get_lowest_layer(ws).shutdown(tcp::socket::shutdown_both, ec);
        return;
      } else if (msg == "burst") {
        send(R"({"op":"event","n":1})");
        send(R"({"op":"typing"})");
        send(R"({"op":"event","n":2})");
      } else if (msg == "ping-me") {
        ws.ping({}, ec);
        send("pinged");
      } else if (msg == "pong?") {
        send(pong_seen ? "pong-seen" : "no-pong");
      } else if (msg == "headers") {
        send(x_test);
      } else if (msg == "silent") {
      } else if (auto v = json::parse(msg, ec);
                 !ec && v.is_object() && v.as_object().contains("rid")) {
        const json::object& o = v.as_object();
        send(R"({"op":"presence","online":true})");
        json::object answer{{"rid", o.at("rid")}};
        if (o.at("op") == "fail") {
          answer["op"] = "error";
          answer["code"] = "nope";
        } else {
          answer["op"] = "ok";
          answer["echo"] = o.at("op");
        }
        send(json::serialize(answer));
      } else {
        ws.binary(ws.got_binary());
        ws.write(buffer.data(), ec);
      }
      ec = {};
    }
  }

  std::shared_ptr<ssl::context> tls_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mu_;
  std::set<int> open_fds_;
  std::vector<std::thread> sessions_;
  std::vector<int> client_closes_;
};

// A server TLS context with a fresh self-signed certificate.
std::shared_ptr<ssl::context> ServerTls(const TempDir& dir) {
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -subj /CN=localhost -days 2 -keyout " +
      dir.path() + "/key.pem -out " + dir.path() + "/cert.pem 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) return nullptr;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->use_certificate_chain_file(dir.path() + "/cert.pem");
  ctx->use_private_key_file(dir.path() + "/key.pem", ssl::context::pem);
  return ctx;
}

// ------------------------------------------------------------------ HTTP ----

TEST(TestSupportHttp, SendsMethodTargetBodyAndHeaders) {
  TestServer server;
  auto r = Http(server.endpoint(), "POST", "/echo?x=1", R"({"a":1})", {{"X-Test", "v"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.error.empty());
  auto j = r.Json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.at("method"), "POST");
  EXPECT_EQ(j.at("target"), "/echo?x=1");
  EXPECT_EQ(j.at("body"), R"({"a":1})");
  EXPECT_EQ(j.at("content_type"), "application/json");
  EXPECT_EQ(j.at("x_test"), "v");
  EXPECT_EQ(r.headers["x-echo"], "yes");
  EXPECT_EQ(r.headers["x-multi"], "a, b");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.ErrorCode(), "");

  auto put = Http(server.endpoint(), "PUT", "/echo", "raw", {{"content-type", "text/plain"}});
  ASSERT_EQ(put.status, 200) << put.error;
  EXPECT_EQ(put.Json().at("content_type"), "text/plain");
  auto custom = Http(server.endpoint(), "PATCH", "/echo");
  ASSERT_EQ(custom.status, 200) << custom.error;
  EXPECT_EQ(custom.Json().at("method"), "PATCH");
  EXPECT_EQ(custom.Json().at("content_type"), "");
}

TEST(TestSupportHttp, ErrorBodiesAndNonJsonBodies) {
  TestServer server;
  auto err = Http(server.endpoint(), "GET", "/error");
  EXPECT_EQ(err.status, 404);
  EXPECT_EQ(err.ErrorCode(), "not_found");
  auto text = Http(server.endpoint(), "GET", "/text");
  EXPECT_EQ(text.status, 200);
  EXPECT_EQ(text.body, "hello");
  EXPECT_EQ(text.Json(), json::object());
  EXPECT_EQ(text.ErrorCode(), "");
}

TEST(TestSupportHttp, HeadDoesNotWaitForABody) {
  TestServer server;
  const auto start = Clock::now();
  auto r = Http(server.endpoint(), "HEAD", "/echo", "", {}, 3s);
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.headers["content-length"], "100");
  EXPECT_LT(Since(start), 1s);
}

TEST(TestSupportHttp, LargeBodies) {
  TestServer server;
  auto r = Http(server.endpoint(), "GET", "/big");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body.size(), 5u * 1024 * 1024);
}

TEST(TestSupportHttp, AnswerBeforeTheBodyIsRead) {
  TestServer server;
  const auto start = Clock::now();
  auto r = Http(server.endpoint(), "POST", "/early", std::string(32 * 1024 * 1024, 'x'),
                {{"Content-Type", "application/octet-stream"}}, 5s);
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.ErrorCode(), "too_large");
  // The server never reads the 32 MiB: a client that waited to send it all
  // would block once the socket buffers fill and give up at its 5 s timeout.
  // (A bound of 900 ms failed on a loaded machine.)
  EXPECT_LT(Since(start), 4s);
}

TEST(TestSupportHttp, TimesOut) {
  TestServer server;
  const auto start = Clock::now();
  auto r = Http(server.endpoint(), "GET", "/slow", "", {}, 200ms);
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_GE(Since(start), 190ms);
  EXPECT_LT(Since(start), 1s);
}

TEST(TestSupportHttp, ConnectionRefused) {
  std::uint16_t port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto r = Http(Endpoint{.port = port}, "GET", "/health", "", {}, 2s);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("connect"), std::string::npos) << r.error;
}

TEST(TestSupportHttp, OverTls) {
  TempDir dir;
  auto tls = ServerTls(dir);
  ASSERT_TRUE(tls) << "openssl req failed";
  TestServer server(tls);
  auto r = Http(server.endpoint(), "POST", "/echo", "{}");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.Json().at("body"), "{}");
  // Plain HTTP to a TLS server fails rather than hangs.
  Endpoint plain = server.endpoint();
  plain.tls = false;
  const auto start = Clock::now();
  EXPECT_NE(Http(plain, "GET", "/echo", "", {}, 1s).status, 200);
  EXPECT_LT(Since(start), 2s);
}

// ------------------------------------------------------------- WebSocket ----

TEST(TestSupportWs, EchoesTextAndBinaryFrames) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint(), "/ws");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("hello"));
  EXPECT_EQ(ws->Receive(), "hello");
  ASSERT_TRUE(ws->SendText(std::string("\x00\x01\xff", 3), true));
  EXPECT_EQ(ws->Receive(), std::string("\x00\x01\xff", 3));
  ASSERT_TRUE(ws->SendJson({{"op", "ping"}}));
  auto j = ws->ReceiveJson();
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["op"], "ping");
  ASSERT_TRUE(ws->SendText("[1]"));
  EXPECT_FALSE(ws->ReceiveJson());  // not an object
  EXPECT_FALSE(ws->closed());
}

TEST(TestSupportWs, KeepsOtherFramesInOrder) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("burst"));
  auto typing = ws->ReceiveOp("typing");
  ASSERT_TRUE(typing);
  auto first = ws->ReceiveJson();
  auto second = ws->ReceiveJson();
  ASSERT_TRUE(first && second);
  EXPECT_EQ((*first)["n"], 1);
  EXPECT_EQ((*second)["n"], 2);
  EXPECT_FALSE(ws->Receive(50ms));
}

TEST(TestSupportWs, RequestAssignsRidsAndKeepsPushes) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  auto a = ws->Request({{"op", "first"}});
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["op"], "ok");
  EXPECT_EQ((*a)["rid"], "1");
  EXPECT_EQ((*a)["echo"], "first");
  auto b = ws->Request({{"op", "fail"}});
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)["op"], "error");
  EXPECT_EQ((*b)["rid"], "2");
  EXPECT_EQ((*b)["code"], "nope");
  auto c = ws->Request({{"op", "mine"}, {"rid", "abc"}});
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["rid"], "abc");
  // The presence pushes that came before each answer were kept.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ws->ReceiveOp("presence", 1s)) << i;
  EXPECT_FALSE(ws->ReceiveOp("presence", 50ms));
}

TEST(TestSupportWs, ReceiveTimesOut) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("silent"));
  auto start = Clock::now();
  EXPECT_FALSE(ws->Receive(200ms));
  EXPECT_GE(Since(start), 190ms);
  EXPECT_LT(Since(start), 1s);
  start = Clock::now();
  EXPECT_FALSE(ws->ReceiveOp("nothing", 200ms));
  EXPECT_FALSE(ws->Request({{"op", "x"}}, 0ms));
  EXPECT_FALSE(ws->WaitClosed(200ms));
  EXPECT_LT(Since(start), 1s);
  // Still usable afterwards; the late answer to the request is kept.
  ASSERT_TRUE(ws->SendText("hello"));
  EXPECT_TRUE(ws->ReceiveOp("ok"));
  EXPECT_TRUE(ws->ReceiveOp("presence"));
  EXPECT_EQ(ws->Receive(), "hello");
}

TEST(TestSupportWs, WaitClosedReturnsTheCloseCodeAndKeepsBye) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("close4409"));
  EXPECT_EQ(ws->WaitClosed(), 4409);
  EXPECT_TRUE(ws->closed());
  auto bye = ws->ReceiveOp("bye");
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["code"], 4409);
  EXPECT_FALSE(ws->SendText("more"));
  const auto start = Clock::now();
  EXPECT_FALSE(ws->Receive(2s));
  EXPECT_LT(Since(start), 100ms);
  EXPECT_EQ(ws->WaitClosed(), 4409);
}

TEST(TestSupportWs, DroppedConnectionIs1006) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("drop"));
  EXPECT_EQ(ws->WaitClosed(), 1006);
}

TEST(TestSupportWs, CloseCodeSurvivesAnImmediateDrop) {
  TestServer server;
  for (int i = 0; i < 20; ++i) {
    auto ws = WsClient::Connect(server.endpoint());
    ASSERT_TRUE(ws);
    ASSERT_TRUE(ws->SendText("close-drop"));
    EXPECT_EQ(ws->WaitClosed(), 4409) << i;
  }
}

TEST(TestSupportWs, ClosedNoticesTheServerClosingWithoutAWait) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("drop"));
  const auto deadline = Clock::now() + 2s;
  while (!ws->closed() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(ws->closed());
}

TEST(TestSupportWs, AnswersPings) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("ping-me"));
  EXPECT_EQ(ws->Receive(), "pinged");
  ASSERT_TRUE(ws->SendText("pong?"));
  EXPECT_EQ(ws->Receive(), "pong-seen");
}

TEST(TestSupportWs, UpgradeHeadersAndRefusal) {
  TestServer server;
  auto ws = WsClient::Connect(server.endpoint(), "/v1/ws", {{"X-Test", "abc"}});
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendText("headers"));
  EXPECT_EQ(ws->Receive(), "abc");

  std::string error;
  int status = 0;
  EXPECT_FALSE(WsClient::Connect(server.endpoint(), "/ws-deny", {}, &error, &status));
  EXPECT_EQ(status, 403);
  EXPECT_FALSE(error.empty());
}

TEST(TestSupportWs, ConnectFailsFast) {
  std::uint16_t port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  std::string error;
  const auto start = Clock::now();
  EXPECT_FALSE(WsClient::Connect(Endpoint{.port = port}, "/v1/ws", {}, &error));
  EXPECT_NE(error.find("connect"), std::string::npos) << error;
  EXPECT_LT(Since(start), 2s);
}

TEST(TestSupportWs, CloseAndAbortFromTheClient) {
  TestServer server;
  {
    auto ws = WsClient::Connect(server.endpoint());
    ASSERT_TRUE(ws);
    ws->Close();
    EXPECT_TRUE(ws->closed());
    EXPECT_FALSE(ws->SendText("x"));
  }
  {
    auto ws = WsClient::Connect(server.endpoint());
    ASSERT_TRUE(ws);
    ws->Abort();
    EXPECT_TRUE(ws->closed());
    EXPECT_EQ(ws->WaitClosed(), 1006);
  }
  {
    // Destroyed with unread frames and a read in progress.
    auto ws = WsClient::Connect(server.endpoint());
    ASSERT_TRUE(ws);
    ASSERT_TRUE(ws->SendText("burst"));
    EXPECT_TRUE(ws->Receive());
  }
  const auto deadline = Clock::now() + 2s;
  while (server.client_closes().size() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  auto closes = server.client_closes();
  ASSERT_EQ(closes.size(), 3u);
  // The server's threads may record the three in any order under load.
  std::sort(closes.begin(), closes.end());
  EXPECT_EQ(closes, (decltype(closes){0, 0, 1000}));
}

TEST(TestSupportWs, OverTls) {
  TempDir dir;
  auto tls = ServerTls(dir);
  ASSERT_TRUE(tls) << "openssl req failed";
  TestServer server(tls);
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "x"}});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["op"], "ok");
  ASSERT_TRUE(ws->SendText("close4409"));
  EXPECT_EQ(ws->WaitClosed(), 4409);
  EXPECT_TRUE(ws->ReceiveOp("presence"));
  EXPECT_TRUE(ws->ReceiveOp("bye"));

  auto other = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(other);
  other->Close();
  EXPECT_TRUE(other->closed());
}

// --------------------------------------------------------------- Parleyd ----

// Sets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A stand-in for parleyd: logs its arguments, prints the listening line
// ($FAKE_SCHEME, http by default), exits 3 on SIGTERM; `admin` prints its
// arguments and exits 4; with FAKE_DIE set it fails at once.
constexpr const char* kFakeParleyd = R"(#!/bin/sh
if [ "$1" = admin ]; then shift; echo "admin:$*"; echo "admin stderr" >&2; exit 4; fi
echo "started args:$* env:$PARLEY_TEST_X" >&2
if [ -n "$FAKE_DIE" ]; then echo "fatal: cannot start" >&2; exit 2; fi
trap 'echo "got TERM" >&2; exit 3' TERM
echo "parleyd listening on ${FAKE_SCHEME:-http}://127.0.0.1:1234"
while :; do sleep 0.05; done
)";

class TestSupportParleyd : public ::testing::Test {
 protected:
  void SetUp() override {
    script_ = dir_.path() + "/parleyd";
    std::ofstream(script_) << kFakeParleyd;
    ::chmod(script_.c_str(), 0755);
    env_.emplace("PARLEYD", script_);
  }
  TempDir dir_;
  std::string script_;
  std::optional<ScopedEnv> env_;
};

TEST_F(TestSupportParleyd, StartsParsesTheEndpointAndTerminates) {
  EXPECT_EQ(ParleydPath(), script_);
  std::string data_dir;
  {
    Parleyd d(Parleyd::Options{.args = {"--extra", "1"}, .env = {{"PARLEY_TEST_X", "xyz"}}});
    data_dir = d.data_dir();
    EXPECT_TRUE(data_dir.starts_with("/tmp/parley-test-")) << data_dir;
    EXPECT_EQ(d.sms_file(), data_dir + "/sms.jsonl");
    EXPECT_EQ(d.log_file(), data_dir + "/parleyd.log");
    ASSERT_TRUE(d.Start());
    EXPECT_GT(d.pid(), 0);
    EXPECT_EQ(d.endpoint().host, "127.0.0.1");
    EXPECT_EQ(d.endpoint().port, 1234);
    EXPECT_FALSE(d.endpoint().tls);
    const std::string log = d.Log();
    EXPECT_NE(log.find("started args:--listen 127.0.0.1:0 --data-dir " + data_dir +
                       " --sms-provider file:" + data_dir + "/sms.jsonl --extra 1 env:xyz"),
              std::string::npos)
        << log;
    EXPECT_EQ(d.Terminate(), 3);
    EXPECT_EQ(d.pid(), -1);
    EXPECT_NE(d.Log().find("got TERM"), std::string::npos);
    EXPECT_TRUE(fs::exists(data_dir));
  }
  EXPECT_FALSE(fs::exists(data_dir));  // the temporary directory is removed
}

TEST_F(TestSupportParleyd, RestartKillAndAGivenDirectory) {
  const std::string data_dir = dir_.path() + "/data";
  {
    Parleyd d(Parleyd::Options{.data_dir = data_dir});
    ASSERT_TRUE(d.Start());
    const pid_t first = d.pid();
    ASSERT_TRUE(d.Restart());
    EXPECT_NE(d.pid(), first);
    EXPECT_NE(::kill(first, 0), 0);  // reaped
    const std::string log = d.Log();
    EXPECT_NE(log.find("got TERM"), std::string::npos);
    EXPECT_NE(log.find("started", log.find("got TERM")), std::string::npos) << log;
    const pid_t second = d.pid();
    d.Kill();
    EXPECT_EQ(d.pid(), -1);
    EXPECT_NE(::kill(second, 0), 0);
    EXPECT_EQ(d.Terminate(), -1);  // not running
  }
  EXPECT_TRUE(fs::exists(data_dir + "/parleyd.log"));  // a given directory is kept
}

TEST_F(TestSupportParleyd, HttpsAndTlsOption) {
  Parleyd d(Parleyd::Options{.env = {{"FAKE_SCHEME", "https"}}, .tls = true});
  ASSERT_TRUE(d.Start());
  EXPECT_TRUE(d.endpoint().tls);
  EXPECT_EQ(d.endpoint().port, 1234);
  EXPECT_TRUE(fs::exists(d.data_dir() + "/cert.pem"));
  EXPECT_TRUE(fs::exists(d.data_dir() + "/key.pem"));
  EXPECT_NE(d.Log().find("--tls-cert " + d.data_dir() + "/cert.pem --tls-key " + d.data_dir() +
                         "/key.pem"),
            std::string::npos)
      << d.Log();
}

TEST_F(TestSupportParleyd, StartFailsFastWhenItDies) {
  Parleyd d(Parleyd::Options{.env = {{"FAKE_DIE", "1"}}});
  const auto start = Clock::now();
  EXPECT_FALSE(d.Start());
  EXPECT_LT(Since(start), 5s);
  EXPECT_EQ(d.pid(), -1);
  EXPECT_NE(d.Log().find("fatal: cannot start"), std::string::npos);
}

TEST_F(TestSupportParleyd, StartFailsWhenTheBinaryIsMissing) {
  ScopedEnv missing("PARLEYD", dir_.path() + "/no-such-parleyd");
  Parleyd d;
  EXPECT_FALSE(d.Start());
  EXPECT_EQ(d.pid(), -1);
}

TEST_F(TestSupportParleyd, RunAdmin) {
  int code = 0;
  EXPECT_EQ(RunAdmin({"user", "list", "--x"}, &code), "admin:user list --x\n");
  EXPECT_EQ(code, 4);
}

TEST_F(TestSupportParleyd, WaitCodeReadsTheSmsFile) {
  Parleyd d;
  {
    std::ofstream sms(d.sms_file());
    sms << R"({"phone":"+15550000001","code":"111111","ts_ms":1})"
        << "\n"
        << R"({"phone":"+15550000002","code":"222222","ts_ms":2})"
        << "\n"
        << "not json\n"
        << R"({"phone":"+15550000001","code":"333333","ts_ms":3})"
        << "\n";
  }
  EXPECT_EQ(d.CodeCount("+15550000001"), 2u);
  EXPECT_EQ(d.CodeCount("+15550000002"), 1u);
  EXPECT_EQ(d.CodeCount("+15550000003"), 0u);
  EXPECT_EQ(d.WaitCode("+15550000001"), "333333");
  EXPECT_EQ(d.WaitCode("+15550000002", 0), "222222");

  std::thread writer([&] {
    std::this_thread::sleep_for(100ms);
    std::ofstream sms(d.sms_file(), std::ios::app);
    sms << R"({"phone":"+15550000001","code":"444444","ts_ms":4})"
        << "\n";
  });
  const auto start = Clock::now();
  EXPECT_EQ(d.WaitCode("+15550000001", 2), "444444");
  EXPECT_GE(Since(start), 90ms);
  writer.join();

  const auto none = Clock::now();
  EXPECT_FALSE(d.WaitCode("+15550000002", 1));
  EXPECT_GE(Since(none), 4900ms);
  EXPECT_LT(Since(none), 6s);
}

}  // namespace
}  // namespace parley::test
