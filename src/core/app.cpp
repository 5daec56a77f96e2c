#include "core/app.hpp"

#include <mutex>
#include <optional>
#include <utility>

#include "core/session/session.hpp"

namespace parley::core {

namespace {

// Requests that never read the store: answered on the I/O thread even when
// reads go through the pool.
bool NeverReads(const net::HttpRequest& r, const WebStatic* web) {
  return r.path == "/health" || r.path == "/metrics" || (web != nullptr && WebStatic::Owns(r));
}

// A streamed body whose sink is made on the read pool (the checks of the
// request's head read the store), while net already delivers the body.
// net hands over the next chunk only once the previous one is consumed, so
// at most one chunk (or the end) waits here for the sink. Every call into
// the sink is made under the lock, so the sink still sees one at a time.
class DeferredBody final : public net::RequestBody {
 public:
  // On the pool: the sink is known (null: the request was answered, or its
  // body is discarded).
  void Ready(std::shared_ptr<net::RequestBody> sink) {
    std::lock_guard lock(mu_);
    ready_ = true;
    sink_ = std::move(sink);
    if (aborted_) {
      // The client went away before the sink existed: what it sent is not
      // a body to keep.
      if (sink_) sink_->OnAbort();
      return;
    }
    if (chunk_) {
      auto [bytes, consumed] = std::move(*chunk_);
      chunk_.reset();
      Forward(std::move(bytes), std::move(consumed));
    }
    if (ended_ && sink_) sink_->OnEnd();
  }

  void OnChunk(std::string chunk, std::function<void()> consumed) override {
    std::lock_guard lock(mu_);
    if (!ready_) {
      chunk_.emplace(std::move(chunk), std::move(consumed));
      return;
    }
    Forward(std::move(chunk), std::move(consumed));
  }
  void OnEnd() override {
    std::lock_guard lock(mu_);
    if (!ready_) {
      ended_ = true;
      return;
    }
    if (sink_) sink_->OnEnd();
  }
  void OnAbort() override {
    std::lock_guard lock(mu_);
    if (!ready_) {
      aborted_ = true;
      chunk_.reset();
      return;
    }
    if (sink_) sink_->OnAbort();
  }

 private:
  void Forward(std::string chunk, std::function<void()> consumed) {
    if (sink_) return sink_->OnChunk(std::move(chunk), std::move(consumed));
    consumed();  // discarded, as net does without a sink
  }

  std::mutex mu_;
  bool ready_ = false;
  bool ended_ = false;
  bool aborted_ = false;
  std::shared_ptr<net::RequestBody> sink_;
  std::optional<std::pair<std::string, std::function<void()>>> chunk_;
};

}  // namespace

net::BodyMode App::BodyModeFor(const net::HttpRequest& head) {
  return media_ != nullptr && MediaApi::Streams(head) ? net::BodyMode::kStream
                                                      : net::BodyMode::kBuffer;
}

std::shared_ptr<net::RequestBody> App::HandleHttpStream(net::HttpRequest head,
                                                        net::HttpRespond respond) {
  if (media_ != nullptr && MediaApi::Streams(head)) {
    if (!core_.reads.Active()) return media_->HandleStream(std::move(head), std::move(respond));
    // The token and quota checks read the store: on the pool.
    auto body = std::make_shared<DeferredBody>();
    core_.reads.Post([this, body, head = std::move(head), respond = std::move(respond)]() mutable {
      body->Ready(media_->HandleStream(std::move(head), std::move(respond)));
    });
    return body;
  }
  return net::Service::HandleHttpStream(std::move(head), std::move(respond));
}

void App::HandleHttp(net::HttpRequest request, net::HttpRespond respond) {
  if (core_.reads.Active() && !NeverReads(request, web_)) {
    core_.reads.Post([this, request = std::move(request), respond = std::move(respond)]() mutable {
      Route(std::move(request), std::move(respond));
    });
    return;
  }
  Route(std::move(request), std::move(respond));
}

void App::Route(net::HttpRequest request, net::HttpRespond respond) {
  if (media_ != nullptr && MediaApi::Owns(request.path)) {
    return media_->Handle(std::move(request), std::move(respond));
  }
  if (web_ != nullptr && WebStatic::Owns(request)) return respond(web_->Serve(request));
  http_.Handle(std::move(request), std::move(respond));
}

std::shared_ptr<net::WsHandler> App::OpenWebSocket(std::shared_ptr<net::WsConnection> connection,
                                                   const net::HttpRequest& upgrade) {
  std::string token;
  std::string_view auth = upgrade.GetHeader("Authorization");
  if (auth.size() > 7 && (auth.starts_with("Bearer ") || auth.starts_with("bearer "))) {
    token = std::string(auth.substr(7));
  }
  return std::make_shared<Session>(core_, std::move(connection), std::move(token));
}

}  // namespace parley::core
