// core's side of the net::Service seam: HTTP requests go to HttpApi, each
// WebSocket gets a Session. With a store whose reads block, requests that
// may read run on core's read pool (store_reads.hpp), not the I/O thread.
#pragma once

#include "core/core.hpp"
#include "core/http/http_api.hpp"
#include "core/http/web_static.hpp"
#include "core/media/media_api.hpp"
#include "net/service.hpp"

namespace parley::core {

class App final : public net::Service {
 public:
  // `media` (may be null: no media endpoints) serves /v1/media and /v1/uploads;
  // `web` (may be null: no web client) serves the web client's files.
  explicit App(Core& core, MediaApi* media = nullptr, const WebStatic* web = nullptr)
      : core_(core), http_(core), media_(media), web_(web) {}

  net::BodyMode BodyModeFor(const net::HttpRequest& head) override;
  std::shared_ptr<net::RequestBody> HandleHttpStream(net::HttpRequest head,
                                                     net::HttpRespond respond) override;
  void HandleHttp(net::HttpRequest request, net::HttpRespond respond) override;
  std::shared_ptr<net::WsHandler> OpenWebSocket(std::shared_ptr<net::WsConnection> connection,
                                                const net::HttpRequest& upgrade) override;

 private:
  // The request's handler, on the I/O thread or (a store whose reads block)
  // on the read pool.
  void Route(net::HttpRequest request, net::HttpRespond respond);

  Core& core_;
  HttpApi http_;
  MediaApi* media_;
  const WebStatic* web_;
};

}  // namespace parley::core
