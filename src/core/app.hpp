// core's side of the net::Service seam: HTTP requests go to HttpApi, each
// WebSocket gets a Session.
#pragma once

#include "core/core.hpp"
#include "core/http_api.hpp"
#include "net/service.hpp"

namespace parley::core {

class App final : public net::Service {
 public:
  explicit App(Core& core) : core_(core), http_(core) {}

  void HandleHttp(net::HttpRequest request, net::HttpRespond respond) override;
  std::shared_ptr<net::WsHandler> OpenWebSocket(std::shared_ptr<net::WsConnection> connection,
                                                const net::HttpRequest& upgrade) override;

 private:
  Core& core_;
  HttpApi http_;
};

}  // namespace parley::core
