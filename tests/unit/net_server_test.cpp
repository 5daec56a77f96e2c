#include "net/server.hpp"

#include <gtest/gtest.h>

#include "unit/net_test_harness.hpp"

namespace parley::net {
namespace {

using namespace nettest;

// ------------------------------------------------------------------ HTTP

TEST(NetServerTest, GetHeaderIsCaseInsensitive) {
  HttpRequest r;
  r.headers = {{"Content-Type", "a"}, {"X-Two", "b"}, {"x-two", "c"}};
  EXPECT_EQ(r.GetHeader("content-type"), "a");
  EXPECT_EQ(r.GetHeader("X-TWO"), "b");
  EXPECT_EQ(r.GetHeader("missing"), "");
}

TEST(NetServerTest, HttpRoundTripsWithKeepAlive) {
  Harness h;
  EXPECT_FALSE(h.server->tls());
  HttpClient<Plain> c(h.port);
  ASSERT_FALSE(c.connect_error) << c.connect_error.message();

  auto get = c.Request(http::verb::get, "/echo?x=1&y=2", "", {{"X-Test", "abc"}});
  ASSERT_EQ(get.result_int(), 200) << c.error.message();
  EXPECT_EQ(get.body(), "GET|/echo|x=1&y=2|abc||127.0.0.1");
  EXPECT_EQ(get[http::field::server], "parleyd");
  EXPECT_EQ(get[http::field::content_type], "text/plain");
  EXPECT_EQ(get["X-Extra"], "yes");
  EXPECT_TRUE(get.keep_alive());

  // The same connection serves the next request.
  auto post = c.Request(http::verb::post, "/echo", "hello body", {{"Content-Type", "text/plain"}});
  ASSERT_EQ(post.result_int(), 200) << c.error.message();
  EXPECT_EQ(post.body(), "POST|/echo|||hello body|127.0.0.1");

  // A response from another thread, later.
  auto later = c.Request(http::verb::get, "/later?50");
  ASSERT_EQ(later.result_int(), 200) << c.error.message();
  EXPECT_EQ(later.body(), "later");

  auto missing = c.Request(http::verb::get, "/nope");
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(missing[http::field::content_type], "application/json");

  auto head = c.Request(http::verb::head, "/echo");
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(head[http::field::content_length], "23");  // "HEAD|/echo||||127.0.0.1"

  auto none = c.Request(http::verb::delete_, "/nocontent");
  EXPECT_EQ(none.result_int(), 204);
  EXPECT_EQ(none["X-Ok"], "1");
  EXPECT_EQ(none.count("X-Bad"), 0u);
  EXPECT_EQ(none.count("Injected"), 0u);
  EXPECT_EQ(none.count(http::field::content_length), 0u);
  // Still in step after a body-less response.
  EXPECT_EQ(c.Request(http::verb::get, "/echo").result_int(), 200);
  EXPECT_EQ(h.Gauge("http"), 1);

  EXPECT_EQ(h.Responses("200"), 5);
  EXPECT_EQ(h.Responses("204"), 1);
  EXPECT_EQ(h.Responses("404"), 1);
}

TEST(NetServerTest, OversizedBodyGets413AndClose) {
  ServerOptions o;
  o.max_body_bytes = 1024;
  Harness h(o);
  HttpClient<Plain> c(h.port);
  auto ok = c.Request(http::verb::post, "/echo", std::string(1024, 'a'));
  EXPECT_EQ(ok.result_int(), 200);
  auto res = c.Request(http::verb::post, "/echo", std::string(4096, 'a'));
  ASSERT_EQ(res.result_int(), 413) << c.error.message();
  EXPECT_EQ(res.body(), R"({"error":{"code":"too_large","message":"request body too large"}})");
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.PeerClosed());
  EXPECT_EQ(h.Responses("413"), 1);
}

TEST(NetServerTest, MalformedRequestGets400) {
  Harness h;
  RawClient c(h.port);
  ASSERT_TRUE(c.Write("THIS IS NOT HTTP\r\n\r\n"));
  const std::string reply = c.ReadAll(3s);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400")) << reply;
  EXPECT_NE(reply.find("bad_request"), std::string::npos);
  EXPECT_EQ(h.Responses("400"), 1);
}

TEST(NetServerTest, SurvivesGarbageAndAbruptClients) {
  Harness h;
  {
    RawClient c(h.port);
    const char garbage[] = "\x16\x03\x01\x00\x00garbage\0\xff";
    c.Write(std::string(garbage, sizeof garbage - 1));
  }
  {
    RawClient c(h.port);
    c.Write("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf");
  }  // gone mid-body
  HttpClient<Plain> c(h.port);
  EXPECT_EQ(c.Request(http::verb::get, "/echo").result_int(), 200);
  EXPECT_TRUE(Eventually([&] { return h.Gauge("http") == 1; }));
}

TEST(NetServerTest, UpgradePathWithoutUpgradeGoesToService) {
  Harness h;
  HttpClient<Plain> c(h.port);
  EXPECT_EQ(c.Request(http::verb::get, "/v1/ws").result_int(), 426);
}

// ------------------------------------------------------------- WebSocket

TEST(NetServerTest, WebSocketEchoes) {
  Harness h;
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error) << c.error.message();
  EXPECT_EQ(c.response[http::field::server], "parleyd");
  EXPECT_TRUE(c.response[http::field::sec_websocket_extensions].empty());
  ASSERT_TRUE(c.Send("hello"));
  std::string got;
  ASSERT_FALSE(c.Read(got));
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(h.service.last_upgrade_path, "/v1/ws");
  EXPECT_EQ(h.Gauge("ws"), 1);
  EXPECT_EQ(h.Responses("101"), 1);
}

