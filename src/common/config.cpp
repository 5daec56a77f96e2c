#include "common/config.hpp"

#include "common/address.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <variant>

extern char** environ;

namespace parley {
namespace {

using Field = std::variant<std::string Config::*, std::uint32_t Config::*, bool Config::*>;

struct KeyDef {
  const char* name;
  const char* help;
  Field field;
};

// The single source of every key: flags, environment variables, file keys,
// defaults and --help are all derived from this table.
const std::array kKeys = {
    KeyDef{"listen", "HTTP and WebSocket address HOST:PORT ([::1]:PORT for IPv6; port 0 picks one)",
           &Config::listen},
    KeyDef{"data_dir", "directory for the database, media and generated keys", &Config::data_dir},
    KeyDef{"sms_provider", "where one-time codes go: log, file:<path> or webhook:<url>",
           &Config::sms_provider},
    KeyDef{"otp_per_address_per_hour",
           "codes one source address may ask for per hour (0: no limit)",
           &Config::otp_per_address_per_hour},
    KeyDef{"otp_per_phone", "codes one phone number may ask for per 10 minutes (0: no limit)",
           &Config::otp_per_phone},
    KeyDef{"device_send_rate", "sends per second per device, bursts up to 4x (0: no limit)",
           &Config::device_send_rate},
    KeyDef{"config", "TOML file with any of these keys", &Config::config},
    KeyDef{"threads", "I/O threads (0: one per core)", &Config::threads},
    KeyDef{"bus", "none, or redis://HOST:PORT: registry and delivery across nodes", &Config::bus},
    KeyDef{"node_id",
           "this node's name, unique among live nodes: 1-64 of A-Z a-z 0-9 . _ - "
           "(a number below 1024 is also its id bits; empty: generated at start)",
           &Config::node_id},
    KeyDef{"log_level", "trace, debug, info, warn or error", &Config::log_level},
    KeyDef{"tls_cert", "PEM certificate chain; with tls_key, serve TLS", &Config::tls_cert},
    KeyDef{"tls_key", "PEM private key; with tls_cert, serve TLS", &Config::tls_key},
    KeyDef{"shutdown_timeout_s", "seconds to drain connections on SIGTERM",
           &Config::shutdown_timeout_s},
    KeyDef{"jwt_secret", "HS256 signing key (empty: generated once into <data_dir>/jwt.key)",
           &Config::jwt_secret},
    KeyDef{"access_token_ttl_s", "access token lifetime in seconds", &Config::access_token_ttl_s},
    KeyDef{"refresh_token_ttl_s", "refresh token lifetime in seconds",
           &Config::refresh_token_ttl_s},
    KeyDef{"otp_ttl_s", "one-time code lifetime in seconds", &Config::otp_ttl_s},
    KeyDef{"max_devices", "devices one account may have", &Config::max_devices},
    KeyDef{"contacts_per_day", "contact lookups one account may make per day",
           &Config::contacts_per_day},
    KeyDef{"auth_timeout_s", "seconds a WebSocket has to authenticate", &Config::auth_timeout_s},
    KeyDef{"idle_timeout_s", "seconds without a frame before a WebSocket is closed",
           &Config::idle_timeout_s},
    KeyDef{"max_frame_bytes", "largest WebSocket frame accepted (at least 1024)",
           &Config::max_frame_bytes},
    KeyDef{"retention_days", "days mailbox events and messages are kept (also after delivery)",
           &Config::retention_days},
    KeyDef{"store_min_free_mib",
           "MiB kept free on the database's volume: below it writes answer storage_full",
           &Config::store_min_free_mib},
    KeyDef{"store",
           "rocksdb (embedded, under data_dir) or a PostgreSQL URI postgresql://USER@HOST:PORT/DB",
           &Config::store},
    KeyDef{"store_sync", "fsync every commit (false may lose the last writes on power loss)",
           &Config::store_sync},
    KeyDef{"store_readers",
           "PostgreSQL store: threads, each with its own connection, that run WebSocket ops and "
           "HTTP requests which read (0: two per core; unused with rocksdb)",
           &Config::store_readers},
    KeyDef{"store_writer_priority",
           "nice steps by which the store's one writer thread runs ahead of the I/O threads "
           "(0-20; needs root, CAP_SYS_NICE or RLIMIT_NICE, else left at 0; unused with "
           "postgresql)",
           &Config::store_writer_priority},
    KeyDef{"media_dir", "directory for media blobs (empty: <data_dir>/media)", &Config::media_dir},
    KeyDef{"media_min_free_mib",
           "MiB kept free on the media volume: below it /ready answers 503 (0: not checked)",
           &Config::media_min_free_mib},
    KeyDef{"media_max_bytes", "largest media upload in bytes (413 too_large past it)",
           &Config::media_max_bytes},
    KeyDef{"media_workers", "threads that read images, video and audio for metadata and thumbnails",
           &Config::media_workers},
    KeyDef{"media_upload_ttl_s", "seconds an unfinished resumable upload is kept",
           &Config::media_upload_ttl_s},
    KeyDef{"media_max_pixels", "largest image or video frame (width x height) that is decoded",
           &Config::media_max_pixels},
    KeyDef{"device_write_rate",
           "writing ops (group changes, read, keys.upload) per second per device, bursts 4x (0: "
           "no limit)",
           &Config::device_write_rate},
    KeyDef{"device_fanout_rate",
           "recipients per second per device of group messages and changes, bursts 4x (0: no "
           "limit)",
           &Config::device_fanout_rate},
    KeyDef{"max_requests_in_flight",
           "requests of one connection waiting for the store; beyond it the socket is not read "
           "(0: no limit)",
           &Config::max_requests_in_flight},
    KeyDef{"user_writes_in_flight",
           "store writes one user may have in flight; more are answered rate_limited (0: no limit)",
           &Config::user_writes_in_flight},
    KeyDef{"media_quota_mib", "MiB of media one user may store (413 quota_exceeded; 0: no limit)",
           &Config::media_quota_mib},
    KeyDef{"media_quota_mib_per_day",
           "MiB of media one user may upload per UTC day (413 quota_exceeded; 0: no limit)",
           &Config::media_quota_mib_per_day},
    KeyDef{"media_uploads_in_progress",
           "unfinished resumable uploads one user may have (429 too_many_uploads; 0: no limit)",
           &Config::media_uploads_in_progress},
    KeyDef{"media_queue", "media processing jobs waiting at most (past it: stored unprocessed)",
           &Config::media_queue},
    KeyDef{"media_job_timeout_s", "seconds a media decoder may run before it is killed",
           &Config::media_job_timeout_s},
    KeyDef{"media_worker",
           "program run as `PROGRAM media-process` to decode media (empty: parleyd itself)",
           &Config::media_worker},
    // Hardening (issue 14).
    KeyDef{"max_connections_per_address",
           "open sockets one client address may hold; IPv6 counted per /64 (0: no limit)",
           &Config::max_connections_per_address},
    KeyDef{"max_unauthenticated_per_address",
           "sockets one address may hold that are not signed-in WebSockets (0: no limit)",
           &Config::max_unauthenticated_per_address},
    KeyDef{"max_connections", "open sockets in all (0: the open-files limit minus fd_reserve)",
           &Config::max_connections},
    KeyDef{"fd_reserve", "descriptors kept free of client sockets for the store, media and logs",
           &Config::fd_reserve},
    KeyDef{"connection_caps_exempt",
           "comma-separated IPs or CIDRs not capped per address (default: loopback)",
           &Config::connection_caps_exempt},
    KeyDef{"trusted_proxies",
           "comma-separated IPs or CIDRs of proxies whose X-Forwarded-For is believed",
           &Config::trusted_proxies},
    KeyDef{"lookup_rate",
           "users or hashes per second a device may name in profile.get, presence.subscribe and "
           "contacts.discover (0: no limit)",
           &Config::lookup_rate},
    KeyDef{"lookup_burst", "burst of lookup_rate", &Config::lookup_burst},
    KeyDef{"keys_bundle_per_minute", "keys.bundle calls per device per minute (0: no limit)",
           &Config::keys_bundle_per_minute},
    KeyDef{"prekey_claims_per_pair_per_hour",
           "one-time prekeys one user may obtain of another per hour (0: no limit)",
           &Config::prekey_claims_per_pair_per_hour},
    KeyDef{"prekey_claims_per_target_per_hour",
           "one-time prekeys of one user handed out per hour (0: no limit)",
           &Config::prekey_claims_per_target_per_hour},
    KeyDef{"otp_global_per_minute",
           "codes sent per minute in all: by the cluster with a Redis bus, else by this node (0: "
           "no limit)",
           &Config::otp_global_per_minute},
    KeyDef{"otp_burn_delay_s",
           "after a code is burned, a fresh one is possible after this delay, doubled per burn "
           "in a day",
           &Config::otp_burn_delay_s},
    KeyDef{"sms_connect_timeout_ms", "webhook SMS gateway connect timeout",
           &Config::sms_connect_timeout_ms},
    KeyDef{"sms_read_timeout_ms", "webhook SMS gateway write and read timeout",
           &Config::sms_read_timeout_ms},
    KeyDef{"sms_queue_max", "codes waiting for the webhook; past it a code is dropped",
           &Config::sms_queue_max},
    KeyDef{"web_dir",
           "the web client's folder (empty: the bundle make builds, beside parleyd; off: none)",
           &Config::web_dir},
};

[[noreturn]] void Fail(std::string_view key, std::string_view what) {
  throw std::runtime_error(fmt::format("config: {}: {}", key, what));
}

std::string Dashed(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

std::string EnvName(std::string_view name) {
  std::string out = "PARLEY_";
  for (char c : name) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

const KeyDef* FindKey(std::string_view name) {
  for (const auto& k : kKeys) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::string ValueText(const Config& cfg, const KeyDef& key) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = cfg.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else {
          return std::to_string(v);
        }
      },
      key.field);
}

std::optional<std::uint32_t> ParseUint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() ||
      v > std::numeric_limits<std::uint32_t>::max()) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(v);
}

