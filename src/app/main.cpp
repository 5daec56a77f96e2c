// parleyd: reads the configuration, wires the backends it names, serves.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "app/admin.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "core/app.hpp"
#include "core/core.hpp"
#include "core/media_api.hpp"
#include "media/blob_store.hpp"
#include "media/processor.hpp"
#include "net/server.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/rocksdb/rocksdb_store.hpp"

namespace {

using namespace parley;

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

HostPort SplitListen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("config: listen: expected HOST:PORT");
  HostPort hp;
  hp.host = listen.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  hp.port = static_cast<std::uint16_t>(std::stoul(listen.substr(colon + 1)));
  return hp;
}

// Store latencies go to one histogram family; the handles are cached so the
// registry's lock is taken once per op name, not once per operation.
class StoreLatency {
 public:
  explicit StoreLatency(Registry& r) : registry_(r) {}
  void Observe(std::string_view op, double seconds) {
    Histogram* h = nullptr;
    {
      std::lock_guard lock(mu_);
      auto it = cache_.find(op);
      if (it == cache_.end()) {
        h = &registry_.GetHistogram("parley_store_op_seconds", "Store operation latency",
                                    {{"op", std::string(op)}});
        cache_.emplace(std::string(op), h);
      } else {
        h = it->second;
      }
    }
    h->Observe(seconds);
  }

 private:
  struct Hash : std::hash<std::string_view> {
    using is_transparent = void;
  };
  Registry& registry_;
  std::mutex mu_;
  std::unordered_map<std::string, Histogram*, Hash, std::equal_to<>> cache_;
};

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int Serve(const Config& cfg) {
  InitLogging(cfg.log_level);
  RaiseFdLimit();
  std::filesystem::create_directories(cfg.data_dir);
  Registry metrics;
  StoreLatency latency(metrics);
  auto observer = [&latency](std::string_view op, double s) { latency.Observe(op, s); };
  std::unique_ptr<store::Store> store;
  std::string secret;
  if (store::IsPostgresUrl(cfg.store)) {
    // Shared by every node: schema and secrets live in the database.
    auto opened = store::OpenPostgresStore({.url = cfg.store, .observer = observer});
    if (!opened) throw std::runtime_error("store: " + opened.error().message);
    store = std::move(*opened);
    if (!cfg.jwt_secret.empty()) {
      secret = core::LoadOrCreateSecret(cfg.jwt_secret, cfg.data_dir);
    } else {
      // The code-hashing key is derived from this one (TokenService).
      auto shared =
          store::PostgresSharedSecret(cfg.store, "jwt", core::TokenService::NewRefreshToken());
      if (!shared) throw std::runtime_error("store: " + shared.error().message);
      secret = std::move(*shared);
    }
  } else {
    secret = core::LoadOrCreateSecret(cfg.jwt_secret, cfg.data_dir);
    store::RocksOptions store_options;
    store_options.path = (std::filesystem::path(cfg.data_dir) / "db").string();
    store_options.sync = cfg.store_sync;
    store_options.observer = observer;
    auto opened = store::OpenRocksStore(store_options);
    if (!opened) throw std::runtime_error("store: " + opened.error().message);
    store = std::move(*opened);
  }

  core::TokenService tokens(secret, cfg.access_token_ttl_s);
  auto sms = core::MakeSmsSender(cfg.sms_provider);
  core::Core core(cfg, *store, metrics, tokens, *sms, std::to_string(cfg.node_id));
  if (std::string where; !media::CodecsPresent(&where)) {
    PLOG_WARN("media codecs module missing: uploads are stored without thumbnails or checks",
              "path={}", where);
  }
  const std::string media_dir = cfg.media_dir.empty()
                                    ? (std::filesystem::path(cfg.data_dir) / "media").string()
                                    : cfg.media_dir;
  auto blobs = media::OpenLocalBlobStore(media_dir);
  if (!blobs) throw std::runtime_error("media: " + blobs.error().message);
  core::MediaApi media_api(core, **blobs);
  core::App app(core, &media_api);

  const HostPort hp = SplitListen(cfg.listen);
  net::ServerOptions options;
  options.host = hp.host;
  options.port = hp.port;
  options.threads =
      cfg.threads != 0 ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  options.tls_cert_file = cfg.tls_cert;
  options.tls_key_file = cfg.tls_key;
  options.auth_timeout = std::chrono::seconds(cfg.auth_timeout_s);
  options.idle_timeout = std::chrono::seconds(cfg.idle_timeout_s);
  options.ping_interval = std::chrono::seconds(std::max(1u, cfg.idle_timeout_s / 3));
  options.max_frame_bytes = cfg.max_frame_bytes;
  options.shutdown_timeout = std::chrono::seconds(cfg.shutdown_timeout_s);
  net::Server server(options, app, metrics);
  const std::string address = server.Listen();
  PLOG_INFO("parleyd started", "listen={} data_dir={} threads={} node={}", address,
            LogQuote(cfg.data_dir), options.threads, cfg.node_id);
  std::printf("parleyd listening on %s://%s\n", server.tls() ? "https" : "http", address.c_str());
  std::fflush(stdout);

  core.PurgeExpired();
  server.Every(std::chrono::minutes(10), [&core] { core.PurgeExpired(); });
  // Often enough that an upload outlives its TTL by at most a quarter of it.
  const auto sweep_s = std::clamp<std::uint32_t>(cfg.media_upload_ttl_s / 4, 1, 600);
  media_api.SweepStaleUploads();
  server.Every(std::chrono::seconds(sweep_s), [&media_api] { media_api.SweepStaleUploads(); });
  server.Run();
  media_api.Stop();  // answers still owed go out before the store closes
  PLOG_INFO("parleyd draining", "{}", "");
  store->Close();
  PLOG_INFO("parleyd stopped", "{}", "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "admin") {
    return parley::app::RunAdmin(argc - 1, argv + 1);
  }
  parley::Config cfg;
  try {
    cfg = parley::LoadConfig(argc, argv, parley::ParleyEnvironment());
  } catch (const std::exception& e) {
    std::cerr << "parleyd: " << e.what() << "\n";
    return 2;
  }
  try {
    return Serve(cfg);
  } catch (const std::exception& e) {
    std::cerr << "parleyd: " << e.what() << "\n";
    return 1;
  }
}