TEST(NetServerTest, WebSocketFramesStayInOrder) {
  ServerOptions o;
  o.threads = 4;
  Harness h(o);
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error);
  constexpr int kFrames = 300;
  for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(c.Send(std::to_string(i)));
  for (int i = 0; i < kFrames; ++i) {
    std::string got;
    ASSERT_FALSE(c.Read(got));
    ASSERT_EQ(got, std::to_string(i));
  }
}

TEST(NetServerTest, OversizedFrameClosesWith4400AfterBye) {
  ServerOptions o;
  o.max_frame_bytes = 1024;
  Harness h(o);
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error);
  ASSERT_TRUE(c.Send(std::string(1024, 'x')));  // exactly the limit is fine
  std::string got;
  ASSERT_FALSE(c.Read(got));
  EXPECT_EQ(got.size(), 1024u);
  ASSERT_TRUE(c.Send(std::string(2000, 'x')));
  error_code ec;
  auto frames = c.ReadUntilClosed(ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], Bye(4400, "frame too large"));
  EXPECT_EQ(c.CloseCode(), 4400);
  EXPECT_EQ(c.CloseReason(), "frame too large");
  EXPECT_TRUE(Eventually([&] { return h.service.closed == 1; }));
  EXPECT_EQ(h.service.frames_after_close, 0);
}

TEST(NetServerTest, AuthTimeoutClosesWith4401) {
  ServerOptions o;
  o.auth_timeout = 300ms;
  Harness h(o);
  const auto start = Clock::now();
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error);
  error_code ec;
  auto frames = c.ReadUntilClosed(ec);
  EXPECT_GE(Clock::now() - start, 250ms);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], Bye(4401, "not authenticated"));
  EXPECT_EQ(c.CloseCode(), 4401);
  EXPECT_TRUE(Eventually([&] { return h.service.closed == 1 && h.Gauge("ws") == 0; }));
  EXPECT_EQ(h.service.double_close, 0);
}

