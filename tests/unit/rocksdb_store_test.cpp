// The RocksDB store: the contract suite, plus what only this backend has
// (format versions, read-only opens, the process lock, bounded commits, the
// value codec).
#include "store/rocksdb/rocksdb_store.hpp"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/group_writer.hpp"
#include "store/rocksdb/schema.hpp"
#include "unit/store_contract.hpp"

namespace parley::store::testing {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/parley-store-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class RocksInstance final : public StoreInstance {
 public:
  Result<std::unique_ptr<Store>> Open(const StoreOpenOptions& options) override {
    return OpenRocksStore({.path = dir_.path() + "/db", .observer = options.observer});
  }

 private:
  TempDir dir_;
};

StoreFactory RocksStoreFactory() {
  return {"RocksDB", [] { return std::make_unique<RocksInstance>(); }};
}

INSTANTIATE_TEST_SUITE_P(RocksDB, StoreContractTest, ::testing::Values(RocksStoreFactory()),
                         StoreFactoryName);

// ---- Backend-specific behaviour --------------------------------------------------

class RocksStoreTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/db"; }

  Result<std::unique_ptr<Store>> Open(bool read_only = false, StoreObserver observer = {}) {
    return OpenRocksStore({.path = path(), .read_only = read_only, .observer = observer});
  }

  std::unique_ptr<Store> OpenOk(bool read_only = false, StoreObserver observer = {}) {
    auto store = Open(read_only, std::move(observer));
    EXPECT_TRUE(store.has_value()) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  // Reads or overwrites meta["format_version"] behind the store's back.
  std::optional<std::string> RawFormatVersion(const std::optional<std::string>& replace = {}) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    std::size_t meta = names.size();
    for (std::size_t i = 0; i < names.size(); ++i) {
      families.emplace_back(names[i], rocksdb::ColumnFamilyOptions());
      if (names[i] == "meta") meta = i;
    }
    EXPECT_LT(meta, names.size());
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    auto s = rocksdb::DB::Open(rocksdb::DBOptions(), path(), families, &handles, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok() || meta == names.size()) return std::nullopt;
    std::string value;
    if (replace) {
      EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), handles[meta], "format_version", *replace).ok());
    }
    std::optional<std::string> result;
    if (db->Get(rocksdb::ReadOptions(), handles[meta], "format_version", &value).ok()) {
      result = value;
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
    return result;
  }

  TempDir dir_;
};

TEST_F(RocksStoreTest, StampsFormatVersionOnCreate) {
  OpenOk().reset();
  EXPECT_EQ(RawFormatVersion(), std::to_string(rocks::kFormatVersion));
  OpenOk().reset();  // and accepts its own version
}

TEST_F(RocksStoreTest, RefusesNewerFormatVersion) {
  OpenOk().reset();
  RawFormatVersion(std::to_string(rocks::kFormatVersion + 1));
  for (bool read_only : {false, true}) {
    auto store = Open(read_only);
    ASSERT_FALSE(store.has_value());
    EXPECT_EQ(store.error().code, Errc::kInvalid);
    EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
  }
}

TEST_F(RocksStoreTest, RefusesUnreadableFormatVersion) {
  OpenOk().reset();
  RawFormatVersion("one");
  auto store = Open();
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, Errc::kCorruption);
}

TEST_F(RocksStoreTest, ReadOnlyOpenReadsAndRefusesWrites) {
  auto writer = OpenOk();
  ASSERT_TRUE(Wait<void>([&](auto cb) {
    writer->PutOtp(OtpCode{.phone = "+15551230000", .code_hash = "h", .expires_ms = 9}, cb);
  }));
  // Read-only opens work beside a running writer (`parleyd admin`).
  auto reader = OpenOk(/*read_only=*/true);
  ASSERT_NE(reader, nullptr);
  auto code = reader->GetOtp("+15551230000");
  ASSERT_TRUE(code.has_value());
  ASSERT_TRUE(code->has_value());
  EXPECT_EQ((*code)->code_hash, "h");

  auto status = Wait<void>([&](auto cb) { reader->PutOtp(OtpCode{.phone = "+1"}, cb); });
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, Errc::kUnavailable);
  auto removed = Wait<bool>([&](auto cb) { reader->RemoveDevice(1, 2, cb); });
  ASSERT_FALSE(removed.has_value());
  EXPECT_EQ(removed.error().code, Errc::kUnavailable);
  reader->Close();
}

TEST_F(RocksStoreTest, ReadOnlyOpenOfMissingDatabaseFails) {
  auto store = Open(/*read_only=*/true);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, Errc::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(path()));
}

TEST_F(RocksStoreTest, SecondWriterIsRefused) {
  auto first = OpenOk();
  auto second = Open();
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, Errc::kUnavailable) << second.error().message;
}

TEST_F(RocksStoreTest, CommitsAreBounded) {
  std::atomic<int> commits{0};
  auto store = OpenOk(false, [&](std::string_view op, double) {
    if (op == "commit") commits.fetch_add(1);
  });
  constexpr int kWrites = 2 * rocks::kMaxJobsPerCommit + 100;
  std::vector<Pending<void>> writes(kWrites);
  {
    WriterHold hold(*store);
    for (int i = 0; i < kWrites; ++i) {
      store->PutOtp(OtpCode{.phone = "+1" + std::to_string(i)}, writes[i].callback());
    }
  }
  for (auto& w : writes) ASSERT_TRUE(w.Get());
  EXPECT_EQ(commits.load(), 3);
  store.reset();  // the observer refers to `commits`
}

