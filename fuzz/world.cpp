#include "world.hpp"

#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <thread>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "core/account/sms.hpp"
#include "core/account/tokens.hpp"
#include "core/media/media_api.hpp"
#include "media/blob_store.hpp"
#include "store/rocksdb/rocksdb_store.hpp"

namespace parley::fuzz {

namespace json = boost::json;

namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "fuzz world: %s\n", why.c_str());
  std::abort();
}

constexpr std::size_t kMaxFrameBytes = 256 * 1024;

}  // namespace

struct World::Parts {
  std::string dir;
  Config config;
  Registry metrics;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<core::TokenService> tokens;
  std::unique_ptr<core::SmsSender> sms;
  std::unique_ptr<core::Core> core;
  std::unique_ptr<media::BlobStore> blobs;
  std::unique_ptr<core::MediaApi> media;
  std::unique_ptr<core::App> app;
};

World& World::Get() {
  // Never destroyed: libFuzzer leaves by exit() from any thread.
  static World* world = new World();
  return *world;
}

World::World() : parts_(std::make_unique<Parts>()) {
  InitLogging("error");
  char tmpl[] = "/tmp/parley-fuzz-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp failed");
  Parts& p = *parts_;
  p.dir = tmpl;
  static std::string to_remove = p.dir;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(to_remove, ec);
  });
  Config& c = p.config;
  c.data_dir = p.dir;
  c.store_sync = false;
  // The fuzzer sends thousands of frames a second from one device: limits
  // that would answer rate_limited to nearly all of them are opened up, so
  // that the ops themselves are reached. The limits' own logic has tests.
  c.device_send_rate = 0;
  c.device_write_rate = 0;
  c.device_fanout_rate = 0;
  c.lookup_rate = 0;
  c.lookup_burst = 0;
  c.keys_bundle_per_minute = 0;
  c.otp_per_address_per_hour = 0;
  c.otp_per_phone = 0;
  c.contacts_per_day = 0;
  c.otp_burn_delay_s = 0;
  c.media_workers = 1;

  store::RocksOptions so;
  so.path = p.dir + "/db";
  so.sync = false;
  so.min_free_bytes = 0;
  auto opened = store::OpenRocksStore(so);
  if (!opened) Die("store: " + opened.error().message);
  p.store = std::move(*opened);
  p.tokens = std::make_unique<core::TokenService>(std::string(48, 'k'), 900);
  p.sms = core::MakeSmsSender("log");
  p.core = std::make_unique<core::Core>(c, *p.store, p.metrics, *p.tokens, *p.sms, "fuzz");
  auto blobs = media::OpenLocalBlobStore(p.dir + "/media");
  if (!blobs) Die("media: " + blobs.error().message);
  p.blobs = std::move(*blobs);
  p.media = std::make_unique<core::MediaApi>(*p.core, *p.blobs);
  p.app = std::make_unique<core::App>(*p.core, p.media.get(), nullptr);
  core_ = p.core.get();
  app_ = p.app.get();

  // Two users signed in through the real endpoint.
  auto sign_in = [&](const std::string& phone) {
    store::OtpCode otp;
    otp.phone = phone;
    otp.code_hash = p.tokens->HashOtp(phone, "123456");
    otp.expires_ms = NowMs() + 3'600'000;
    std::promise<Status> put;
    p.store->PutOtp(otp, [&put](Status s) { put.set_value(std::move(s)); });
    if (auto s = put.get_future().get(); !s) Die("put otp: " + s.error().message);
    net::HttpRequest r;
    r.method = "POST";
    r.target = r.path = "/v1/auth/verify";
    r.remote_address = "192.0.2.1";
    r.headers.push_back({"Content-Type", "application/json"});
    r.body =
        R"({"phone":")" + phone + R"(","code":"123456","device":{"name":"fuzz","platform":"cli"}})";
    std::promise<net::HttpResponse> answered;
    app_->HandleHttp(std::move(r),
                     [&answered](net::HttpResponse resp) { answered.set_value(std::move(resp)); });
    net::HttpResponse resp = answered.get_future().get();
    if (resp.status != 200) Die("sign in: " + std::to_string(resp.status) + " " + resp.body);
    const json::object o = json::parse(resp.body).as_object();
    User u;
    u.user = *ParseId(o.at("user_id").as_string());
    u.device = *ParseId(o.at("device_id").as_string());
    u.token = std::string(o.at("access_token").as_string());
    return u;
  };
  alice_ = sign_in("+15550000001");
  bob_ = sign_in("+15550000002");

  // A group of the two, made by alice over a session.
  auto conn = std::make_shared<FakeConnection>();
  std::vector<std::string> frames;
  auto session = app_->OpenWebSocket(conn, net::HttpRequest{});
  session->OnFrame(R"({"op":"hello","rid":"h","token":")" + alice_.token + R"("})");
  session->OnFrame(R"({"op":"group.create","rid":"g","name":"fuzz","members":[")" +
                   IdToString(bob_.user) + R"("]})");
  Settle();
  conn->RunPosted();
  group_ = conn->group_id();
  if (group_ == 0) Die("group.create did not answer");
  session->OnClose();
}

std::string World::Expand(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '@' && i + 1 < text.size()) {
      switch (text[i + 1]) {
        case 'A':
          out += IdToString(alice_.user);
          ++i;
          continue;
        case 'B':
          out += IdToString(bob_.user);
          ++i;
          continue;
        case 'D':
          out += IdToString(alice_.device);
          ++i;
          continue;
        case 'G':
          out += IdToString(group_);
          ++i;
          continue;
        case 'T':
          out += alice_.token;
          ++i;
          continue;
        default:
          break;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

void World::Settle() {
  // The writer answers in the order it was given work: once a write made
  // now has answered, so has everything before it.
  for (int round = 0; round < 2; ++round) {
    std::promise<void> done;
    core_->store.TouchDevice(alice_.user, alice_.device, NowMs(),
                             [&done](Status) { done.set_value(); });
    if (done.get_future().wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      Die("the store writer did not answer within 30 s");
    }
  }
}

bool FakeConnection::Send(std::string frame) {
  if (frame.size() > kMaxFrameBytes) Die("a frame over 256 KiB: " + frame.substr(0, 200));
  boost::system::error_code ec;
  json::value v = json::parse(frame, ec);
  if (ec || !v.is_object() || !v.as_object().contains("op")) {
    Die("a frame that is not a JSON object with an op: " + frame.substr(0, 200));
  }
  const json::object& o = v.as_object();
  if (const auto* op = o.if_contains("op"); op->is_string() && op->as_string() == "ok") {
    if (const auto* gid = o.if_contains("group_id"); gid != nullptr && gid->is_string()) {
      if (auto id = ParseId(gid->as_string())) {
        std::lock_guard lock(mu_);
        group_id_ = *id;
      }
    }
  }
  return true;
}

void FakeConnection::Close(std::uint16_t, std::string) {
  std::lock_guard lock(mu_);
  closed_ = true;
}

void FakeConnection::Post(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  posted_.push_back(std::move(fn));
}

void FakeConnection::RunPosted() {
  for (;;) {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(posted_);
    }
    if (batch.empty()) return;
    for (auto& fn : batch) fn();
  }
}

bool FakeConnection::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::uint64_t FakeConnection::group_id() const {
  std::lock_guard lock(mu_);
  return group_id_;
}

}  // namespace parley::fuzz
