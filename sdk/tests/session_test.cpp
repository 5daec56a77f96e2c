// The connection's life through the SDK against a real parleyd: login and
// its persistence, token refresh (proactive and after 4401), stop
// conditions (4403 device revoked, 4409 replaced, refused refresh token),
// the outbox across client restarts, devices, profiles, and TLS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <thread>

#include "parley/store.hpp"
#include "sdk_helpers.hpp"

namespace parley::sdk::testing {
namespace {

class SessionTest : public ServerSuite {
 protected:
  // Access tokens live 2 seconds: refresh is exercised all the time.
  static void SetUpTestSuite() { StartServer({"--access-token-ttl-s", "2"}); }
  static void TearDownTestSuite() { StopServer(); }
};

TEST_F(SessionTest, LoginIsStoredInTheProfile) {
  const std::string phone = NextPhone();
  std::string user, device;
  {
    auto c = Login(phone, "d1");
    ASSERT_TRUE(c);
    user = c->account()->user_id;
    device = c->account()->device_id;
    EXPECT_FALSE(user.empty());
    EXPECT_TRUE(c->account()->new_user);
  }
  auto again = Client::Open(OptionsFor(*server_, Dir("d1", phone)));
  ASSERT_TRUE(again);
  auto a = (*again)->account();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->user_id, user);
  EXPECT_EQ(a->device_id, device);
  EXPECT_EQ(a->phone, phone);
  // A second device of the same phone is the same user.
  auto d2 = Login(phone, "d2");
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->account()->user_id, user);
  EXPECT_NE(d2->account()->device_id, device);
}

TEST_F(SessionTest, WrongCodeIsRefused) {
  auto c = Client::Open(OptionsFor(*server_, dirs_.Sub("wrong")));
  ASSERT_TRUE(c);
  const std::string phone = NextPhone();
  ASSERT_TRUE((*c)->RequestCode(phone).get());
  auto r = (*c)->Verify(phone, "000000").get();
  // One in a million: the real code is 000000.
  if (!r) {
    EXPECT_EQ(r.error().code, "invalid_code");
  }
  auto bad = (*c)->RequestCode("12345").get();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "invalid_phone");
  EXPECT_EQ(bad.error().http_status, 400);
}

TEST_F(SessionTest, NotLoggedInStopsAtOnce) {
  auto c = Client::Open(OptionsFor(*server_, dirs_.Sub("nobody")));
  ASSERT_TRUE(c);
  (*c)->Start();
  auto stopped = WaitFor<ConnectionEvent>(
      **c, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kStopped; });
  ASSERT_TRUE(stopped);
  ASSERT_TRUE(stopped->error);
  EXPECT_EQ(stopped->error->code, "not_logged_in");
  auto r = (*c)->ListDevices().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "not_logged_in");
}

TEST_F(SessionTest, AccessTokenIsRefreshedBeforeItExpiresAndReconnectsUseTheNewOne) {
  const std::string phone = NextPhone();
  auto c = Login(phone, "r1");
  ASSERT_TRUE(c);
  auto store = Store::Open(Dir("r1", phone) + "/parley.db");
  ASSERT_TRUE(store);
  const auto first = (*store)->GetTokens();
  ASSERT_TRUE(first && *first);
  ASSERT_TRUE(StartSynced(*c));
  std::this_thread::sleep_for(4500ms);  // two lifetimes of the access token
  const auto later = (*store)->GetTokens();
  ASSERT_TRUE(later && *later);
  EXPECT_NE((*later)->access_token, (*first)->access_token);
  EXPECT_NE((*later)->refresh_token, (*first)->refresh_token);  // rotated
  EXPECT_GT((*later)->access_expires_ms, (*first)->access_expires_ms);

  // A reconnect now presents a token that the server accepts.
  Drain(*c, 10ms);
  c->DropConnection();
  auto online = WaitFor<ConnectionEvent>(
      *c, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kOnline; });
  ASSERT_TRUE(online);
  auto devices = c->ListDevices().get();
  ASSERT_TRUE(devices) << devices.error().ToString();
  EXPECT_EQ(devices->size(), 1u);
}

