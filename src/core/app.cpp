#include "core/app.hpp"

#include "core/session.hpp"

namespace parley::core {

void App::HandleHttp(net::HttpRequest request, net::HttpRespond respond) {
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
