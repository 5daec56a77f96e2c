#include "bus/redis/resp_connection.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>

namespace parley::bus {

namespace asio = boost::asio;

bool IsError(const ReplyPtr& r) { return !r || r->type == REDIS_REPLY_ERROR; }

std::string_view ReplyText(const redisReply* r) {
  if (r == nullptr) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR) {
    return {r->str, r->len};
  }
  return {};
}

RespConnection::RespConnection(asio::io_context& io, std::chrono::milliseconds timeout)
    : resolver_(io), socket_(io), watchdog_(io), timeout_(timeout), reader_(redisReaderCreate()) {
  in_.resize(16 * 1024);
}

RespConnection::~RespConnection() { redisReaderFree(reader_); }

void RespConnection::Connect(const std::string& host, const std::string& port,
                             std::function<void(Status)> done) {
  auto self = shared_from_this();
  // The connect attempt has the same deadline as a command.
  watchdog_.expires_after(timeout_);
  watchdog_.async_wait([self](boost::system::error_code ec) {
    if (!ec && !self->open_) {
      boost::system::error_code ignored;
      self->resolver_.cancel();
      self->socket_.close(ignored);
    }
  });
  resolver_.async_resolve(
      host, port,
      [self, done = std::move(done)](boost::system::error_code ec,
                                     asio::ip::tcp::resolver::results_type results) mutable {
        if (ec || self->closed_) {
          self->watchdog_.cancel();
          self->DropHandlers();
          return done(parley::Fail(Errc::kUnavailable, "resolve: " + ec.message()));
        }
        asio::async_connect(
            self->socket_, results,
            [self, done = std::move(done)](boost::system::error_code ec, const auto&) {
              self->watchdog_.cancel();
              if (ec || self->closed_) {
                self->DropHandlers();
                return done(
                    parley::Fail(Errc::kUnavailable, "connect: " + (ec ? ec.message() : "closed")));
              }
              boost::system::error_code ignored;
              self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
              self->socket_.set_option(asio::socket_base::keep_alive(true), ignored);
              self->open_ = true;
              self->StartRead();
              self->ArmWatchdog();
              if (!self->out_.empty()) self->StartWrite();
              done(parley::Ok());
            });
      });
}

void RespConnection::Command(const std::vector<std::string>& args, ReplyHandler handler) {
  if (closed_) {
    if (handler) handler(parley::Fail(Errc::kUnavailable, "connection closed"));
    return;
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int n =
      redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (n < 0) {
    if (handler) handler(parley::Fail(Errc::kInternal, "cannot encode a Redis command"));
    return;
  }
  out_.append(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
  if (!push_) pending_.push_back({std::move(handler), std::chrono::steady_clock::now()});
  if (open_) StartWrite();
}

void RespConnection::DropHandlers() {
  on_close_ = nullptr;
  push_ = nullptr;
}

void RespConnection::SetPushMode(std::function<void(ReplyPtr)> push) { push_ = std::move(push); }

void RespConnection::SetCloseHandler(std::function<void(const Error&)> on_close) {
  on_close_ = std::move(on_close);
}

void RespConnection::Close() {
  on_close_ = nullptr;
  Fail("closed");
}

void RespConnection::Fail(std::string why) {
  if (closed_) return;
  closed_ = true;
  open_ = false;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  watchdog_.cancel();
  auto pending = std::move(pending_);
  pending_.clear();
  const Error error{Errc::kUnavailable, "redis: " + why};
  for (auto& p : pending) {
    if (p.handler) p.handler(std::unexpected(error));
  }
  if (auto on_close = std::move(on_close_)) on_close(error);
  // The owner's handlers often hold this connection: drop them, or the
  // connection and its buffers would keep each other alive forever.
  on_close_ = nullptr;
  push_ = nullptr;
}

void RespConnection::StartWrite() {
  if (writing_ || out_.empty() || !open_) return;
  writing_ = true;
  writing_buf_.clear();
  std::swap(writing_buf_, out_);
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(writing_buf_),
                    [self](boost::system::error_code ec, std::size_t) {
                      self->writing_ = false;
                      if (ec) return self->Fail("write: " + ec.message());
                      self->StartWrite();
                    });
}

void RespConnection::StartRead() {
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(in_), [self](boost::system::error_code ec, std::size_t n) {
    if (ec) return self->Fail(ec == asio::error::eof ? "closed by the server" : ec.message());
    self->last_progress_ = std::chrono::steady_clock::now();
    if (redisReaderFeed(self->reader_, self->in_.data(), n) != REDIS_OK) {
      return self->Fail("protocol error");
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(self->reader_, &raw) != REDIS_OK) {
        return self->Fail(std::string("protocol error: ") + self->reader_->errstr);
      }
      if (raw == nullptr) break;
      ReplyPtr reply(static_cast<redisReply*>(raw), [](redisReply* r) { freeReplyObject(r); });
      if (self->push_) {
        self->push_(std::move(reply));
      } else if (self->pending_.empty()) {
        return self->Fail("a reply nobody asked for");
      } else {
        auto p = std::move(self->pending_.front());
        self->pending_.pop_front();
        if (p.handler) p.handler(std::move(reply));
      }
      if (self->closed_) return;
    }
    self->StartRead();
  });
}

void RespConnection::ArmWatchdog() {
  auto self = shared_from_this();
  watchdog_.expires_after(std::max(std::chrono::milliseconds(50), timeout_ / 4));
  watchdog_.async_wait([self](boost::system::error_code ec) {
    if (ec || self->closed_) return;
    // Gone, not slow: the oldest command has waited past the timeout AND
    // nothing at all has arrived for that long. A server that is busy (a
    // connect storm queues thousands of registrations behind each other)
    // still answers something every few milliseconds; failing then would
    // drop every pending command and send them all again on reconnect,
    // making it busier still.
    if (!self->pending_.empty() &&
        std::chrono::steady_clock::now() -
                std::max(self->pending_.front().sent, self->last_progress_) >
            self->timeout_) {
      return self->Fail("no reply within " + std::to_string(self->timeout_.count()) + " ms");
    }
    self->ArmWatchdog();
  });
}

}  // namespace parley::bus
