// One WebSocket session (PROTOCOL.md sections 2, 4 and 5): authentication by
// `hello`, the op dispatch, the error model and bad-frame accounting.
//
// Threading: everything the session mutates lives on its home, a serial
// executor: one handler at a time, in order. net/ calls OnFrame, OnClose,
// ReadyForMore and Idle on the connection's strand. With a store whose reads
// are local (RocksDB) the home is that strand: OnFrame and OnClose do the
// work right there, as they always did. With a store whose reads block
// (PostgreSQL) the home is a strand of core's read pool (store_reads.hpp):
// OnFrame only queues the frame there and OnClose queues the close behind
// it, so no store read ever runs on an I/O thread; the queue is bounded
// (ReadyForMore pauses the socket). Either way, code that must touch the
// session's state from elsewhere goes through RunHome, never through
// WsConnection::Post (which is the connection's strand, not the home), and
// what runs on the connection's strand reads only atomics. Answers that come
// back from store callbacks (the writer thread) only call the thread-safe
// Send/Close, and read the identity, which is fixed before the session is
// published in the registry.
#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.hpp"
#include "net/service.hpp"

namespace parley::core {

namespace json = boost::json;

// The largest frame core sends, like the largest it accepts (PROTOCOL.md:
// 256 KiB): replies that could grow past it (history) are paged by bytes.
inline constexpr std::size_t kMaxReplyBytes = 256 * 1024;

class Session final : public net::WsHandler, public std::enable_shared_from_this<Session> {
 public:
  using Rid = std::optional<std::string>;

  Session(Core& core, std::shared_ptr<net::WsConnection> connection, std::string header_token);

  void OnFrame(std::string_view text) override;
  void OnClose() override;
  // False while the connection has max_requests_in_flight requests waiting
  // for the store (fairness.hpp), or (read pool) kMaxQueuedFrames frames or
  // kMaxQueuedBytes waiting for the session's strand.
  bool ReadyForMore() override;
  bool Idle() override { return in_flight_.load() == 0 && queued_frames_.load() == 0; }

  // Thread-safe.
  void SendFrame(std::string_view op, json::object frame);
  // An already serialized frame (the same one for many sessions).
  void SendRaw(std::string_view op, const std::string& text);
  void Ok(const Rid& rid, json::object result = {});
  void Error(const Rid& rid, std::string_view code, std::string_view message,
             json::object extra = {});
  void Close(std::uint16_t code, std::string reason);

  const Identity& identity() const { return identity_; }

  // Thread-safe: events up to `seq` were appended to this user's mailbox.
  // `event` and its rendered `frame` are given when the caller had them (a
  // live message), so the session need not read them back.
  void Notify(store::Seq seq, std::shared_ptr<const store::MailboxEvent> event,
              std::shared_ptr<const std::string> frame);
  // Thread-safe: the mailbox head is at least `head` (a head check, not a
  // new event): the session streams up to it within its window, sending
  // nothing ahead of the backlog.
  void CatchUp(store::Seq head);

 private:
  using Handler = void (Session::*)(const json::object&, const Rid&);
  static const std::unordered_map<std::string_view, Handler>& Handlers();

  // The op dispatch of one frame, on the home.
  void HandleFrame(std::string_view text);
  void HandleClose();
  // Runs fn on the session's home (see Threading above), from any thread.
  void RunHome(std::function<void()> fn);
  // A queued frame was handled (read pool): resume reading if that made room.
  void FrameDone(std::size_t bytes);
  // Room for another frame: under max_requests_in_flight (writes waiting
  // plus frames not handled yet) and, with the read pool, under the queue's
  // bounds.
  bool QueueHasRoom() const;
  // Resumes net's reading when ReadyForMore paused it and there is room.
  void MaybeResume();

  void BadFrame(std::string_view why);
  void StoreError(const Rid& rid, const parley::Error& e, std::string_view op);

  // Ops (session.cpp).
  void Hello(const json::object& req, const Rid& rid);
  // The rest of hello once the session may read its mailbox (clustered:
  // once the bus confirmed the user's subscription, so that no wake
  // published after the head read is missed).
  void FinishHello(const Rid& rid, std::optional<store::Seq> resume_after);
  void Ping(const json::object& req, const Rid& rid);
  // Ops (account_ops.cpp).
  void DevicesList(const json::object& req, const Rid& rid);
  void DevicesRemove(const json::object& req, const Rid& rid);
  void ProfileGet(const json::object& req, const Rid& rid);
  void ProfileSet(const json::object& req, const Rid& rid);
  void ContactsDiscover(const json::object& req, const Rid& rid);

  // Delivery (delivery.cpp): see the note there.
  void StartDelivery(store::Seq after, store::Seq head);
  void OnAppended(store::Seq seq, std::shared_ptr<const store::MailboxEvent> event,
                  std::shared_ptr<const std::string> frame);
  void Pump();
  bool SendEvent(const store::MailboxEvent& e, const std::string* frame);
  // Thread-safe: `seq` is the copy of a send this connection was answered
  // `ok` for, which a skip_own_copy session counts as sent without sending.
  void SkipOwnCopy(store::Seq seq);
  void AckOp(const json::object& req, const Rid& rid);
  // Writes the cursor; called with the ack slot taken (see acks_).
  void SubmitAck(store::Seq seq);

