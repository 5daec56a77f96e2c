// The parley command-line client: what the commands share (docs/cli.md).
#pragma once

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parley/client.hpp"

namespace parley::cli {

namespace json = boost::json;
namespace sdk = parley::sdk;
using namespace std::chrono_literals;

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the operation failed (the message says why)
inline constexpr int kExitNotLoggedIn = 3;

struct Globals {
  std::string profile = "default";
  bool json = false;
  std::string server;     // --server: overrides the profile's stored URL
  bool insecure = false;  // --insecure: do not verify TLS certificates
  int timeout_s = 15;     // --timeout: how long one operation may take
};

// $XDG_DATA_HOME/parley/<profile> (default ~/.local/share/parley/<profile>).
std::string ProfileDir(const std::string& profile);

// Output: human text by default, one JSON object per line with --json.
class Out {
 public:
  explicit Out(bool json) : json_(json) {}
  bool json() const { return json_; }
  // One JSON object (json mode) or one line of text (human mode).
  void Emit(const json::object& object, const std::string& human) const;
  void Line(const std::string& human) const;  // human mode only
  // An error: {"error":{"code","message"}} on stdout in json mode, text on stderr otherwise.
  int Fail(const sdk::Error& error) const;
  int Fail(const std::string& code, const std::string& message) const;

 private:
  bool json_;
};

// A client for the profile. `need_login`: fail (exit kExitNotLoggedIn) when
// the profile has no account.
struct Opened {
  std::unique_ptr<sdk::Client> client;
  int exit_code = kExitOk;  // non-zero: opening failed (already reported)
};
Opened OpenClient(const Globals& g, const Out& out, bool need_login,
                  const std::string& device_name = {});

// Starts the client and waits until it is online; reports and returns an
// exit code when it is not.
int GoOnline(sdk::Client& client, const Globals& g, const Out& out);

// Waits for a Future with the global timeout.
template <class T>
sdk::Result<T> Await(sdk::Future<T> future, const Globals& g) {
  if (future.wait_for(std::chrono::seconds(g.timeout_s) + 5s) != std::future_status::ready) {
    return sdk::Fail("timeout", "no answer in time");
  }
  return future.get();
}

json::object ConvJson(const sdk::Conv& conv);
json::object MessageJson(const sdk::Message& m);
json::object EventJson(const sdk::Event& event);
std::string FormatTime(std::int64_t ts_ms);  // local HH:MM (with the date when not today)
std::string Ticks(sdk::MessageStatus status);
// "[14:02] alice: text  ✓✓": `names` maps user ids to display names.
std::string MessageLine(const sdk::Message& m, const std::string& self_user,
                        const std::map<std::string, std::string>* names = nullptr);

// A conversation named by a phone number (--to +15551234567): the account
// with that number, found through contacts.discover (only the number's
// hash is sent; the client must be started). Others as they are. `names`,
// when given, gets the peer's display name: its profile name, else the
// number.
sdk::Result<sdk::Conv> ResolveConv(sdk::Client& client, const Globals& g, const sdk::Conv& conv,
                                   std::map<std::string, std::string>* names = nullptr);
// The profile names of `users` not in `names` yet (empty names are skipped).
void LoadProfileNames(sdk::Client& client, const Globals& g, std::vector<std::string> users,
                      std::map<std::string, std::string>& names);

// Commands (commands.cpp, chat.cpp). Each returns the process's exit code.
struct LoginArgs {
  std::string phone;
  std::string code;
  bool request_only = false;
  std::string device_name;
};
int Login(const Globals& g, const LoginArgs& a);
int Logout(const Globals& g);
int Whoami(const Globals& g);
int SafetyNumberCmd(const Globals& g, const std::string& user);
int SendFileCmd(const Globals& g, const sdk::Conv& to, const std::string& path);
int GetFileCmd(const Globals& g, const std::string& msg_id, std::string output);
int SendMessage(const Globals& g, const sdk::Conv& to, const std::string& text);
int ShowHistory(const Globals& g, const sdk::Conv& conv, int limit, const std::string& before,
                bool local);
int Listen(const Globals& g, int count, int seconds);
// Marks the conversation read up to its newest message from someone else.
int ReadCmd(const Globals& g, const sdk::Conv& conv);
int Group(const Globals& g, const std::string& action, const std::vector<std::string>& args);
int Devices(const Globals& g, const std::string& action, const std::string& device_id);
int ProfileCmd(const Globals& g, const std::string& action, const std::vector<std::string>& users,
               const sdk::ProfileUpdate& update);
int Chat(const Globals& g, sdk::Conv conv);

// Set by SIGINT/SIGTERM: long-running commands end cleanly.
bool Interrupted();
void InstallSignalHandlers();

}  // namespace parley::cli
