// The one-shot commands of `parley` (docs/cli.md). Each opens the profile,
// does its work with the SDK's blocking Future::get(), prints, and exits.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app.hpp"

namespace parley::cli {

namespace {

json::array JsonStrings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::value(s));
  return a;
}

std::string ReadCode() {
  std::cerr << "Code: " << std::flush;
  std::string code;
  std::getline(std::cin, code);
  while (!code.empty() && (code.back() == '\r' || code.back() == ' ')) code.pop_back();
  return code;
}

}  // namespace

int Login(const Globals& g, const LoginArgs& a) {
  Out out(g.json);
  if (g.server.empty()) return out.Fail("invalid", "--server URL is required to log in");
  auto opened = OpenClient(g, out, false, a.device_name);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  // A second login in a profile would leave its device behind on the
  // account (which has room for five).
  if (const auto existing = client.account()) {
    return out.Fail("invalid", "profile '" + g.profile + "' is logged in already (user " +
                                   existing->user_id + ", device " + existing->device_id +
                                   "): parley logout first, or use another --profile");
  }

  std::string code = a.code;
  if (code.empty()) {
    auto requested = Await(client.RequestCode(a.phone), g);
    if (!requested) return out.Fail(requested.error());
    out.Emit(
        {{"code_requested", true}, {"phone", a.phone}, {"expires_in_s", *requested}},
        "A code was sent to " + a.phone + " (valid " + std::to_string(*requested / 60) + " min).");
    if (a.request_only) return kExitOk;
    code = ReadCode();
    if (code.empty()) return out.Fail("invalid", "no code given");
  }
  auto account = Await(client.Verify(a.phone, code), g);
  if (!account) return out.Fail(account.error());
  // Publish this device's keys now, so that others can write to it before
  // it first goes online for a chat.
  client.Start();
  auto keys = Await(client.PublishKeys(), g);
  if (!keys && keys.error().code != "unsupported") return out.Fail(keys.error());
  out.Emit({{"user_id", account->user_id},
            {"device_id", account->device_id},
            {"new_user", account->new_user},
            {"phone", account->phone},
            {"server", account->server_url},
            {"profile", g.profile}},
           std::string(account->new_user ? "Account created. " : "Logged in. ") + "User " +
               account->user_id + ", device " + account->device_id + " (profile '" + g.profile +
               "').");
  return kExitOk;
}

