// The RocksDB store: the contract suite, plus what only this backend has
// (format versions, read-only opens, the process lock, bounded commits, the
// value codec).
#include "store/rocksdb/rocksdb_store.hpp"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/group_cache.hpp"
#include "store/rocksdb/group_writer.hpp"
#include "store/rocksdb/mailbox_heads.hpp"
#include "store/rocksdb/message_cache.hpp"
#include "store/rocksdb/schema.hpp"
#include "unit/store_messaging_contract.hpp"

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
INSTANTIATE_TEST_SUITE_P(RocksDB, StoreMessagingContractTest,
                         ::testing::Values(RocksStoreFactory()), StoreFactoryName);
INSTANTIATE_TEST_SUITE_P(RocksDB, StoreGroupsContractTest, ::testing::Values(RocksStoreFactory()),
                         StoreFactoryName);
INSTANTIATE_TEST_SUITE_P(RocksDB, StoreKeysContractTest, ::testing::Values(RocksStoreFactory()),
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

// A version 1 database has no peers and user_groups: opening it fills them.
TEST_F(RocksStoreTest, UpgradeFromV1FillsTheKeysChangedIndexes) {
  {
    auto store = OpenOk();
    ASSERT_TRUE(store);
    SendText(*store, kAlice, kBob, "hi");
    CreateGroup(*store, kCarol, {kBob});
    auto contacts = store->ListContacts(kBob);
    ASSERT_TRUE(contacts.has_value());
    EXPECT_EQ(*contacts, (std::vector<UserId>{kAlice, kCarol}));
    store->Close();
  }
  {
    // Make it look like version 1: the two families empty.
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path(), families, &handles, &db).ok());
    int deleted = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i] != "peers" && names[i] != "user_groups") continue;
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[i]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[i], it->key()).ok());
        ++deleted;
      }
    }
    EXPECT_EQ(deleted, 4);  // alice-bob both ways, carol and bob in the group
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  RawFormatVersion("1");
  auto store = OpenOk();
  ASSERT_TRUE(store);
  for (auto [user, expected] : {std::pair{kBob, std::vector<UserId>{kAlice, kCarol}},
                                std::pair{kAlice, std::vector<UserId>{kBob}},
                                std::pair{kCarol, std::vector<UserId>{kBob}}}) {
    auto contacts = store->ListContacts(user);
    ASSERT_TRUE(contacts.has_value());
    EXPECT_EQ(*contacts, expected) << user;
  }
  store->Close();
  store.reset();
  EXPECT_EQ(RawFormatVersion(), std::to_string(rocks::kFormatVersion));
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
  auto removed = Wait<RemoveDeviceResult>([&](auto cb) { reader->RemoveDevice(1, 2, 0, {}, cb); });
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

// ---- Mailbox heads through the writer ---------------------------------------------

// Queues a write whose callback holds the writer thread until the returned
// promise is set, and returns once it does: what is queued next waits, and
// forms one batch.
std::promise<void> ParkWriter(rocks::GroupWriter& writer) {
  std::promise<void> release;
  auto released = release.get_future().share();
  auto parked = std::make_shared<std::promise<void>>();
  auto held = parked->get_future();
  writer.Submit(rocks::MakeJob<int>(
      "hold", [](rocks::WriteTxn&) -> Result<int> { return 0; },
      Callback<int>([parked, released](Result<int>) {
        parked->set_value();
        released.wait();
      })));
  held.wait();
  return release;
}

