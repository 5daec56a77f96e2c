// One HTTP/1.1 connection, plain or TLS: read a request, hand it to the
// Service, write its response, repeat while keep-alive holds. Everything
// runs on the connection's strand; the Service may answer from any thread,
// and the answer is posted back here.
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/optional.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include "common/log.hpp"
#include "net/server_state.hpp"
#include "net/sessions.hpp"

namespace parley::net::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

// One deadline covers an idle keep-alive connection and the whole of one
// request, so a slowloris client cannot hold a socket longer than this.
constexpr auto kReadTimeout = 30s;
constexpr auto kWriteTimeout = 30s;
constexpr auto kTlsHandshakeTimeout = 10s;
constexpr auto kCloseTimeout = 5s;
constexpr std::size_t kHeaderLimit = 16 * 1024;
// After an error response, unread request bytes are drained (up to this
// much) before closing: closing with unread data sends an RST, which can
// destroy the response before the client has read it.
constexpr std::size_t kLingerMaxBytes = 1024 * 1024;

std::string ErrorBody(std::string_view code, std::string_view message) {
  // Only called with our own constant texts: nothing to escape.
  std::string out = R"({"error":{"code":")";
  out.append(code).append(R"(","message":")").append(message).append("\"}}");
  return out;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = ErrorBody(code, message);
  return r;
}

// Bytes of a file per pread of a streamed response.
constexpr std::size_t kStreamChunkBytes = 64 * 1024;
// Bytes of a streamed request body per chunk handed to the service: each is
// a hand-off to its thread and back, so larger than a response's piece.
constexpr std::size_t kBodyChunkBytes = 256 * 1024;

// A Beast body that is a range of an open file, read with pread as the
// socket drains: a large download costs one small buffer, not its size.
struct FileRangeBody {
  using value_type = std::shared_ptr<const FileRange>;

  static std::uint64_t size(const value_type& v) { return v ? v->length() : 0; }

  class writer {
   public:
    using const_buffers_type = asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}

    void init(error_code& ec) {
      ec = {};
      pos_ = body_ ? body_->offset() : 0;
      remain_ = size(body_);
    }

    boost::optional<std::pair<const_buffers_type, bool>> get(error_code& ec) {
      if (remain_ == 0) {
        ec = {};
        return boost::none;
      }
      const std::size_t want =
          remain_ < sizeof(buf_) ? static_cast<std::size_t>(remain_) : sizeof(buf_);
      ssize_t n;
      do {
        n = ::pread(body_->fd(), buf_, want, static_cast<off_t>(pos_));
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        // A file shorter than promised: the Content-Length already went out,
        // so the only honest thing left is to fail the write.
        ec = n < 0 ? error_code(errno, boost::system::system_category())
                   : make_error_code(boost::system::errc::io_error);
        return boost::none;
      }
      ec = {};
      pos_ += static_cast<std::uint64_t>(n);
      remain_ -= static_cast<std::uint64_t>(n);
      return std::make_pair(const_buffers_type(buf_, static_cast<std::size_t>(n)), remain_ > 0);
    }

   private:
    const value_type& body_;
    std::uint64_t pos_ = 0;
    std::uint64_t remain_ = 0;
    char buf_[kStreamChunkBytes];
  };
};

bool ResponseHasNoBody(unsigned status) { return status < 200 || status == 204 || status == 304; }

