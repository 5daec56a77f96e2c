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

  // Runtime.
  std::uint32_t threads = 0;       // I/O threads; 0: one per core
  std::uint32_t node_id = 0;       // 0..1023, part of every id this node makes
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
  bool store_sync = true;  // fsync every group commit; false loses the last writes on power loss

  // Media.
  std::string media_dir;                       // empty: <data_dir>/media
  std::uint32_t media_max_bytes = 100u << 20;  // largest upload (413 too_large past it)
  std::uint32_t media_workers = 2;             // threads decoding images, video and audio
  std::uint32_t media_upload_ttl_s = 86400;    // unfinished resumable uploads live this long
  std::uint32_t media_max_pixels = 100000000;  // larger images and video frames are refused
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

// The process environment as a map (PARLEY_* entries only).
std::map<std::string, std::string> ParleyEnvironment();

}  // namespace parley