// Jobs of one batch continue from each other's heads; a rolled-back job's
// raises vanish; the committed heads move when the batch commits, before any
// callback runs.
TEST_F(RocksStoreTest, HeadsFollowJobsAndRollbacksInABatch) {
  auto db = rocks::Database::Open(path(), false);
  ASSERT_TRUE(db.has_value()) << db.error().message;
  rocks::MailboxHeads heads([](UserId user) -> Result<Seq> { return user == 8 ? 10 : 0; });
  rocks::GroupWriter writer((*db)->db(), false, nullptr, &heads);
  auto* meta = (*db)->cf(rocks::Cf::kMeta);

  using Seqs = std::vector<Seq>;
  enum class End { kKeep, kFail, kDiscard };
  auto submit = [&](std::vector<UserId> users, End end, Callback<Seqs> done) {
    writer.Submit(rocks::MakeJob<Seqs>(
        "test",
        [&heads, meta, users, end](rocks::WriteTxn& txn) -> Result<Seqs> {
          Seqs seqs;
          for (UserId u : users) {
            seqs.push_back(heads.Allocate(u).value());
            // As a real job would: the row goes with the seq.
            if (auto s = txn.Put(meta, "row" + std::to_string(u), "x"); !s) {
              return std::unexpected(s.error());
            }
          }
          if (end == End::kDiscard) txn.Discard();
          if (end == End::kFail) return Fail(Errc::kInvalid, "failing on purpose");
          return seqs;
        },
        std::move(done)));
  };

  // Park the writer so that the jobs below form one batch.
  auto release = ParkWriter(writer);

  Pending<Seqs> a, b, c, d;
  Seq committed_seen_by_d = 0;
  submit({7}, End::kKeep, a.callback());
  submit({7, 8}, End::kFail, b.callback());
  submit({7, 9}, End::kDiscard, c.callback());
  submit({7, 8, 7}, End::kKeep, [&, cb = d.callback()](Result<Seqs> r) {
    committed_seen_by_d = heads.Committed(7).value();
    cb(std::move(r));
  });
  EXPECT_EQ(heads.Committed(7).value(), 0u);
  release.set_value();

  EXPECT_EQ(a.Get().value(), (Seqs{1}));
  EXPECT_EQ(b.Get().error().code, Errc::kInvalid);
  EXPECT_EQ(c.Get().value(), (Seqs{2, 1}));  // discarded: its result still arrives
  EXPECT_EQ(d.Get().value(), (Seqs{2, 11, 3}));
  EXPECT_EQ(committed_seen_by_d, 3u);
  EXPECT_EQ(heads.Committed(7).value(), 3u);
  EXPECT_EQ(heads.Committed(8).value(), 11u);
  EXPECT_EQ(heads.Committed(9).value(), 0u);
  writer.Close();
}

// The writer thread is named for `top -H`, and moves its own nice value by
// `priority` from what it inherited while writes queue up behind it, back
// once they no longer do (a negative priority, which needs no privilege,
// puts it behind the others); the thread that made it is unmoved.
TEST_F(RocksStoreTest, WriterThreadHasItsNameAndMovesItsPriorityWithTheQueue) {
  auto db = rocks::Database::Open(path(), false);
  ASSERT_TRUE(db.has_value()) << db.error().message;
  errno = 0;
  const int here = ::getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  rocks::GroupWriter writer((*db)->db(), false, nullptr, nullptr, -3);
  struct Seen {
    std::string name;
    int nice = 0;
  };
  auto look = [](rocks::WriteTxn&) -> Result<Seen> {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, 0);
    if (errno != 0) return Fail(Errc::kInternal, "getpriority failed");
    return Seen{.name = name, .nice = nice};
  };

  // A lone write: nothing queued behind the writer, so it keeps its nice value.
  Pending<Seen> alone;
  writer.Submit(rocks::MakeJob<Seen>("look", look, alone.callback()));
  auto first = alone.Get();
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->name, "store-writer");
  EXPECT_EQ(first->nice, here);

  // Park the writer, queue 200 writes behind it: they run moved.
  auto release = ParkWriter(writer);
  std::vector<Pending<Seen>> queued(200);
  for (auto& q : queued) writer.Submit(rocks::MakeJob<Seen>("look", look, q.callback()));
  release.set_value();
  for (auto& q : queued) {
    auto r = q.Get();
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->nice, std::min(here + 3, 19));
  }

  // The queue is empty again: back where it started, where the process may
  // lower a nice value at all (root, CAP_SYS_NICE or RLIMIT_NICE; any thread
  // may raise its own, none may lower it again without them). Where it may
  // not, the writer stays where it is and goes on writing.
  bool may_lower = false;
  std::thread([&] {
    const auto tid = static_cast<id_t>(::gettid());
    may_lower = ::setpriority(PRIO_PROCESS, tid, std::min(here + 1, 19)) == 0 &&
                ::setpriority(PRIO_PROCESS, tid, here) == 0;
  }).join();
  Pending<Seen> after;
  writer.Submit(rocks::MakeJob<Seen>("look", look, after.callback()));
  auto last = after.Get();
  ASSERT_TRUE(last.has_value()) << last.error().message;
  EXPECT_EQ(last->nice, may_lower ? here : std::min(here + 3, 19)) << "may_lower=" << may_lower;
  EXPECT_EQ(::getpriority(PRIO_PROCESS, 0), here);
  writer.Close();
}