TEST_F(SessionTest, ExpiredAccessTokenRefusedAtHelloIsRefreshedAndTheClientGetsOnline) {
  const std::string phone = NextPhone();
  {
    auto c = Login(phone, "x1");
    ASSERT_TRUE(c);
  }
  std::this_thread::sleep_for(2500ms);  // the access token is dead now
  // Make the profile believe it is still good, so that the client presents
  // it and the server refuses it (token_expired, then close 4401).
  {
    auto store = Store::Open(Dir("x1", phone) + "/parley.db");
    ASSERT_TRUE(store);
    auto t = (*store)->GetTokens();
    ASSERT_TRUE(t && *t);
    Tokens lie = **t;
    lie.access_expires_ms += 3600 * 1000;
    ASSERT_TRUE((*store)->SaveTokens(lie));
  }
  auto c = Client::Open(OptionsFor(*server_, Dir("x1", phone)));
  ASSERT_TRUE(c);
  (*c)->Start();
  auto refused = WaitFor<ConnectionEvent>(
      **c, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kOffline; });
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->close_code, 4401);
  ASSERT_TRUE((*c)->WaitForState(ConnectionEvent::State::kOnline, 10s));
  EXPECT_TRUE((*c)->ListDevices().get());
}

TEST_F(SessionTest, RefusedRefreshTokenStopsTheClientAsLoggedOut) {
  const std::string phone = NextPhone();
  {
    auto c = Login(phone, "l1");
    ASSERT_TRUE(c);
  }
  {
    auto store = Store::Open(Dir("l1", phone) + "/parley.db");
    ASSERT_TRUE(store);
    auto t = (*store)->GetTokens();
    ASSERT_TRUE(t && *t);
    Tokens bad = **t;
    bad.refresh_token = "not-a-refresh-token";
    bad.access_expires_ms = 0;  // refresh first
    ASSERT_TRUE((*store)->SaveTokens(bad));
  }
  auto c = Client::Open(OptionsFor(*server_, Dir("l1", phone)));
  ASSERT_TRUE(c);
  (*c)->Start();
  auto stopped = WaitFor<ConnectionEvent>(
      **c, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kStopped; });
  ASSERT_TRUE(stopped);
  ASSERT_TRUE(stopped->error);
  EXPECT_EQ(stopped->error->code, "logged_out");
}

TEST_F(SessionTest, RemovedDeviceStopsWithDeviceRevoked) {
  const std::string phone = NextPhone();
  auto d1 = Login(phone, "v1");
  auto d2 = Login(phone, "v2");
  ASSERT_TRUE(d1 && d2);
  ASSERT_TRUE(StartSynced(*d1));
  ASSERT_TRUE(StartSynced(*d2));
  auto devices = d1->ListDevices().get();
  ASSERT_TRUE(devices);
  ASSERT_EQ(devices->size(), 2u);
  int current = 0;
  for (const auto& d : *devices) current += d.current ? 1 : 0;
  EXPECT_EQ(current, 1);

  ASSERT_TRUE(d1->RemoveDevice(d2->account()->device_id).get());
  auto stopped = WaitFor<ConnectionEvent>(
      *d2, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kStopped; });
  ASSERT_TRUE(stopped);
  ASSERT_TRUE(stopped->error);
  EXPECT_EQ(stopped->error->code, "device_revoked");
  EXPECT_EQ(d2->state(), ConnectionEvent::State::kStopped);
  // Ops on a stopped client answer with the reason at once.
  auto r = d2->ListDevices().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "device_revoked");
  // The remaining device hears about it.
  auto removed =
      WaitFor<DeviceEvent>(*d1, [](const DeviceEvent& e) { return e.change == "removed"; });
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->device_id, d2->account()->device_id);
}

TEST_F(SessionTest, ASecondConnectionOfTheSameDeviceReplacesTheFirstWhichDoesNotFightBack) {
  const std::string phone = NextPhone();
  auto first = Login(phone, "p1");
  ASSERT_TRUE(first);
  ASSERT_TRUE(StartSynced(*first));
  auto second = Client::Open(OptionsFor(*server_, Dir("p1", phone)));
  ASSERT_TRUE(second);
  ASSERT_TRUE(StartSynced(**second));
  auto stopped = WaitFor<ConnectionEvent>(
      *first, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kStopped; });
  ASSERT_TRUE(stopped);
  ASSERT_TRUE(stopped->error);
  EXPECT_EQ(stopped->error->code, "replaced");
  // It stays stopped: the newer connection keeps working.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(first->state(), ConnectionEvent::State::kStopped);
  EXPECT_TRUE((*second)->ListDevices().get());
  // Until the application asks to take over.
  first->Reconnect();
  ASSERT_TRUE(first->WaitForState(ConnectionEvent::State::kOnline, 10s));
  auto taken = WaitFor<ConnectionEvent>(**second, [](const ConnectionEvent& e) {
    return e.state == ConnectionEvent::State::kStopped;
  });
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->error->code, "replaced");
}

