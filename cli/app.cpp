#include "app.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iostream>

namespace parley::cli {

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void OnSignal(int) { g_interrupted.store(true); }

json::value BodyValue(const std::string& body_json) {
  boost::system::error_code ec;
  json::value v = json::parse(body_json, ec);
  return ec ? json::value(nullptr) : v;
}
}  // namespace

bool Interrupted() { return g_interrupted.load(); }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

std::string ProfileDir(const std::string& profile) {
  std::string base;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    base = std::string(home) + "/.local/share";
  } else {
    base = ".";
  }
  return base + "/parley/" + profile;
}

void Out::Emit(const json::object& object, const std::string& human) const {
  if (json_) {
    std::cout << json::serialize(object) << '\n' << std::flush;
  } else if (!human.empty()) {
    std::cout << human << '\n' << std::flush;
  }
}

void Out::Line(const std::string& human) const {
  if (!json_) std::cout << human << '\n' << std::flush;
}

int Out::Fail(const sdk::Error& error) const {
  if (json_) {
    json::object e{{"code", error.code}, {"message", error.message}};
    if (error.retry_after_ms > 0) e["retry_after_ms"] = error.retry_after_ms;
    std::cout << json::serialize(json::object{{"error", std::move(e)}}) << '\n' << std::flush;
  } else {
    std::cerr << "parley: " << error.ToString() << '\n';
  }
  if (error.code == "not_logged_in" || error.code == "logged_out" ||
      error.code == "device_revoked") {
    if (!json_) std::cerr << "parley: log in with: parley login --server URL --phone NUMBER\n";
    return kExitNotLoggedIn;
  }
  return kExitError;
}

int Out::Fail(const std::string& code, const std::string& message) const {
  return Fail(sdk::Error{code, message});
}

Opened OpenClient(const Globals& g, const Out& out, bool need_login,
                  const std::string& device_name) {
  Opened o;
  if (g.profile.empty() || g.profile.find('/') != std::string::npos || g.profile[0] == '.') {
    o.exit_code = out.Fail("invalid", "a profile name is a plain name (no '/', no leading '.')");
    return o;
  }
  sdk::ClientOptions options;
  options.data_dir = ProfileDir(g.profile);
  options.server_url = g.server;
  options.tls_verify = !g.insecure;
  options.request_timeout = std::chrono::seconds(g.timeout_s);
  options.client_name = "parley-cli";
  if (!device_name.empty()) {
    options.device_name = device_name;
  } else {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    options.device_name = std::string("parley on ") + (host[0] != '\0' ? host : "this machine");
  }
  auto client = sdk::Client::Open(std::move(options));
  if (!client) {
    o.exit_code = out.Fail(client.error());
    return o;
  }
  if (need_login && !(*client)->account()) {
    o.exit_code = out.Fail("not_logged_in", "profile '" + g.profile + "' has no account");
    return o;
  }
  o.client = std::move(*client);
  return o;
}

int GoOnline(sdk::Client& client, const Globals& g, const Out& out) {
  client.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(g.timeout_s);
  sdk::ConnectionEvent last;
  while (std::chrono::steady_clock::now() < deadline && !Interrupted()) {
    auto e = client.WaitEvent(200ms);
    if (!e) continue;
    const auto* c = std::get_if<sdk::ConnectionEvent>(&*e);
    if (c == nullptr) continue;
    last = *c;
    if (c->state == sdk::ConnectionEvent::State::kOnline ||
        c->state == sdk::ConnectionEvent::State::kSynced) {
      return kExitOk;
    }
    if (c->state == sdk::ConnectionEvent::State::kStopped) {
      return out.Fail(c->error.value_or(sdk::Error{"stopped", "the client stopped"}));
    }
  }
  std::string why = last.reason.empty() ? "" : " (last error: " + last.reason + ")";
  return out.Fail("network", "could not connect to the server" + why);
}

json::object ConvJson(const sdk::Conv& conv) {
  return json::object{{conv.is_group() ? "group" : "user", conv.id}};
}

json::object MessageJson(const sdk::Message& m) {
  json::object o{
      {"msg_id", m.msg_id},       {"client_msg_id", m.client_msg_id},
      {"conv", ConvJson(m.conv)}, {"from", {{"user", m.from.user}, {"device", m.from.device}}},
      {"outgoing", m.outgoing},   {"kind", m.kind},
      {"text", m.text},           {"body", BodyValue(m.body_json)},
      {"ts_ms", m.ts_ms},         {"status", sdk::StatusName(m.status)}};
  if (!m.media_id.empty()) o["media_id"] = m.media_id;
  if (m.seq != 0) o["seq"] = std::to_string(m.seq);
  if (m.encrypted) o["encrypted"] = true;
  if (m.decrypt_error) {
    o["decrypt_error"] = {{"code", m.decrypt_error->code}, {"message", m.decrypt_error->message}};
  }
  return o;
}

