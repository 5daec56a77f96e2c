#include "net/service.hpp"

#include <unistd.h>
#include <algorithm>
#include <cctype>

namespace parley::net {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view HttpRequest::GetHeader(std::string_view name) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return {};
}

FileRange::~FileRange() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<RequestBody> Service::HandleHttpStream(HttpRequest, HttpRespond respond) {
  HttpResponse r;
  r.status = 500;
  r.body = R"({"error":{"code":"internal","message":"streaming not supported"}})";
  respond(std::move(r));
  return nullptr;
}

}  // namespace parley::net