TEST_F(SessionTest, QueuedMessageSurvivesTheClientAndGoesOutNextTime) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto b = Login(pb, "qb");
  ASSERT_TRUE(b);
  const std::string bu = b->account()->user_id;
  {
    auto a = Login(pa, "qa");
    ASSERT_TRUE(a);
  }
  // A server address where nothing listens.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int dead_port = ntohs(addr.sin_port);
  std::string cmid;
  {
    auto options = OptionsFor(*server_, Dir("qa", pa));
    options.server_url = "http://127.0.0.1:" + std::to_string(dead_port);
    options.request_timeout = 1s;
    auto a = Client::Open(std::move(options));
    ASSERT_TRUE(a);
    (*a)->Start();
    auto r = (*a)->SendText(Conv::User(bu), "written offline").get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "timeout");
    auto offline = WaitFor<ConnectionEvent>(
        **a, [](const ConnectionEvent& e) { return e.state == ConnectionEvent::State::kOffline; });
    ASSERT_TRUE(offline);
    auto local = (*a)->LocalMessages(Conv::User(bu)).get();
    ASSERT_TRUE(local);
    ASSERT_EQ(local->size(), 1u);
    EXPECT_EQ(local->front().status, MessageStatus::kPending);
    cmid = local->front().client_msg_id;
  }
  ::close(fd);
  ASSERT_TRUE(StartSynced(*b));
  auto a = Client::Open(OptionsFor(*server_, Dir("qa", pa)));
  ASSERT_TRUE(a);
  (*a)->Start();
  auto sent = WaitFor<MessageStatusEvent>(**a, [&](const MessageStatusEvent& s) {
    return s.client_msg_id == cmid && s.status == MessageStatus::kSent;
  });
  ASSERT_TRUE(sent);
  auto m = WaitFor<MessageEvent>(*b);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->message.text, "written offline");
  EXPECT_EQ(m->message.client_msg_id, cmid);
}

TEST_F(SessionTest, ProfilesAndContacts) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Login(pa, "pa");
  auto b = Login(pb, "pb");
  ASSERT_TRUE(a && b);
  a->Start();
  b->Start();
  ProfileUpdate u;
  u.name = "Alice";
  u.status_text = "at work";
  ASSERT_TRUE(a->SetProfile(u).get());
  auto profiles = b->GetProfiles({a->account()->user_id}).get();
  ASSERT_TRUE(profiles) << profiles.error().ToString();
  ASSERT_EQ(profiles->size(), 1u);
  EXPECT_EQ((*profiles)[0].name, "Alice");
  EXPECT_EQ((*profiles)[0].status_text, "at work");
  auto found = b->DiscoverContacts({pa, "+19999999999"}).get();
  ASSERT_TRUE(found) << found.error().ToString();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].phone, pa);
  EXPECT_EQ((*found)[0].user_id, a->account()->user_id);
  // A raw op, for what the SDK does not wrap.
  auto raw = a->Request(R"({"op":"ping"})").get();
  ASSERT_TRUE(raw) << raw.error().ToString();
  auto unknown = a->Request(R"({"op":"no.such.op"})").get();
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "unknown_op");
  // Raw media, as it is: up and down again.
  auto media = a->UploadMedia("some bytes", "application/octet-stream").get();
  ASSERT_TRUE(media) << media.error().ToString();
  EXPECT_EQ(media->size, 10);
  auto back = a->DownloadMedia(media->media_id).get();
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, "some bytes");
}

class TlsTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer({}, /*tls=*/true); }
  static void TearDownTestSuite() { StopServer(); }
};

TEST_F(TlsTest, VerifiedTlsWithTheServersCertificateAsCa) {
  const std::string pa = NextPhone(), pb = NextPhone();
  const std::string url = "https://localhost:" + std::to_string(server_->endpoint().port);
  auto tweak = [&](ClientOptions& o) {
    o.server_url = url;
    o.tls_verify = true;
    o.ca_file = server_->data_dir() + "/cert.pem";
  };
  auto a = Login(pa, "ta", tweak);
  auto b = Login(pb, "tb", tweak);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(StartSynced(*a));
  ASSERT_TRUE(StartSynced(*b));
  ASSERT_TRUE(a->SendText(Conv::User(b->account()->user_id), "over TLS").get());
  auto m = WaitFor<MessageEvent>(*b);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->message.text, "over TLS");

  // Without the CA the certificate is refused.
  auto options = OptionsFor(*server_, dirs_.Sub("untrusted"));
  options.server_url = url;
  options.tls_verify = true;
  auto c = Client::Open(std::move(options));
  ASSERT_TRUE(c);
  auto r = (*c)->RequestCode(NextPhone()).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "network");
}

}  // namespace
}  // namespace parley::sdk::testing
