#include "light_device.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "parley/signal_crypto.hpp"
#include "wire.hpp"

namespace parley::sdk::testing {

using namespace std::chrono_literals;

// ---- MemoryKv ---------------------------------------------------------------------------

std::string MemoryKv::K(std::string_view ns, std::string_view key) {
  return std::string(ns) + '\x1f' + std::string(key);
}

Result<std::optional<std::string>> MemoryKv::Get(std::string_view ns, std::string_view key) {
  auto it = map_.find(K(ns, key));
  if (it == map_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status MemoryKv::Put(std::string_view ns, std::string_view key, std::string_view value) {
  map_[K(ns, key)] = std::string(value);
  return {};
}

Status MemoryKv::Delete(std::string_view ns, std::string_view key) {
  map_.erase(K(ns, key));
  return {};
}

Result<std::vector<std::string>> MemoryKv::Keys(std::string_view ns, std::string_view prefix) {
  const std::string p = K(ns, prefix);
  std::vector<std::string> out;
  for (auto it = map_.lower_bound(p); it != map_.end() && it->first.starts_with(p); ++it) {
    out.push_back(it->first.substr(ns.size() + 1));
  }
  return out;
}

// ---- Light devices ---------------------------------------------------------------------

namespace {

std::string S(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return {};
  if (it->value().is_string()) return std::string(it->value().get_string());
  if (it->value().is_int64()) return std::to_string(it->value().get_int64());
  if (it->value().is_uint64()) return std::to_string(it->value().get_uint64());
  return {};
}

std::uint32_t U32(const json::object& o, std::string_view k) {
  const std::string s = S(o, k);
  return s.empty() ? 0 : static_cast<std::uint32_t>(std::stoul(s));
}

test::HttpResult Post(test::Parleyd& server, const std::string& path, const json::object& body) {
  return test::Http(server.endpoint(), "POST", path, json::serialize(body));
}

}  // namespace

std::unique_ptr<LightDevice> MakeLightDevice(test::Parleyd& server, const std::string& phone,
                                             const std::string& name) {
  auto d = std::make_unique<LightDevice>();
  d->phone = phone;
  const std::size_t seen = server.CodeCount(phone);
  auto otp = Post(server, "/v1/auth/otp", {{"phone", phone}});
  EXPECT_EQ(otp.status, 202) << otp.body;
  auto code = server.WaitCode(phone, seen);
  EXPECT_TRUE(code) << "no code for " << phone;
  if (!code) return nullptr;
  auto r =
      Post(server, "/v1/auth/verify",
           {{"phone", phone}, {"code", *code}, {"device", {{"name", name}, {"platform", "cli"}}}});
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return nullptr;
  const json::value verified = r.Json();  // outlives `o`
  if (!verified.is_object()) return nullptr;
  const auto& o = verified.get_object();
  d->user = S(o, "user_id");
  d->device = S(o, "device_id");
  d->token = S(o, "access_token");

  d->crypto = MakeSignalCrypto({.prekey_target = 2, .prekey_low = 1});
  auto opened = d->crypto->Open(d->Address(), d->kv);
  EXPECT_TRUE(opened) << opened.error().ToString();
  auto up = d->crypto->KeysToUpload(std::nullopt);
  EXPECT_TRUE(up) << up.error().ToString();
  if (!opened || !up) return nullptr;
  json::object frame{{"op", "keys.upload"},
                     {"identity_key", detail::Base64Encode(*up->identity_key)},
                     {"registration_id", *up->registration_id},
                     {"signed_prekey",
                      {{"id", up->signed_prekey->id},
                       {"key", detail::Base64Encode(up->signed_prekey->key)},
                       {"signature", detail::Base64Encode(up->signed_prekey->signature)}}}};
  json::array otks;
  for (const auto& k : up->one_time_prekeys) {
    otks.push_back(json::object{{"id", k.id}, {"key", detail::Base64Encode(k.key)}});
  }
  frame["one_time_prekeys"] = std::move(otks);
  auto ws = ConnectAs(server, *d);
  if (!ws) return nullptr;
  auto answer = ws->Request(std::move(frame), 20s);
  EXPECT_TRUE(answer && S(*answer, "op") == "ok")
      << (answer ? json::serialize(*answer) : std::string("no answer"));
  ws->Close();
  return d;
}

std::unique_ptr<test::WsClient> ConnectAs(test::Parleyd& server, const LightDevice& d) {
  auto ws = test::WsClient::Connect(server.endpoint());
  EXPECT_TRUE(ws) << "WebSocket connect failed";
  if (!ws) return nullptr;
  auto hello = ws->Request({{"op", "hello"}, {"token", d.token}}, 20s);
  EXPECT_TRUE(hello && S(*hello, "op") == "ok")
      << (hello ? json::serialize(*hello) : std::string("no answer"));
  if (!hello || S(*hello, "op") != "ok") return nullptr;
  return ws;
}

std::string ReadGroup(test::Parleyd& server, LightDevice& d, const std::string& group_id) {
  auto ws = ConnectAs(server, d);
  if (!ws) return "connect";
  auto r = ws->Request({{"op", "history"}, {"conv", {{"group", group_id}}}, {"limit", 100}}, 20s);
  ws->Close();
  if (!r) return "no answer";
  if (S(*r, "op") != "ok") return S(*r, "code");
  const auto* list = r->if_contains("messages");
  if (list == nullptr || !list->is_array()) return "protocol";
  const auto& messages = list->get_array();
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (!it->is_object()) continue;
    auto m = detail::ParseMessage(it->get_object());
    if (!m || !d.seen.insert(m->msg_id).second) continue;
    if (m->from.user == d.user && m->from.device == d.device) continue;
    auto body = detail::ParseObject(m->body_json);
    if (!body) {
      d.errors.push_back(m->msg_id + ": body");
      continue;
    }
    const std::string from_key = m->from.user + "." + m->from.device;
    if (m->kind == "sender_key") {
      auto env = detail::ParseEnvelope(json::value(*body));
      if (!env) {
        d.errors.push_back(m->msg_id + ": envelope");
        continue;
      }
      for (const auto& c : env->ciphertexts) {
        if (c.device.user != d.user || c.device.device != d.device) continue;
        ++d.key_copies[from_key];
        auto plain = d.crypto->Decrypt(m->from, c);
        auto inner = plain ? detail::ParseObject(*plain) : std::nullopt;
        auto dist = inner ? detail::Base64Decode(S(*inner, "distribution")) : std::nullopt;
        if (!dist) {
          d.errors.push_back(m->msg_id + ": sender key " +
                             (plain ? std::string("unreadable") : plain.error().ToString()));
          continue;
        }
        if (auto s = d.crypto->ProcessSenderKey(group_id, m->from, *dist); !s) {
          d.errors.push_back(m->msg_id + ": " + s.error().ToString());
        }
      }
    } else if (m->kind == "e2ee") {
      const auto* group = body->if_contains("group");
      auto data = group && group->is_object() ? detail::Base64Decode(S(group->get_object(), "data"))
                                              : std::nullopt;
      if (!data) {
        d.errors.push_back(m->msg_id + ": not a group ciphertext");
        continue;
      }
      d.data[m->msg_id] = *data;
      auto plain = d.crypto->GroupDecrypt(group_id, m->from, *data);
      if (!plain) {
        d.errors.push_back(m->msg_id + ": " + plain.error().ToString());
        continue;
      }
      auto inner = detail::ParseObject(*plain);
      const auto* b = inner ? inner->if_contains("body") : nullptr;
      const std::string text = b && b->is_object() ? S(b->get_object(), "text") : std::string();
      d.texts.push_back(text);
      d.text_of[m->msg_id] = text;
    }
  }
  return "";
}

std::vector<PreKeyBundle> BundlesFrom(const std::string& user, const json::object& answer) {
  std::vector<PreKeyBundle> out;
  const auto* list = answer.if_contains("devices");
  if (list == nullptr || !list->is_array()) return out;
  for (const auto& v : list->get_array()) {
    const auto& o = v.as_object();
    PreKeyBundle b;
    b.device = {user, S(o, "device_id")};
    if (o.contains("registration_id")) b.registration_id = U32(o, "registration_id");
    b.identity_key = detail::Base64Decode(S(o, "identity_key")).value_or("");
    const auto& spk = o.at("signed_prekey").as_object();
    b.signed_prekey = {U32(spk, "id"), detail::Base64Decode(S(spk, "key")).value_or(""),
                       detail::Base64Decode(S(spk, "signature")).value_or("")};
    if (const auto* otk = o.if_contains("one_time_prekey"); otk && otk->is_object()) {
      b.one_time_prekey =
          OneTimePreKey{U32(otk->get_object(), "id"),
                        detail::Base64Decode(S(otk->get_object(), "key")).value_or("")};
    }
    out.push_back(std::move(b));
  }
  return out;
}

// ---- CuttingProxy ------------------------------------------------------------------------

CuttingProxy::CuttingProxy(test::Endpoint upstream) : upstream_(std::move(upstream)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    ADD_FAILURE() << "proxy: bind/listen: " << std::strerror(errno);
    return;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

CuttingProxy::~CuttingProxy() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listen_fd_);
}

void CuttingProxy::ArmCut(int nth) {
  std::lock_guard lock(mu_);
  arm_at_ = nth;
  seen_ = 0;
}

bool CuttingProxy::WaitCut(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return cut_; });
}

