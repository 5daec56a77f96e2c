// Steps the media tests share: uploads through the real HTTP API, raw
// sockets for what a well-behaved client never sends (a body cut short, a
// chunked body past the limit), and polling metadata.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "integration/helpers.hpp"
#include "media/fixtures.hpp"

namespace parley::test {

inline std::map<std::string, std::string> Bearer(const Account& a,
                                                 std::map<std::string, std::string> more = {}) {
  more["Authorization"] = "Bearer " + a.access_token;
  return more;
}

inline std::map<std::string, std::string> TusHeaders(const Account& a,
                                                     std::map<std::string, std::string> more = {}) {
  more["Tus-Resumable"] = "1.0.0";
  return Bearer(a, std::move(more));
}

inline HttpResult UploadMedia(Parleyd& server, const Account& a, const std::string& bytes,
                              const std::string& type) {
  return Http(server.endpoint(), "POST", "/v1/media", bytes, Bearer(a, {{"Content-Type", type}}),
              60s);
}

inline std::string MediaIdOf(const HttpResult& r) {
  auto j = r.Json();
  return j.is_object() ? Str(j.as_object(), "media_id") : std::string();
}

// The metadata once processing has finished (status not "processing").
inline json::object WaitProcessed(Parleyd& server, const Account& a, const std::string& id) {
  json::object meta;
  for (int i = 0; i < 200; ++i) {
    auto r = Http(server.endpoint(), "GET", "/v1/media/" + id + "/meta", "", Bearer(a));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return {};
    meta = r.Json().as_object();
    if (Str(meta, "status") != "processing") return meta;
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << "media " << id << " still processing";
  return meta;
}

// A plain TCP connection for hand-made requests.
class RawConn {
 public:
  explicit RawConn(const Endpoint& ep) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(ep.port);
    ::inet_pton(AF_INET, ep.host.c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    timeval tv{10, 0};
    if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawConn() { Close(); }
  bool ok() const { return fd_ >= 0; }
  // False once the peer stopped reading (reset or closed).
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Everything until the peer closes (or 10 s pass).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// The status code of a raw HTTP response ("HTTP/1.1 413 ..." -> 413), or 0.
inline int RawStatus(const std::string& response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.1 ")) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

inline std::size_t FilesIn(const std::filesystem::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    (void)e;
    ++n;
  }
  return n;
}

// The peak resident set of a process (VmHWM), in KiB.
inline long PeakRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) return std::atol(line.c_str() + 6);
  }
  return -1;
}

}  // namespace parley::test
