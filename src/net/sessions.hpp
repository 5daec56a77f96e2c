// Internal to src/net/: how the listener hands a socket to an HTTP session,
// and how an HTTP session hands its stream to a WebSocket session. The
// session templates themselves stay inside http_session.cpp and
// ws_session.cpp, instantiated there for the plain and the TLS stream.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "net/server_state.hpp"
#include "net/service.hpp"

namespace parley::net::detail {

using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
using UpgradeRequest = boost::beast::http::request<boost::beast::http::string_body>;
// A plain WebSocket runs on the bare socket, typed on its strand: no
// tcp_stream (its deadlines are HTTP's; the WebSocket keeps its own timers)
// and no type-erased executor in every operation. About a kilobyte less per
// idle session (docs/benchmarks.md, "Memory per idle session").
using PlainWsSocket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                     boost::asio::strand<boost::asio::io_context::executor_type>>;

// A freshly accepted socket, whose executor is a new strand. TLS when the
// server has a TLS context.
void StartHttpSession(ServerState& state, boost::asio::ip::tcp::socket socket);

// Completes the WebSocket handshake for `upgrade` (already read from
// `stream`), then runs the socket until it closes. `request` is the same
// upgrade as core sees it.
// `slot` is the socket's place under the connection caps (may be null).
void StartWebSocket(ServerState& state, PlainStream&& stream, UpgradeRequest&& upgrade,
                    HttpRequest request, std::shared_ptr<ConnectionSlot> slot);
void StartWebSocket(ServerState& state, TlsStream&& stream, UpgradeRequest&& upgrade,
                    HttpRequest request, std::shared_ptr<ConnectionSlot> slot);

}  // namespace parley::net::detail
