// parley: the command-line client (docs/cli.md). Arguments with CLI11; the
// work is in commands.cpp and chat.cpp, on top of the SDK.
#include <CLI/CLI.hpp>

#include "app.hpp"

namespace {

using parley::cli::Globals;
namespace sdk = parley::sdk;

// --to USER_ID or --group GROUP_ID, exactly one.
struct Target {
  std::string user;
  std::string group;
  void Add(CLI::App* cmd, const char* user_flag = "--to") {
    auto* u =
        cmd->add_option(user_flag, user, "the peer's user id, or phone number (+15551234567)");
    auto* g = cmd->add_option("--group", group, "a group id");
    u->excludes(g);
    g->excludes(u);
  }
  std::optional<sdk::Conv> Conv() const {
    if (!user.empty()) return sdk::Conv::User(user);
    if (!group.empty()) return sdk::Conv::Group(group);
    return std::nullopt;
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace parley::cli;
  CLI::App app{"parley: the Parley messaging client"};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--profile", g.profile,
                 "profile name: its state lives in $XDG_DATA_HOME/parley/NAME")
      ->envname("PARLEY_PROFILE");
  app.add_flag("--json", g.json, "machine output: one JSON object per line");
  app.add_option("--server", g.server, "server URL (http[s]://host:port); stored at login")
      ->envname("PARLEY_SERVER");
  app.add_flag("--insecure", g.insecure, "do not verify the server's TLS certificate");
  app.add_option("--timeout", g.timeout_s, "seconds one operation may take")
      ->check(CLI::PositiveNumber);

  LoginArgs login;
  auto* login_cmd = app.add_subcommand("login", "sign up or log in this profile as a new device");
  login_cmd->add_option("--phone", login.phone, "E.164 phone number, e.g. +15551234567")
      ->required();
  login_cmd->add_option("--code", login.code, "the code from the SMS (asked for when absent)");
  login_cmd->add_flag("--request-code", login.request_only,
                      "only have a code sent; log in later with --code");
  login_cmd->add_option("--device-name", login.device_name, "how this device is listed");

  auto* logout_cmd =
      app.add_subcommand("logout", "remove this device from the account and delete the profile");
  auto* whoami_cmd = app.add_subcommand("whoami", "show the profile's account and device");

  Target send_to;
  std::vector<std::string> text_words;
  auto* send_cmd = app.add_subcommand("send", "send a text message");
  send_to.Add(send_cmd);
  send_cmd->add_option("text", text_words, "the message")->required();

  Target chat_with;
  auto* chat_cmd = app.add_subcommand("chat", "chat interactively");
  chat_with.Add(chat_cmd);

  Target history_with;
  int limit = 50;
  std::string before;
  bool local = false;
  auto* history_cmd = app.add_subcommand("history", "show a conversation's messages");
  history_with.Add(history_cmd, "--with");
  history_cmd->add_option("--limit", limit, "how many (at most 100)")->check(CLI::Range(1, 100));
  history_cmd->add_option("--before", before, "only messages older than this msg_id");
  history_cmd->add_flag("--local", local, "from this profile's store only (no network)");

  Target read_in;
  auto* read_cmd = app.add_subcommand("read", "mark a conversation read (sends read receipts)");
  read_in.Add(read_cmd);

  int listen_count = 0;
  int listen_seconds = 0;
  auto* listen_cmd =
      app.add_subcommand("listen", "print events (messages, receipts, ...) as they come");
  listen_cmd->add_option("--count", listen_count, "stop after this many messages");
  listen_cmd->add_option("--for", listen_seconds, "stop after this many seconds");

  std::string group_action;
  std::vector<std::string> group_args;
  auto* group_cmd = app.add_subcommand("group",
                                       "groups: create, info, add, remove, promote, "
                                       "demote, rename, leave");
  group_cmd->add_option("action", group_action, "what to do")
      ->required()
      ->check(CLI::IsMember(
          {"create", "info", "add", "remove", "promote", "demote", "rename", "leave"}));
  group_cmd->add_option("args", group_args, "NAME [USER_ID...] | GROUP_ID [USER_ID...|NAME]");

