// One TCP connection to Redis, owned by Asio; hiredis is only the RESP codec
// (redisFormatCommandArgv to encode, redisReader to parse), since Debian's
// hiredis 0.14 has neither an Asio adapter nor timeouts.
//
// Commands are pipelined: each is appended to the output buffer and its
// handler to a FIFO; replies arrive in order. A command that waits longer
// than the timeout while nothing at all arrives for as long fails the
// whole connection (a half-dead server is treated as a dead one): every
// pending handler gets kUnavailable and the close handler runs once. A
// server that is slow but answering (replies keep coming, the queue is
// deep) is not gone. In push mode (a subscriber connection) every
// reply goes to the push handler instead, since Redis answers SUBSCRIBE with
// one reply per channel and sends messages unasked.
//
// Not thread-safe: use it from the one thread running its io_context.
#pragma once

#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace parley::bus {

using ReplyPtr = std::shared_ptr<redisReply>;

// Reply helpers (null-safe).
bool IsError(const ReplyPtr& r);
std::string_view ReplyText(const redisReply* r);  // string, status or error text

class RespConnection : public std::enable_shared_from_this<RespConnection> {
 public:
  using ReplyHandler = std::function<void(Result<ReplyPtr>)>;

  RespConnection(boost::asio::io_context& io, std::chrono::milliseconds timeout);
  ~RespConnection();

  // Resolves and connects; `done` once, with the outcome.
  void Connect(const std::string& host, const std::string& port, std::function<void(Status)> done);

  // Queues a command. `handler` may be null (the reply is discarded).
  void Command(const std::vector<std::string>& args, ReplyHandler handler);
  // Every reply goes to `push` (subscriber connections).
  void SetPushMode(std::function<void(ReplyPtr)> push);
  // Runs once when the connection fails or is closed by the peer (not by Close()).
  void SetCloseHandler(std::function<void(const Error&)> on_close);
  void Close();

  bool open() const { return open_; }
  std::size_t pending() const { return pending_.size(); }
  std::size_t queued_bytes() const { return out_.size(); }

 private:
  struct Pending {
    ReplyHandler handler;
    std::chrono::steady_clock::time_point sent;
  };
  void Fail(std::string why);
  // Forgets the owner's handlers (which may hold this connection) after a
  // failed connect, so that nothing keeps the connection alive.
  void DropHandlers();
  void StartRead();
  void StartWrite();
  void ArmWatchdog();

  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer watchdog_;
  std::chrono::milliseconds timeout_;
  redisReader* reader_;
  bool open_ = false;
  bool closed_ = false;
  bool writing_ = false;
  std::string out_;  // queued, not yet being written
  std::string writing_buf_;
  std::vector<char> in_;
  std::deque<Pending> pending_;
  // When bytes last arrived (the watchdog tells slow from gone by it).
  std::chrono::steady_clock::time_point last_progress_{};
  std::function<void(ReplyPtr)> push_;
  std::function<void(const Error&)> on_close_;
};

}  // namespace parley::bus
