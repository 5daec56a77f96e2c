#include "net/coalescing_stream.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace parley::net::detail {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Layer = CoalescingStream<boost::beast::tcp_stream>;

struct Pair {
  asio::io_context io;
  std::shared_ptr<int> owner = std::make_shared<int>(0);
  std::unique_ptr<Layer> layer;
  tcp::socket peer{io};

  Pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket client(io);
    client.connect(acceptor.local_endpoint());
    peer = acceptor.accept();
    layer = std::make_unique<Layer>(boost::beast::tcp_stream(std::move(client)));
    layer->SetOwner(owner);
  }
};

// Writes `frames` one after the other, each started when the previous one
// completes (as Beast does), and records the completions.
void WriteChain(Layer& layer, const std::vector<std::string>& frames, std::size_t i,
                std::vector<error_code>& results) {
  if (i == frames.size()) return;
  asio::async_write(layer, asio::buffer(frames[i]),
                    [&layer, &frames, i, &results](error_code ec, std::size_t n) {
                      EXPECT_EQ(n, ec ? n : frames[i].size());
                      results.push_back(ec);
                      WriteChain(layer, frames, i + 1, results);
                    });
}

// Runs the loop, then checks that the peer got `expected` from one socket write.
void RunAndExpectOneWrite(Pair& p, const std::string& expected) {
  p.io.run_for(std::chrono::seconds(10));
  EXPECT_EQ(p.layer->flushes(), 1u);
  std::string got(expected.size(), '\0');
  asio::read(p.peer, asio::buffer(got));
  EXPECT_EQ(got, expected);
}

TEST(CoalescingStreamTest, FramesAppendedTogetherLeaveInOneWriteInOrder) {
  Pair p;
  std::string expected;
  for (int i = 0; i < 500; ++i) {
    const std::string head = "<" + std::to_string(i) + ">";
    const std::string body(static_cast<std::size_t>(i % 37), 'x');
    ASSERT_TRUE(p.layer->Append(head, body));
    expected += head + body;
  }
  // Beast's own writes (a ping, say) join the same stream, after them.
  std::vector<error_code> results;
  std::vector<std::string> tail = {"[ping]"};
  WriteChain(*p.layer, tail, 0, results);
  expected += "[ping]";
  RunAndExpectOneWrite(p, expected);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0]) << results[0].message();
}

TEST(CoalescingStreamTest, FramesPostedInABurstShareAWrite) {
  Pair p;
  std::string expected;
  // Each frame from a handler of its own, the way frames reach a connection
  // (posted by other threads): the flush runs after those already queued.
  for (int i = 0; i < 300; ++i) {
    const std::string frame = "frame " + std::to_string(i) + ";";
    expected += frame;
    asio::post(p.io, [&p, frame] { ASSERT_TRUE(p.layer->Append(frame, "")); });
  }
  RunAndExpectOneWrite(p, expected);
}

TEST(CoalescingStreamTest, AWriteBeyondTheBoundWaitsForTheSocket) {
  Pair p;
  // The peer reads nothing: the kernel's buffers fill, and the layer must
  // stop completing writes instead of buffering without bound.
  const std::string chunk(16 * 1024, 'a');
  std::vector<std::string> frames(2000, chunk);  // 32 MB offered
  std::vector<error_code> results;
  WriteChain(*p.layer, frames, 0, results);
  for (int i = 0; i < 200; ++i) p.io.run_for(std::chrono::milliseconds(5));
  EXPECT_LT(results.size(), frames.size());
  // What is accepted and not yet written stays near the bound (the kernel
  // holds the rest of what completed).
  EXPECT_LT(results.size() * chunk.size(), 16u * 1024 * 1024);

  // Reading everything lets every write complete.
  std::size_t total = 0;
  std::vector<char> buf(1 << 20);
  p.peer.non_blocking(true);
  while (results.size() < frames.size() || total < frames.size() * chunk.size()) {
    error_code ec;
    total += p.peer.read_some(asio::buffer(buf), ec);
    if (ec && ec != asio::error::would_block) FAIL() << ec.message();
    p.io.run_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(total, frames.size() * chunk.size());
  for (const auto& ec : results) EXPECT_FALSE(ec) << ec.message();
}

TEST(CoalescingStreamTest, AFailedWriteFailsTheLaterOnes) {
  Pair p;
  p.peer.close();
  std::vector<std::string> frames(2000, std::string(4096, 'b'));
  std::vector<error_code> results;
  WriteChain(*p.layer, frames, 0, results);
  // A write after the peer is gone fails (EPIPE or a reset); the chain
  // keeps going and every later write fails too.
  p.io.run_for(std::chrono::seconds(20));
  ASSERT_EQ(results.size(), frames.size());
  EXPECT_TRUE(results.back());
}

TEST(CoalescingStreamTest, TeardownWaitsForPendingBytes) {
  Pair p;
  const std::string frame = "the close frame";
  std::vector<std::string> frames(50, frame);
  std::vector<error_code> results;
  bool torn_down = false;
  WriteChain(*p.layer, frames, 0, results);
  // Run until every write has been accepted, then tear down at once.
  while (results.size() < frames.size()) p.io.run_one();
  async_teardown(boost::beast::role_type::server, *p.layer, [&](error_code) { torn_down = true; });
  // The peer sees every byte, then EOF (the teardown's shutdown).
  std::string got;
  std::vector<char> buf(4096);
  const int peer_fd = p.peer.native_handle();
  std::thread reader([&] {
    error_code ec;
    for (;;) {
      std::size_t n = p.peer.read_some(asio::buffer(buf), ec);
      got.append(buf.data(), n);
      if (ec) break;
    }
    ::shutdown(peer_fd, SHUT_RDWR);  // the teardown's read sees EOF
  });
  p.io.run_for(std::chrono::seconds(10));
  // Only if the teardown never came: lets the reader end, and the test fail.
  if (!torn_down) ::shutdown(peer_fd, SHUT_RDWR);
  reader.join();
  EXPECT_TRUE(torn_down);
  EXPECT_EQ(got.size(), frames.size() * frame.size());
}

}  // namespace
}  // namespace parley::net::detail
