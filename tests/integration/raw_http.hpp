// Raw HTTP/1.1 over a TCP socket bound to a chosen source address
// (127.0.0.x), for tests of per-address limits: the kernel routes all of
// 127.0.0.0/8 to loopback, so each x is a different client address.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "support/client.hpp"

namespace parley::test {

class RawHttp {
 public:
  // Connects from `source` (an IPv4 literal) to the endpoint; ok() is false
  // when that fails. Every read and write has a 10-second timeout.
  RawHttp(const std::string& source, const Endpoint& ep) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &src.sin_addr);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(ep.port);
    ::inet_pton(AF_INET, ep.host.c_str(), &dst.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
        ::connect(fd_, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawHttp() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawHttp(const RawHttp&) = delete;
  RawHttp& operator=(const RawHttp&) = delete;

  bool ok() const { return fd_ >= 0; }

  // Sends the request and reads one response (head and Content-Length
  // body). "" when the server closed the socket or nothing came in time.
  std::string Exchange(const std::string& request) {
    if (fd_ < 0) return "";
    std::size_t off = 0;
    while (off < request.size()) {
      const ssize_t n = ::send(fd_, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return "";
      off += static_cast<std::size_t>(n);
    }
    std::string in;
    char buf[4096];
    for (;;) {
      const auto head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::size_t length = 0;
        const auto cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) length = std::stoul(in.substr(cl + 16));
        if (in.size() >= head_end + 4 + length) return in;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return "";
      in.append(buf, static_cast<std::size_t>(n));
    }
  }

  // GET /health on this socket (kept alive): true when answered 200, false
  // when the server closed it (a socket refused by a connection cap).
  bool Served() {
    return Exchange("GET /health HTTP/1.1\r\nHost: parley\r\n\r\n").starts_with("HTTP/1.1 200");
  }

 private:
  int fd_ = -1;
};

}  // namespace parley::test
