// Client::Impl: the state behind the public Client, owned by one I/O thread.
//
// Design note. Everything below the "I/O thread only" line is touched only
// by handlers running on io_ (public methods post lambdas there), so none of
// it needs a lock. The connection is a small state machine (Phase):
// kIdle -> kConnecting -> kHello -> kOnline, back to kWaiting (a backoff
// timer) after a drop, or kStopped for good. Sync keeps a watermark: the
// highest seq up to which every mailbox event has been handled and
// persisted; it is what acks carry and what hello resumes after. Events
// may arrive out of order (live ones ahead of a backlog), so those above the
// watermark are remembered until it catches up. The outbox is the store's
// pending messages; the pump sends them in order whenever the device is
// online, and the server's idempotency on client_msg_id makes resending
// after a lost answer safe.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "event_queue.hpp"
#include "net.hpp"
#include "parley/client.hpp"

namespace parley::sdk {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::int64_t WallMs();

class Client::Impl {
 public:
  Impl(ClientOptions options, std::unique_ptr<Store> store);
  ~Impl();

  // Runs `fn` on the I/O thread.
  void Post(std::function<void()> fn);

  // ---- Thread-safe state ------------------------------------------------------
  std::optional<Account> AccountSnapshot() const;
  ConnectionEvent::State State() const;
  bool WaitForState(ConnectionEvent::State state, std::chrono::milliseconds timeout);
  void MarkStarting();  // Start(): the state is kConnecting from this call on
  detail::EventQueue& events() { return events_; }

  // ---- I/O thread only -----------------------------------------------------

  // Account (connection.cpp).
  void RequestCode(const std::string& phone, std::function<void(Result<int>)> done);
  void Verify(const std::string& phone, const std::string& code,
              std::function<void(Result<Account>)> done);

  // Connection (connection.cpp).
  void Start();
  void Stop();
  void Reconnect();
  void DropConnection();

  // Requests (connection.cpp). `retry`: safe to send again after a reconnect
  // (reads); otherwise a request in flight when the connection drops fails
  // with "disconnected".
  using Answer = std::function<void(Result<json::object>)>;
  void Call(json::object frame, bool retry, Answer done);

  // Messages (sync.cpp).
  void Send(const Conv& to, OutgoingMessage message,
            std::shared_ptr<std::promise<Result<SentMessage>>> promise);
  void MarkRead(const Conv& conv, const std::string& up_to, std::function<void(Status)> done);
  void SendTyping(const Conv& conv, bool composing);
  void History(const Conv& conv, const std::string& before, int limit,
               std::function<void(Result<HistoryPage>)> done);
  void SubscribePresence(std::vector<std::string> users,
                         std::function<void(Result<std::vector<PresenceStatus>>)> done);
  Store& store() { return *store_; }

  // Media (media.cpp).
  void UploadMedia(std::string bytes, std::string content_type,
                   std::function<void(Result<MediaInfo>)> done);
  void DownloadMedia(const std::string& media_id, std::function<void(Result<std::string>)> done);
  void SendFile(const Conv& to, std::string bytes, std::string name, std::string content_type,
                std::shared_ptr<std::promise<Result<SentMessage>>> promise);
  void DownloadFile(const std::string& msg_id, std::function<void(Result<std::string>)> done);

  // End-to-end encryption (e2ee.cpp).
  void PublishKeys(std::function<void(Result<int>)> done);
  // Someone left the group (or was removed): a new sender key, and the
  // member list read again, before the next group message.
  void MembersLeft(const std::string& group_id);
  // Someone joined: the member list is read again before the next group message.
  void MembersJoined(const std::string& group_id) { group_members_.erase(group_id); }
  void SafetyNumber(const std::string& user, std::function<void(Result<Fingerprint>)> done);

 private:
  enum class Phase { kIdle, kConnecting, kHello, kOnline, kWaiting, kStopped };
  struct Request {
    json::object frame;
    Answer done;
    Clock::time_point deadline;
    bool retry = false;
    bool sent = false;
  };
  struct SendWaiter {
    std::shared_ptr<std::promise<Result<SentMessage>>> promise;
    Clock::time_point deadline;
  };

