// parleyd: reads the configuration, wires the backends it names, serves.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "app/admin.hpp"
#include "bus/callback_thread.hpp"
#include "bus/local/local_bus.hpp"
#include "bus/redis/redis_bus.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "core/app.hpp"
#include "core/core.hpp"
#include "core/media/media_api.hpp"
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

// The bus named by `bus` (none: the in-process one, which reaches no other
// node and costs nothing).
std::unique_ptr<bus::Bus> MakeBus(const Config& cfg, bus::Executor executor,
                                  bus::BusMetrics& metrics) {
  if (cfg.bus == "none") {
    return bus::MakeLocalBus(bus::NewLocalHub(), cfg.node_id, std::move(executor), &metrics);
  }
  auto options = bus::ParseRedisUrl(cfg.bus);
  if (!options) throw std::runtime_error("config: bus: " + options.error().message);
  options->node_id = cfg.node_id;
  return bus::MakeRedisBus(std::move(*options), std::move(executor), &metrics);
}

int Serve(Config cfg) {
  InitLogging(cfg.log_level);
  if (cfg.node_id.empty()) cfg.node_id = bus::GenerateNodeId();
  RaiseFdLimit();
  std::filesystem::create_directories(cfg.data_dir);
  Registry metrics;
  StoreLatency latency(metrics);
  auto observer = [&latency](std::string_view op, double s) { latency.Observe(op, s); };
  std::unique_ptr<store::Store> store;
  std::string secret;
  if (store::IsPostgresUrl(cfg.store)) {
    // Shared by every node: schema and secrets live in the database.
    auto opened = store::OpenPostgresStore({.url = cfg.store,
                                            .readers = StoreReaderThreads(cfg) + 2u,
                                            .observer = observer,
                                            .metrics = &metrics});
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
    store_options.writer_priority = static_cast<int>(cfg.store_writer_priority);
    store_options.min_free_bytes = static_cast<std::uint64_t>(cfg.store_min_free_mib) << 20;
    store_options.observer = observer;
    auto opened = store::OpenRocksStore(store_options);
    if (!opened) throw std::runtime_error("store: " + opened.error().message);
    store = std::move(*opened);
  }

  core::TokenService tokens(secret, cfg.access_token_ttl_s);
  core::SmsOptions sms_options;
  sms_options.connect_timeout = std::chrono::milliseconds(cfg.sms_connect_timeout_ms);
  sms_options.read_timeout = std::chrono::milliseconds(cfg.sms_read_timeout_ms);
  sms_options.queue_max = cfg.sms_queue_max;
  auto sms = core::MakeSmsSender(cfg.sms_provider, sms_options);
  core::Core core(cfg, *store, metrics, tokens, *sms, cfg.node_id);
  if (!cfg.media_worker.empty()) media::SetMediaProcessProgram(cfg.media_worker);
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
  const media::VolumeReserve media_volume(media_dir,
                                          static_cast<std::uint64_t>(cfg.media_min_free_mib) << 20);
  core.media_volume = &media_volume;
  std::optional<core::WebStatic> web;
  if (auto web_dir = core::WebStatic::Resolve(cfg.web_dir)) {
    web.emplace(*web_dir, !cfg.tls_cert.empty() && !cfg.tls_key.empty());
    PLOG_INFO("web client", "dir={}", LogQuote(*web_dir));
  } else if (cfg.web_dir != "off") {
    PLOG_WARN("web client not served: no index.html", "web_dir={}", LogQuote(cfg.web_dir));
  }
  core::App app(core, &media_api, web ? &*web : nullptr);

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
  options.max_connections_per_address = cfg.max_connections_per_address;
  options.max_unauthenticated_per_address = cfg.max_unauthenticated_per_address;
  options.max_connections = cfg.max_connections;
  options.fd_reserve = cfg.fd_reserve;
  options.trusted_proxies = cfg.trusted_proxies;
  options.connection_caps_exempt = cfg.connection_caps_exempt;
  net::Server server(options, app, metrics);

  // The bus, and this node's id claimed on it before anything is served. An
  // unreachable bus does not stop the start: /ready answers 503 until it is
  // there, and the claim is made then.
  bus::BusMetrics bus_metrics(metrics);
  bus::CallbackThread bus_callbacks;
  auto the_bus = MakeBus(cfg, bus_callbacks.executor(), bus_metrics);
  std::atomic<bool> claim_lost{false};
  bus::Handlers handlers;
  handlers.on_state = [&cfg](bool up) {
    if (up) {
      PLOG_INFO("bus connected", "bus={}", LogQuote(cfg.bus));
    } else {
      PLOG_WARN("bus disconnected; /ready answers 503 until it is back", "bus={}",
                LogQuote(cfg.bus));
    }
  };
  handlers.on_claim_lost = [&server, &claim_lost, &cfg](const std::string& holder) {
    PLOG_ERROR("node id in use by another live node; stopping", "node={} holder={}", cfg.node_id,
               LogQuote(holder));
    claim_lost = true;
    server.Shutdown();
  };
  // Wakes, typing, control and presence from the other nodes (core.cpp).
  core.SetBusHandlers(handlers);
  core.bus = the_bus.get();
  the_bus->Start(std::move(handlers));
  std::promise<Status> claimed;
  the_bus->ClaimNode(3000, [&claimed](Status s) { claimed.set_value(std::move(s)); });
  if (Status s = claimed.get_future().get(); !s) {
    if (s.error().code != Errc::kUnavailable) {
      the_bus->Stop();
      throw std::runtime_error("bus: " + s.error().message);
    }
    PLOG_WARN("bus not reachable at start; serving, /ready answers 503 until it is", "bus={}",
              LogQuote(cfg.bus));
  }

  const std::string address = server.Listen();
  PLOG_INFO("parleyd started", "listen={} data_dir={} threads={} node={} bus={}", address,
            LogQuote(cfg.data_dir), options.threads, cfg.node_id, LogQuote(cfg.bus));
  std::printf("parleyd listening on %s://%s\n", server.tls() ? "https" : "http", address.c_str());
  std::fflush(stdout);

  core.PurgeExpired();
  server.Every(std::chrono::minutes(10), [&core] { core.PurgeExpired(); });
  // Often enough that an upload outlives its TTL by at most a quarter of it.
  const auto sweep_s = std::clamp<std::uint32_t>(cfg.media_upload_ttl_s / 4, 1, 600);
  media_api.SweepStaleUploads();
  server.Every(std::chrono::seconds(sweep_s), [&media_api] { media_api.SweepStaleUploads(); });
  if (core.Clustered()) {
    // A writer that died between its commit and its wake: every local user's
    // mailbox head is read again, 1,000 users a second round robin (small
    // slices, so that one tick never holds an I/O thread long).
    server.Every(std::chrono::seconds(1), [&core] { core.CheckHeads(1000); });
  }
  server.Run();
  // Requests and session tasks the read pool still holds finish before what
  // they use stops (the App and MediaApi go before core).
  core.reads.Stop();
  media_api.Stop();  // answers still owed go out before the store closes
  the_bus->Stop();   // withdraws this node's claim and registrations
  core.bus = nullptr;
  bus_callbacks.Stop();
  PLOG_INFO("parleyd draining", "{}", "");
  store->Close();
  PLOG_INFO("parleyd stopped", "{}", "");
  return claim_lost ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "admin") {
    return parley::app::RunAdmin(argc - 1, argv + 1);
  }
  // A child decoding one media file (media/processor.hpp, ProcessIsolated).
  if (argc > 1 && std::string_view(argv[1]) == "media-process") {
    return parley::media::RunMediaProcess(argc - 1, argv + 1);
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
