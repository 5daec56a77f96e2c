// The public Client: each call posts its work to the I/O thread and hands
// back a Future; JSON answers become the SDK's types here.
#include "parley/client.hpp"

#include <filesystem>
#include <system_error>

#include "client_impl.hpp"
#include "wire.hpp"

namespace parley::sdk {

namespace {

template <class T>
using PromisePtr = std::shared_ptr<std::promise<Result<T>>>;

template <class T>
PromisePtr<T> MakePromise() {
  return std::make_shared<std::promise<Result<T>>>();
}

template <class T>
Future<T> Ready(Result<T> r) {
  std::promise<Result<T>> p;
  p.set_value(std::move(r));
  return p.get_future();
}

json::array JsonList(const std::vector<std::string>& items) {
  json::array a;
  for (const auto& s : items) a.push_back(json::value(s));
  return a;
}

}  // namespace

// A request whose ok frame becomes a T through `convert`.
template <class T, class Convert>
static Future<T> CallAs(Client::Impl& impl, json::object frame, bool retry, Convert convert) {
  auto p = MakePromise<T>();
  auto f = p->get_future();
  impl.Post([&impl, frame = std::move(frame), retry, p, convert]() mutable {
    impl.Call(std::move(frame), retry, [p, convert](Result<json::object> r) {
      if (!r) return p->set_value(std::unexpected(r.error()));
      p->set_value(convert(*r));
    });
  });
  return f;
}

static Future<void> CallVoid(Client::Impl& impl, json::object frame) {
  return CallAs<void>(impl, std::move(frame), false,
                      [](const json::object&) -> Status { return {}; });
}

Result<std::unique_ptr<Client>> Client::Open(ClientOptions options) {
  if (options.data_dir.empty()) return Fail("invalid", "ClientOptions::data_dir is required");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Fail("storage", "cannot create " + options.data_dir + ": " + ec.message());
  std::filesystem::permissions(options.data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  auto store = Store::Open((std::filesystem::path(options.data_dir) / "parley.db").string());
  if (!store) return std::unexpected(store.error());
  if (!options.crypto) options.crypto = MakeDefaultCrypto();
  const std::string backend = options.crypto->Name();
  auto recorded = (*store)->GetMeta("crypto");
  if (recorded && *recorded && **recorded != backend) {
    return Fail("crypto", "this profile was set up with the " + **recorded +
                              " crypto backend, not " + backend);
  }
  if (!options.server_url.empty()) {
    if (auto url = detail::Url::Parse(options.server_url); !url) {
      return std::unexpected(url.error());
    }
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*store));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

// ---- Account -------------------------------------------------------------------------

Future<int> Client::RequestCode(const std::string& phone) {
  auto p = MakePromise<int>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), phone, p] {
    impl->RequestCode(phone, [p](Result<int> r) { p->set_value(std::move(r)); });
  });
  return f;
}

Future<Account> Client::Verify(const std::string& phone, const std::string& code) {
  auto p = MakePromise<Account>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), phone, code, p] {
    impl->Verify(phone, code, [p](Result<Account> r) { p->set_value(std::move(r)); });
  });
  return f;
}

std::optional<Account> Client::account() const { return impl_->AccountSnapshot(); }

// ---- Connection --------------------------------------------------------------------------

void Client::Start() {
  impl_->MarkStarting();
  impl_->Post([impl = impl_.get()] { impl->Start(); });
}

void Client::Stop() {
  impl_->Post([impl = impl_.get()] { impl->Stop(); });
}

void Client::Reconnect() {
  impl_->MarkStarting();
  impl_->Post([impl = impl_.get()] { impl->Reconnect(); });
}

void Client::DropConnection() {
  impl_->Post([impl = impl_.get()] { impl->DropConnection(); });
}

ConnectionEvent::State Client::state() const { return impl_->State(); }

bool Client::WaitForState(ConnectionEvent::State state, std::chrono::milliseconds timeout) {
  return impl_->WaitForState(state, timeout);
}

// ---- Events --------------------------------------------------------------------------------

std::optional<Event> Client::WaitEvent(std::chrono::milliseconds timeout) {
  return impl_->events().Wait(timeout);
}
std::optional<Event> Client::PollEvent() { return impl_->events().Pop(); }
int Client::EventFd() const { return impl_->events().fd(); }
std::uint64_t Client::dropped_events() const { return impl_->events().dropped(); }

// ---- Messages --------------------------------------------------------------------------------

Future<SentMessage> Client::Send(const Conv& to, OutgoingMessage message) {
  auto p = MakePromise<SentMessage>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), to, message = std::move(message), p]() mutable {
    impl->Send(to, std::move(message), p);
  });
  return f;
}

Future<SentMessage> Client::SendText(const Conv& to, const std::string& text,
                                     std::string client_msg_id) {
  OutgoingMessage m;
  m.kind = "text";
  m.body_json = json::serialize(json::object{{"text", text}});
  m.client_msg_id = std::move(client_msg_id);
  return Send(to, std::move(m));
}

