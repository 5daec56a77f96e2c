// The WebSocket connection (net.hpp): connect, TLS, upgrade, then one read
// loop and a write queue with one write in flight. Beast's timeouts do the
// liveness work: it answers the server's pings, pings an idle server itself
// and drops the connection when nothing arrives for idle_timeout.
#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>

#include "net.hpp"

namespace parley::sdk::detail {

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kMaxFrame = 4 * 1024 * 1024;  // the server sends at most 256 KiB
constexpr std::size_t kMaxQueuedFrames = 10000;
constexpr int kNoStatus = 1005;
constexpr int kAbnormal = 1006;

template <bool kTls>
class WsImpl final : public WsTransport, public std::enable_shared_from_this<WsImpl<kTls>> {
  using Next = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  WsImpl(asio::io_context& io, ssl::context& tls, Url url, Settings settings, Handlers handlers)
      : resolver_(io),
        ws_(MakeNext(io, tls)),
        url_(std::move(url)),
        settings_(std::move(settings)),
        handlers_(std::move(handlers)) {}

  void Connect() override {
    resolver_.async_resolve(url_.host, url_.port,
                            [self = this->shared_from_this()](error_code ec, auto results) {
                              self->OnResolve(ec, std::move(results));
                            });
  }

  void Send(std::string frame) override {
    if (!open_ || finished_) return;
    if (queue_.size() >= kMaxQueuedFrames) return Abort();
    queue_.push_back(std::move(frame));
    if (!writing_) DoWrite();
  }

  void Close(int code, std::string reason) override {
    if (finished_) return;
    if (!open_) {
      gave_up_ = true;
      error_code ignored;
      resolver_.cancel();
      beast::get_lowest_layer(ws_).socket().close(ignored);
      return;
    }
    if (closing_) return;
    closing_ = true;
    websocket::close_reason why(static_cast<std::uint16_t>(code));
    why.reason = std::move(reason);
    ws_.async_close(why, [self = this->shared_from_this()](error_code) {
      // The read loop sees the close completing and reports it.
    });
  }

  void Abort() override {
    if (finished_) return;
    aborted_ = true;
    error_code ignored;
    resolver_.cancel();
    auto& sock = beast::get_lowest_layer(ws_).socket();
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
  }

 private:
  static Next MakeNext(asio::io_context& io, ssl::context& tls) {
    if constexpr (kTls) {
      return Next(io, tls);
    } else {
      (void)tls;
      return Next(io);
    }
  }

  void FailOpen(const std::string& why) {
    finished_ = true;
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    if (handlers_.on_open) handlers_.on_open(gave_up_ ? std::string("cancelled") : why);
  }

  void OnResolve(error_code ec, tcp::resolver::results_type results) {
    if (ec || gave_up_) return FailOpen("resolve " + url_.host + ": " + ec.message());
    beast::get_lowest_layer(ws_).expires_after(settings_.connect_timeout);
    beast::get_lowest_layer(ws_).async_connect(
        results, [self = this->shared_from_this()](error_code ec, const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(error_code ec) {
    if (ec || gave_up_) return FailOpen("connect " + url_.HostHeader() + ": " + ec.message());
    if constexpr (kTls) {
      auto& tls = ws_.next_layer();
      if (!SSL_set_tlsext_host_name(tls.native_handle(), url_.host.c_str())) {
        return FailOpen("TLS: cannot set the server name");
      }
      if ((SSL_get_verify_mode(tls.native_handle()) & SSL_VERIFY_PEER) != 0) {
        tls.set_verify_callback(ssl::host_name_verification(url_.host));
      }
      tls.async_handshake(ssl::stream_base::client,
                          [self = this->shared_from_this()](error_code ec) {
                            if (ec || self->gave_up_) {
                              return self->FailOpen("TLS handshake: " + ec.message());
                            }
                            self->Upgrade();
                          });
    } else {
      Upgrade();
    }
  }

  void Upgrade() {
    // From here on the websocket stream's own timeouts apply.
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = settings_.connect_timeout;
    t.idle_timeout = settings_.idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [ua = settings_.user_agent](websocket::request_type& req) {
          req.set(beast::http::field::user_agent, ua);
        }));
    ws_.read_message_max(kMaxFrame);
    ws_.async_handshake(url_.HostHeader(), url_.base + settings_.target,
                        [self = this->shared_from_this()](error_code ec) {
                          if (ec || self->gave_up_) {
                            return self->FailOpen("WebSocket upgrade: " + ec.message());
                          }
                          self->open_ = true;
                          if (self->handlers_.on_open) self->handlers_.on_open(std::nullopt);
                          self->DoRead();
                        });
  }

  void DoRead() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(error_code ec) {
    if (ec) {
      if (ec == websocket::error::closed && !aborted_) {
        const auto& r = ws_.reason();
        const int code = r.code == websocket::close_code::none ? kNoStatus : r.code;
        return Finish(code, std::string(r.reason.data(), r.reason.size()));
      }
      return Finish(kAbnormal, aborted_ ? "aborted" : ec.message());
    }
    std::string frame = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (handlers_.on_frame) handlers_.on_frame(std::move(frame));
    if (!finished_) DoRead();
  }

  void DoWrite() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()),
                    [self = this->shared_from_this()](error_code ec, std::size_t) {
                      self->writing_ = false;
                      if (ec) return;  // the read loop reports the failure
                      self->queue_.pop_front();
                      if (!self->queue_.empty() && !self->closing_ && !self->finished_) {
                        self->DoWrite();
                      }
                    });
  }

  void Finish(int code, std::string reason) {
    if (finished_) return;
    finished_ = true;
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    if (handlers_.on_closed) handlers_.on_closed(code, std::move(reason));
  }

  tcp::resolver resolver_;
  websocket::stream<Next> ws_;
  Url url_;
  Settings settings_;
  Handlers handlers_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  bool open_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool aborted_ = false;
  bool gave_up_ = false;
  bool finished_ = false;
};

}  // namespace

std::shared_ptr<WsTransport> WsTransport::Create(asio::io_context& io, asio::ssl::context& tls,
                                                 const Url& url, Settings settings,
                                                 Handlers handlers) {
  if (url.tls) {
    return std::make_shared<WsImpl<true>>(io, tls, url, std::move(settings), std::move(handlers));
  }
  return std::make_shared<WsImpl<false>>(io, tls, url, std::move(settings), std::move(handlers));
}

}  // namespace parley::sdk::detail