  Target file_to;
  std::string file_path;
  auto* send_file_cmd = app.add_subcommand("send-file", "send a file (encrypted end to end)");
  file_to.Add(send_file_cmd);
  send_file_cmd->add_option("path", file_path, "the file")->required();
  std::string file_msg_id;
  std::string file_output;
  auto* get_file_cmd =
      app.add_subcommand("get-file", "download, check and decrypt a message's file");
  get_file_cmd->add_option("msg_id", file_msg_id, "the file message's msg_id")->required();
  get_file_cmd->add_option("--output,-o", file_output, "where to save it (default: its name)");

  std::string safety_user;
  auto* safety_cmd = app.add_subcommand(
      "safety-number", "the safety number with a user, to compare out of band (E2EE)");
  safety_cmd->add_option("user", safety_user, "the other user's id")->required();

  std::string devices_action;
  std::string device_id;
  auto* devices_cmd = app.add_subcommand("devices", "list or remove this account's devices");
  devices_cmd->add_option("action", devices_action, "list | remove")
      ->required()
      ->check(CLI::IsMember({"list", "remove"}));
  devices_cmd->add_option("device_id", device_id, "the device to remove");

  std::string profile_action;
  std::vector<std::string> profile_users;
  sdk::ProfileUpdate update;
  auto* profile_cmd = app.add_subcommand("profile", "show or change profiles");
  profile_cmd->add_option("action", profile_action, "get | set")
      ->required()
      ->check(CLI::IsMember({"get", "set"}));
  profile_cmd->add_option("users", profile_users, "get: whose (default: yours)");
  profile_cmd->add_option("--name", update.name, "set: your display name");
  profile_cmd->add_option("--status", update.status_text, "set: your status text");
  profile_cmd->add_option("--last-seen", update.last_seen_visibility,
                          "set: who sees your last seen: everyone, contacts, nobody");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a "parse error" that exits 0; the rest are usage errors (2).
    return app.exit(e) == 0 ? 0 : 2;
  }
  InstallSignalHandlers();
  Out out(g.json);

  auto need_target = [&](const Target& t) -> std::optional<sdk::Conv> {
    auto conv = t.Conv();
    if (!conv) out.Fail("invalid", "say who with --to USER_ID (or --with) or --group GROUP_ID");
    return conv;
  };

  if (login_cmd->parsed()) return Login(g, login);
  if (logout_cmd->parsed()) return Logout(g);
  if (whoami_cmd->parsed()) return Whoami(g);
  if (send_cmd->parsed()) {
    auto conv = need_target(send_to);
    if (!conv) return kExitError;
    std::string text;
    for (const auto& w : text_words) text += (text.empty() ? "" : " ") + w;
    return SendMessage(g, *conv, text);
  }
  if (chat_cmd->parsed()) {
    auto conv = need_target(chat_with);
    return conv ? Chat(g, *conv) : kExitError;
  }
  if (history_cmd->parsed()) {
    auto conv = need_target(history_with);
    return conv ? ShowHistory(g, *conv, limit, before, local) : kExitError;
  }
  if (read_cmd->parsed()) {
    auto conv = need_target(read_in);
    return conv ? ReadCmd(g, *conv) : kExitError;
  }
  if (send_file_cmd->parsed()) {
    auto conv = need_target(file_to);
    return conv ? SendFileCmd(g, *conv, file_path) : kExitError;
  }
  if (get_file_cmd->parsed()) return GetFileCmd(g, file_msg_id, file_output);
  if (safety_cmd->parsed()) return SafetyNumberCmd(g, safety_user);
  if (listen_cmd->parsed()) return Listen(g, listen_count, listen_seconds);
  if (group_cmd->parsed()) return Group(g, group_action, group_args);
  if (devices_cmd->parsed()) {
    if (devices_action == "remove" && device_id.empty()) {
      return out.Fail("invalid", "usage: parley devices remove DEVICE_ID");
    }
    return Devices(g, devices_action, device_id);
  }
  if (profile_cmd->parsed()) return ProfileCmd(g, profile_action, profile_users, update);
  return kExitError;
}