  // Ops (messaging_ops.cpp).
  void Send(const json::object& req, const Rid& rid);
  void Read(const json::object& req, const Rid& rid);
  void Typing(const json::object& req, const Rid& rid);
  void History(const json::object& req, const Rid& rid);
  void Receipts(const json::object& req, const Rid& rid);
  void PresenceSubscribe(const json::object& req, const Rid& rid);
  // Ops (keys_ops.cpp).
  void KeysUpload(const json::object& req, const Rid& rid);
  void KeysBundle(const json::object& req, const Rid& rid);
  void KeysCount(const json::object& req, const Rid& rid);
  // The stale_devices check of an e2ee or sender_key send (messaging_ops.cpp);
  // false when it answered the request.
  bool CheckEnvelope(const json::value& body, std::string_view kind, const store::Conversation& to,
                     const Rid& rid);
  // Ops (group_ops.cpp).
  void GroupCreate(const json::object& req, const Rid& rid);
  void GroupInfo(const json::object& req, const Rid& rid);
  void GroupAdd(const json::object& req, const Rid& rid);
  void GroupRemove(const json::object& req, const Rid& rid);
  void GroupPromote(const json::object& req, const Rid& rid);
  void GroupDemote(const json::object& req, const Rid& rid);
  void GroupUpdate(const json::object& req, const Rid& rid);
  void GroupLeave(const json::object& req, const Rid& rid);
  void GroupMembers(const json::object& req, const Rid& rid, store::GroupChange::Kind kind);
  void GroupSetRole(const json::object& req, const Rid& rid, store::GroupChange::Kind kind);
  void ApplyGroupChange(store::GroupChange change, const Rid& rid, json::object result);
  std::optional<std::vector<store::UserId>> ParseUsers(const json::object& req, const Rid& rid,
                                                       std::string_view key, std::size_t max,
                                                       bool must_exist);

  // Flood control shared by every op that writes or fans out: true when
  // over the limit, after answering rate_limited (or closing with 4429 a
  // device that keeps going). `cost`: the work the op causes.
  bool OverLimit(TokenBucket& bucket, const Rid& rid, double cost = 1.0);

  // One request of this session waiting for a store write: counted against
  // the connection's requests in flight and the user's share of the writer
  // (fairness.hpp) until Done() or destruction, whichever comes first.
  class WriteTicket {
   public:
    explicit WriteTicket(std::shared_ptr<Session> session) : session_(std::move(session)) {}
    ~WriteTicket() { Done(); }
    WriteTicket(const WriteTicket&) = delete;
    WriteTicket& operator=(const WriteTicket&) = delete;
    void Done();

   private:
    std::shared_ptr<Session> session_;
    bool done_ = false;
  };
  // A ticket for one more write, or null after answering rate_limited when
  // the user already has its share of writes in flight.
  std::shared_ptr<WriteTicket> BeginWrite(const Rid& rid);

  // Members ordered so that no padding is left (an idle session's object
  // is in jemalloc's 320-byte class; docs/benchmarks.md, memory per session).
  Core& core_;
  std::shared_ptr<net::WsConnection> conn_;
  // The read pool's strand when the store's reads block; empty: the
  // connection's strand is home.
  std::optional<StoreReadPool::Strand> home_;
  std::atomic<std::size_t> queued_bytes_{0};
  // Frames handed to home_ and not handled yet (read pool only).
  std::atomic<std::uint32_t> queued_frames_{0};
  std::atomic<std::uint32_t> in_flight_{0};  // requests waiting for the store (WriteTicket)
  std::string header_token_;
  Identity identity_;
  std::vector<double> bad_frames_;          // when, for the five-in-a-minute rule (at most 5)
  std::uint16_t refused_in_a_row_ = 0;      // up to kRefusalsBeforeClose
  std::atomic<bool> resume_wanted_{false};  // ReadyForMore said no
  std::atomic<bool> gone_{false};           // OnClose was called: skip queued frames
  bool authenticated_ = false;
  bool closed_ = false;
  // hello asked not to be sent the copies of this connection's own sends
  // (extension, docs/protocol.md); set before any send, read by its callbacks.
  bool skip_own_copy_ = false;

  // Delivery state, on the connection's strand only.
  bool delivering_ = false;  // beside skip_own_copy_: no padding
  store::Seq cursor_ = 0;    // the highest seq this device acknowledged
  // The next seq the backlog stream sends. Atomic only for CatchUp, which
  // reads it off the strand: a head below it has nothing to send.
  std::atomic<store::Seq> next_{1};
  store::Seq head_ = 0;         // the highest seq known to exist
  std::set<store::Seq> ahead_;  // live events already sent ahead of the backlog

  // At most one ack write of this device is in the store's queue at a time;
  // acks that arrive meanwhile are merged into the next one (the highest
  // wins). Under load that turns many small cursor writes into one, and
  // without load it changes nothing. Shared with the writer's callback.
  struct Acks {
    std::mutex mu;
    bool in_flight = false;
    store::Seq pending = 0;  // 0: nothing waiting
  } acks_;
};

// Closes a session from any thread.
void CloseSession(Session& session, std::uint16_t code, std::string reason);

}  // namespace parley::core