json::object EventJson(const sdk::Event& event) {
  using namespace sdk;
  return std::visit(
      [](const auto& e) -> json::object {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, ConnectionEvent>) {
          json::object o{{"event", "connection"}, {"state", StateName(e.state)}};
          if (e.close_code != 0) o["close_code"] = e.close_code;
          if (!e.reason.empty()) o["reason"] = e.reason;
          if (e.retry_in_ms != 0) o["retry_in_ms"] = e.retry_in_ms;
          if (e.error) o["error"] = {{"code", e.error->code}, {"message", e.error->message}};
          return o;
        } else if constexpr (std::is_same_v<T, MessageEvent>) {
          json::object o{{"event", "message"}};
          for (auto& kv : MessageJson(e.message)) o[kv.key()] = std::move(kv.value());
          return o;
        } else if constexpr (std::is_same_v<T, MessageStatusEvent>) {
          json::object o{{"event", "status"},
                         {"conv", ConvJson(e.conv)},
                         {"msg_id", e.msg_id},
                         {"client_msg_id", e.client_msg_id},
                         {"status", StatusName(e.status)}};
          if (!e.by.empty()) o["by"] = e.by;
          if (e.error) o["error"] = {{"code", e.error->code}, {"message", e.error->message}};
          return o;
        } else if constexpr (std::is_same_v<T, ReceiptEvent>) {
          json::array ids;
          for (const auto& id : e.msg_ids) ids.push_back(json::value(id));
          return {
              {"event", "receipt"}, {"conv", ConvJson(e.conv)},       {"msg_ids", std::move(ids)},
              {"by", e.by},         {"status", StatusName(e.status)}, {"ts_ms", e.ts_ms}};
        } else if constexpr (std::is_same_v<T, ReadSyncEvent>) {
          return {
              {"event", "read_sync"}, {"conv", ConvJson(e.conv)}, {"up_to_msg_id", e.up_to_msg_id}};
        } else if constexpr (std::is_same_v<T, GroupEvent>) {
          json::array users;
          for (const auto& u : e.users) users.push_back(json::value(u));
          json::object o{{"event", "group"},
                         {"group_id", e.group_id},
                         {"change", e.change},
                         {"by", e.by},
                         {"users", std::move(users)}};
          if (e.name) o["name"] = *e.name;
          return o;
        } else if constexpr (std::is_same_v<T, KeysChangedEvent>) {
          return {{"event", "keys_changed"}, {"user", e.device.user}, {"device", e.device.device}};
        } else if constexpr (std::is_same_v<T, DeviceEvent>) {
          return {{"event", "device"},
                  {"change", e.change},
                  {"device_id", e.device_id},
                  {"name", e.name}};
        } else if constexpr (std::is_same_v<T, TypingEvent>) {
          return {{"event", "typing"},
                  {"conv", ConvJson(e.conv)},
                  {"from", {{"user", e.from.user}, {"device", e.from.device}}},
                  {"state", e.composing ? "composing" : "paused"},
                  {"expired", e.expired}};
        } else if constexpr (std::is_same_v<T, PresenceEvent>) {
          json::object o{
              {"event", "presence"}, {"user", e.status.user}, {"online", e.status.online}};
          if (e.status.last_seen_ms) o["last_seen_ms"] = *e.status.last_seen_ms;
          return o;
        } else {
          boost::system::error_code ec;
          json::value raw = json::parse(e.json, ec);
          return {{"event", "other"},
                  {"type", e.type},
                  {"seq", std::to_string(e.seq)},
                  {"data", ec ? json::value(nullptr) : raw}};
        }
      },
      event);
}

std::string FormatTime(std::int64_t ts_ms) {
  const std::time_t t = static_cast<std::time_t>(ts_ms / 1000);
  const std::time_t now = std::time(nullptr);
  std::tm tm{}, today{};
  localtime_r(&t, &tm);
  localtime_r(&now, &today);
  char buf[32];
  const bool same_day = tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday;
  std::strftime(buf, sizeof buf, same_day ? "%H:%M" : "%Y-%m-%d %H:%M", &tm);
  return buf;
}

std::string Ticks(sdk::MessageStatus status) {
  switch (status) {
    case sdk::MessageStatus::kPending:
      return "\u25f7";  // a clock face: not yet on the server
    case sdk::MessageStatus::kSent:
      return "\u2713";
    case sdk::MessageStatus::kDelivered:
      return "\u2713\u2713";
    case sdk::MessageStatus::kRead:
      return "\u2713\u2713 read";
    case sdk::MessageStatus::kFailed:
      return "\u2717 failed";
    case sdk::MessageStatus::kReceived:
      return "";
  }
  return "";
}

sdk::Result<sdk::Conv> ResolveConv(sdk::Client& client, const Globals& g, const sdk::Conv& conv,
                                   std::map<std::string, std::string>* names) {
  if (conv.is_group() || !conv.id.starts_with("+")) return conv;
  auto found = Await(client.DiscoverContacts({conv.id}), g);
  if (!found) return std::unexpected(found.error());
  for (const auto& m : *found) {
    if (m.user_id.empty()) continue;
    if (names != nullptr) (*names)[m.user_id] = m.name.empty() ? conv.id : m.name;
    return sdk::Conv::User(m.user_id);
  }
  return sdk::Fail("not_found", "no Parley account has the phone number " + conv.id);
}

void LoadProfileNames(sdk::Client& client, const Globals& g, std::vector<std::string> users,
                      std::map<std::string, std::string>& names) {
  std::erase_if(users, [&](const std::string& u) { return names.contains(u); });
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  if (users.empty()) return;
  if (auto profiles = Await(client.GetProfiles(users), g); profiles) {
    for (const auto& p : *profiles) {
      if (!p.name.empty()) names[p.user] = p.name;
    }
  }
}

std::string MessageLine(const sdk::Message& m, const std::string& self_user,
                        const std::map<std::string, std::string>* names) {
  std::string who = m.outgoing || m.from.user == self_user ? "me" : m.from.user;
  if (names != nullptr && who != "me") {
    if (auto it = names->find(who); it != names->end() && !it->second.empty()) who = it->second;
  }
  std::string text = m.kind == "text" ? m.text : "[" + m.kind + "]";
  if (m.decrypt_error) text = "[could not decrypt: " + m.decrypt_error->message + "]";
  if (m.kind == "text" && m.text.empty() && m.body_json != "null") text = m.body_json;
  std::string line = "[" + FormatTime(m.ts_ms) + "] ";
  line += who + ": " + text;
  if (m.outgoing) line += "  " + Ticks(m.status);
  return line;
}

}  // namespace parley::cli
