// The one narrow interface between the network layer (src/net/) and the
// domain (src/core/). net/ knows HTTP, WebSocket, TLS, timeouts and write
// queues; it knows nothing of storage, accounts or messages. core/ implements
// Service and WsHandler; net/ implements WsConnection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::net {

struct Header {
  std::string name;  // as received; compare case-insensitively
  std::string value;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as received
  std::string path;    // target without the query
  std::string query;   // after '?', without it
  std::vector<Header> headers;
  std::string body;
  std::string remote_address;  // the peer's IP address

  // The first header of that name (case-insensitive), or "" when absent.
  std::string_view GetHeader(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;  // extra headers (Retry-After, Location, ...)
};

// Sends the response; callable once, from any thread.
using HttpRespond = std::function<void(HttpResponse)>;

// One open WebSocket, as core sees it. Every method is thread-safe.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Queues one text frame. Frames go out in the order queued. Returns false
  // (and drops the frame) when the connection is closing or its queue is
  // over the limit, in which case the connection is being closed as a slow
  // consumer.
  virtual bool Send(std::string frame) = 0;
  // Sends {"op":"bye","code":code,"reason":reason}, then a close frame with
  // that code, then closes. Frames queued before it are sent first.
  virtual void Close(std::uint16_t code, std::string reason) = 0;
  // Stops the 10-second authentication deadline.
  virtual void MarkAuthenticated() = 0;
  // Runs fn on the connection's strand, serialized with OnFrame and OnClose
  // (so fn may touch what those touch). Dropped once the socket is gone.
  virtual void Post(std::function<void()> fn) = 0;
  virtual const std::string& RemoteAddress() const = 0;
  // Unique per process, for logs and maps.
  virtual std::uint64_t Id() const = 0;
};

// What core attaches to one WebSocket. net/ calls OnFrame for each text frame
// in order, one at a time, and OnClose exactly once when the socket is gone
// (after which Send is a no-op).
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void OnFrame(std::string_view text) = 0;
  virtual void OnClose() = 0;
};

class Service {
 public:
  virtual ~Service() = default;
  // Every HTTP request except the WebSocket upgrade. Called on an I/O thread:
  // must not block; long work answers later through `respond`.
  virtual void HandleHttp(HttpRequest request, HttpRespond respond) = 0;
  // A WebSocket upgrade of GET /v1/ws has completed. `upgrade` is the HTTP
  // request that asked for it (for its Authorization header).
  virtual std::shared_ptr<WsHandler> OpenWebSocket(std::shared_ptr<WsConnection> connection,
                                                   const HttpRequest& upgrade) = 0;
};

}  // namespace parley::net