// ---- Codec ----------------------------------------------------------------------------

TEST(RocksCodecTest, KeysSortByUserThenId) {
  EXPECT_EQ(rocks::U64Key(0x0102030405060708).size(), 8u);
  EXPECT_EQ(rocks::U64Key(0x0102030405060708), std::string("\1\2\3\4\5\6\7\10", 8));
  EXPECT_LT(rocks::U64PairKey(1, 2), rocks::U64PairKey(1, 3));
  EXPECT_LT(rocks::U64PairKey(1, std::numeric_limits<std::uint64_t>::max()),
            rocks::U64PairKey(2, 0));
  EXPECT_LT(rocks::U64PairKey(255, 0), rocks::U64PairKey(256, 0));
  EXPECT_TRUE(rocks::U64PairKey(7, 9).starts_with(rocks::U64Key(7)));
  auto pair = rocks::ParseU64PairKey(rocks::U64PairKey(7, 9));
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(pair->first, 7u);
  EXPECT_EQ(pair->second, 9u);
  EXPECT_EQ(rocks::ParseU64Key("short"), std::nullopt);
}

TEST(RocksCodecTest, PrefixUpperBound) {
  EXPECT_EQ(rocks::PrefixUpperBound("ab"), "ac");
  EXPECT_EQ(rocks::PrefixUpperBound(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(rocks::PrefixUpperBound(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(rocks::PrefixUpperBound(""), "");
}

TEST(RocksCodecTest, RecordsRoundTrip) {
  User user{.id = 5,
            .phone = "+15550001111",
            .created_ms = -3,
            .name = "Ada",
            .status_text = std::string(300, 's'),
            .avatar_media_id = "m",
            .last_seen_visibility = "contacts",
            .last_seen_ms = std::numeric_limits<std::int64_t>::min()};
  auto u = rocks::DecodeUser(5, rocks::EncodeUser(user)).value();
  EXPECT_EQ(u.id, 5u);
  EXPECT_EQ(u.phone, user.phone);
  EXPECT_EQ(u.created_ms, -3);
  EXPECT_EQ(u.name, "Ada");
  EXPECT_EQ(u.status_text, user.status_text);
  EXPECT_EQ(u.avatar_media_id, "m");
  EXPECT_EQ(u.last_seen_visibility, "contacts");
  EXPECT_EQ(u.last_seen_ms, std::numeric_limits<std::int64_t>::min());

  Device device{.name = "n",
                .platform = "ios",
                .created_ms = 1,
                .last_active_ms = 2,
                .token_gen = std::numeric_limits<std::uint32_t>::max()};
  auto d = rocks::DecodeDevice(3, 4, rocks::EncodeDevice(device)).value();
  EXPECT_EQ(d.user_id, 3u);
  EXPECT_EQ(d.id, 4u);
  EXPECT_EQ(d.name, "n");
  EXPECT_EQ(d.platform, "ios");
  EXPECT_EQ(d.created_ms, 1);
  EXPECT_EQ(d.last_active_ms, 2);
  EXPECT_EQ(d.token_gen, std::numeric_limits<std::uint32_t>::max());

  RefreshToken token{.user_id = std::numeric_limits<std::uint64_t>::max(),
                     .device_id = 9,
                     .token_gen = 2,
                     .expires_ms = 123456789012,
                     .used = true};
  std::string raw_hash(32, '\0');
  auto t = rocks::DecodeRefreshToken(raw_hash, rocks::EncodeRefreshToken(token)).value();
  EXPECT_EQ(t.hash, raw_hash);
  EXPECT_EQ(t.user_id, token.user_id);
  EXPECT_EQ(t.device_id, 9u);
  EXPECT_EQ(t.token_gen, 2u);
  EXPECT_EQ(t.expires_ms, 123456789012);
  EXPECT_TRUE(t.used);

  OtpCode code{.code_hash = std::string("\0\1", 2), .expires_ms = 77, .attempts = 4};
  auto c = rocks::DecodeOtp("+1", rocks::EncodeOtp(code)).value();
  EXPECT_EQ(c.phone, "+1");
  EXPECT_EQ(c.code_hash, code.code_hash);
  EXPECT_EQ(c.expires_ms, 77);
  EXPECT_EQ(c.attempts, 4u);
}

TEST(RocksCodecTest, MalformedValuesAreCorruption) {
  const std::string good = rocks::EncodeUser(User{.phone = "+1", .name = "x"});
  for (std::size_t n = 0; n < good.size(); ++n) {
    auto r = rocks::DecodeUser(1, good.substr(0, n));
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error().code, Errc::kCorruption);
  }
  EXPECT_FALSE(rocks::DecodeUser(1, good + "x").has_value());
  // A device value is not a user value.
  EXPECT_FALSE(rocks::DecodeUser(1, rocks::EncodeDevice(Device{})).has_value());
  EXPECT_FALSE(rocks::DecodeUserIdValue("1234567").has_value());
  std::string bad_bool = rocks::EncodeRefreshToken(RefreshToken{});
  bad_bool.back() = 2;
  EXPECT_FALSE(rocks::DecodeRefreshToken("h", bad_bool).has_value());
}

}  // namespace
}  // namespace parley::store::testing