Future<void> Client::MarkRead(const Conv& conv, const std::string& up_to_msg_id) {
  auto p = MakePromise<void>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), conv, up_to_msg_id, p] {
    impl->MarkRead(conv, up_to_msg_id, [p](Status s) { p->set_value(std::move(s)); });
  });
  return f;
}

void Client::SendTyping(const Conv& conv, bool composing) {
  impl_->Post([impl = impl_.get(), conv, composing] { impl->SendTyping(conv, composing); });
}

Future<HistoryPage> Client::History(const Conv& conv, const std::string& before_msg_id, int limit) {
  auto p = MakePromise<HistoryPage>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), conv, before_msg_id, limit, p] {
    impl->History(conv, before_msg_id, limit,
                  [p](Result<HistoryPage> r) { p->set_value(std::move(r)); });
  });
  return f;
}

Future<std::vector<Message>> Client::LocalMessages(const Conv& conv, int limit,
                                                   const std::string& before_msg_id) {
  auto p = MakePromise<std::vector<Message>>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), conv, limit, before_msg_id, p] {
    p->set_value(impl->store().Messages(conv, limit, before_msg_id));
  });
  return f;
}

Future<ReceiptInfo> Client::Receipts(const std::string& msg_id) {
  return CallAs<ReceiptInfo>(
      *impl_, {{"op", "receipts"}, {"msg_id", msg_id}}, true,
      [](const json::object& o) -> Result<ReceiptInfo> { return detail::ParseReceipts(o); });
}

// ---- Presence ---------------------------------------------------------------------------------

Future<std::vector<PresenceStatus>> Client::SubscribePresence(std::vector<std::string> users) {
  auto p = MakePromise<std::vector<PresenceStatus>>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), users = std::move(users), p]() mutable {
    impl->SubscribePresence(std::move(users), [p](Result<std::vector<PresenceStatus>> r) {
      p->set_value(std::move(r));
    });
  });
  return f;
}

// ---- Groups
// ---------------------------------------------------------------------------------------

Future<std::string> Client::CreateGroup(const std::string& name, std::vector<std::string> members) {
  return CallAs<std::string>(
      *impl_, {{"op", "group.create"}, {"name", name}, {"members", JsonList(members)}}, false,
      [](const json::object& o) -> Result<std::string> {
        auto id = detail::Str(o, "group_id");
        if (id.empty()) return Fail("protocol", "group.create answered no group_id");
        return id;
      });
}

Future<GroupInfo> Client::GetGroup(const std::string& group_id) {
  return CallAs<GroupInfo>(
      *impl_, {{"op", "group.info"}, {"group_id", group_id}}, true,
      [](const json::object& o) -> Result<GroupInfo> { return detail::ParseGroupInfo(o); });
}

Future<void> Client::AddMembers(const std::string& group_id, std::vector<std::string> users) {
  // The member list is read again before the next group message, so that
  // the new members get the sender key first (their group event may come
  // after that message is sent).
  return CallAs<void>(*impl_,
                      {{"op", "group.add"}, {"group_id", group_id}, {"users", JsonList(users)}},
                      false, [impl = impl_.get(), group_id](const json::object&) -> Status {
                        impl->MembersJoined(group_id);
                        return {};
                      });
}

Future<void> Client::RemoveMembers(const std::string& group_id, std::vector<std::string> users) {
  // The sender key rotates before the Future answers, so that a message
  // sent right after cannot use the key the removed member holds (the
  // group event would rotate it too, but may come later).
  return CallAs<void>(*impl_,
                      {{"op", "group.remove"}, {"group_id", group_id}, {"users", JsonList(users)}},
                      false, [impl = impl_.get(), group_id](const json::object&) -> Status {
                        impl->MembersLeft(group_id);
                        return {};
                      });
}

Future<void> Client::Promote(const std::string& group_id, const std::string& user) {
  return CallVoid(*impl_, {{"op", "group.promote"}, {"group_id", group_id}, {"user", user}});
}

Future<void> Client::Demote(const std::string& group_id, const std::string& user) {
  return CallVoid(*impl_, {{"op", "group.demote"}, {"group_id", group_id}, {"user", user}});
}

Future<void> Client::UpdateGroup(const std::string& group_id, std::optional<std::string> name,
                                 std::optional<std::string> avatar_media_id) {
  json::object frame{{"op", "group.update"}, {"group_id", group_id}};
  if (name) frame["name"] = *name;
  if (avatar_media_id) frame["avatar_media_id"] = *avatar_media_id;
  return CallVoid(*impl_, std::move(frame));
}

Future<void> Client::LeaveGroup(const std::string& group_id) {
  return CallAs<void>(*impl_, {{"op", "group.leave"}, {"group_id", group_id}}, false,
                      [impl = impl_.get(), group_id](const json::object&) -> Status {
                        impl->MembersLeft(group_id);
                        return {};
                      });
}

