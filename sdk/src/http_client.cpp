// One-shot HTTP requests (net.hpp): resolve, connect, TLS, write, read,
// all under one deadline (the tcp_stream's), on the Client's io_context.
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>

#include "net.hpp"

namespace parley::sdk::detail {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::uint64_t kMaxBody = 128ull * 1024 * 1024;

template <bool kTls>
class HttpOp : public std::enable_shared_from_this<HttpOp<kTls>> {
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  HttpOp(asio::io_context& io, ssl::context& tls, Url url, HttpRequestSpec spec,
         std::function<void(HttpResponse)> done)
      : resolver_(io),
        stream_(MakeStream(io, tls)),
        url_(std::move(url)),
        spec_(std::move(spec)),
        done_(std::move(done)) {}

  void Start() {
    beast::get_lowest_layer(stream_).expires_after(spec_.timeout);
    // The deadline covers connect, TLS, write and read; name lookup is left
    // to the system resolver's own timeouts.
    resolver_.async_resolve(url_.host, url_.port,
                            [self = this->shared_from_this()](error_code ec, auto results) {
                              self->OnResolve(ec, std::move(results));
                            });
  }

 private:
  static Stream MakeStream(asio::io_context& io, ssl::context& tls) {
    if constexpr (kTls) {
      return Stream(io, tls);
    } else {
      (void)tls;
      return Stream(io);
    }
  }

  void OnResolve(error_code ec, tcp::resolver::results_type results) {
    if (ec) return Finish("resolve " + url_.host + ": " + ec.message());
    beast::get_lowest_layer(stream_).async_connect(
        results, [self = this->shared_from_this()](error_code ec, const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(error_code ec) {
    if (ec) return Finish("connect " + url_.HostHeader() + ": " + ec.message());
    if constexpr (kTls) {
      if (!SSL_set_tlsext_host_name(stream_.native_handle(), url_.host.c_str())) {
        return Finish("TLS: cannot set the server name");
      }
      if ((SSL_get_verify_mode(stream_.native_handle()) & SSL_VERIFY_PEER) != 0) {
        stream_.set_verify_callback(ssl::host_name_verification(url_.host));
      }
      stream_.async_handshake(ssl::stream_base::client,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) return self->Finish("TLS handshake: " + ec.message());
                                self->Write();
                              });
    } else {
      Write();
    }
  }

  void Write() {
    req_.method_string(spec_.method);
    req_.target(url_.base + spec_.target);
    req_.version(11);
    req_.set(http::field::host, url_.HostHeader());
    req_.set(http::field::user_agent, "parley-sdk");
    req_.set(http::field::connection, "close");
    for (const auto& [k, v] : spec_.headers) req_.set(k, v);
    if (!spec_.body.empty() || spec_.method == "POST" || spec_.method == "PATCH") {
      req_.set(http::field::content_type, spec_.content_type);
      req_.body() = std::move(spec_.body);
      req_.prepare_payload();
    }
    http::async_write(stream_, req_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->Finish("write: " + ec.message());
      self->Read();
    });
  }

  void Read() {
    parser_.body_limit(kMaxBody);
    http::async_read(stream_, buffer_, parser_,
                     [self = this->shared_from_this()](error_code ec, std::size_t) {
                       if (ec) return self->Finish("read: " + ec.message());
                       self->Complete();
                     });
  }

  void Complete() {
    HttpResponse r;
    auto& msg = parser_.get();
    r.status = static_cast<int>(msg.result_int());
    r.body = std::move(msg.body());
    for (const auto& field : msg) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      r.headers[name] = std::string(field.value());
    }
    Deliver(std::move(r));
    error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
  }

  void Finish(std::string error) {
    HttpResponse r;
    r.error = std::move(error);
    Deliver(std::move(r));
    beast::get_lowest_layer(stream_).close();
  }

  void Deliver(HttpResponse r) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(r));
  }

  tcp::resolver resolver_;
  Stream stream_;
  Url url_;
  HttpRequestSpec spec_;
  std::function<void(HttpResponse)> done_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response_parser<http::string_body> parser_;
};

}  // namespace

void HttpRequest(asio::io_context& io, asio::ssl::context& tls, const Url& url,
                 HttpRequestSpec spec, std::function<void(HttpResponse)> done) {
  if (url.tls) {
    std::make_shared<HttpOp<true>>(io, tls, url, std::move(spec), std::move(done))->Start();
  } else {
    std::make_shared<HttpOp<false>>(io, tls, url, std::move(spec), std::move(done))->Start();
  }
}

std::unique_ptr<asio::ssl::context> MakeTlsContext(bool verify, const std::string& ca_file) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  error_code ignored;
  ctx->set_default_verify_paths(ignored);
  if (!ca_file.empty()) ctx->load_verify_file(ca_file, ignored);
  ctx->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

}  // namespace parley::sdk::detail