int CuttingProxy::sender_key_sends() const {
  std::lock_guard lock(mu_);
  return total_;
}

void CuttingProxy::AcceptLoop() {
  for (;;) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) < 0) return;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if ((p.revents & POLLIN) == 0) continue;
    const int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) continue;
    std::lock_guard lock(mu_);
    if (cut_ || stopping_) {
      ::close(client);  // the "crashed" sender's later attempts go nowhere
      continue;
    }
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(upstream_.port);
    ::inet_pton(AF_INET, upstream_.host.c_str(), &addr.sin_addr);
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(client);
      ::close(server);
      continue;
    }
    fds_.push_back(client);
    fds_.push_back(server);
    threads_.emplace_back([this, client, server] { Pump(client, server, true); });
    threads_.emplace_back([this, client, server] { Pump(server, client, false); });
  }
}

void CuttingProxy::Cut() {
  std::lock_guard lock(mu_);
  cut_ = true;
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  cv_.notify_all();
}

void CuttingProxy::Pump(int from, int to, bool inspect) {
  std::string buf;
  bool upgraded = !inspect;
  char tmp[16384];
  for (;;) {
    const ssize_t n = ::recv(from, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    buf.append(tmp, static_cast<std::size_t>(n));
    std::size_t forward = 0;  // bytes of buf that may go on
    if (!upgraded) {
      const auto end = buf.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      upgraded = true;
      forward = end + 4;
      // Plain HTTP (log-in, token refresh): passed through as it is.
      if (!buf.starts_with("GET ")) inspect = false;
    }
    if (!inspect) {
      forward = buf.size();
    } else {
      // Client frames: find where each starts and look at text frames (the
      // first fragment of a message holds its "kind").
      bool cut = false;
      while (buf.size() - forward >= 2) {
        const auto* p = reinterpret_cast<const unsigned char*>(buf.data() + forward);
        const std::size_t avail = buf.size() - forward;
        const int opcode = p[0] & 0x0f;
        const bool masked = (p[1] & 0x80) != 0;
        std::uint64_t len = p[1] & 0x7f;
        std::size_t pos = 2;
        if (len == 126) {
          if (avail < 4) break;
          len = (std::uint64_t{p[2]} << 8) | p[3];
          pos = 4;
        } else if (len == 127) {
          if (avail < 10) break;
          len = 0;
          for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
          pos = 10;
        }
        const std::size_t mask_at = pos;
        if (masked) pos += 4;
        if (avail < pos + len) break;
        if (opcode == 1) {
          std::string head(buf.data() + forward + pos, std::min<std::uint64_t>(len, 400));
          if (masked) {
            for (std::size_t i = 0; i < head.size(); ++i) head[i] ^= p[mask_at + (i % 4)];
          }
          if (head.find("\"kind\":\"sender_key\"") != std::string::npos) {
            std::lock_guard lock(mu_);
            if (arm_at_ > 0 && ++seen_ >= arm_at_) cut = true;
            if (!cut) ++total_;
          }
        }
        if (cut) break;
        forward += pos + len;
      }
      if (cut) {
        if (forward > 0) (void)::send(to, buf.data(), forward, MSG_NOSIGNAL);
        Cut();
        return;
      }
    }
    std::size_t off = 0;
    while (off < forward) {
      const ssize_t w = ::send(to, buf.data() + off, forward - off, MSG_NOSIGNAL);
      if (w <= 0) return;
      off += static_cast<std::size_t>(w);
    }
    buf.erase(0, forward);
  }
  ::shutdown(to, SHUT_RDWR);
}

}  // namespace parley::sdk::testing