std::optional<bool> ParseBool(std::string_view text) {
  std::string lower(text);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "1") return true;
  if (lower == "false" || lower == "0") return false;
  return std::nullopt;
}

// Sets one key from text (a flag or an environment variable); `source` says
// where the text came from, for the error message.
void SetFromText(Config& cfg, const KeyDef& key, const std::string& text, std::string_view source) {
  std::visit(
      [&](auto member) {
        auto& v = cfg.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          v = text;
        } else if constexpr (std::is_same_v<T, bool>) {
          auto b = ParseBool(text);
          if (!b)
            Fail(key.name, fmt::format("expected true/false/1/0 in {}, got \"{}\"", source, text));
          v = *b;
        } else {
          auto n = ParseUint(text);
          if (!n) {
            Fail(key.name,
                 fmt::format("expected an integer 0-4294967295 in {}, got \"{}\"", source, text));
          }
          v = *n;
        }
      },
      key.field);
}

void SetFromToml(Config& cfg, const KeyDef& key, const toml::node& node, std::string_view written,
                 std::string_view path) {
  std::visit(
      [&](auto member) {
        auto& v = cfg.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          auto s = node.value_exact<std::string>();
          if (!s) Fail(written, fmt::format("expected a string in {}", path));
          v = *s;
        } else if constexpr (std::is_same_v<T, bool>) {
          auto b = node.value_exact<bool>();
          if (!b) Fail(written, fmt::format("expected a boolean in {}", path));
          v = *b;
        } else {
          auto n = node.value_exact<std::int64_t>();
          if (!n) Fail(written, fmt::format("expected an integer in {}", path));
          if (*n < 0 || *n > std::numeric_limits<std::uint32_t>::max()) {
            Fail(written, fmt::format("{} is out of range 0-4294967295 in {}", *n, path));
          }
          v = static_cast<std::uint32_t>(*n);
        }
      },
      key.field);
}