HttpRequest ToHttpRequest(const UpgradeRequest& req, const std::string& remote) {
  HttpRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  const auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  for (const auto& field : req) {
    r.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  r.body = req.body();
  r.remote_address = remote;
  return r;
}

template <class Stream>
class HttpSession;

// Shared by the copies of one HttpRespond: the first call wins, and a
// response that core drops without calling becomes a 500 rather than a
// connection that hangs until the client gives up.
template <class Session>
struct ResponseSlot {
  explicit ResponseSlot(std::weak_ptr<Session> s) : session(std::move(s)) {}
  ~ResponseSlot() {
    if (!done.load()) Deliver(ErrorResponse(500, "internal", "no response"));
  }
  void Deliver(HttpResponse response) {
    if (done.exchange(true)) return;
    if (auto s = session.lock()) s->PostResponse(std::move(response));
  }
  std::weak_ptr<Session> session;
  std::atomic<bool> done{false};
};

template <class Stream>
class HttpSession final : public Connection,
                          public std::enable_shared_from_this<HttpSession<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  template <class... Args>
  HttpSession(ServerState& state, std::string remote, std::shared_ptr<ConnectionSlot> slot,
              Args&&... args)
      : state_(state),
        stream_(std::forward<Args>(args)...),
        executor_(stream_.get_executor()),
        remote_(std::move(remote)),
        slot_(std::move(slot)) {
    state_.http_open.Add(1);
  }

  ~HttpSession() override {
    state_.http_open.Add(-1);
    state_.Unregister(key_);
  }

  void Start() {
    key_ = state_.Register(this->weak_from_this());
    // Checked after registering: a shutdown that began before this point
    // either sees us in the table or is seen here.
    if (state_.shutting_down()) return CloseNow();
    if constexpr (kTls) {
      Lowest().expires_after(kTlsHandshakeTimeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) return self->CloseNow();
                                self->DoRead();
                              });
    } else {
      DoRead();
    }
  }

  void BeginShutdown() override {
    Dispatch([](HttpSession& s) {
      // A request in flight finishes first; its response then says close.
      if (!s.busy_) s.CloseNow();
    });
  }

  void ForceClose() override {
    Dispatch([](HttpSession& s) {
      s.CloseNow();
      s.self_.reset();
    });
  }

  void ReleaseSelf() override { self_.reset(); }

  // From any thread.
  void PostResponse(HttpResponse response) {
    Dispatch([r = std::move(response)](HttpSession& s) mutable { s.WriteResponse(std::move(r)); });
  }

 private:
  template <class Fn>
  void Dispatch(Fn fn) {
    if (state_.destroying()) return;
    asio::post(executor_,
               [self = this->shared_from_this(), fn = std::move(fn)]() mutable { fn(*self); });
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void DoRead() {
    if (state_.shutting_down()) return CloseNow();
    stream_parser_.reset();
    aborted_ = false;
    parser_.emplace();
    // The limit is applied once the head says whether the body is buffered
    // (OnHeader): a streamed body has none here.
    parser_->body_limit(boost::none);
    parser_->header_limit(kHeaderLimit);
    Lowest().expires_after(kReadTimeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    stream_head_.reset();
    if (!parser_->is_done() && !beast::websocket::is_upgrade(req)) {
      HttpRequest head = ToHttpRequest(req, remote_);
      if (state_.service.BodyModeFor(head) == BodyMode::kStream) stream_head_ = std::move(head);
    }
    if (!stream_head_) {
      const std::size_t limit = state_.options.max_body_bytes;
      parser_->body_limit(limit);
      const auto length = parser_->content_length();
      if (length && *length > limit) return OnReadError(http::error::body_limit);
    }
    if (req[http::field::expect] == "100-continue" && !parser_->is_done()) {
      // Clients that ask (curl, for bodies over 1 KiB) wait for this before
      // sending the body; without it they stall for a second.
      continue_.emplace(http::status::continue_, req.version());
      http::async_write(stream_, *continue_,
                        [self = this->shared_from_this()](error_code wec, std::size_t) {
                          self->continue_.reset();
                          if (wec) return self->CloseNow();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (stream_head_) {
      auto head = std::move(*stream_head_);
      stream_head_.reset();
      return StartStream(std::move(head));
    }
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](error_code ec, std::size_t) {
                       if (ec) return self->OnReadError(ec);
                       self->OnRequest();
                     });
  }

  void OnReadError(error_code ec) {
    if (ec == http::error::body_limit) {
      return WriteError(ErrorResponse(413, "too_large", "request body too large"));
    }
    if (ec == http::error::header_limit) {
      return WriteError(ErrorResponse(431, "too_large", "request header too large"));
    }
    // end_of_stream and partial_message are a client going away; other
    // errors of the HTTP category are a malformed request.
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return WriteError(ErrorResponse(400, "bad_request", "malformed HTTP request"));
    }
    CloseNow();
  }

  void OnRequest() {
    UpgradeRequest req = parser_->release();
    parser_.reset();
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/v1/ws" && beast::websocket::is_upgrade(req)) {
      HttpRequest upgrade = ToHttpRequest(req, remote_);
      // The WebSocket session keeps its own deadlines.
      Lowest().expires_never();
      upgraded_ = true;
      StartWebSocket(state_, std::move(stream_), std::move(req), std::move(upgrade),
                     std::move(slot_));
      return;
    }
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    head_ = req.method() == http::verb::head;
    busy_ = true;
    // Core holds only a weak reference (through the slot), so that a
    // callback kept past the server's life cannot keep a socket alive.
    self_ = this->shared_from_this();
    auto slot = std::make_shared<ResponseSlot<HttpSession>>(this->weak_from_this());
    try {
      state_.service.HandleHttp(ToHttpRequest(req, remote_),
                                [slot](HttpResponse r) { slot->Deliver(std::move(r)); });
    } catch (const std::exception& e) {
      PLOG_ERROR("HandleHttp threw", "path={} error={}", LogQuote(path), LogQuote(e.what()));
      slot->Deliver(ErrorResponse(500, "internal", "internal error"));
    }
  }

  // ---- streamed request bodies

  void StartStream(HttpRequest head) {
    stream_parser_.emplace(std::move(*parser_));
    parser_.reset();
    stream_parser_->body_limit(boost::none);
    const auto& req = stream_parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    head_ = false;
    busy_ = true;
    streaming_ = true;
    self_ = this->shared_from_this();
    auto slot = std::make_shared<ResponseSlot<HttpSession>>(this->weak_from_this());
    try {
      sink_ = state_.service.HandleHttpStream(
          std::move(head), [slot](HttpResponse r) { slot->Deliver(std::move(r)); });
    } catch (const std::exception& e) {
      PLOG_ERROR("HandleHttpStream threw", "error={}", LogQuote(e.what()));
      slot->Deliver(ErrorResponse(500, "internal", "internal error"));
    }
    // A body nobody takes (the answer is already out) is read in small pieces.
    chunk_.resize(sink_ ? kBodyChunkBytes : kStreamChunkBytes);
    // Beast reads at most the buffer's free capacity (and at least 512
    // bytes) per read: sized by the head, that was 512 bytes per recvmsg,
    // 200,000 reads and wake-ups for 100 MiB. 64 KiB is about what the
    // socket hands over per read here (a larger buffer was no faster).
    buffer_.reserve(kStreamChunkBytes);
    ReadChunk();
  }

  void ReadChunk() {
    if (!streaming_) return;
    auto& body = stream_parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    reading_ = true;
    Lowest().expires_after(kReadTimeout);  // per chunk: a deadline on progress
    http::async_read(
        stream_, buffer_, *stream_parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->OnChunk(ec); });
  }

  void OnChunk(error_code ec) {
    reading_ = false;
    if (ec == http::error::need_buffer) ec = {};
    if (!streaming_) {
      // Core answered while this read was in flight.
      if (pending_) {
        auto r = std::move(*pending_);
        pending_.reset();
        Write(std::move(r), /*keep=*/false, /*linger=*/!ec);
      }
      return;
    }
    const std::size_t got = chunk_.size() - stream_parser_->get().body().size;
    if (ec) {
      // Bytes that arrived before the client went away are still its bytes
      // (a resumable upload keeps them): hand them over, then abort.
      if (got == 0 || !sink_) return AbortStream();
      auto weak = this->weak_from_this();
      auto then_abort = [weak] {
        if (auto s = weak.lock()) {
          s->Dispatch([](HttpSession& self) {
            if (self.streaming_) self.AbortStream();
          });
        }
      };
      sink_->OnChunk(std::string(chunk_.data(), got), std::move(then_abort));
      return;
    }
    if (got == 0) return AfterChunk();
    if (!sink_) return AfterChunk();  // discarded
    auto weak = this->weak_from_this();
    auto consumed = [weak] {
      if (auto s = weak.lock()) {
        s->Dispatch([](HttpSession& self) { self.AfterChunk(); });
      }
    };
    sink_->OnChunk(std::string(chunk_.data(), got), std::move(consumed));
  }

  void AfterChunk() {
    if (!streaming_) return;
    if (!stream_parser_->is_done()) return ReadChunk();
    streaming_ = false;
    // An idle keep-alive connection holds no chunk (`chunk_ = {}` would
    // keep the capacity).
    chunk_.clear();
    chunk_.shrink_to_fit();
    buffer_.shrink_to_fit();
    Lowest().expires_never();  // core's turn; the write sets its own deadline
    if (auto sink = std::exchange(sink_, nullptr)) sink->OnEnd();
  }

  void AbortStream() {
    streaming_ = false;
    aborted_ = true;
    if (auto sink = std::exchange(sink_, nullptr)) sink->OnAbort();
    CloseNow();
  }

  void WriteResponse(HttpResponse r) {
    self_.reset();
    if (!busy_ || upgraded_) return;
    if (aborted_) return;
    if (streaming_) {
      // An answer before the end of the body: stop reading it, then close.
      streaming_ = false;
      sink_.reset();
      keep_alive_ = false;
      if (reading_) {
        pending_ = std::move(r);
        return;
      }
      return Write(std::move(r), /*keep=*/false, /*linger=*/true);
    }
    const bool keep = keep_alive_ && !state_.shutting_down();
    Write(std::move(r), keep, /*linger=*/false);
  }

  // A response produced by net itself: the request was not read in full,
  // so the connection cannot be reused.
  void WriteError(HttpResponse r) {
    busy_ = true;
    keep_alive_ = false;
    if (parser_ && parser_->is_header_done()) version_ = parser_->get().version();
    Write(std::move(r), /*keep=*/false, /*linger=*/true);
  }

  void Write(HttpResponse r, bool keep, bool linger) {
    unsigned status = static_cast<unsigned>(r.status);
    if (status < 100 || status > 599) status = 500;
    if (r.file && !head_ && !ResponseHasNoBody(status))
      return WriteFile(std::move(r), status, keep);
    if (r.file && head_) {
      r.body.clear();
    }
    auto file_length = r.file ? std::optional<std::uint64_t>(r.file->length()) : std::nullopt;
    auto res = std::make_shared<http::response<http::string_body>>();
    try {
      BuildResponse(*res, std::move(r), status, keep);
    } catch (const std::exception& e) {
      PLOG_ERROR("cannot build HTTP response", "status={} error={}", status, LogQuote(e.what()));
      status = 500;
      res = std::make_shared<http::response<http::string_body>>();
      BuildResponse(*res, ErrorResponse(500, "internal", "internal error"), status, keep);
    }
    if (file_length && head_ && !ResponseHasNoBody(status)) res->content_length(*file_length);
    Send(std::move(res), status, keep, linger);
  }

  void WriteFile(HttpResponse r, unsigned status, bool keep) {
    auto res = std::make_shared<http::response<FileRangeBody>>();
    auto file = std::move(r.file);
    r.body.clear();
    // Headers come from the same code as every other response.
    http::response<http::string_body> head;
    BuildResponse(head, std::move(r), status, keep);
    res->base() = std::move(head.base());
    res->body() = std::move(file);
    res->content_length(res->body()->length());
    res->keep_alive(keep);
    Send(std::move(res), status, keep, /*linger=*/false);
  }

  template <class Message>
  void Send(std::shared_ptr<Message> res, unsigned status, bool keep, bool linger) {
    state_.Responses(status).Inc();
    Lowest().expires_after(kWriteTimeout);
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, keep, linger](error_code ec, std::size_t) {
          self->busy_ = false;
          self->head_ = false;
          if (ec) return self->CloseNow();
          if (linger) return self->LingerClose();
          if (!keep) return self->GracefulClose();
          self->DoRead();
        });
  }

  void BuildResponse(http::response<http::string_body>& res, HttpResponse r, unsigned status,
                     bool keep) {
    res.version(version_);
    res.result(status);
    res.set(http::field::server, "parleyd");
    for (auto& h : r.headers) {
      // A header carrying CR or LF would let a value forge more headers.
      if (h.name.empty() || h.name.find_first_of("\r\n:") != std::string::npos ||
          h.value.find_first_of("\r\n") != std::string::npos) {
        continue;
      }
      res.insert(h.name, h.value);
    }
    res.keep_alive(keep);
    if (ResponseHasNoBody(status)) return;
    if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
    if (head_) {
      res.content_length(r.body.size());
    } else {
      res.body() = std::move(r.body);
      res.prepare_payload();
    }
  }

  void GracefulClose() {
    if constexpr (kTls) {
      Lowest().expires_after(kCloseTimeout);
      stream_.async_shutdown([self = this->shared_from_this()](error_code) { self->CloseNow(); });
    } else {
      error_code ignored;
      Lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
      // The socket closes when the last handler lets go of the session.
    }
  }

  void LingerClose() {
    if constexpr (kTls) {
      GracefulClose();
    } else {
      error_code ignored;
      Lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
      Lowest().expires_after(kCloseTimeout);
      Drain(0);
    }
  }

  void Drain(std::size_t drained) {
    buffer_.clear();
    Lowest().async_read_some(buffer_.prepare(16 * 1024), [self = this->shared_from_this(), drained](
                                                             error_code ec, std::size_t n) {
      if (ec || drained + n > kLingerMaxBytes) return self->CloseNow();
      self->Drain(drained + n);
    });
  }

  void CloseNow() {
    if (upgraded_) return;
    Lowest().close();
  }

  ServerState& state_;
  Stream stream_;
  // A copy: stream_ is moved away by a WebSocket upgrade.
  const typename Stream::executor_type executor_;
  const std::string remote_;
  std::shared_ptr<ConnectionSlot> slot_;  // moves to the WebSocket on upgrade
  std::uint64_t key_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  std::optional<http::request_parser<http::buffer_body>> stream_parser_;
  std::optional<HttpRequest> stream_head_;  // the head of a request to stream
  std::shared_ptr<RequestBody> sink_;
  std::vector<char> chunk_;
  std::optional<HttpResponse> pending_;  // answered while a chunk read was in flight
  bool streaming_ = false;               // the body is being delivered to core
  bool reading_ = false;                 // a chunk read is in flight
  bool aborted_ = false;
  std::shared_ptr<HttpSession> self_;  // while core holds the request
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  bool busy_ = false;  // a request is with core or its response is being written
  bool upgraded_ = false;
};

}  // namespace

void StartHttpSession(ServerState& state, asio::ip::tcp::socket socket) {
  error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string remote = PeerAddress(peer.address());
  auto slot = state.Admit(remote);
  if (!slot) {
    // Over a connection cap: closed at once, before any byte is read.
    socket.close(ec);
    return;
  }
  if (state.ssl) {
    auto s = std::make_shared<HttpSession<TlsStream>>(state, std::move(remote), std::move(slot),
                                                      std::move(socket), *state.ssl);
    s->Start();
  } else {
    auto s = std::make_shared<HttpSession<PlainStream>>(state, std::move(remote), std::move(slot),
                                                        std::move(socket));
    s->Start();
  }
}

}  // namespace parley::net::detail