TEST(NetServerTest, MarkAuthenticatedStopsTheDeadline) {
  ServerOptions o;
  o.auth_timeout = 300ms;
  Harness h(o);
  WsClient<Plain> by_frame(h.port);
  WsClient<Plain> by_header(h.port, {{"X-Auth", "yes"}});
  ASSERT_FALSE(by_frame.error);
  ASSERT_FALSE(by_header.error);
  ASSERT_TRUE(by_frame.Send("auth"));
  std::string got;
  ASSERT_FALSE(by_frame.Read(got));
  EXPECT_EQ(got, "authed");
  std::this_thread::sleep_for(600ms);
  for (auto* c : {&by_frame, &by_header}) {
    ASSERT_TRUE(c->Send("still here"));
    ASSERT_FALSE(c->Read(got));
    EXPECT_EQ(got, "still here");
  }
  EXPECT_EQ(h.service.closed, 0);
}

TEST(NetServerTest, SilentPeerClosesWith4408AfterPings) {
  ServerOptions o;
  o.idle_timeout = 500ms;
  o.ping_interval = 100ms;
  Harness h(o);
  RawClient c(h.port);
  ASSERT_FALSE(c.error);
  const auto start = Clock::now();
  ASSERT_TRUE(
      c.Write("GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n"));
  std::string all = c.ReadUntil([](const std::string& a) { return a.contains("\r\n\r\n"); });
  ASSERT_TRUE(all.starts_with("HTTP/1.1 101")) << all;
  all.erase(0, all.find("\r\n\r\n") + 4);
  // Never answers the pings, never sends anything: reads until the close frame.
  auto has_close = [](const std::string& a) {
    for (auto& f : ParseFrames(a)) {
      if (f.opcode == 0x8) return true;
    }
    return false;
  };
  while (!has_close(all)) {
    if (c.ReadSome(all)) break;
  }
  auto frames = ParseFrames(all);
  EXPECT_GE(Clock::now() - start, 450ms);
  int pings = 0;
  std::string bye;
  std::optional<RawFrame> close;
  for (auto& f : frames) {
    if (f.opcode == 0x9) ++pings;
    if (f.opcode == 0x1) bye = f.payload;
    if (f.opcode == 0x8) close = f;
  }
  EXPECT_GE(pings, 3);
  EXPECT_EQ(bye, Bye(4408, "heartbeat timeout"));
  ASSERT_TRUE(close.has_value());
  ASSERT_GE(close->payload.size(), 2u);
  const int code = (static_cast<unsigned char>(close->payload[0]) << 8) |
                   static_cast<unsigned char>(close->payload[1]);
  EXPECT_EQ(code, 4408);
  // The peer never answers the close frame either: the server drops it anyway.
  const auto closed_at = Clock::now();
  c.ReadAll(8s);
  EXPECT_LT(Clock::now() - closed_at, 7s);
  EXPECT_TRUE(Eventually([&] { return h.service.closed == 1; }));
}

TEST(NetServerTest, PongsKeepAQuietPeerOpen) {
  ServerOptions o;
  o.idle_timeout = 500ms;
  o.ping_interval = 100ms;
  Harness h(o);
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error);
  // Beast answers pings only while a read is pending.
  beast::flat_buffer buf;
  std::optional<error_code> read_result;
  c.ws().async_read(buf, [&](error_code ec, std::size_t) { read_result = ec; });
  c.ioc().restart();
  c.ioc().run_for(1200ms);
  EXPECT_FALSE(read_result.has_value());
  ASSERT_TRUE(c.Send("alive"));
  const auto deadline = Clock::now() + 3s;
  while (!read_result && Clock::now() < deadline) c.ioc().run_one_for(100ms);
  ASSERT_TRUE(read_result.has_value());
  EXPECT_FALSE(*read_result);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "alive");
  EXPECT_EQ(h.service.closed, 0);
}

TEST(NetServerTest, ServiceCloseSendsQueuedThenByeThenCode) {
  Harness h;
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error);
  ASSERT_TRUE(c.Send("kick"));
  error_code ec;
  auto frames = c.ReadUntilClosed(ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], "before");
  EXPECT_EQ(frames[1], Bye(4409, R"(replaced \"by\" another)"));
  EXPECT_EQ(c.CloseCode(), 4409);
  EXPECT_EQ(c.CloseReason(), "replaced \"by\" another");
  EXPECT_TRUE(h.service.send_after_close_refused);
  EXPECT_TRUE(Eventually([&] { return h.service.closed == 1; }));
}