void LoadFile(Config& cfg, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    if (where.line == 0) Fail("config", fmt::format("{}: {}", path, e.description()));
    Fail("config", fmt::format("{}:{}:{}: {}", path, where.line, where.column, e.description()));
  }
  std::set<std::string> seen;
  for (const auto& [k, node] : table) {
    const std::string written(k.str());
    std::string name = written;
    std::replace(name.begin(), name.end(), '-', '_');
    const KeyDef* key = FindKey(name);
    if (key == nullptr) Fail(written, fmt::format("unknown key in {}", path));
    if (!seen.insert(name).second) {
      Fail(name, fmt::format("given twice in {} (with '_' and with '-')", path));
    }
    SetFromToml(cfg, *key, node, written, path);
  }
}

// HOST:PORT, with IPv6 hosts in brackets.
void ValidateListen(const std::string& listen) {
  std::string_view host;
  std::string_view port;
  const std::string_view s = listen;
  if (s.starts_with('[')) {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      Fail("listen", fmt::format("\"{}\" is not [IPV6]:PORT", listen));
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      Fail("listen", fmt::format("\"{}\" is not HOST:PORT", listen));
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      Fail("listen",
           fmt::format("\"{}\": write IPv6 addresses in brackets, as [::1]:8080", listen));
    }
  }
  if (host.empty()) Fail("listen", fmt::format("\"{}\" has no host", listen));
  const bool digits =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  const auto n = digits ? ParseUint(port) : std::nullopt;
  if (!n || *n > 65535) Fail("listen", fmt::format("\"{}\": port must be 0-65535", listen));
}

