// parleyd's configuration. Every key can be set, from weakest to strongest,
// by its default, by the TOML file named with --config (or PARLEY_CONFIG), by
// a PARLEY_<KEY> environment variable (the key in upper case), and by a
// --<key> flag (underscores written as dashes). The TOML file accepts a key
// written either way (otp_per_phone or otp-per-phone). docs/operations.md
// lists every key; the table in config.cpp is the single source of them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace parley {

struct Config {
  // PROTOCOL.md section 7 (names and meanings are part of the contract).
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string data_dir = "./data";
  std::string sms_provider = "log";             // log | file:<path> | webhook:<url>
  std::uint32_t otp_per_address_per_hour = 20;  // 0: no limit
  std::uint32_t otp_per_phone = 3;              // per 10 minutes; 0: no limit
  std::uint32_t device_send_rate = 50;          // sends/s per device, bursts 4x; 0: no limit
  std::string config;                           // the TOML file, if any

  // PROTOCOL.md section 8 (cluster).
  std::string bus = "none";  // none | redis://HOST:PORT
  std::string node_id;       // this node's name, unique among live nodes; empty: generated

  // Runtime.
  std::uint32_t threads = 0;       // I/O threads; 0: one per core
  std::string log_level = "info";  // trace | debug | info | warn | error
  std::string tls_cert;            // PEM certificate chain; with tls_key, serve TLS
  std::string tls_key;             // PEM private key
  std::uint32_t shutdown_timeout_s = 10;

  // Accounts and tokens.
  std::string jwt_secret;  // HS256 key; empty: generated once into <data_dir>/jwt.key
  std::uint32_t access_token_ttl_s = 900;
  std::uint32_t refresh_token_ttl_s = 2592000;
  std::uint32_t otp_ttl_s = 300;
  std::uint32_t max_devices = 5;
  std::uint32_t contacts_per_day = 10000;

  // WebSocket.
  std::uint32_t auth_timeout_s = 10;  // close 4401 without a valid hello by then
  std::uint32_t idle_timeout_s = 90;  // close 4408 after this long without a frame
  std::uint32_t max_frame_bytes = 262144;

  // Storage.
  std::string store = "rocksdb";  // rocksdb (under data_dir) | postgresql://USER@HOST:PORT/DB
  std::uint32_t retention_days = 365;
  std::uint32_t store_min_free_mib = 64;  // writes refused (storage_full) below this free space
  std::uint32_t media_min_free_mib = 64;  // /ready 503 (storage_full) below this on media_dir
  bool store_sync = true;  // fsync every group commit; false loses the last writes on power loss
  // PostgreSQL: threads (each with a connection of its own) that run the
  // work which reads, off the I/O threads (core/store_reads.hpp); 0: two
  // per core (StoreReaderThreads).
  std::uint32_t store_readers = 0;
  // RocksDB: nice steps by which the store's writer thread (every write
  // passes through it) runs ahead of the others; 0 leaves it alone.
  std::uint32_t store_writer_priority = 10;

  // Media.
  std::string media_dir;                         // empty: <data_dir>/media
  std::uint32_t media_max_bytes = 100u << 20;    // largest upload (413 too_large past it)
  std::uint32_t media_workers = 2;               // threads decoding images, video and audio
  std::uint32_t media_upload_ttl_s = 86400;      // unfinished resumable uploads live this long
  std::uint32_t media_max_pixels = 100000000;    // larger images and video frames are refused
  std::uint32_t media_quota_mib = 10240;         // media one user may store (0: no limit)
  std::uint32_t media_quota_mib_per_day = 2048;  // media one user may upload per UTC day (0: none)
  std::uint32_t media_uploads_in_progress = 16;  // unfinished resumable uploads per user (0: none)
  std::uint32_t media_queue = 256;         // processing jobs queued at most (more: not looked at)
  std::uint32_t media_job_timeout_s = 60;  // a decoder running longer is killed
  std::string media_worker;  // the program run as `PROGRAM media-process`; empty: parleyd itself

  // Fairness (docs/operations.md, "Limits"): 0 means no limit.
  std::uint32_t device_write_rate = 20;       // writing ops/s per device (group.*, read), bursts 4x
  std::uint32_t device_fanout_rate = 2000;    // recipients/s per device of group sends and changes
  std::uint32_t max_requests_in_flight = 64;  // per connection; beyond it the socket is not read
  std::uint32_t user_writes_in_flight =
      1024;  // store writes in flight per user (rate_limited past)

  // Hardening: connections, lookups, prekeys, sign-in (issue 14; 0: no limit).
  std::uint32_t max_connections_per_address = 4096;     // open sockets per address (IPv6: per /64)
  std::uint32_t max_unauthenticated_per_address = 128;  // sockets not (yet) signed-in WebSockets
  std::uint32_t max_connections = 0;                    // 0: the open-files limit minus fd_reserve
  std::uint32_t fd_reserve = 1024;  // descriptors kept for the store, media and logs
  std::string trusted_proxies;  // comma-separated IPs or CIDRs whose X-Forwarded-For is believed
  // IPs or CIDRs never capped per address (a local proxy, tests, benchmarks).
  std::string connection_caps_exempt = "127.0.0.0/8,::1";
  std::uint32_t lookup_rate = 20;              // users/hashes per second a device may look up
  std::uint32_t lookup_burst = 5000;           // ... in a burst
  std::uint32_t keys_bundle_per_minute = 300;  // keys.bundle calls per device
  std::uint32_t prekey_claims_per_pair_per_hour = 10;  // one-time prekeys one user gets of another
  std::uint32_t prekey_claims_per_target_per_hour = 100;  // one-time prekeys handed out per user
  std::uint32_t otp_global_per_minute = 0;                // codes sent per minute by the whole node
  std::uint32_t otp_burn_delay_s = 30;  // first delay for a fresh code after a burned one
  std::uint32_t sms_connect_timeout_ms = 5000;
  std::uint32_t sms_read_timeout_ms = 10000;
  std::uint32_t sms_queue_max = 1000;  // codes waiting for the webhook; more are dropped

  // The web client (docs/web.md): "off", a folder with index.html and
  // assets/, or empty for the bundle `make` builds (build/web/dist).
  std::string web_dir;
};

struct ConfigKey {
  std::string name;  // snake_case
  std::string help;
  std::string default_value;
};

// Every key with its help text and default, in the order documented.
const std::vector<ConfigKey>& ConfigKeys();

// Builds the configuration from argv (without argv[0]'s program name handling:
// pass the full argc/argv) and the environment. Throws std::runtime_error with
// a message that names the offending key on any bad value, unknown flag or
// unreadable file. Prints help and exits 0 on --help.
Config LoadConfig(int argc, const char* const* argv, const std::map<std::string, std::string>& env);

// The 10-bit node number that goes into every id this node makes: the
// node id itself when it is a number below 1024, else a hash of it (a
// cluster's node ids are claimed on the bus, see src/bus/bus.hpp).
std::uint32_t NodeNumber(std::string_view node_id);

// The read pool's threads (store_readers, or two per core when it is 0).
// Two per core rather than a fixed eight: the pool runs every session's
// frames, not only reads, and on two cores eight threads cost a quarter
// more CPU per message in wake-ups than two (docs/benchmarks.md, "Read-pool
// threads").
std::uint32_t StoreReaderThreads(const Config& config);

// The process environment as a map (PARLEY_* entries only).
std::map<std::string, std::string> ParleyEnvironment();

}  // namespace parley