TEST(MessageCacheTest, EvictsLeastRecentlyUsed) {
  rocks::MessageCache cache(8 * 2);  // two per shard
  for (MsgId id = 1; id <= 200; ++id) {
    cache.Put(std::make_shared<const Message>(Message{.msg_id = id, .body = std::to_string(id)}));
    ASSERT_NE(cache.Get(id), nullptr);
  }
  int kept = 0;
  for (MsgId id = 1; id <= 200; ++id) kept += cache.Get(id) != nullptr ? 1 : 0;
  EXPECT_LE(kept, 16);
  EXPECT_EQ(cache.Get(200)->body, "200");
  cache.Erase(200);
  EXPECT_EQ(cache.Get(200), nullptr);
}

// Jobs' group versions are seen by later jobs of the batch, vanish with a
// rolled-back job or a failed commit, and reach readers only once committed.
TEST(GroupCacheTest, FollowsJobsAndBatches) {
  rocks::GroupCache cache(2);
  auto version = [](GroupId id, const std::string& name) {
    return rocks::GroupState{.group = std::make_shared<const Group>(Group{.id = id, .name = name}),
                             .next_join_order = 5};
  };
  auto current_name = [&](GroupId id) -> std::string {
    auto c = cache.Current(id);
    if (!c) return "(unknown)";
    return c->group ? c->group->name : "(deleted)";
  };
  cache.Loaded(1, version(1, "a"));
  ASSERT_NE(cache.Committed(1), nullptr);
  EXPECT_EQ(cache.Committed(1)->name, "a");
  cache.Loaded(9, rocks::GroupState{});  // no such group: not kept
  EXPECT_EQ(current_name(9), "(unknown)");

  cache.Stage(1, version(1, "b"));
  cache.JobDone(true);
  cache.Stage(1, version(1, "c"));
  cache.Stage(2, version(2, "x"));
  cache.JobDone(false);
  EXPECT_EQ(current_name(1), "b");
  EXPECT_EQ(current_name(2), "(unknown)");
  EXPECT_EQ(cache.Committed(1)->name, "a");
  cache.Stage(1, rocks::GroupState{});
  cache.JobDone(true);
  EXPECT_EQ(current_name(1), "(deleted)");
  cache.BatchDone(false);
  EXPECT_EQ(current_name(1), "a");

  cache.Stage(1, version(1, "d"));
  cache.JobDone(true);
  cache.BatchDone(true);
  EXPECT_EQ(cache.Committed(1)->name, "d");
  EXPECT_EQ(cache.Current(1)->next_join_order, 5u);
  cache.Stage(1, rocks::GroupState{});
  cache.JobDone(true);
  cache.BatchDone(true);
  EXPECT_EQ(cache.Committed(1), nullptr);
  EXPECT_EQ(current_name(1), "(unknown)");

  // Bounded: the least recently used goes.
  cache.Loaded(1, version(1, "1"));
  cache.Loaded(2, version(2, "2"));
  EXPECT_NE(cache.Committed(1), nullptr);
  cache.Loaded(3, version(3, "3"));
  EXPECT_NE(cache.Committed(1), nullptr);
  EXPECT_EQ(cache.Committed(2), nullptr);
  EXPECT_NE(cache.Committed(3), nullptr);
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

TEST(RocksCodecTest, MessagingKeys) {
  EXPECT_EQ(rocks::IdKey(77).view(), rocks::U64Key(77));
  EXPECT_EQ(rocks::MailboxKey(5, 9).view(), rocks::U64PairKey(5, 9));
  const Conversation group{Conversation::Kind::kGroup, 3};
  const auto conv = rocks::ConvKey(5, group);
  EXPECT_TRUE(conv.view().starts_with(rocks::U64Key(5)));
  EXPECT_EQ(conv.view()[8], 2);
  EXPECT_TRUE(rocks::ConvIndexKey(5, group, 1).view().starts_with(conv.view()));
  EXPECT_LT(rocks::ConvIndexKey(5, group, 255).view(), rocks::ConvIndexKey(5, group, 256).view());
  // One owner's user chats sort before its groups; owners never interleave.
  EXPECT_LT(rocks::ConvIndexKey(5, {Conversation::Kind::kUser, UINT64_MAX}, UINT64_MAX).view(),
            rocks::ConvIndexKey(5, group, 0).view());
  EXPECT_LT(rocks::ConvIndexKey(5, group, UINT64_MAX).view(),
            rocks::ConvIndexKey(6, {Conversation::Kind::kUser, 0}, 0).view());
  EXPECT_EQ(rocks::IdemKey(1, "abc"), rocks::U64Key(1) + "abc");
}

TEST(RocksCodecTest, MailboxRowsRoundTrip) {
  const MsgId big = (std::uint64_t{1} << 62) + 12345;
  std::string buf;
  for (const rocks::MessageRow& row :
       {rocks::MessageRow{.msg_id = big,
       .sender = 9,
       .conv = {Conversation::Kind::kUser, 9},
       .ts_ms = 1'750'000'000'000},
        rocks::MessageRow{.msg_id = 1,
        .outgoing = true,
        .sender = 9,
        .conv = {Conversation::Kind::kUser, 4},
        .ts_ms = -1},
        rocks::MessageRow{.msg_id = 2, .sender = 9, .conv = {Conversation::Kind::kGroup, 9}}}) {
    rocks::EncodeMessageRow(row, buf);
    auto header = rocks::DecodeRowHeader(buf).value();
    EXPECT_EQ(header.type, EventType::kMessage);
    EXPECT_EQ(header.message.msg_id, row.msg_id);
    EXPECT_EQ(header.message.outgoing, row.outgoing);
    EXPECT_EQ(header.message.sender, row.sender);
    EXPECT_EQ(header.message.conv, row.conv);
    EXPECT_EQ(header.message.ts_ms, row.ts_ms);
    auto e = rocks::DecodeMailboxEvent(42, buf).value();
    EXPECT_EQ(e.seq, 42u);
    EXPECT_EQ(e.msg_id, row.msg_id);
    EXPECT_EQ(e.outgoing, row.outgoing);
    EXPECT_EQ(e.conv, row.conv);
    EXPECT_EQ(e.ts_ms, row.ts_ms);
  }
  // The common incoming 1:1 row stays small.
  rocks::EncodeMessageRow({.msg_id = big,
                           .sender = big,
                           .conv = {Conversation::Kind::kUser, big},
                           .ts_ms = 1'750'000'000'000},
                          buf);
  EXPECT_LE(buf.size(), 24u);

  MailboxEvent receipt{.type = EventType::kReceipt,
                       .ts_ms = 5,
                       .conv = {Conversation::Kind::kGroup, big},
                       .msg_ids = {big, big + 7, big - 100, 3},
                       .by = 8,
                       .status = ReceiptStatus::kRead};
  rocks::EncodeEventRow(receipt, buf);
  auto r = rocks::DecodeMailboxEvent(1, buf).value();
  EXPECT_EQ(r.type, EventType::kReceipt);
  EXPECT_EQ(r.ts_ms, 5);
  EXPECT_EQ(r.conv, receipt.conv);
  EXPECT_EQ(r.msg_ids, receipt.msg_ids);
  EXPECT_EQ(r.by, 8u);
  EXPECT_EQ(r.status, ReceiptStatus::kRead);
  EXPECT_EQ(rocks::DecodeRowHeader(buf).value().type, EventType::kReceipt);

  MailboxEvent sync{.type = EventType::kReadSync,
                    .ts_ms = 6,
                    .conv = {Conversation::Kind::kUser, 4},
                    .msg_ids = {big}};
  rocks::EncodeEventRow(sync, buf);
  auto y = rocks::DecodeMailboxEvent(2, buf).value();
  EXPECT_EQ(y.type, EventType::kReadSync);
  EXPECT_EQ(y.conv, sync.conv);
  EXPECT_EQ(y.msg_ids, sync.msg_ids);

  for (auto type : {EventType::kGroup, EventType::kKeysChanged, EventType::kDevice}) {
    rocks::EncodeEventRow({.type = type, .ts_ms = 7, .payload = R"({"a":1})"}, buf);
    auto p = rocks::DecodeMailboxEvent(3, buf).value();
    EXPECT_EQ(p.type, type);
    EXPECT_EQ(p.ts_ms, 7);
    EXPECT_EQ(p.payload, R"({"a":1})");
    EXPECT_EQ(rocks::DecodeRowHeader(buf).value().message.ts_ms, 7);
  }
}

TEST(RocksCodecTest, MessagingValuesRoundTrip) {
  Message m{.msg_id = 1,
            .sender = 2,
            .sender_device = 3,
            .to = {Conversation::Kind::kGroup, 4},
            .client_msg_id = "cmid",
            .kind = "e2ee",
            .body = std::string(70'000, 'b'),
            .media_id = "m",
            .ts_ms = 5,
            .recipients = 255};
  std::string buf;
  rocks::EncodeMessage(m, buf);
  auto d = rocks::DecodeMessage(1, buf).value();
  EXPECT_EQ(d.msg_id, 1u);
  EXPECT_EQ(d.sender, 2u);
  EXPECT_EQ(d.sender_device, 3u);
  EXPECT_EQ(d.to, m.to);
  EXPECT_EQ(d.client_msg_id, "cmid");
  EXPECT_EQ(d.kind, "e2ee");
  EXPECT_EQ(d.body, m.body);
  EXPECT_EQ(d.media_id, "m");
  EXPECT_EQ(d.ts_ms, 5);
  EXPECT_EQ(d.recipients, 255u);
  auto idem = rocks::PeekMessageIdem(buf).value();
  EXPECT_EQ(idem.sender, 2u);
  EXPECT_EQ(idem.client_msg_id, "cmid");

  auto e = rocks::DecodeIdem(rocks::EncodeIdem({.msg_id = 9, .seq = 8, .ts_ms = -7})).value();
  EXPECT_EQ(e.msg_id, 9u);
  EXPECT_EQ(e.seq, 8u);
  EXPECT_EQ(e.ts_ms, -7);
  rocks::EncodeConvIndex({.sender = 6, .seq = 300}, buf);
  auto c = rocks::DecodeConvIndex(buf).value();
  EXPECT_EQ(c.sender, 6u);
  EXPECT_EQ(c.seq, 300u);
  rocks::EncodeReceiptTimes({.delivered_ts = 1, .read_ts = 0}, buf);
  auto t = rocks::DecodeReceiptTimes(buf).value();
  EXPECT_EQ(t.delivered_ts, 1);
  EXPECT_EQ(t.read_ts, 0);
  auto st = rocks::DecodeUserState(rocks::EncodeUserState({.delivered_seq = 4, .purged_seq = 2}));
  EXPECT_EQ(st.value().delivered_seq, 4u);
  EXPECT_EQ(st.value().purged_seq, 2u);
  EXPECT_EQ(rocks::DecodeSeqValue(rocks::EncodeSeqValue(UINT64_MAX)).value(), UINT64_MAX);
  EXPECT_EQ(rocks::DecodeReadMark(rocks::EncodeReadMark(UINT64_MAX)).value(), UINT64_MAX);
}

TEST(RocksCodecTest, MalformedMessagingValuesAreCorruption) {
  std::string row;
  rocks::EncodeMessageRow({.msg_id = 1, .sender = 2, .conv = {Conversation::Kind::kUser, 3}}, row);
  std::string receipt;
  rocks::EncodeEventRow({.type = EventType::kReceipt, .conv = {}, .msg_ids = {1, 2}}, receipt);
  std::string message;
  rocks::EncodeMessage(Message{.client_msg_id = "c", .body = "b"}, message);
  for (const auto& good : {row, receipt}) {
    for (std::size_t n = 0; n < good.size(); ++n) {
      auto r = rocks::DecodeMailboxEvent(1, good.substr(0, n));
      ASSERT_FALSE(r.has_value()) << n;
      EXPECT_EQ(r.error().code, Errc::kCorruption);
    }
    EXPECT_FALSE(rocks::DecodeMailboxEvent(1, good + "x").has_value());
  }
  for (std::size_t n = 0; n < row.size(); ++n) {
    EXPECT_FALSE(rocks::DecodeRowHeader(row.substr(0, n)).has_value()) << n;
  }
  for (std::size_t n = 0; n < message.size(); ++n) {
    EXPECT_FALSE(rocks::DecodeMessage(1, message.substr(0, n)).has_value()) << n;
  }
  // Unknown flag bits, an unknown conversation kind, a user record as a row.
  std::string flags = row;
  flags[1 + 1 + 8] = 0x40;  // tag, 1-byte ts, msg_id, then the flags
  EXPECT_FALSE(rocks::DecodeRowHeader(flags).has_value());
  std::string kind = receipt;
  kind[2] = 7;  // tag, 1-byte ts, then the conversation kind
  EXPECT_FALSE(rocks::DecodeMailboxEvent(1, kind).has_value());
  EXPECT_FALSE(rocks::DecodeMailboxEvent(1, rocks::EncodeUser(User{})).has_value());
  EXPECT_FALSE(rocks::DecodeIdem(rocks::EncodeUserState({})).has_value());
}

TEST(RocksCodecTest, GroupValuesRoundTripAndRejectGarbage) {
  const rocks::GroupRow row{
      .group =
          Group{
              .name = "team", .avatar_media_id = "77", .created_by = 1ull << 60, .created_ms = -5},
      .next_join_order = 300};
  auto r = rocks::DecodeGroupRow(9, rocks::EncodeGroupRow(row)).value();
  EXPECT_EQ(r.group.id, 9u);
  EXPECT_EQ(r.group.name, "team");
  EXPECT_EQ(r.group.avatar_media_id, "77");
  EXPECT_EQ(r.group.created_by, 1ull << 60);
  EXPECT_EQ(r.group.created_ms, -5);
  EXPECT_TRUE(r.group.members.empty());
  EXPECT_EQ(r.next_join_order, 300u);

  const GroupMember member{.role = GroupRole::kAdmin, .joined_ms = 1234567, .join_order = 12};
  auto m = rocks::DecodeGroupMember(4, rocks::EncodeGroupMember(member)).value();
  EXPECT_EQ(m.user, 4u);
  EXPECT_EQ(m.role, GroupRole::kAdmin);
  EXPECT_EQ(m.joined_ms, 1234567);
  EXPECT_EQ(m.join_order, 12u);
  EXPECT_EQ(rocks::DecodeFormerMember(rocks::EncodeFormerMember(1234567)).value(), 1234567);

  for (const auto& good : {rocks::EncodeGroupRow(row), rocks::EncodeGroupMember(member),
                           rocks::EncodeFormerMember(1234567)}) {
    for (std::size_t n = 0; n < good.size(); ++n) {
      const auto cut = good.substr(0, n);
      EXPECT_FALSE(rocks::DecodeGroupRow(1, cut).has_value()) << n;
      EXPECT_FALSE(rocks::DecodeGroupMember(1, cut).has_value()) << n;
      EXPECT_FALSE(rocks::DecodeFormerMember(cut).has_value()) << n;
    }
  }
  std::string bad_role = rocks::EncodeGroupMember(member);
  bad_role[1] = 3;
  auto bad = rocks::DecodeGroupMember(1, bad_role);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Errc::kCorruption);
  EXPECT_FALSE(rocks::DecodeGroupRow(1, rocks::EncodeGroupMember(member)).has_value());
  EXPECT_FALSE(rocks::DecodeFormerMember(rocks::EncodeFormerMember(1) + "x").has_value());
}

}  // namespace
}  // namespace parley::store::testing