  // connection.cpp
  void LoadAccount();
  void Connect(bool fresh_tokens = false);
  void OnOpen(std::uint64_t gen, std::optional<std::string> error);
  void OnFrame(std::uint64_t gen, const std::string& text);
  void OnClosed(std::uint64_t gen, int code, std::string reason);
  void OnHelloAnswer(const json::object& frame);
  void ScheduleReconnect(int code, const std::string& reason);
  void StopWith(std::optional<Error> error);
  void SetState(ConnectionEvent event);
  void SendFrame(const json::object& frame);
  void FlushRequests();
  void FailRequests(const Error& error, bool keep_retryable);
  void Refresh(std::function<void(Status)> done);
  void ScheduleRefresh();
  void TryRefresh();
  void FinishRefresh(Status status);
  void RefreshSoon(std::chrono::milliseconds delay);
  void ArmTick();
  void Tick();

  // sync.cpp
  void OnEvent(std::uint64_t seq, const json::object& event);
  Status HandleEvent(std::uint64_t seq, const json::object& event, std::vector<Event>& out);
  void AdvanceWatermark();
  void ScheduleAck();
  void FlushAck();
  void OnTyping(const json::object& frame);
  void CheckSync();
  void CheckGap();
  void ExpireTyping();
  void ExpireSendWaiters();
  void PumpOutbox();
  void SendPending(const Message& m);
  void OnSendAnswer(const Message& m, Result<json::object> r);
  void ResolveSend(const std::string& client_msg_id, Result<SentMessage> r);
  void ResetSync();
  Message Decode(Message m);
  void AfterOnline();
  void FailSend(const Message& m, const Error& e);

  // media.cpp: an HTTP request with this device's access token (refreshed
  // and tried once more after a 401).
  static constexpr std::chrono::milliseconds kMediaTimeout{120000};
  void AuthedHttp(detail::HttpRequestSpec spec,
                  std::function<void(Result<detail::HttpResponse>)> done, bool retried = false);

  // e2ee.cpp: keys, the encrypted send path, sender keys. See docs/sdk.md.
  using Done = std::function<void(Status)>;
  void CheckKeys();
  // The frame that sends `m` encrypted, or nullopt when sessions, device
  // lists or sender keys must be fetched first (Prepare).
  Result<std::optional<json::object>> EncryptedFrame(const Message& m);
  void Prepare(const Conv& conv);
  void PrepareConv(const Conv& conv, Done done, int attempt = 0);
  void EnsureUsers(std::vector<std::string> users, Done done);
  void FetchBundles(const std::string& user, Done done);
  // sender_keys.cpp: this device's sender key goes to the member devices
  // that lack it in as many sender_key sends as the 64 KiB body limit needs
  // (each with a client_msg_id derived from the key and its devices), with
  // which devices have it confirmed kept in the store; group messages whose
  // sender key has not arrived yet are kept in the store until it does.
  struct KeyDist {
    std::string gen;  // names this device's current sender key for the group
    // device -> the client_msg_id of the sender_key send that carries it
    // (empty: not planned yet) and whether the server confirmed that send.
    std::map<DeviceAddress, std::pair<std::string, bool>> devices;
  };
  void DistributeSenderKey(const std::string& group_id, int attempt, Done done);
  KeyDist& DistOf(const std::string& group_id);
  Status SaveDist(const std::string& group_id);
  bool HasSenderKey(const std::string& group_id, const DeviceAddress& d);
  void NewSenderKey(const std::string& group_id);
  void ForgetDistributions(const DeviceAddress& d);
  // A group message that could not be decrypted for want of its sender key:
  // kept (true) until the key arrives.
  Result<bool> HoldIfKeyMissing(std::uint64_t seq, const json::object& event, const Message& m);
  void ReleaseHeld(const std::string& group_id, const DeviceAddress& sender,
                   std::vector<Event>& out);
  void RepairStale(const Error& e);
  std::vector<DeviceAddress> DevicesOf(const std::vector<std::string>& users) const;
  Message DecodeGroup(Message m, const json::object& body);
  void HandleSenderKey(const Message& m, std::vector<Event>& out);
  void ForgetPeerDevice(const DeviceAddress& d);