void ValidateSmsProvider(const std::string& spec) {
  if (spec == "log") return;
  if (spec.starts_with("file:")) {
    if (spec.size() == 5)
      Fail("sms_provider", "file: needs a path, as file:/var/lib/parley/sms.log");
    return;
  }
  if (spec.starts_with("webhook:")) {
    const std::string_view url = std::string_view(spec).substr(8);
    for (std::string_view scheme : {"http://", "https://"}) {
      if (url.starts_with(scheme) && url.size() > scheme.size()) return;
    }
    Fail("sms_provider", fmt::format("\"{}\": webhook: needs an http:// or https:// URL", spec));
  }
  Fail("sms_provider", fmt::format("\"{}\" is not log, file:<path> or webhook:<url>", spec));
}

void ValidateNodeId(const std::string& id) {
  if (id.empty()) return;  // generated at start
  if (id.size() > 64) Fail("node_id", "longer than 64 characters");
  bool digits = true;
  for (char c : id) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (!ok) Fail("node_id", fmt::format("\"{}\": only A-Z a-z 0-9 . _ - are allowed", id));
    digits = digits && std::isdigit(static_cast<unsigned char>(c));
  }
  if (digits && (id.size() > 4 || std::stoul(id) >= 1024)) {
    Fail("node_id", fmt::format("{} is not below 1024 (a number is also the id bits)", id));
  }
}

void Validate(const Config& cfg) {
  ValidateListen(cfg.listen);
  if (cfg.data_dir.empty()) Fail("data_dir", "must not be empty");
  ValidateSmsProvider(cfg.sms_provider);
  ValidateNodeId(cfg.node_id);
  if (cfg.bus != "none" && (!cfg.bus.starts_with("redis://") || cfg.bus.size() <= 8)) {
    Fail("bus", fmt::format("\"{}\" is not none or redis://HOST:PORT", cfg.bus));
  }
  if (cfg.store != "rocksdb" && !cfg.store.starts_with("postgresql://") &&
      !cfg.store.starts_with("postgres://")) {
    Fail("store", "neither rocksdb nor a postgresql:// URI");
  }
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
  if (!kLevels.contains(cfg.log_level)) {
    Fail("log_level",
         fmt::format("\"{}\" is not trace, debug, info, warn or error", cfg.log_level));
  }
  if (!cfg.tls_cert.empty() && cfg.tls_key.empty())
    Fail("tls_key", "required when tls_cert is set");
  if (cfg.tls_cert.empty() && !cfg.tls_key.empty())
    Fail("tls_cert", "required when tls_key is set");
  if (cfg.media_max_bytes == 0) Fail("media_max_bytes", "must be at least 1");
  if (cfg.media_workers == 0 || cfg.media_workers > 64) {
    Fail("media_workers", fmt::format("{} is not between 1 and 64", cfg.media_workers));
  }
  if (cfg.media_upload_ttl_s == 0) Fail("media_upload_ttl_s", "must be at least 1");
  if (cfg.media_queue == 0) Fail("media_queue", "must be at least 1");
  if (cfg.media_job_timeout_s == 0) Fail("media_job_timeout_s", "must be at least 1");
  if (!cfg.media_worker.empty() && ::access(cfg.media_worker.c_str(), X_OK) != 0) {
    Fail("media_worker", "not an executable file: " + cfg.media_worker);
  }
  if (cfg.store_writer_priority > 20) {
    Fail("store_writer_priority",
         fmt::format("{} is above the maximum of 20", cfg.store_writer_priority));
  }
  if (cfg.max_frame_bytes < 1024) {
    Fail("max_frame_bytes", fmt::format("{} is below the minimum of 1024", cfg.max_frame_bytes));
  }
  if (cfg.sms_connect_timeout_ms == 0) Fail("sms_connect_timeout_ms", "must be at least 1");
  if (cfg.sms_read_timeout_ms == 0) Fail("sms_read_timeout_ms", "must be at least 1");
  if (cfg.sms_queue_max == 0) Fail("sms_queue_max", "must be at least 1");
  try {
    (void)AddressSet::Parse(cfg.trusted_proxies);
  } catch (const std::invalid_argument& e) {
    Fail("trusted_proxies", e.what());
  }
  try {
    (void)AddressSet::Parse(cfg.connection_caps_exempt);
  } catch (const std::invalid_argument& e) {
    Fail("connection_caps_exempt", e.what());
  }
}

}  // namespace

