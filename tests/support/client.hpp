// Test support: a real HTTP and WebSocket client (Beast, over real sockets)
// and a runner for a real parleyd process. Everything here blocks with a
// timeout and reports failures as values or gtest failures, never hangs.
#pragma once

#include <sys/types.h>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parley::test {

using namespace std::chrono_literals;
namespace json = boost::json;

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  bool tls = false;  // with tls, certificates are not verified (tests use self-signed ones)
};

struct HttpResult {
  int status = 0;  // 0 when the request failed (see error)
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string error;                           // transport error, if any

  // body parsed as JSON (an empty object when it is not JSON).
  json::value Json() const;
  // body["error"]["code"], or "" when absent.
  std::string ErrorCode() const;
};

// One request on a fresh connection. `headers` are added as given;
// Content-Type defaults to application/json when a body is given.
HttpResult Http(const Endpoint& ep, const std::string& method, const std::string& target,
                const std::string& body = "",
                const std::map<std::string, std::string>& headers = {},
                std::chrono::milliseconds timeout = 10s);

// A WebSocket client. Frames that arrive while the test waits for something
// else are kept, in order, for later Receive calls.
class WsClient {
 public:
  // Connects and upgrades on `target`. Returns nullptr (and sets *error)
  // when the TCP connection or the upgrade fails; *status gets the HTTP
  // status of a refused upgrade.
  static std::unique_ptr<WsClient> Connect(const Endpoint& ep, const std::string& target = "/v1/ws",
                                           const std::map<std::string, std::string>& headers = {},
                                           std::string* error = nullptr, int* status = nullptr);
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Sends one text frame (a binary frame when binary is true). False on error.
  bool SendText(const std::string& text, bool binary = false);
  bool SendJson(const json::object& frame);

  // The next frame, or nullopt after the timeout or once the socket is closed.
  std::optional<std::string> Receive(std::chrono::milliseconds timeout = 5s);
  // The next frame parsed as a JSON object (nullopt as above or if not an object).
  std::optional<json::object> ReceiveJson(std::chrono::milliseconds timeout = 5s);
  // The next frame whose "op" equals `op`; frames of other ops are kept for later.
  std::optional<json::object> ReceiveOp(const std::string& op,
                                        std::chrono::milliseconds timeout = 5s);
  // Sends `frame` with a fresh "rid" (unless it has one) and returns the
  // ok/error answer with that rid; other frames are kept for later.
  std::optional<json::object> Request(json::object frame, std::chrono::milliseconds timeout = 5s);

  // Waits until the server closes the socket; returns the close code (1006
  // when the socket dropped without a close frame), or nullopt on timeout.
  // Frames received meanwhile are kept (a "bye" among them).
  std::optional<std::uint16_t> WaitClosed(std::chrono::milliseconds timeout = 5s);
  bool closed() const;
  // Closes from the client side (normal closure) without waiting long.
  void Close();
  // Drops the TCP connection abruptly.
  void Abort();

 private:
  WsClient();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class RedisServer;

// A parleyd child process on a free port with its own data directory and the
// file SMS provider, so tests can read one-time codes. With PARLEY_TEST_BUS=redis
// in the environment (ctest's `bus` label) each one also gets a redis-server of
// its own and runs with --bus redis://... (unless the test passes --bus).
class Parleyd {
 public:
  struct Options {
    std::vector<std::string> args;           // extra flags
    std::map<std::string, std::string> env;  // extra environment
    std::string data_dir;                    // empty: a fresh temporary directory
    bool tls = false;                        // generate a self-signed cert and use it
  };
  Parleyd();
  explicit Parleyd(Options options);
  // Terminates it (SIGTERM, then SIGKILL after 15 s) and removes the temporary directory.
  ~Parleyd();
  Parleyd(const Parleyd&) = delete;
  Parleyd& operator=(const Parleyd&) = delete;

  // Starts it and waits (up to 20 s) for "parleyd listening on ...". False on failure.
  // The child gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG).
  bool Start();
  const Endpoint& endpoint() const { return endpoint_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& sms_file() const { return sms_file_; }
  const std::string& log_file() const { return log_file_; }
  pid_t pid() const { return pid_; }

  // SIGTERM and wait; returns the exit status (or -1 after 15 s, then SIGKILL).
  int Terminate();
  // SIGKILL and reap.
  void Kill();
  // Start again on the same data directory (a new port).
  bool Restart();

  // The newest code the SMS file holds for the phone, waiting up to 5 s for one
  // newer than the count of codes seen before (pass the count from CodeCount).
  std::optional<std::string> WaitCode(const std::string& phone, std::size_t seen_before = 0);
  std::size_t CodeCount(const std::string& phone) const;
  // Everything parleyd wrote to stderr so far.
  std::string Log() const;

 private:
  Options options_;
  Endpoint endpoint_;
  std::string data_dir_;
  std::string sms_file_;
  std::string log_file_;
  bool own_dir_ = false;
  pid_t pid_ = -1;
  std::unique_ptr<RedisServer> redis_;  // PARLEY_TEST_BUS=redis only
};

// The path of the parleyd binary under test (PARLEYD_PATH, or $PARLEYD).
std::string ParleydPath();

// Runs `parleyd admin <args...>` to completion; returns its standard output.
std::string RunAdmin(const std::vector<std::string>& args, int* exit_code = nullptr);

}  // namespace parley::test