  // ---- Immutable after construction ---------------------------------------------
  ClientOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Crypto> crypto_;
  detail::EventQueue events_;

  // ---- Shared with other threads (under mu_) -----------------------------------
  mutable std::mutex mu_;
  std::condition_variable state_cv_;
  std::optional<Account> account_;
  ConnectionEvent::State state_ = ConnectionEvent::State::kStopped;

  // ---- The I/O thread (declared before what uses it; destroyed after) ------------
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer refresh_timer_;
  boost::asio::steady_timer ack_timer_;
  boost::asio::steady_timer tick_timer_;
  std::mt19937_64 rng_;

  // ---- I/O thread only -----------------------------------------------------------
  std::optional<Tokens> tokens_;
  std::optional<detail::Url> url_;
  Phase phase_ = Phase::kIdle;
  bool want_online_ = false;  // Start() and no stop since
  std::optional<Error> stop_error_;
  std::shared_ptr<detail::WsTransport> ws_;
  std::uint64_t gen_ = 0;  // the connection attempt handlers belong to
  int attempt_ = 0;        // consecutive failed attempts (backoff exponent)
  bool refresh_after_close_ = false;
  bool refreshing_ = false;
  std::vector<std::function<void(Status)>> refresh_waiters_;
  bool tick_armed_ = false;
  std::string hello_rid_;
  int bye_code_ = 0;
  std::string bye_reason_;

  std::uint64_t next_rid_ = 1;
  std::map<std::uint64_t, Request> requests_;  // by rid (a number on our side), in send order
  Clock::time_point hello_sent_at_{};

  // Sync.
  std::uint64_t watermark_ = 0;
  bool watermark_known_ = false;
  std::set<std::uint64_t> above_;    // handled seqs above the watermark
  std::set<std::uint64_t> skipped_;  // seqs given up as gaps (handled if they come after all)
  std::uint64_t acked_ = 0;          // the last seq acked on the wire
  bool ack_armed_ = false;
  std::uint64_t hello_head_ = 0;
  bool synced_ = false;
  Clock::time_point hello_at_{};
  Clock::time_point progress_at_{};

  // Outbox.
  std::multimap<std::string, SendWaiter> send_waiters_;  // by client_msg_id
  std::set<std::string> in_flight_;                      // client_msg_ids sent, no answer yet
  Clock::time_point outbox_retry_at_{};
  bool outbox_timer_armed_ = false;

  // End-to-end encryption (I/O thread only).
  bool keys_ready_ = false;     // keys checked/uploaded since this hello
  bool keys_checking_ = false;  // keys.count/keys.upload in flight
  int prekeys_spent_ = 0;       // prekey messages decrypted since the last check
  Result<int> keys_left_ = std::unexpected(Error{"unsupported", "no key check yet"});
  std::vector<std::function<void(Result<int>)>> key_waiters_;  // PublishKeys
  // Other devices with keys, per user (this device excluded): from
  // keys.bundle, corrected by stale_devices, keys_changed and device events.
  std::map<std::string, std::vector<std::string>> devices_;
  std::map<std::string, std::string> identity_keys_;               // "<user>.<device>" -> key bytes
  std::map<std::string, std::vector<Done>> fetch_waiters_;         // keys.bundle in flight, by user
  std::set<std::string> preparing_;                                // conv keys being prepared
  std::set<std::string> prepared_;                                 // conv keys just prepared
  std::map<std::string, int> stale_retries_;                       // client_msg_id -> stale answers
  std::map<std::string, std::vector<std::string>> group_members_;  // group -> user ids
  std::map<std::string, KeyDist> dists_;  // group -> distribution (a cache of the store's)

  // Presence and typing.
  std::optional<std::vector<std::string>> presence_users_;
  std::map<std::string, Clock::time_point> typing_;  // conv key + "|" + device -> expiry
  std::map<std::string, TypingEvent> typing_from_;

  std::thread thread_;  // last: started when everything else exists
};

}  // namespace parley::sdk