int Logout(const Globals& g) {
  Out out(g.json);
  const std::string dir = ProfileDir(g.profile);
  {
    auto opened = OpenClient(g, out, true);
    if (!opened.client) return opened.exit_code;
    auto& client = *opened.client;
    const auto account = client.account();
    if (int rc = GoOnline(client, g, out); rc == kExitOk) {
      // Removing itself stops the client (device_revoked): that is the point.
      auto removed = Await(client.RemoveDevice(account->device_id), g);
      if (!removed && removed.error().code != "disconnected" &&
          removed.error().code != "device_revoked" && removed.error().code != "stopped") {
        return out.Fail(removed.error());
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return out.Fail("storage", "cannot remove " + dir + ": " + ec.message());
  out.Emit({{"logged_out", true}, {"profile", g.profile}},
           "Logged out; profile '" + g.profile + "' removed.");
  return kExitOk;
}

namespace {
std::string detail_hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}
}  // namespace

int Whoami(const Globals& g) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  const auto a = *opened.client->account();
  out.Emit({{"user_id", a.user_id},
            {"device_id", a.device_id},
            {"phone", a.phone},
            {"server", a.server_url},
            {"profile", g.profile},
            {"data_dir", ProfileDir(g.profile)}},
           "User " + a.user_id + " (" + a.phone + "), device " + a.device_id + "\nServer " +
               a.server_url + "\nProfile '" + g.profile + "' in " + ProfileDir(g.profile));
  return kExitOk;
}

int SendFileCmd(const Globals& g, const sdk::Conv& to, const std::string& path) {
  Out out(g.json);
  std::ifstream in(path, std::ios::binary);
  if (!in) return out.Fail("invalid", "cannot read " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  auto conv = ResolveConv(client, g, to);
  if (!conv) return out.Fail(conv.error());
  const std::string name = std::filesystem::path(path).filename().string();
  const std::string data = std::move(bytes).str();
  const auto size = data.size();
  auto sent = Await(client.SendFile(*conv, data, name), g);
  if (!sent) return out.Fail(sent.error());
  out.Emit({{"msg_id", sent->msg_id},
            {"client_msg_id", sent->client_msg_id},
            {"name", name},
            {"size", static_cast<std::int64_t>(size)},
            {"duplicate", sent->duplicate}},
           "Sent " + name + " (" + std::to_string(size) + " bytes), message " + sent->msg_id + ".");
  return kExitOk;
}

int GetFileCmd(const Globals& g, const std::string& msg_id, std::string output) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  // Catch up first: the message (with its key) may still be in the mailbox.
  if (int rc = GoOnline(client, g, out); rc != kExitOk) return rc;
  (void)client.WaitForState(sdk::ConnectionEvent::State::kSynced,
                            std::chrono::seconds(g.timeout_s));
  auto data = Await(client.DownloadFile(msg_id), g);
  if (!data) return out.Fail(data.error());
  if (output.empty()) {
    output = msg_id + ".file";
    auto store = sdk::Store::Open(ProfileDir(g.profile) + "/parley.db");
    if (store) {
      if (auto m = (*store)->GetMessage(msg_id); m && *m) {
        boost::system::error_code ec;
        auto body = json::parse((*m)->body_json, ec);
        if (!ec && body.is_object()) {
          if (auto* n = body.get_object().if_contains("name"); n && n->is_string()) {
            // Only the last path component: a sender does not choose where it lands.
            auto name = std::filesystem::path(std::string(n->get_string())).filename().string();
            if (!name.empty() && name != "." && name != "..") output = name;
          }
        }
      }
    }
  }
  std::ofstream file(output, std::ios::binary | std::ios::trunc);
  file.write(data->data(), static_cast<std::streamsize>(data->size()));
  file.close();
  if (!file) return out.Fail("storage", "cannot write " + output);
  out.Emit(
      {{"msg_id", msg_id}, {"path", output}, {"size", static_cast<std::int64_t>(data->size())}},
      "Saved " + output + " (" + std::to_string(data->size()) + " bytes).");
  return kExitOk;
}

int SafetyNumberCmd(const Globals& g, const std::string& user) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  auto number = Await(client.SafetyNumber(user), g);
  if (!number) return out.Fail(number.error());
  // Shown as 12 groups of 5 digits, as Signal does; compare them aloud or
  // side by side.
  std::string grouped;
  for (std::size_t i = 0; i < number->displayable.size(); i += 5) {
    if (i != 0) grouped += (i % 30 == 0) ? "\n" : " ";
    grouped += number->displayable.substr(i, 5);
  }
  out.Emit({{"user", user},
            {"safety_number", number->displayable},
            {"scannable", detail_hex(number->scannable)}},
           "Safety number with " + user + ":\n" + grouped +
               "\nCompare it with theirs (parley safety-number " + client.account()->user_id +
               "): equal numbers mean no one is in the middle.");
  return kExitOk;
}

int SendMessage(const Globals& g, const sdk::Conv& to, const std::string& text) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  auto conv = ResolveConv(client, g, to);
  if (!conv) return out.Fail(conv.error());
  // Send() waits for the connection itself; a timeout leaves the message
  // queued in the profile for the next run.
  auto sent = Await(client.SendText(*conv, text), g);
  if (!sent) return out.Fail(sent.error());
  out.Emit({{"msg_id", sent->msg_id},
            {"client_msg_id", sent->client_msg_id},
            {"seq", std::to_string(sent->seq)},
            {"ts_ms", sent->ts_ms},
            {"duplicate", sent->duplicate}},
           "\u2713 sent (" + sent->msg_id + ")");
  return kExitOk;
}

