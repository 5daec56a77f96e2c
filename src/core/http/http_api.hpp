// The HTTP API (PROTOCOL.md section 1): operations endpoints and accounts.
// Media endpoints join here later.
#pragma once

#include <boost/json.hpp>

#include "core/core.hpp"
#include "net/service.hpp"

namespace parley::core {

class HttpApi {
 public:
  explicit HttpApi(Core& core) : core_(core) {}
  void Handle(net::HttpRequest request, net::HttpRespond respond);

 private:
  void Otp(const net::HttpRequest& request, net::HttpRespond respond);
  void Verify(const net::HttpRequest& request, net::HttpRespond respond);
  void Refresh(const net::HttpRequest& request, net::HttpRespond respond);

  Core& core_;
};

net::HttpResponse JsonResponse(int status, const boost::json::object& body);
net::HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);

// E.164: '+' and 8 to 15 digits.
bool IsE164(std::string_view phone);

}  // namespace parley::core
