// parley::sdk::Client: one device of one account, talking to parleyd.
//
//   auto client = Client::Open({.data_dir = dir, .server_url = "http://host:8080"});
//   (*client)->RequestCode("+15551234567").get();          // an SMS goes out
//   (*client)->Verify("+15551234567", code).get();         // logged in; tokens stored
//   (*client)->Start();                                    // connect, keep connected
//   (*client)->SendText(Conv::User(peer), "hi").get();     // stored by the server
//   while (auto e = (*client)->WaitEvent(1s)) { ... }      // incoming, receipts, typing
//
// Threading (docs/sdk.md): the Client runs one I/O thread of its own; every
// method may be called from any thread and none blocks (beyond taking a
// mutex). Operations answer through a Future (types.hpp), which the caller
// may wait on (`.get()`: the blocking form the CLI uses) or poll; every
// Future becomes ready, at the latest when its timeout passes or the Client
// stops. Operations issued before Start() wait for the connection (within
// their timeout). What the server pushes arrives as Events in a queue
// (events.hpp).
//
// The connection: Start() connects, says hello with the last acknowledged
// seq, and from then on keeps the device connected: reconnects with
// exponential backoff (1 s doubling to 30 s, with jitter) after drops,
// heartbeat timeouts (4408) and server shutdowns (1001); refreshes the
// access token before it expires and when the server refuses it (4401).
// It stops for good, with a ConnectionEvent kStopped carrying the reason,
// when the device was removed (4403: device_revoked), when the refresh
// token is refused (logged_out), and when a newer connection of this same
// device replaced it (4409: replaced; a second process on the same profile,
// say): reconnecting would only kick that one off in turn, so the Client
// leaves the choice to the application (Reconnect()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parley/crypto.hpp"
#include "parley/events.hpp"
#include "parley/store.hpp"
#include "parley/types.hpp"

namespace parley::sdk {

struct ClientOptions {
  // Where the profile lives: <data_dir>/parley.db (created with the directory).
  std::string data_dir;
  // http://host:port or https://host:port (ws:// and wss:// are accepted
  // too). Needed to log in; afterwards the account's stored URL is used when
  // this is empty.
  std::string server_url;
  // How this device shows in devices.list.
  std::string device_name = "parley";
  std::string platform = "cli";  // android, ios, web, desktop, cli
  std::string client_name = "parley-sdk";
  std::string client_version = "0.1.0";
  // The E2EE backend; null means PlaintextCrypto.
  std::unique_ptr<Crypto> crypto;
  // TLS: verify the server's certificate against the system's CAs (and
  // ca_file when given). Turn off only for tests with self-signed certificates.
  bool tls_verify = true;
  std::string ca_file;

  std::chrono::milliseconds request_timeout{15000};  // an op's answer, also while offline
  std::chrono::milliseconds connect_timeout{10000};  // TCP + TLS + upgrade
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{30000};
  // Acks are batched: sent this long after the first unacknowledged event,
  // or at once when ack_batch events wait.
  std::chrono::milliseconds ack_delay{100};
  int ack_batch = 64;
  // The access token is refreshed this long before it expires (or at 3/4 of
  // its lifetime, when that is shorter).
  std::chrono::seconds refresh_margin{60};
  // Close the connection when nothing at all (not even a ping) arrived for this long.
  std::chrono::seconds idle_timeout{75};
  // At most this many events wait in the queue; past that the oldest are
  // dropped (and counted: dropped_events()). Messages are in the store regardless.
  std::size_t max_queued_events = 65536;
};

// What a send carries. Plain kinds go as they are; with an encrypting
// backend the whole of it travels inside the ciphertext.
struct OutgoingMessage {
  std::string kind = "text";  // text, image, video, audio, file
  std::string body_json;      // a JSON value as text, e.g. {"text":"hi"}
  std::string media_id;
  std::string client_msg_id;  // empty: a fresh random one
};

class Client {
 public:
  // Opens (or creates) the profile's store. Does not connect.
  static Result<std::unique_ptr<Client>> Open(ClientOptions options);
  // Stops (as Stop) and joins the I/O thread.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // ---- Account ---------------------------------------------------------------

  // POST /v1/auth/otp: the server texts a one-time code. Answers its lifetime
  // in seconds. Errors: invalid_phone, rate_limited (retry_after_ms), network.
  Future<int> RequestCode(const std::string& phone);
  // POST /v1/auth/verify: logs this profile in as a new device of the phone's
  // account (creating the account when there is none) and stores the tokens.
  // Replaces any earlier login of this profile (and its local data).
  // Errors: invalid_code, code_expired, too_many_attempts, device_limit.
  Future<Account> Verify(const std::string& phone, const std::string& code);
  // The logged-in account, if any (from the store; no network).
  std::optional<Account> account() const;

  // ---- Connection ---------------------------------------------------------

  // Connects and keeps the device connected (see the top of this file).
  // Without a login it stops at once (kStopped, not_logged_in).
  void Start();
  // Closes the connection (normal closure) and stops reconnecting. Pending
  // operations fail with "stopped"; queued sends stay in the outbox for the
  // next Start. Start() may be called again.
  void Stop();
  // After a stop condition (replaced, say) or while waiting for a backoff:
  // connect again now.
  void Reconnect();
  // Drops the socket abruptly, as a network failure would (no close frame);
  // the Client then reconnects as after any drop. For tests and for
  // "the network changed" notifications.
  void DropConnection();
  // The state of the last ConnectionEvent.
  ConnectionEvent::State state() const;
  // Waits (blocking) until the state is `state` (or kStopped); false on timeout.
  bool WaitForState(ConnectionEvent::State state, std::chrono::milliseconds timeout);

