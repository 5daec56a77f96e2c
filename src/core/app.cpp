#include "core/app.hpp"

#include "core/session.hpp"

namespace parley::core {

net::BodyMode App::BodyModeFor(const net::HttpRequest& head) {
  return media_ != nullptr && MediaApi::Streams(head) ? net::BodyMode::kStream
                                                      : net::BodyMode::kBuffer;
}

std::shared_ptr<net::RequestBody> App::HandleHttpStream(net::HttpRequest head,
                                                        net::HttpRespond respond) {
  if (media_ != nullptr && MediaApi::Streams(head)) {
    return media_->HandleStream(std::move(head), std::move(respond));
  }
  return net::Service::HandleHttpStream(std::move(head), std::move(respond));
}

void App::HandleHttp(net::HttpRequest request, net::HttpRespond respond) {
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