int ShowHistory(const Globals& g, const sdk::Conv& target, int limit, const std::string& before,
                bool local) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  std::map<std::string, std::string> names;  // user id -> name or phone number
  if (!local || target.id.starts_with("+")) client.Start();
  auto resolved = ResolveConv(client, g, target, &names);
  if (!resolved) return out.Fail(resolved.error());
  const sdk::Conv conv = *resolved;
  std::vector<sdk::Message> messages;
  bool more = false;
  if (local) {
    auto r = Await(client.LocalMessages(conv, limit, before), g);
    if (!r) return out.Fail(r.error());
    messages = std::move(*r);
  } else {
    client.Start();
    auto r = Await(client.History(conv, before, limit), g);
    if (!r) return out.Fail(r.error());
    messages = std::move(r->messages);
    more = r->more;
  }
  const std::string self = client.account()->user_id;
  if (!local) {
    std::vector<std::string> users;
    for (const auto& m : messages) {
      if (m.from.user != self) users.push_back(m.from.user);
    }
    LoadProfileNames(client, g, std::move(users), names);
  }
  if (messages.empty()) out.Line("(no messages)");
  if (more) out.Line("(older messages: --before " + messages.back().msg_id + ")");
  // Oldest first, as a chat reads.
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    auto line = MessageJson(*it);
    if (auto name = names.find(it->from.user); name != names.end())
      line["from_name"] = name->second;
    out.Emit(line, MessageLine(*it, self, &names));
  }
  return kExitOk;
}

int ReadCmd(const Globals& g, const sdk::Conv& target) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  auto conv = ResolveConv(client, g, target);
  if (!conv) return out.Fail(conv.error());
  auto page = Await(client.History(*conv, {}, 50), g);
  if (!page) return out.Fail(page.error());
  const std::string self = client.account()->user_id;
  // Newest first: the newest message someone else sent.
  for (const auto& m : page->messages) {
    if (m.outgoing || m.from.user == self) continue;
    auto read = Await(client.MarkRead(*conv, m.msg_id), g);
    if (!read) return out.Fail(read.error());
    out.Emit({{"conv", ConvJson(*conv)}, {"up_to_msg_id", m.msg_id}},
             "\u2713 read up to " + m.msg_id);
    return kExitOk;
  }
  out.Emit({{"conv", ConvJson(*conv)}, {"up_to_msg_id", nullptr}}, "(nothing to mark read)");
  return kExitOk;
}

int Listen(const Globals& g, int count, int seconds) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  const std::string self = client.account()->user_id;
  client.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int messages = 0;
  while (!Interrupted() && (seconds <= 0 || std::chrono::steady_clock::now() < deadline)) {
    auto e = client.WaitEvent(200ms);
    if (!e) continue;
    std::string human;
    if (const auto* m = std::get_if<sdk::MessageEvent>(&*e)) {
      human = MessageLine(m->message, self);
      ++messages;
    } else if (const auto* c = std::get_if<sdk::ConnectionEvent>(&*e)) {
      human = std::string("[") + sdk::StateName(c->state) + "]" +
              (c->reason.empty() ? "" : " " + c->reason) +
              (c->error ? " " + c->error->ToString() : "");
    } else if (const auto* r = std::get_if<sdk::ReceiptEvent>(&*e)) {
      human = "[receipt] " + std::string(sdk::StatusName(r->status)) + " by " + r->by + " (" +
              std::to_string(r->msg_ids.size()) + " message(s))";
    } else if (const auto* t = std::get_if<sdk::TypingEvent>(&*e)) {
      human = "[typing] " + t->from.user + (t->composing ? " is typing" : " stopped typing");
    } else if (const auto* ge = std::get_if<sdk::GroupEvent>(&*e)) {
      human = "[group " + ge->group_id + "] " + ge->change + " by " + ge->by;
    }
    out.Emit(EventJson(*e), human);
    if (const auto* c = std::get_if<sdk::ConnectionEvent>(&*e);
        c != nullptr && c->state == sdk::ConnectionEvent::State::kStopped) {
      return c->error ? out.Fail(*c->error) : kExitOk;
    }
    if (count > 0 && messages >= count) break;
  }
  return kExitOk;
}

