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
#include <cstdint>
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

  void SetOwner(std::weak_ptr<void> owner) { s_->owner = std::move(owner); }

  executor_type get_executor() noexcept { return next_.get_executor(); }
  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }

  // Socket writes started so far (each carries one or more frames).
  std::size_t flushes() const noexcept { return s_->flushes; }
  bool Full() const noexcept { return s_->pending.size() >= kMaxPending; }
  const error_code& error() const noexcept { return s_->error; }

  // Appends `head` then `body` as one unit; false once a write has failed.
  bool Append(std::string_view head, std::string_view body) {
    if (s_->error) return false;
    s_->pending.reserve(s_->pending.size() + head.size() + body.size());
    s_->pending.append(head);
    s_->pending.append(body);
    Schedule();
    return true;
  }

  // Runs `then` once the pending bytes have moved to the socket (Full() is
  // false then, unless a write failed: then with its error).
  void WhenRoom(Handler then) {
    if (!Full() || s_->error) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(then), s_->error));
      return;
    }
    s_->room_waiters.push_back(std::move(then));
  }

  // Runs `then` once nothing is pending or in flight.
  void WhenFlushed(Handler then) {
    if (!s_->writing && (s_->pending.empty() || s_->error)) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(then), s_->error));
      return;
    }
    s_->flushed_waiters.push_back(std::move(then));
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
    if (s_->error) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(handler), s_->error, 0));
      return;
    }
    const std::size_t at = s_->pending.size();
    s_->pending.resize(at + n);
    boost::asio::buffer_copy(boost::asio::buffer(s_->pending.data() + at, n), buffers);
    Schedule();
    if (Full()) {
      s_->room_waiters.push_back(
          [h = std::move(handler), n](error_code ec) mutable { std::move(h)(ec, ec ? 0 : n); });
      return;
    }
    boost::asio::post(get_executor(), boost::asio::append(std::move(handler), error_code{}, n));
  }

  // The flush runs after the handlers already queued: they may append more.
  void Schedule() {
    if (s_->writing || s_->scheduled) return;
    s_->scheduled = true;
    boost::asio::post(get_executor(), [this, weak = s_->owner] {
      auto keep = weak.lock();
      if (!keep) return;  // the owner, and this stream with it, is gone
      s_->scheduled = false;
      if (!s_->writing) Flush(std::move(keep));
    });
  }

  void Flush(std::shared_ptr<void> keep) {
    if (s_->pending.empty() || s_->error) return Settle();
    s_->writing = true;
    ++s_->flushes;
    s_->out.swap(s_->pending);
    s_->pending.clear();
    boost::asio::async_write(next_, boost::asio::buffer(s_->out),
                             [this, keep](error_code ec, std::size_t) mutable {
                               s_->writing = false;
                               if (ec && !s_->error) s_->error = ec;
                               s_->out.clear();
                               if (!s_->error && !s_->pending.empty()) {
                                 Flush(std::move(keep));
                               } else {
                                 Settle();
                               }
                             });
    // The bytes moved out of pending: whoever waited for room may go on.
    Wake(s_->room_waiters);
  }

  // Nothing in flight any more.
  void Settle() {
    if (s_->error) s_->pending.clear();
    if (s_->pending.empty()) {
      // An idle connection keeps no buffer.
      std::string().swap(s_->out);
      std::string().swap(s_->pending);
      Wake(s_->flushed_waiters);
    }
    Wake(s_->room_waiters);
  }

  void Wake(std::vector<Handler>& waiters) {
    if (waiters.empty()) return;
    std::vector<Handler> now;
    now.swap(waiters);
    for (auto& h : now)
      boost::asio::post(get_executor(), boost::asio::append(std::move(h), s_->error));
  }

  // Everything but the socket lives apart, so that Beast's WebSocket state,
  // which holds this layer, stays within jemalloc's 2,560-byte class.
  struct State {
    std::weak_ptr<void> owner;
    std::string pending;  // appended, not yet handed to the socket
    std::string out;      // the write in flight
    std::vector<Handler> room_waiters;
    std::vector<Handler> flushed_waiters;
    error_code error;
    std::uint32_t flushes = 0;  // wraps; 32 bits keep State in the 160-byte class
    bool writing = false;
    bool scheduled = false;
  };

  Next next_;
  std::unique_ptr<State> s_ = std::make_unique<State>();
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