// ---- Devices, profiles, contacts
// --------------------------------------------------------------------

Future<int> Client::PublishKeys() {
  auto p = MakePromise<int>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), p] {
    impl->PublishKeys([p](Result<int> r) { p->set_value(std::move(r)); });
  });
  return f;
}

Future<Fingerprint> Client::SafetyNumber(const std::string& user) {
  auto p = MakePromise<Fingerprint>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), user, p] {
    impl->SafetyNumber(user, [p](Result<Fingerprint> r) { p->set_value(std::move(r)); });
  });
  return f;
}

Future<std::vector<DeviceInfo>> Client::ListDevices() {
  return CallAs<std::vector<DeviceInfo>>(
      *impl_, {{"op", "devices.list"}}, true,
      [](const json::object& o) -> Result<std::vector<DeviceInfo>> {
        return detail::ParseDevices(o);
      });
}

Future<void> Client::RemoveDevice(const std::string& device_id) {
  return CallVoid(*impl_, {{"op", "devices.remove"}, {"device_id", device_id}});
}

Future<std::vector<Profile>> Client::GetProfiles(std::vector<std::string> users) {
  return CallAs<std::vector<Profile>>(*impl_, {{"op", "profile.get"}, {"users", JsonList(users)}},
                                      true,
                                      [](const json::object& o) -> Result<std::vector<Profile>> {
                                        return detail::ParseProfiles(o);
                                      });
}

Future<void> Client::SetProfile(ProfileUpdate update) {
  json::object frame{{"op", "profile.set"}};
  if (update.name) frame["name"] = *update.name;
  if (update.status_text) frame["status_text"] = *update.status_text;
  if (update.avatar_media_id) frame["avatar_media_id"] = *update.avatar_media_id;
  if (update.last_seen_visibility) frame["last_seen_visibility"] = *update.last_seen_visibility;
  return CallVoid(*impl_, std::move(frame));
}

Future<std::vector<ContactMatch>> Client::DiscoverContacts(std::vector<std::string> phones) {
  std::map<std::string, std::string> by_hash;
  json::array hashes;
  for (const auto& phone : phones) {
    auto h = detail::Sha256Hex(phone);
    by_hash[h] = phone;
    hashes.push_back(json::value(h));
  }
  return CallAs<std::vector<ContactMatch>>(
      *impl_, {{"op", "contacts.discover"}, {"hashes", std::move(hashes)}}, false,
      [by_hash](const json::object& o) -> Result<std::vector<ContactMatch>> {
        std::vector<ContactMatch> out;
        if (const auto* list = detail::Arr(o, "matches")) {
          for (const auto& v : *list) {
            if (!v.is_object()) continue;
            const auto& m = v.get_object();
            auto it = by_hash.find(detail::Str(m, "hash"));
            out.push_back({it != by_hash.end() ? it->second : std::string(),
                           detail::Str(m, "user_id"), detail::Str(m, "name"),
                           detail::Str(m, "avatar_media_id")});
          }
        }
        return out;
      });
}

// ---- Media
// ------------------------------------------------------------------------------------------

Future<MediaInfo> Client::UploadMedia(std::string bytes, std::string content_type) {
  auto p = MakePromise<MediaInfo>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), bytes = std::move(bytes), content_type, p]() mutable {
    impl->UploadMedia(std::move(bytes), content_type,
                      [p](Result<MediaInfo> r) { p->set_value(std::move(r)); });
  });
  return f;
}

Future<std::string> Client::DownloadMedia(const std::string& media_id) {
  auto p = MakePromise<std::string>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), media_id, p] {
    impl->DownloadMedia(media_id, [p](Result<std::string> r) { p->set_value(std::move(r)); });
  });
  return f;
}

Future<SentMessage> Client::SendFile(const Conv& to, std::string bytes, std::string name,
                                     std::string content_type) {
  auto p = MakePromise<SentMessage>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), to, bytes = std::move(bytes), name, content_type, p]() mutable {
    impl->SendFile(to, std::move(bytes), name, content_type, p);
  });
  return f;
}

Future<std::string> Client::DownloadFile(const std::string& msg_id) {
  auto p = MakePromise<std::string>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), msg_id, p] {
    impl->DownloadFile(msg_id, [p](Result<std::string> r) { p->set_value(std::move(r)); });
  });
  return f;
}

// ---- Raw ops
// -----------------------------------------------------------------------------------------

Future<std::string> Client::Request(const std::string& frame_json) {
  auto frame = detail::ParseObject(frame_json);
  if (!frame || detail::Str(*frame, "op").empty()) {
    return Ready<std::string>(Fail("invalid", "a JSON object with an \"op\" is required"));
  }
  return CallAs<std::string>(
      *impl_, std::move(*frame), false,
      [](const json::object& o) -> Result<std::string> { return json::serialize(o); });
}

}  // namespace parley::sdk
