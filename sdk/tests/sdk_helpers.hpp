// Shared steps of the SDK tests: a real parleyd (tests/support), profiles in
// temporary directories, logins with codes read from the server's SMS file,
// and waiting for events.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "parley/client.hpp"
#include "support/client.hpp"

namespace parley::sdk::testing {

using namespace std::chrono_literals;
using test::Parleyd;

inline std::string NextPhone() {
  static std::atomic<int> n{0};
  return "+1666" + std::to_string(1000000 + n.fetch_add(1));
}

inline std::string UrlOf(const Parleyd& server) {
  return std::string(server.endpoint().tls ? "https://" : "http://") + server.endpoint().host +
         ":" + std::to_string(server.endpoint().port);
}

// A fresh temporary directory, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "parley-sdk-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) != nullptr ? templ : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Options for a profile in `dir` against `server`, with short timeouts so
// that failures show quickly; no encryption (see EncryptedOptions).
inline ClientOptions OptionsFor(const Parleyd& server, const std::string& dir,
                                const std::string& device_name = "sdk test") {
  ClientOptions o;
  o.data_dir = dir;
  o.server_url = UrlOf(server);
  o.device_name = device_name;
  o.request_timeout = 10s;
  o.backoff_initial = 200ms;
  o.backoff_max = 2s;
  o.tls_verify = false;
  // The transport tests run in the clear; e2ee tests pass their backend
  // (or null: the default, libsignal, since the tests link it).
  o.crypto = std::make_unique<PlaintextCrypto>();
  return o;
}

// Signs in through the SDK (a new account, or a new device of the phone's).
inline std::unique_ptr<Client> LoginWith(Parleyd& server, ClientOptions options,
                                         const std::string& phone) {
  auto client = Client::Open(std::move(options));
  EXPECT_TRUE(client.has_value()) << client.error().ToString();
  if (!client) return nullptr;
  const std::size_t seen = server.CodeCount(phone);
  auto requested = (*client)->RequestCode(phone).get();
  EXPECT_TRUE(requested.has_value()) << requested.error().ToString();
  if (!requested) return nullptr;
  auto code = server.WaitCode(phone, seen);
  EXPECT_TRUE(code.has_value()) << "no code for " << phone;
  if (!code) return nullptr;
  auto account = (*client)->Verify(phone, *code).get();
  EXPECT_TRUE(account.has_value()) << account.error().ToString();
  if (!account) return nullptr;
  return std::move(*client);
}

// The first event for which `pred` holds (others are skipped), or nullopt.
template <class E>
std::optional<E> WaitFor(Client& client, std::function<bool(const E&)> pred = nullptr,
                         std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = client.WaitEvent(left);
    if (!e) return std::nullopt;
    if (const auto* hit = std::get_if<E>(&*e); hit != nullptr && (!pred || pred(*hit))) {
      return *hit;
    }
  }
}

// Every event that arrives within `window`.
inline std::vector<Event> Drain(Client& client, std::chrono::milliseconds window) {
  std::vector<Event> out;
  const auto deadline = std::chrono::steady_clock::now() + window;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    if (auto e = client.WaitEvent(left)) out.push_back(std::move(*e));
  }
}

template <class E>
std::vector<E> OfType(const std::vector<Event>& events) {
  std::vector<E> out;
  for (const auto& e : events) {
    if (const auto* hit = std::get_if<E>(&e)) out.push_back(*hit);
  }
  return out;
}

// Starts the client and waits until it has caught up with its mailbox.
inline bool StartSynced(Client& client, std::chrono::milliseconds timeout = 10s) {
  client.Start();
  return client.WaitForState(ConnectionEvent::State::kSynced, timeout);
}

// A server shared by a test suite, with no limits on codes or sends.
class ServerSuite : public ::testing::Test {
 protected:
  static void StartServer(std::vector<std::string> extra = {}, bool tls = false) {
    std::vector<std::string> args = {
        "--otp-per-address-per-hour", "0", "--otp-per-phone",         "0",
        "--device-send-rate",         "0", "--device-write-rate",     "0",
        "--device-fanout-rate",       "0", "--user-writes-in-flight", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = new Parleyd(Parleyd::Options{.args = args, .tls = tls});
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
  static void StopServer() {
    delete server_;
    server_ = nullptr;
  }
  std::unique_ptr<Client> Login(const std::string& phone, const std::string& device_name,
                                std::function<void(ClientOptions&)> tweak = nullptr) {
    auto options = OptionsFor(*server_, dirs_.Sub(device_name + "-" + phone), device_name);
    if (tweak) tweak(options);
    return LoginWith(*server_, std::move(options), phone);
  }
  std::string Dir(const std::string& device_name, const std::string& phone) const {
    return dirs_.Sub(device_name + "-" + phone);
  }

  static inline Parleyd* server_ = nullptr;
  TempDir dirs_;
};

}  // namespace parley::sdk::testing