TEST(NetServerTest, ConnectionPostRunsOnTheStrandUntilClosed) {
  Harness h;
  std::shared_ptr<WsConnection> conn;
  {
    WsClient<Plain> c(h.port);
    ASSERT_FALSE(c.error);
    ASSERT_TRUE(c.Send("post"));
    std::string got;
    ASSERT_FALSE(c.Read(got));
    EXPECT_EQ(got, "posted");
    conn = h.service.last_connection;
    c.ws().close(websocket::close_code::normal);
  }
  ASSERT_TRUE(Eventually([&] { return h.service.closed == 1; }));
  std::atomic<bool> ran{false};
  conn->Post([&] { ran = true; });
  EXPECT_FALSE(conn->Send("gone"));
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(ran);
}

TEST(NetServerTest, SlowConsumerClosesWith1013) {
  ServerOptions o;
  o.max_queue_bytes = 16 * 1024;
  Harness h(o);
  WsClient<Plain> c(h.port);
  ASSERT_FALSE(c.error);
  ASSERT_TRUE(c.Send("flood"));
  ASSERT_TRUE(Eventually([&] { return h.service.flood_refused.load(); }));
  // Sent from the connection's strand, frames go straight to the coalescing
  // layer until it is full (64 KiB); only what waits beyond it counts
  // against the 16 KiB queue.
  EXPECT_LE(h.service.flood_accepted, 16 + 64);
  std::this_thread::sleep_for(200ms);  // not reading
  error_code ec;
  auto frames = c.ReadUntilClosed(ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back(), Bye(1013, "slow consumer"));
  EXPECT_EQ(c.CloseCode(), 1013);
  EXPECT_TRUE(Eventually([&] { return h.service.closed == 1; }));
}

// --------------------------------------------------------------- shutdown

TEST(NetServerTest, ShutdownClosesWebSocketsWith1001AndRunReturns) {
  Harness h;
  WsClient<Plain> ws1(h.port);
  WsClient<Plain> ws2(h.port);
  ASSERT_FALSE(ws1.error);
  ASSERT_FALSE(ws2.error);
  HttpClient<Plain> idle(h.port);
  ASSERT_EQ(idle.Request(http::verb::get, "/echo").result_int(), 200);

  // A request still with the service when shutdown begins gets its answer.
  HttpClient<Plain> busy(h.port);
  std::thread busy_thread([&] {
    auto res = busy.Request(http::verb::get, "/later?300");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_FALSE(res.keep_alive());
  });
  std::this_thread::sleep_for(100ms);
  h.server->Shutdown();
  h.server->Shutdown();  // idempotent

  for (auto* c : {&ws1, &ws2}) {
    error_code ec;
    auto frames = c->ReadUntilClosed(ec);
    EXPECT_EQ(ec, websocket::error::closed) << ec.message();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0], Bye(1001, "server shutting down"));
    EXPECT_EQ(c->CloseCode(), 1001);
  }
  EXPECT_TRUE(idle.PeerClosed());
  busy_thread.join();
  EXPECT_TRUE(h.WaitRunReturned(3s));
  EXPECT_EQ(h.service.closed, 2);
  EXPECT_EQ(h.Gauge("ws"), 0);
  EXPECT_EQ(h.Gauge("http"), 0);
}

