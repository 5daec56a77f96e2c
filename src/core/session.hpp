// One WebSocket session (PROTOCOL.md sections 2, 4 and 5): authentication by
// `hello`, the op dispatch, the error model and bad-frame accounting.
//
// Threading: net/ calls OnFrame and OnClose on the connection's strand, one at
// a time; everything the session mutates lives on that path. Answers that
// come back from store callbacks (the writer thread) only call the thread-safe
// Send/Close, and read the identity, which is fixed before the session is
// published in the registry.
#pragma once

#include <boost/json.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/core.hpp"
#include "net/service.hpp"

namespace parley::core {

namespace json = boost::json;

class Session final : public net::WsHandler, public std::enable_shared_from_this<Session> {
 public:
  using Rid = std::optional<std::string>;

  Session(Core& core, std::shared_ptr<net::WsConnection> connection, std::string header_token);

  void OnFrame(std::string_view text) override;
  void OnClose() override;

  // Thread-safe.
  void SendFrame(std::string_view op, json::object frame);
  void Ok(const Rid& rid, json::object result = {});
  void Error(const Rid& rid, std::string_view code, std::string_view message,
             json::object extra = {});
  void Close(std::uint16_t code, std::string reason);

  const Identity& identity() const { return identity_; }

 private:
  using Handler = void (Session::*)(const json::object&, const Rid&);
  static const std::unordered_map<std::string_view, Handler>& Handlers();

  void BadFrame(std::string_view why);
  void StoreError(const Rid& rid, const parley::Error& e, std::string_view op);

  // Ops (session.cpp).
  void Hello(const json::object& req, const Rid& rid);
  void Ping(const json::object& req, const Rid& rid);
  // Ops (account_ops.cpp).
  void DevicesList(const json::object& req, const Rid& rid);
  void DevicesRemove(const json::object& req, const Rid& rid);
  void ProfileGet(const json::object& req, const Rid& rid);
  void ProfileSet(const json::object& req, const Rid& rid);
  void ContactsDiscover(const json::object& req, const Rid& rid);

  Core& core_;
  std::shared_ptr<net::WsConnection> conn_;
  std::string header_token_;
  bool authenticated_ = false;
  bool closed_ = false;
  Identity identity_;
  std::deque<double> bad_frames_;  // when, for the five-in-a-minute rule
};

// Closes a session from any thread.
void CloseSession(Session& session, std::uint16_t code, std::string reason);

}  // namespace parley::core