  // ---- Events --------------------------------------------------------------

  // The next event, waiting up to `timeout`.
  std::optional<Event> WaitEvent(std::chrono::milliseconds timeout);
  std::optional<Event> PollEvent();
  // Readable (poll/epoll/select) while events are queued: for event loops
  // that also wait on other descriptors.
  int EventFd() const;
  std::uint64_t dropped_events() const;

  // ---- Messages ------------------------------------------------------------

  // Queues a message and sends it as soon as the device is online, in
  // order. The Future answers once the server stored it (or refused it:
  // not_found, not_member, too_large, ...). A "timeout" (or "stopped")
  // answer means only "not confirmed yet": the message stays in the store's
  // outbox and is sent (with the same client_msg_id: the server stores it
  // once) by this Client later, or by the next one that opens the profile.
  Future<SentMessage> Send(const Conv& to, OutgoingMessage message);
  Future<SentMessage> SendText(const Conv& to, const std::string& text,
                               std::string client_msg_id = {});
  // Sends a read receipt for everything in `conv` up to `up_to_msg_id`.
  Future<void> MarkRead(const Conv& conv, const std::string& up_to_msg_id);
  // typing: composing or paused (fire and forget; dropped while offline).
  void SendTyping(const Conv& conv, bool composing);
  // Older messages from the server (newest first); they are also stored.
  Future<HistoryPage> History(const Conv& conv, const std::string& before_msg_id = {},
                              int limit = 50);
  // What the local store has for `conv` (newest first); no network.
  Future<std::vector<Message>> LocalMessages(const Conv& conv, int limit = 50,
                                             const std::string& before_msg_id = {});
  Future<ReceiptInfo> Receipts(const std::string& msg_id);

  // ---- Presence --------------------------------------------------------------

  // Replaces the set of users whose presence is pushed (PresenceEvent); the
  // set is subscribed again after each reconnect.
  Future<std::vector<PresenceStatus>> SubscribePresence(std::vector<std::string> users);

  // ---- Groups --------------------------------------------------------------

  Future<std::string> CreateGroup(const std::string& name, std::vector<std::string> members);
  Future<GroupInfo> GetGroup(const std::string& group_id);
  Future<void> AddMembers(const std::string& group_id, std::vector<std::string> users);
  Future<void> RemoveMembers(const std::string& group_id, std::vector<std::string> users);
  Future<void> Promote(const std::string& group_id, const std::string& user);
  Future<void> Demote(const std::string& group_id, const std::string& user);
  Future<void> UpdateGroup(const std::string& group_id, std::optional<std::string> name,
                           std::optional<std::string> avatar_media_id = std::nullopt);
  Future<void> LeaveGroup(const std::string& group_id);

  // ---- Devices, profiles, contacts ---------------------------------------------

  // Publishes this device's keys now (keys.count, then keys.upload when
  // something is missing; the client also does it after every hello and
  // when one-time prekeys run low) and answers how many one-time prekeys
  // the server holds. Waits for the connection like any op. A freshly
  // logged-in device should do this before others can write to it.
  Future<int> PublishKeys();

  // The safety number between this user and `user` (docs/e2ee.md): the
  // same 60 digits on both sides while no device key changed. Fetches both
  // users' device keys (keys.bundle). "unsupported" without an encrypting
  // backend.
  Future<Fingerprint> SafetyNumber(const std::string& user);

  Future<std::vector<DeviceInfo>> ListDevices();
  // Removing this device itself is allowed: the Client then stops (device_revoked).
  Future<void> RemoveDevice(const std::string& device_id);
  Future<std::vector<Profile>> GetProfiles(std::vector<std::string> users);
  Future<void> SetProfile(ProfileUpdate update);
  // Which of these E.164 numbers have accounts (only SHA-256 hashes are sent).
  Future<std::vector<ContactMatch>> DiscoverContacts(std::vector<std::string> phones);

  // ---- Media (PROTOCOL.md section 6) ------------------------------------------

  // Raw media (POST /v1/media, GET /v1/media/{id}): bytes in, MediaInfo
  // out, as they are (no encryption; for avatars and the like). Files sent
  // in messages go through SendFile/DownloadFile.
  Future<MediaInfo> UploadMedia(std::string bytes, std::string content_type);
  Future<std::string> DownloadMedia(const std::string& media_id);
  // Sends a file as a "file" message. With an encrypting backend the bytes
  // are encrypted first (AES-256-GCM, a random key per file) and uploaded
  // as application/octet-stream; the key and the blob's SHA-256 travel in
  // the end-to-end encrypted message (docs/e2ee.md). The body is
  // {"name","content_type","size"} (+ "key", "digest").
  Future<SentMessage> SendFile(const Conv& to, std::string bytes, std::string name,
                               std::string content_type = "application/octet-stream");
  // The file of a message in this profile's store, downloaded, checked
  // against its digest and decrypted ("crypto" when it does not match).
  Future<std::string> DownloadFile(const std::string& msg_id);

  // ---- Anything else -------------------------------------------------------

  // Sends one op frame (a JSON object as text; "rid" is added) and answers
  // the "ok" frame as JSON text, or its error. For ops the Client does not
  // wrap (keys.*, push.register).
  Future<std::string> Request(const std::string& frame_json);

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::sdk