int Group(const Globals& g, const std::string& action, const std::vector<std::string>& args) {
  Out out(g.json);
  auto need = [&](std::size_t n, const char* usage) -> bool {
    if (args.size() >= n) return true;
    out.Fail("invalid", std::string("usage: parley group ") + usage);
    return false;
  };
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  auto done = [&](sdk::Result<void> r, const std::string& what) {
    if (!r) return out.Fail(r.error());
    out.Emit({{"ok", true}, {"action", action}, {"group_id", args[0]}}, what);
    return kExitOk;
  };
  const std::vector<std::string> rest(args.size() > 1 ? args.begin() + 1 : args.end(), args.end());
  if (action == "create") {
    if (!need(1, "create NAME [USER_ID...]")) return kExitError;
    auto r = Await(client.CreateGroup(args[0], rest), g);
    if (!r) return out.Fail(r.error());
    out.Emit({{"group_id", *r}, {"name", args[0]}, {"members", JsonStrings(rest)}},
             "Group " + *r + " created.");
    return kExitOk;
  }
  if (action == "info") {
    if (!need(1, "info GROUP_ID")) return kExitError;
    auto r = Await(client.GetGroup(args[0]), g);
    if (!r) return out.Fail(r.error());
    json::array members;
    std::string human =
        r->name + " (" + r->group_id + "), " + std::to_string(r->members.size()) + " member(s):";
    for (const auto& m : r->members) {
      members.push_back(json::object{{"user", m.user}, {"role", m.role}});
      human += "\n  " + m.user + (m.role == "admin" ? "  admin" : "");
    }
    out.Emit({{"group_id", r->group_id},
              {"name", r->name},
              {"members", std::move(members)},
              {"created_ms", r->created_ms}},
             human);
    return kExitOk;
  }
  if (action == "add") {
    if (!need(2, "add GROUP_ID USER_ID...")) return kExitError;
    return done(Await(client.AddMembers(args[0], rest), g), "Added.");
  }
  if (action == "remove") {
    if (!need(2, "remove GROUP_ID USER_ID...")) return kExitError;
    return done(Await(client.RemoveMembers(args[0], rest), g), "Removed.");
  }
  if (action == "promote" || action == "demote") {
    if (!need(2, "promote|demote GROUP_ID USER_ID")) return kExitError;
    auto f =
        action == "promote" ? client.Promote(args[0], args[1]) : client.Demote(args[0], args[1]);
    return done(Await(std::move(f), g), action == "promote" ? "Promoted." : "Demoted.");
  }
  if (action == "rename") {
    if (!need(2, "rename GROUP_ID NAME")) return kExitError;
    return done(Await(client.UpdateGroup(args[0], args[1]), g), "Renamed.");
  }
  if (action == "leave") {
    if (!need(1, "leave GROUP_ID")) return kExitError;
    return done(Await(client.LeaveGroup(args[0]), g), "Left the group.");
  }
  return out.Fail("invalid", "unknown group action: " + action);
}

int Devices(const Globals& g, const std::string& action, const std::string& device_id) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  if (action == "list") {
    auto r = Await(client.ListDevices(), g);
    if (!r) return out.Fail(r.error());
    for (const auto& d : *r) {
      out.Emit(
          {{"device_id", d.device_id},
           {"name", d.name},
           {"platform", d.platform},
           {"last_active_ms", d.last_active_ms},
           {"current", d.current}},
          d.device_id + "  " + d.name + " (" + d.platform + ")" +
              (d.current ? "  <- this device" : "  last active " + FormatTime(d.last_active_ms)));
    }
    return kExitOk;
  }
  if (action == "remove") {
    auto r = Await(client.RemoveDevice(device_id), g);
    if (!r) return out.Fail(r.error());
    out.Emit({{"removed", device_id}}, "Device " + device_id + " removed.");
    return kExitOk;
  }
  return out.Fail("invalid", "unknown devices action: " + action);
}

int ProfileCmd(const Globals& g, const std::string& action, const std::vector<std::string>& users,
               const sdk::ProfileUpdate& update) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  auto& client = *opened.client;
  client.Start();
  if (action == "set") {
    auto r = Await(client.SetProfile(update), g);
    if (!r) return out.Fail(r.error());
    out.Emit({{"ok", true}}, "Profile updated.");
    return kExitOk;
  }
  std::vector<std::string> who = users;
  if (who.empty()) who.push_back(client.account()->user_id);
  auto r = Await(client.GetProfiles(who), g);
  if (!r) return out.Fail(r.error());
  for (const auto& p : *r) {
    json::object o{{"user", p.user}, {"name", p.name}, {"status_text", p.status_text}};
    if (p.last_seen_ms) o["last_seen_ms"] = *p.last_seen_ms;
    out.Emit(o, p.user + "  " + (p.name.empty() ? "(no name)" : p.name) +
                    (p.status_text.empty() ? "" : "  \"" + p.status_text + "\""));
  }
  return kExitOk;
}

}  // namespace parley::cli
