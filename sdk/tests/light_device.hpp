// Test devices that cost little: an account device signed up over HTTP,
// with the libsignal backend on an in-memory key-value store and no
// Client (no thread, no SQLite, no open socket). It publishes its keys and
// reads a group's history over short-lived WebSocket connections, and
// decrypts what it reads with the same backend the SDK uses. The big-group
// tests use a few hundred of them beside a handful of real Clients.
//
// Also here: a TCP proxy that cuts a client's connection when it starts
// its n-th sender_key send (to interrupt a sender key distribution).
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "parley/crypto.hpp"
#include "support/client.hpp"

namespace parley::sdk::testing {

namespace json = boost::json;

// KeyValueStore in a map.
class MemoryKv final : public KeyValueStore {
 public:
  Result<std::optional<std::string>> Get(std::string_view ns, std::string_view key) override;
  Status Put(std::string_view ns, std::string_view key, std::string_view value) override;
  Status Delete(std::string_view ns, std::string_view key) override;
  Result<std::vector<std::string>> Keys(std::string_view ns, std::string_view prefix) override;

 private:
  static std::string K(std::string_view ns, std::string_view key);
  std::map<std::string, std::string> map_;
};

struct LightDevice {
  std::string phone;
  std::string user;
  std::string device;
  std::string token;
  MemoryKv kv;  // before crypto: outlives it
  std::unique_ptr<Crypto> crypto;

  // What Read found, oldest first.
  std::set<std::string> seen;                  // msg_ids handled
  std::vector<std::string> texts;              // decrypted group message texts
  std::map<std::string, std::string> data;     // msg_id -> group ciphertext (bytes)
  std::map<std::string, std::string> text_of;  // msg_id -> text
  std::map<std::string, int> key_copies;       // "user.device" -> sender_key ciphertexts for me
  std::vector<std::string> errors;

  DeviceAddress Address() const { return {user, device}; }
};

// Signs up (or adds a device to) `phone` over HTTP and publishes 2
// one-time prekeys. Failures are gtest failures; nullptr then.
std::unique_ptr<LightDevice> MakeLightDevice(test::Parleyd& server, const std::string& phone,
                                             const std::string& name);

// A WebSocket to the server that said hello as this device.
std::unique_ptr<test::WsClient> ConnectAs(test::Parleyd& server, const LightDevice& d);

// Reads the group's newest 100 messages and handles those not seen yet,
// oldest first: sender keys for this device are processed, group messages
// decrypted. Returns the error code of the history request ("" when ok).
std::string ReadGroup(test::Parleyd& server, LightDevice& d, const std::string& group_id);

// One device's bundle from a keys.bundle answer (device ids as strings or
// numbers).
std::vector<PreKeyBundle> BundlesFrom(const std::string& user, const json::object& answer);

class CuttingProxy {
 public:
  explicit CuttingProxy(test::Endpoint upstream);
  ~CuttingProxy();
  CuttingProxy(const CuttingProxy&) = delete;
  CuttingProxy& operator=(const CuttingProxy&) = delete;

  std::uint16_t port() const { return port_; }
  // From now on, cut the connection (both ways, without forwarding it) when
  // the client starts its n-th sender_key send, and refuse connections after.
  void ArmCut(int nth);
  bool WaitCut(std::chrono::milliseconds timeout);
  int sender_key_sends() const;

 private:
  void AcceptLoop();
  void Pump(int from, int to, bool inspect);
  void Cut();

  test::Endpoint upstream_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
  int arm_at_ = 0;  // 0: not armed
  int seen_ = 0;    // sender_key sends seen since armed
  int total_ = 0;   // sender_key sends forwarded in all
  bool cut_ = false;
  std::thread acceptor_;
};

}  // namespace parley::sdk::testing
