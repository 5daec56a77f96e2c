// What the session and HTTP harnesses run against: a real parleyd core
// (RocksDB store in a temporary directory, tokens, media API with a local
// blob store), two signed-in users and a group, built once per process.
// No network: frames and requests are handed to core directly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/app.hpp"
#include "core/core.hpp"
#include "net/service.hpp"

namespace parley::fuzz {

struct User {
  store::UserId user = 0;
  store::DeviceId device = 0;
  std::string token;  // a valid access token of that device
};

class World {
 public:
  static World& Get();

  core::Core& core() { return *core_; }
  core::App& app() { return *app_; }
  const User& alice() const { return alice_; }
  const User& bob() const { return bob_; }
  std::uint64_t group() const { return group_; }

  // Replaces the placeholders @A, @B (the users' ids), @D (alice's device),
  // @G (the group) and @T (alice's token) so that seeds can name real things.
  std::string Expand(std::string_view text) const;

  // Waits until every store write submitted so far has answered (the writer
  // runs them in order: a no-op write behind them answers last).
  void Settle();

 private:
  World();
  struct Parts;
  std::unique_ptr<Parts> parts_;
  core::Core* core_ = nullptr;
  core::App* app_ = nullptr;
  User alice_;
  User bob_;
  std::uint64_t group_ = 0;
};

// A WebSocket for a session in the harness: frames sent are checked (each
// a JSON object with an "op", at most 256 KiB) and dropped; work posted to
// the strand runs when the harness calls RunPosted, on its own thread.
class FakeConnection final : public net::WsConnection {
 public:
  bool Send(std::string frame) override;
  void Close(std::uint16_t code, std::string reason) override;
  void MarkAuthenticated() override {}
  void Post(std::function<void()> fn) override;
  const std::string& RemoteAddress() const override { return address_; }
  std::uint64_t Id() const override { return 1; }

  // Runs what was posted (and what that posts) until nothing is left.
  void RunPosted();
  bool closed() const;
  // The group_id of the last ok that carried one (World's set-up).
  std::uint64_t group_id() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  bool closed_ = false;
  std::uint64_t group_id_ = 0;
  std::string address_ = "192.0.2.1";
};

}  // namespace parley::fuzz