// Draining: a request the handler took before the shutdown is answered
// before the close; a frame that arrives during the drain is not handed to
// the handler (the client sends it again to another node).
TEST(NetServerTest, ShutdownAnswersRequestsTakenThenCloses) {
  Harness h;
  WsClient<Plain> ws(h.port);
  ASSERT_FALSE(ws.error);
  ASSERT_TRUE(ws.Send("later"));
  std::this_thread::sleep_for(100ms);
  const auto start = Clock::now();
  h.server->Shutdown();
  std::this_thread::sleep_for(50ms);
  ws.Send("during the drain");
  error_code ec;
  auto frames = ws.ReadUntilClosed(ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  EXPECT_EQ(frames, (std::vector<std::string>{"later", Bye(1001, "server shutting down")}));
  EXPECT_EQ(ws.CloseCode(), 1001);
  EXPECT_GE(Clock::now() - start, 150ms);  // it waited for the answer
  EXPECT_TRUE(h.WaitRunReturned(3s));
  EXPECT_EQ(h.service.closed, 1);
}

TEST(NetServerTest, ShutdownTimeoutDropsStragglers) {
  ServerOptions o;
  o.shutdown_timeout = 300ms;
  Harness h(o);
  HttpClient<Plain> c(h.port);
  std::thread t([&] { c.Request(http::verb::get, "/later?1500"); });
  std::this_thread::sleep_for(100ms);
  const auto start = Clock::now();
  h.server->Shutdown();
  EXPECT_TRUE(h.WaitRunReturned(3s));
  EXPECT_LT(Clock::now() - start, 2500ms);
  t.join();
}

TEST(NetServerTest, PostAndEveryRunUntilShutdown) {
  Harness h;
  std::atomic<int> posted{0};
  std::atomic<int> ticks{0};
  h.server->Post([&] { posted++; });
  h.server->Post([] { throw std::runtime_error("a task that throws is contained"); });
  h.server->Every(20ms, [&] { ticks++; });
  EXPECT_TRUE(Eventually([&] { return posted == 1 && ticks >= 3; }));
  h.Stop();
  const int after = ticks;
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(ticks, after);
}

TEST(NetServerTest, ListenRejectsABadHost) {
  Registry metrics;
  TestService service;
  ServerOptions o;
  o.host = "not-an-address";
  Server s(o, service, metrics);
  EXPECT_THROW(s.Listen(), std::runtime_error);
}

// -------------------------------------------------------------------- TLS

TEST(NetServerTest, TlsServesHttpsAndWss) {
  TlsFiles files;
  ASSERT_TRUE(files.ok) << "openssl could not make a certificate";
  ServerOptions o;
  o.tls_cert_file = files.cert;
  o.tls_key_file = files.key;
  Harness h(o);
  EXPECT_TRUE(h.server->tls());

  HttpClient<Tls> https(h.port);
  ASSERT_FALSE(https.connect_error) << https.connect_error.message();
  auto res = https.Request(http::verb::post, "/echo", "secret", {{"X-Test", "tls"}});
  ASSERT_EQ(res.result_int(), 200) << https.error.message();
  EXPECT_EQ(res.body(), "POST|/echo||tls|secret|127.0.0.1");
  EXPECT_EQ(https.Request(http::verb::get, "/echo").result_int(), 200);  // keep-alive

  WsClient<Tls> wss(h.port);
  ASSERT_FALSE(wss.error) << wss.error.message();
  ASSERT_TRUE(wss.Send("over tls"));
  std::string got;
  ASSERT_FALSE(wss.Read(got));
  EXPECT_EQ(got, "over tls");

  // Plain HTTP on the TLS port gets nowhere, and the server carries on.
  {
    RawClient plain(h.port);
    plain.Write("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_FALSE(plain.ReadAll(3s).starts_with("HTTP/1.1 200"));
  }
  ASSERT_TRUE(wss.Send("again"));
  ASSERT_FALSE(wss.Read(got));
  EXPECT_EQ(got, "again");

  h.server->Shutdown();
  error_code ec;
  auto frames = wss.ReadUntilClosed(ec);
  EXPECT_EQ(wss.CloseCode(), 1001);
  EXPECT_TRUE(h.WaitRunReturned(3s));
}

TEST(NetServerTest, TlsNeedsBothFiles) {
  Registry metrics;
  TestService service;
  ServerOptions o;
  o.port = 0;
  o.tls_cert_file = "/nonexistent/cert.pem";
  Server only_cert(o, service, metrics);
  EXPECT_THROW(only_cert.Listen(), std::runtime_error);
  o.tls_key_file = "/nonexistent/key.pem";
  Server missing(o, service, metrics);
  EXPECT_THROW(missing.Listen(), std::runtime_error);
}

}  // namespace
}  // namespace parley::net