std::uint32_t NodeNumber(std::string_view node_id) {
  std::uint32_t n = 0;
  const auto [end, ec] = std::from_chars(node_id.data(), node_id.data() + node_id.size(), n);
  if (!node_id.empty() && ec == std::errc() && end == node_id.data() + node_id.size() && n < 1024) {
    return n;
  }
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (char c : node_id) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h % 1024;
}

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey> keys = [] {
    const Config defaults;
    std::vector<ConfigKey> out;
    for (const auto& k : kKeys) out.push_back({k.name, k.help, ValueText(defaults, k)});
    return out;
  }();
  return keys;
}

Config LoadConfig(int argc, const char* const* argv,
                  const std::map<std::string, std::string>& env) {
  CLI::App app{"parleyd: the Parley messaging server"};
  app.footer(
      "Every flag is also an environment variable (PARLEY_ and the key in upper case) and a key\n"
      "of the --config TOML file (written with '_' or '-'). Flags win over the environment,\n"
      "which wins over the file.");
  const Config defaults;
  std::vector<std::pair<const KeyDef*, CLI::Option*>> options;
  for (const auto& k : kKeys) {
    auto* opt = app.add_option("--" + Dashed(k.name))
                    ->description(fmt::format("{} [{}]", k.help, EnvName(k.name)))
                    ->default_str(ValueText(defaults, k))
                    ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    if (std::holds_alternative<bool Config::*>(k.field)) {
      // A bare --store-sync means true; --store-sync=false turns it off.
      opt->expected(0, 1)->type_name("BOOL");
    } else if (std::holds_alternative<std::uint32_t Config::*>(k.field)) {
      opt->type_name("N");
    } else {
      opt->type_name("TEXT");
    }
    options.emplace_back(&k, opt);
  }

  try {
    if (argc > 0) {
      app.parse(argc, argv);
    } else {
      // CLI11 reads argv[0] as the program name; there is none to read.
      std::vector<std::string> none;
      app.parse(none);
    }
  } catch (const CLI::Success&) {
    std::cout << app.help() << std::flush;
    std::exit(0);
  } catch (const CLI::ExtrasError&) {
    const auto extras = app.remaining();
    std::string arg = extras.empty() ? std::string("?") : extras.front();
    arg = arg.substr(0, arg.find('='));
    if (arg.starts_with('-')) Fail(arg, "unknown flag (see --help)");
    Fail(arg, "unexpected argument (flags take the form --name value)");
  } catch (const CLI::ParseError& e) {
    throw std::runtime_error(fmt::format("config: {}", e.what()));
  }

  auto flag_value = [](CLI::Option* opt) -> std::optional<std::string> {
    if (opt->count() == 0) return std::nullopt;
    const auto& results = opt->results();
    return results.empty() || results.back().empty() ? std::string("true") : results.back();
  };
  // An empty bare bool flag reads as "true" above; for other kinds an empty
  // value is a real (possibly invalid) value, so take the raw text.
  auto raw_value = [](CLI::Option* opt) -> std::optional<std::string> {
    if (opt->count() == 0) return std::nullopt;
    const auto& results = opt->results();
    return results.empty() ? std::string() : results.back();
  };

  std::string config_path;
  if (auto it = env.find("PARLEY_CONFIG"); it != env.end()) config_path = it->second;
  for (const auto& [key, opt] : options) {
    if (std::string_view(key->name) == "config") {
      if (auto v = raw_value(opt)) config_path = *v;
    }
  }

  Config cfg;
  if (!config_path.empty()) LoadFile(cfg, config_path);
  for (const auto& k : kKeys) {
    const std::string name = EnvName(k.name);
    if (auto it = env.find(name); it != env.end()) SetFromText(cfg, k, it->second, name);
  }
  for (const auto& [key, opt] : options) {
    const bool is_bool = std::holds_alternative<bool Config::*>(key->field);
    if (auto v = is_bool ? flag_value(opt) : raw_value(opt)) {
      SetFromText(cfg, *key, *v, "--" + Dashed(key->name));
    }
  }
  // The file in use, whichever way it was named (a `config` key inside the
  // file itself cannot redirect to another file).
  cfg.config = config_path;
  Validate(cfg);
  return cfg;
}

std::map<std::string, std::string> ParleyEnvironment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (!entry.starts_with("PARLEY_")) continue;
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return out;
}

std::uint32_t StoreReaderThreads(const Config& config) {
  if (config.store_readers != 0) return config.store_readers;
  return std::max(2u, 2 * std::thread::hardware_concurrency());
}

}  // namespace parley
