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

// A byte range of an open file, to be sent as a response body straight from
// disk (read in small chunks as the socket drains, never whole into memory).
// Owns the descriptor: it is closed when the last reference goes.
class FileRange {
 public:
  FileRange(int fd, std::uint64_t offset, std::uint64_t length)
      : fd_(fd), offset_(offset), length_(length) {}
  ~FileRange();
  FileRange(const FileRange&) = delete;
  FileRange& operator=(const FileRange&) = delete;

  int fd() const { return fd_; }
  std::uint64_t offset() const { return offset_; }
  std::uint64_t length() const { return length_; }

 private:
  int fd_;
  std::uint64_t offset_;
  std::uint64_t length_;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;  // extra headers (Retry-After, Location, ...)
  // When set, the body is this range of a file and `body` is ignored; its
  // Content-Length is the range's length (Content-Range, ETag, ... are the
  // caller's to add in `headers`). A file that turns out shorter than the
  // range closes the connection mid-body rather than sending wrong bytes.
  std::shared_ptr<const FileRange> file;
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
  // Reading was paused because the handler's ReadyForMore answered false:
  // read again. Harmless when not paused.
  virtual void ResumeReading() {}
};

// What core attaches to one WebSocket. net/ calls OnFrame for each text frame
// in order, one at a time, and OnClose exactly once when the socket is gone
// (after which Send is a no-op).
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void OnFrame(std::string_view text) = 0;
  virtual void OnClose() = 0;
  // Asked on the strand after each OnFrame: false stops reading the socket
  // (TCP then holds the client back) until WsConnection::ResumeReading. A
  // cap on a connection's requests in flight. A close still reads on, to
  // reach the peer's close frame.
  virtual bool ReadyForMore() { return true; }
  // No request of this connection waits for the store. A shutdown (SIGTERM)
  // hands no more frames to the handler, waits until this holds (checked
  // every few ms, at most until the shutdown timeout), then closes with
  // 1001, so the answers of writes already taken go out before the close.
  virtual bool Idle() { return true; }
};

// How net delivers a request's body to core.
enum class BodyMode {
  kBuffer,  // read whole (up to ServerOptions::max_body_bytes), then HandleHttp
  kStream,  // HandleHttpStream with the head, then the body chunk by chunk
};

// What core attaches to one streamed request body. Calls come from the
// connection's strand, one at a time, in this order: OnChunk* then exactly
// one of OnEnd or OnAbort -- unless core responds first (see
// HandleHttpStream), after which nothing more is called.
class RequestBody {
 public:
  virtual ~RequestBody() = default;
  // The next bytes of the body, never empty. net reads nothing more from the
  // socket until `consumed` is called (once, from any thread): flow control,
  // so a slow disk holds the client back instead of growing memory.
  virtual void OnChunk(std::string chunk, std::function<void()> consumed) = 0;
  // The last chunk was consumed and the body is complete.
  virtual void OnEnd() = 0;
  // The body will not complete: the client went away, stalled past the read
  // deadline, or sent a malformed body. The connection is closed; a response
  // sent after this is dropped.
  virtual void OnAbort() = 0;
};

class Service {
 public:
  virtual ~Service() = default;
  // Asked once the head of a request has been read (`head.body` is empty).
  // The default buffers, as every route did before streaming existed.
  virtual BodyMode BodyModeFor(const HttpRequest& /*head*/) { return BodyMode::kBuffer; }
  // A request that BodyModeFor streams. Returns the sink for its body (null:
  // the body is discarded). `respond` may be called at any time; before
  // OnEnd (a 401, or a 413 once a limit is passed), net stops delivering the
  // body, writes the response and closes the connection. No body limit is
  // applied by net: the service enforces its own while streaming. Called on
  // an I/O thread: must not block.
  virtual std::shared_ptr<RequestBody> HandleHttpStream(HttpRequest head, HttpRespond respond);
  // Every HTTP request except the WebSocket upgrade. Called on an I/O thread:
  // must not block; long work answers later through `respond`.
  virtual void HandleHttp(HttpRequest request, HttpRespond respond) = 0;
  // A WebSocket upgrade of GET /v1/ws has completed. `upgrade` is the HTTP
  // request that asked for it (for its Authorization header).
  virtual std::shared_ptr<WsHandler> OpenWebSocket(std::shared_ptr<WsConnection> connection,
                                                   const HttpRequest& upgrade) = 0;
};

}  // namespace parley::net
