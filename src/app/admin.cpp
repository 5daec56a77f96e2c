#include "app/admin.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>

#include "common/ids.hpp"
#include "store/migrate/migrate.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/rocksdb/rocksdb_store.hpp"

namespace parley::app {

namespace json = boost::json;

namespace {

json::object UserJson(const store::User& u) {
  json::object o;
  o["user_id"] = IdToString(u.id);
  o["phone"] = u.phone;
  o["created_ms"] = u.created_ms;
  o["name"] = u.name;
  o["status_text"] = u.status_text;
  o["avatar_media_id"] = u.avatar_media_id;
  o["last_seen_visibility"] = u.last_seen_visibility;
  o["last_seen_ms"] = u.last_seen_ms;
  return o;
}

json::object DeviceJson(const store::Device& d) {
  json::object o;
  o["device_id"] = IdToString(d.id);
  o["name"] = d.name;
  o["platform"] = d.platform;
  o["created_ms"] = d.created_ms;
  o["last_active_ms"] = d.last_active_ms;
  o["token_gen"] = d.token_gen;
  return o;
}

const char* TypeName(store::EventType t) {
  switch (t) {
    case store::EventType::kMessage:
      return "message";
    case store::EventType::kReceipt:
      return "receipt";
    case store::EventType::kReadSync:
      return "read_sync";
    case store::EventType::kGroup:
      return "group";
    case store::EventType::kKeysChanged:
      return "keys_changed";
    case store::EventType::kDevice:
      return "device";
  }
  return "unknown";
}

// Every stored event of the mailbox, exactly as stored (message bodies
// included, unfiltered): what an operator or a test may inspect.
Result<json::array> EventsJson(store::Store& st, store::UserId user) {
  json::array out;
  store::Seq after = 0;
  for (;;) {
    auto rows = st.ReadMailbox(user, after, 1000);
    if (!rows) return std::unexpected(rows.error());
    if (rows->empty()) break;
    for (const auto& e : *rows) {
      json::object o;
      o["seq"] = e.seq;
      o["type"] = TypeName(e.type);
      o["ts_ms"] = e.ts_ms;
      if (e.type == store::EventType::kMessage) {
        o["msg_id"] = IdToString(e.msg_id);
        o["outgoing"] = e.outgoing;
        if (e.message) {
          json::object m;
          m["sender"] = IdToString(e.message->sender);
          m["sender_device"] = IdToString(e.message->sender_device);
          m["client_msg_id"] = e.message->client_msg_id;
          m["kind"] = e.message->kind;
          m["body"] = e.message->body;
          m["media_id"] = e.message->media_id;
          o["message"] = std::move(m);
        }
      } else if (!e.payload.empty()) {
        o["payload"] = e.payload;
      } else {
        json::array ids;
        for (auto id : e.msg_ids) ids.push_back(json::value(IdToString(id)));
        o["msg_ids"] = std::move(ids);
        o["by"] = IdToString(e.by);
      }
      out.push_back(std::move(o));
      after = e.seq;
    }
  }
  return out;
}

// The store parleyd runs on: the data directory's RocksDB, or the
// PostgreSQL database `store` names (the same value as parleyd's --store).
Result<std::unique_ptr<store::Store>> OpenStore(const std::string& data_dir,
                                                const std::string& store_url) {
  if (store::IsPostgresUrl(store_url)) {
    return store::OpenPostgresStore({.url = store_url, .readers = 1});
  }
  return store::OpenRocksStore(
      {.path = (std::filesystem::path(data_dir) / "db").string(), .read_only = true});
}

int DumpUser(const std::string& data_dir, const std::string& store_url, const std::string& phone,
             const std::string& user_id, bool events) {
  auto opened = OpenStore(data_dir, store_url);
  if (!opened) {
    std::cerr << "parleyd admin: cannot open the store: " << opened.error().message << "\n";
    return 1;
  }
  store::Store& st = **opened;
  Result<std::optional<store::User>> user = std::optional<store::User>{};
  if (!phone.empty()) {
    user = st.FindUserByPhone(phone);
  } else if (auto id = ParseId(user_id)) {
    user = st.GetUser(*id);
  } else {
    std::cerr << "parleyd admin: --user must be a user id\n";
    return 2;
  }
  if (!user) {
    std::cerr << "parleyd admin: " << user.error().message << "\n";
    return 1;
  }
  if (!*user) {
    std::cerr << "parleyd admin: no such user\n";
    return 3;
  }
  json::object out;
  out["user"] = UserJson(**user);
  auto devices = st.ListDevices((*user)->id);
  if (!devices) {
    std::cerr << "parleyd admin: " << devices.error().message << "\n";
    return 1;
  }
  json::array list;
  for (const auto& d : *devices) {
    json::object o = DeviceJson(d);
    // The key directory: present for a current device (public keys only).
    if (auto keys = st.GetDeviceKeys(d.user_id, d.id); keys && *keys) {
      o["keys"] = json::object{{"identity_key", (*keys)->identity_key},
                               {"signed_prekey_id", (*keys)->signed_prekey.id},
                               {"one_time_prekeys_left", (*keys)->one_time_prekeys}};
    }
    list.push_back(std::move(o));
  }
  out["devices"] = std::move(list);
  if (auto otp = st.GetOtp((*user)->phone); otp && *otp) {
    json::object o;
    o["expires_ms"] = (*otp)->expires_ms;
    o["attempts"] = (*otp)->attempts;
    out["pending_code"] = std::move(o);
  }
  if (events) {
    auto list = EventsJson(st, (*user)->id);
    if (!list) {
      std::cerr << "parleyd admin: " << list.error().message << "\n";
      return 1;
    }
    out["events"] = std::move(*list);
  }
  std::cout << json::serialize(out) << std::endl;
  st.Close();
  return 0;
}

int Migrate(const std::string& from, const std::string& to) {
  if (!store::IsPostgresUrl(to)) {
    std::cerr << "parleyd admin migrate: --to must be a postgresql:// URL\n";
    return 2;
  }
  store::MigrateOptions options{.data_dir = from, .url = to};
  options.progress = [](std::string_view line) { std::cerr << "migrate: " << line << "\n"; };
  auto report = store::MigrateRocksToPostgres(options);
  if (!report) {
    std::cerr << "parleyd admin migrate: " << report.error().message << "\n";
    return report.error().code == Errc::kConflict ? 3 : 1;
  }
  json::object out;
  json::object tables;
  for (const auto& t : report->tables) tables[t.name] = t.rows;
  out["tables"] = std::move(tables);
  out["secret_copied"] = report->secret_copied;
  std::cout << json::serialize(out) << std::endl;
  return 0;
}

}  // namespace

int RunAdmin(int argc, const char* const* argv) {
  CLI::App cli{"parleyd admin: operator commands on a data directory"};
  cli.require_subcommand(1);
  std::string data_dir = "./data";
  if (const char* env = std::getenv("PARLEY_DATA_DIR")) data_dir = env;
  cli.add_option("--data-dir", data_dir, "the data directory")->capture_default_str();
  std::string store_url = "rocksdb";
  if (const char* env = std::getenv("PARLEY_STORE")) store_url = env;
  cli.add_option("--store", store_url, "rocksdb (in the data directory) or postgresql://...")
      ->capture_default_str();

  std::string phone;
  std::string user;
  auto* dump = cli.add_subcommand("dump-user", "print a user's records as JSON");
  auto* by_phone = dump->add_option("--phone", phone, "the user's E.164 phone number");
  auto* by_id = dump->add_option("--user", user, "the user id");
  by_phone->excludes(by_id);
  dump->add_option("--data-dir", data_dir, "the data directory");
  dump->add_option("--store", store_url, "rocksdb (in the data directory) or postgresql://...");
  bool events = false;
  dump->add_flag("--events", events, "also every event of the user's mailbox");

  std::string from;
  std::string to;
  auto* migrate = cli.add_subcommand(
      "migrate", "copy a stopped node's RocksDB store into an empty PostgreSQL database");
  migrate->add_option("--from", from, "the stopped node's data directory")->required();
  migrate->add_option("--to", to, "postgresql://... (an empty database)")->required();

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (dump->parsed()) {
    if (phone.empty() && user.empty()) {
      std::cerr << "parleyd admin dump-user: give --phone or --user\n";
      return 2;
    }
    return DumpUser(data_dir, store_url, phone, user, events);
  }
  if (migrate->parsed()) return Migrate(from, to);
  return 2;
}

}  // namespace parley::app
