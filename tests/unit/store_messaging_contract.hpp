// Helpers of the messaging contract suites (store_messaging_contract_test.cpp,
// store_retention_contract_test.cpp): a cast of users, messages shaped like
// real ones, and blocking wrappers for the messaging writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/ids.hpp"
#include "unit/store_contract.hpp"

namespace parley::store::testing {

inline constexpr UserId kAlice = 1001;
inline constexpr UserId kBob = 1002;
inline constexpr UserId kCarol = 1003;
inline constexpr DeviceId kAlicePhone = 2001;
inline constexpr DeviceId kBobPhone = 2002;
inline constexpr DeviceId kBobLaptop = 2012;
inline constexpr DeviceId kCarolPhone = 2003;
inline constexpr std::uint64_t kGroupId = 9001;
// Far enough ahead that retention never sees these tokens as expired.
inline constexpr std::int64_t kYear2100 = 4'102'444'800'000;

inline Conversation UserConv(UserId id) { return {Conversation::Kind::kUser, id}; }
inline Conversation GroupConv(std::uint64_t id) { return {Conversation::Kind::kGroup, id}; }

// Ids shaped like the real (time-ordered) ones; unique across the binary.
inline MsgId NextMsgId() {
  static std::atomic<std::uint64_t> counter{0};
  return IdFloorForTime(kNow) + (counter.fetch_add(1) + 1);
}

inline Message Text(UserId from, Conversation to, const std::string& client_msg_id,
                    std::uint32_t recipients = 1, MsgId msg_id = 0, std::int64_t ts_ms = kNow) {
  return Message{.msg_id = msg_id != 0 ? msg_id : NextMsgId(),
                 .sender = from,
                 .sender_device = from + 1000,
                 .to = to,
                 .client_msg_id = client_msg_id,
                 .kind = "text",
                 .body = R"({"text":")" + client_msg_id + R"("})",
                 .ts_ms = ts_ms,
                 .recipients = recipients};
}

// ---- Blocking wrappers -------------------------------------------------------

inline Result<SendResult> Send(Store& s, Message m, std::vector<UserId> recipients) {
  return Wait<SendResult>(
      [&](auto cb) { s.AppendMessage(std::move(m), std::move(recipients), cb); });
}
inline Result<AckResult> Ack(Store& s, UserId user, DeviceId device, Seq up_to,
                             std::int64_t now_ms = kNow) {
  return Wait<AckResult>([&](auto cb) { s.Ack(user, device, up_to, now_ms, cb); });
}
inline Result<std::vector<Appended>> MarkRead(Store& s, UserId user, Conversation conv, MsgId up_to,
                                              std::int64_t now_ms = kNow) {
  return Wait<std::vector<Appended>>([&](auto cb) { s.MarkRead(user, conv, up_to, now_ms, cb); });
}
inline Result<std::vector<Appended>> AppendEvents(Store& s, std::vector<UserId> users,
                                                  EventType type, std::string payload,
                                                  std::int64_t ts_ms = kNow) {
  return Wait<std::vector<Appended>>(
      [&](auto cb) { s.AppendEvents(std::move(users), type, std::move(payload), ts_ms, cb); });
}
inline Result<std::size_t> Purge(Store& s, std::int64_t cutoff_ms, std::size_t max_rows) {
  return Wait<std::size_t>([&](auto cb) { s.Purge(cutoff_ms, max_rows, cb); });
}
inline Result<GroupChangeResult> ChangeGroup(Store& s, GroupChange change) {
  return Wait<GroupChangeResult>([&](auto cb) { s.ChangeGroup(std::move(change), cb); });
}

// A change as core would submit it; the payload names the kind and the actor
// so that a test can tell the event rows apart.
inline GroupChange Change(GroupChange::Kind kind, UserId actor, std::vector<UserId> users = {},
                          std::uint64_t group_id = kGroupId, std::int64_t now_ms = kNow) {
  return GroupChange{.kind = kind,
                     .group_id = group_id,
                     .actor = actor,
                     .users = std::move(users),
                     .now_ms = now_ms,
                     .payload = R"({"change":)" + std::to_string(static_cast<int>(kind)) +
                                R"(,"by":")" + std::to_string(actor) + R"("})"};
}

// `actor` creates kGroupId with `members`; the change must succeed.
inline GroupChangeResult CreateGroup(Store& s, UserId actor, std::vector<UserId> members,
                                     std::uint64_t group_id = kGroupId) {
  auto change = Change(GroupChange::Kind::kCreate, actor, std::move(members), group_id);
  change.name = "team";
  auto r = ChangeGroup(s, std::move(change));
  EXPECT_TRUE(r.has_value()) << r.error().message;
  if (!r) return {};
  EXPECT_EQ(r->outcome, GroupChangeResult::Outcome::kOk);
  return *r;
}

// A 1:1 text from `from` to `to`; the send must succeed.
inline SendResult SendText(Store& s, UserId from, UserId to, const std::string& client_msg_id) {
  auto r = Send(s, Text(from, UserConv(to), client_msg_id), {to});
  EXPECT_TRUE(r.has_value()) << r.error().message;
  return r ? *r : SendResult{};
}

inline std::vector<Seq> Seqs(const std::vector<MailboxEvent>& events) {
  std::vector<Seq> seqs;
  for (const auto& e : events) seqs.push_back(e.seq);
  return seqs;
}
inline std::vector<MsgId> Ids(const std::vector<std::shared_ptr<const Message>>& page) {
  std::vector<MsgId> ids;
  for (const auto& m : page) ids.push_back(m->msg_id);
  return ids;
}

using Rows = std::vector<std::pair<UserId, Seq>>;
inline Rows Where(const std::vector<Appended>& appended) {
  Rows rows;
  for (const auto& a : appended) rows.emplace_back(a.user, a.seq);
  return rows;
}

// Alice, Bob (a phone and a laptop) and Carol, each with an empty mailbox.
inline void SignUpCast(Store& s, std::int64_t token_expiry = kNow + 30 * kDay) {
  auto sign_up = [&](const std::string& phone, UserId user, DeviceId device,
                     const std::string& token) {
    ASSERT_TRUE(PutOtp(s, Code(phone)));
    auto req = Request(phone, user, device, token);
    req.refresh.expires_ms = token_expiry;
    auto r = SignIn(s, std::move(req));
    ASSERT_TRUE(r.has_value()) << r.error().message;
    ASSERT_EQ(r->outcome, SignInResult::Outcome::kOk);
  };
  sign_up("+15551000001", kAlice, kAlicePhone, "tok-alice");
  sign_up("+15551000002", kBob, kBobPhone, "tok-bob");
  sign_up("+15551000002", kBob, kBobLaptop, "tok-bob-laptop");
  sign_up("+15551000003", kCarol, kCarolPhone, "tok-carol");
}

}  // namespace parley::store::testing
