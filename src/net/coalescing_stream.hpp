// A write-coalescing layer between Beast's WebSocket stream and the socket
// (plain TCP or TLS).
//
// Beast writes every WebSocket message with its own async_write and waits for
// it to complete before the next one: one syscall per frame, which under load
// (events, oks, receipts, many per message) is most of the I/O threads' work.
// Here bytes are appended to a pending buffer and written by one write once
// the handlers already queued on the strand have run (the flush is posted),
// or, while a write is in flight, when it completes: everything queued
// meanwhile goes out together.
//
// Two ways in, in one byte order: Append() takes whole frames the session
// built itself (its text frames, which bypass Beast's writer), and
// async_write_some takes Beast's own writes (pings, pongs, the close frame),
// each appended whole and completed (posted, never inline) at once. Beast
// never overlaps writes on its next layer, and the session never appends
// while Beast's close is under way, so frames never interleave.
//
// Bounded: at kMaxPending bytes or more pending, Full() is true; the session
// waits with WhenRoom() and Beast's write completes only once the bytes have
// moved to the socket, so what waits beyond the bound stays in the
// session's own queue, under its slow-consumer limit. A failed write fails
// every later one with the same error. A teardown (the end of Beast's close
// handshake) waits until the pending bytes are out.
//
// Single-threaded: every call and every completion is on the connection's
// strand. Lifetime: writes and posted flushes keep the owner (the session
// this stream is part of) alive through the weak reference given to
// SetOwner; without an owner nothing is written.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::net::detail {

template <class Next>
class CoalescingStream {
 public:
  using next_layer_type = Next;
  using executor_type = typename Next::executor_type;
  using error_code = boost::system::error_code;
  using WriteHandler = boost::asio::any_completion_handler<void(error_code, std::size_t)>;
  using Handler = boost::asio::any_completion_handler<void(error_code)>;

  // From this many pending bytes on, Full().
  static constexpr std::size_t kMaxPending = 64 * 1024;

  explicit CoalescingStream(Next&& next) : next_(std::move(next)) {}
  CoalescingStream(const CoalescingStream&) = delete;
  CoalescingStream& operator=(const CoalescingStream&) = delete;

  void SetOwner(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

  executor_type get_executor() noexcept { return next_.get_executor(); }
  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }

  // Socket writes started so far (each carries one or more frames).
  std::size_t flushes() const noexcept { return flushes_; }
  bool Full() const noexcept { return pending_.size() >= kMaxPending; }
  const error_code& error() const noexcept { return error_; }

  // Appends `head` then `body` as one unit; false once a write has failed.
  bool Append(std::string_view head, std::string_view body) {
    if (error_) return false;
    pending_.reserve(pending_.size() + head.size() + body.size());
    pending_.append(head);
    pending_.append(body);
    Schedule();
    return true;
  }

  // Runs `then` once the pending bytes have moved to the socket (Full() is
  // false then, unless a write failed: then with its error).
  void WhenRoom(Handler then) {
    if (!Full() || error_) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(then), error_));
      return;
    }
    room_waiters_.push_back(std::move(then));
  }

  // Runs `then` once nothing is pending or in flight.
  void WhenFlushed(Handler then) {
    if (!writing_ && (pending_.empty() || error_)) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(then), error_));
      return;
    }
    flushed_waiters_.push_back(std::move(then));
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          Accept(b, WriteHandler(std::move(handler)));
        },
        token, buffers);
  }

 private:
  template <class ConstBuffers>
  void Accept(const ConstBuffers& buffers, WriteHandler handler) {
    const std::size_t n = boost::asio::buffer_size(buffers);
    if (error_) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(handler), error_, 0));
      return;
    }
    const std::size_t at = pending_.size();
    pending_.resize(at + n);
    boost::asio::buffer_copy(boost::asio::buffer(pending_.data() + at, n), buffers);
    Schedule();
    if (Full()) {
      room_waiters_.push_back(
          [h = std::move(handler), n](error_code ec) mutable { std::move(h)(ec, ec ? 0 : n); });
      return;
    }
    boost::asio::post(get_executor(), boost::asio::append(std::move(handler), error_code{}, n));
  }

  // The flush runs after the handlers already queued: they may append more.
  void Schedule() {
    if (writing_ || scheduled_) return;
    scheduled_ = true;
    boost::asio::post(get_executor(), [this, weak = owner_] {
      auto keep = weak.lock();
      if (!keep) return;  // the owner, and this stream with it, is gone
      scheduled_ = false;
      if (!writing_) Flush(std::move(keep));
    });
  }

  void Flush(std::shared_ptr<void> keep) {
    if (pending_.empty() || error_) return Settle();
    writing_ = true;
    ++flushes_;
    out_.swap(pending_);
    pending_.clear();
    boost::asio::async_write(next_, boost::asio::buffer(out_),
                             [this, keep](error_code ec, std::size_t) mutable {
                               writing_ = false;
                               if (ec && !error_) error_ = ec;
                               out_.clear();
                               if (!error_ && !pending_.empty()) {
                                 Flush(std::move(keep));
                               } else {
                                 Settle();
                               }
                             });
    // The bytes moved out of pending: whoever waited for room may go on.
    Wake(room_waiters_);
  }

  // Nothing in flight any more.
  void Settle() {
    if (error_) pending_.clear();
    if (pending_.empty()) {
      // An idle connection keeps no buffer.
      std::string().swap(out_);
      std::string().swap(pending_);
      Wake(flushed_waiters_);
    }
    Wake(room_waiters_);
  }

  void Wake(std::vector<Handler>& waiters) {
    if (waiters.empty()) return;
    std::vector<Handler> now;
    now.swap(waiters);
    for (auto& h : now)
      boost::asio::post(get_executor(), boost::asio::append(std::move(h), error_));
  }

  Next next_;
  std::weak_ptr<void> owner_;
  std::string pending_;  // appended, not yet handed to the socket
  std::string out_;      // the write in flight
  std::vector<Handler> room_waiters_;
  std::vector<Handler> flushed_waiters_;
  error_code error_;
  std::size_t flushes_ = 0;
  bool writing_ = false;
  bool scheduled_ = false;
};

// Beast's WebSocket close ends with a teardown of the next layer: first the
// pending bytes (the close frame among them) go out, then the layer below
// tears down as it would without this one.
template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, CoalescingStream<Next>& stream,
                    Handler&& handler) {
  stream.WhenFlushed(
      [&stream, role, h = std::forward<Handler>(handler)](boost::system::error_code) mutable {
        using boost::beast::websocket::async_teardown;
        async_teardown(role, stream.next_layer(), std::move(h));
      });
}

template <class Next>
void teardown(boost::beast::role_type role, CoalescingStream<Next>& stream,
              boost::system::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

}  // namespace parley::net::detail
