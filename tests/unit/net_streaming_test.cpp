// Streamed request bodies and file-range responses (net/service.hpp).
#include "net/service.hpp"

#include <gtest/gtest.h>

#include "net_test_harness.hpp"

namespace parley::net::nettest {
namespace {

TEST(NetStreamingTest, StreamedBodyArrivesWholeInOrderPastTheBufferLimit) {
  ServerOptions o;
  o.max_body_bytes = 1024;  // applies to buffered routes only
  Harness h(o);
  HttpClient<Plain> c(h.port);
  std::string body;
  for (int i = 0; i < 300 * 1024; ++i) body.push_back(static_cast<char>('a' + i % 26));
  auto res = c.Request(http::verb::post, "/stream", body);
  ASSERT_EQ(res.result_int(), 200) << c.error.message();
  EXPECT_EQ(res.body(), std::to_string(body.size()) + ":" + body);
  EXPECT_GT(h.service.chunks.load(), 1);
  EXPECT_TRUE(res.keep_alive());
  // The connection is reusable afterwards, for buffered routes too.
  auto echo = c.Request(http::verb::post, "/echo", "x");
  EXPECT_EQ(echo.result_int(), 200);
}

TEST(NetStreamingTest, EarlyAnswerStopsTheBodyAndCloses) {
  Harness h;
  HttpClient<Plain> c(h.port);
  auto res = c.Request(http::verb::post, "/stream/limit?1000", std::string(512 * 1024, 'z'));
  ASSERT_EQ(res.result_int(), 413) << c.error.message();
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.PeerClosed());
  EXPECT_LT(h.service.chunks.load(), 8);
}

TEST(NetStreamingTest, FileRangeIsSentFromDisk) {
  Harness h;
  HttpClient<Plain> c(h.port);
  auto res = c.Request(http::verb::get, "/file");
  ASSERT_EQ(res.result_int(), 206) << c.error.message();
  EXPECT_EQ(res.body(), "23456");
  EXPECT_EQ(res["Content-Range"], "bytes 2-6/10");
  EXPECT_EQ(res[http::field::content_length], "5");
  auto head = c.Request(http::verb::head, "/file");
  EXPECT_EQ(head.result_int(), 206);
  EXPECT_EQ(head[http::field::content_length], "5");
  EXPECT_EQ(c.Request(http::verb::get, "/echo").result_int(), 200);
}

}  // namespace
}  // namespace parley::net::nettest
