// parleyd on PostgreSQL: start-up failures, two nodes sharing one store, and
// the database going away and coming back under a running node.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/helpers.hpp"
#include "postgres/shell.hpp"
#include "support/postgres.hpp"

namespace parley::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string FreshDb(const std::string& tag) {
  static std::atomic<int> next{0};
  return SharedPostgres().CreateDatabase("n" + std::to_string(getpid()) + "_" + tag +
                                         std::to_string(next++));
}

// Runs parleyd with `store` until it exits; answers its exit status and output.
int RunParleyd(const std::string& store, std::string* output) {
  char dir[] = "/tmp/parley-pgnode-XXXXXX";
  if (mkdtemp(dir) == nullptr) return -1;
  const int code = RunShell(
      ParleydPath() + " --listen 127.0.0.1:0 --data-dir " + dir + " --store '" + store + "' 2>&1",
      output);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return code;
}

int ReadyStatus(const Parleyd& server) {
  return Http(server.endpoint(), "GET", "/ready", "", {}, 2s).status;
}

// Polls /ready until it answers `status`; answers how long that took.
std::optional<std::chrono::milliseconds> WaitReady(const Parleyd& server, int status,
                                                   std::chrono::seconds limit) {
  const auto start = Clock::now();
  while (Clock::now() - start < limit) {
    if (ReadyStatus(server) == status) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

TEST(PostgresNode, MissingDatabaseEndsStartWithOneLine) {
  std::string out;
  const int code = RunParleyd(SharedPostgres().Url("no_such_db"), &out);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "more than one line: " << out;
}

TEST(PostgresNode, UnreachableServerEndsStartWithOneLine) {
  std::string out;
  const int code = RunParleyd("postgresql://postgres@/x?host=/nonexistent-dir&port=1", &out);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("postgresql"), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "more than one line: " << out;
}

// parleyd loads libpq only for a PostgreSQL store (libpq_loader.cpp): a
// library it cannot load is one line at start, naming it.
TEST(PostgresNode, MissingClientLibraryEndsStartWithOneLine) {
  std::string out;
  ASSERT_EQ(setenv("PARLEY_LIBPQ", "/nonexistent/libpq.so.5", 1), 0);
  const int code = RunParleyd(SharedPostgres().Url("parley"), &out);
  unsetenv("PARLEY_LIBPQ");
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("cannot load the PostgreSQL client library"), std::string::npos) << out;
  EXPECT_NE(out.find("/nonexistent/libpq.so.5"), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "more than one line: " << out;
}

// A RocksDB node does not map libpq at all.
TEST(PostgresNode, ARocksDbNodeDoesNotLoadLibpq) {
  Parleyd node;
  ASSERT_TRUE(node.Start());
  std::string maps;
  ASSERT_EQ(RunShell("cat /proc/" + std::to_string(node.pid()) + "/maps", &maps), 0);
  EXPECT_NE(maps.find("librocksdb"), std::string::npos) << "not the server's map";
  EXPECT_EQ(maps.find("libpq"), std::string::npos);
}

TEST(PostgresNode, TwoNodesShareAccountsTokensAndMailboxes) {
  const std::string url = FreshDb("two");
  Parleyd a({.args = {"--store", url}});
  Parleyd b({.args = {"--store", url}});
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  // Signed in on a, used on b: one token key for both.
  Account alice = SignIn(a, NextPhone());
  Account bob = SignIn(a, NextPhone());
  auto ws_alice = Connect(b, alice);
  ASSERT_NE(ws_alice, nullptr);
  auto sent = SendText(*ws_alice, bob.user_id, "hi across nodes");
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ((*sent)["op"], "ok") << json::serialize(*sent);
  // Bob on node a reads what was stored through node b.
  auto ws_bob = Connect(a, bob);
  ASSERT_NE(ws_bob, nullptr);
  auto event = NextEventOfType(*ws_bob, "message");
  ASSERT_TRUE(event.has_value());
}

// Another node's batch holding a recipient's mailbox head longer than
// lock_timeout (2 s) must delay a send, not fail it: the waiting batch is
// rolled back and runs again (pg_writer.hpp). A session of our own stands
// in for the other node and holds bob's head row for 3.5 s.
TEST(PostgresNode, ASendWaitingPastTheLockTimeoutIsRetriedNotFailed) {
  const std::string url = FreshDb("lockwait");
  Parleyd node({.args = {"--store", url}});
  ASSERT_TRUE(node.Start());
  Account alice = SignIn(node, NextPhone());
  Account bob = SignIn(node, NextPhone());
  auto ws = Connect(node, alice);
  ASSERT_NE(ws, nullptr);
  ASSERT_EQ((*SendText(*ws, bob.user_id, "first"))["op"], "ok");

  PGconn* other = PQconnectdb(url.c_str());
  ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
  auto exec = [&](const std::string& sql) {
    PGresult* r = PQexec(other, sql.c_str());
    const auto status = PQresultStatus(r);
    PQclear(r);
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  };
  ASSERT_TRUE(exec("BEGIN"));
  ASSERT_TRUE(exec("SELECT head FROM mailbox_head WHERE user_id = " + bob.user_id + " FOR UPDATE"));
  std::thread release([&] {
    std::this_thread::sleep_for(3500ms);
    exec("COMMIT");
  });
  const auto start = Clock::now();
  auto sent = SendText(*ws, bob.user_id, "waits for the lock", "", 20s);
  const auto took = Clock::now() - start;
  release.join();
  PQfinish(other);
  ASSERT_TRUE(sent.has_value()) << "no answer";
  EXPECT_EQ((*sent)["op"], "ok") << json::serialize(*sent);
  EXPECT_GE(took, 3s) << "answered before the lock was released";
  // Delivered once, in order.
  auto ws_bob = Connect(node, bob);
  ASSERT_NE(ws_bob, nullptr);
  std::vector<std::string> texts;
  while (auto e = NextEventOfType(*ws_bob, "message", 2s)) {
    texts.push_back(std::string(EventOf(*e).at("body").as_object().at("text").as_string()));
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"first", "waits for the lock"}));
}

TEST(PostgresNode, ReadyAndWritesFollowTheDatabase) {
  const std::string url = FreshDb("ready");
  Parleyd node({.args = {"--store", url}});
  ASSERT_TRUE(node.Start());
  EXPECT_EQ(ReadyStatus(node), 200);
  const std::string alice_phone = NextPhone();
  Account alice = SignIn(node, alice_phone);
  // The load runs on a second device: a second connection of the same
  // device would replace (close) the first.
  Account alice2 = SignIn(node, alice_phone, "load");
  Account bob = SignIn(node, NextPhone());
  auto ws = Connect(node, alice);
  ASSERT_NE(ws, nullptr);
  ASSERT_EQ((*SendText(*ws, bob.user_id, "before"))["op"], "ok");

  // Sends keep going while the database stops: none may be answered ok once
  // it is gone, and every answered ok must be stored.
  std::atomic<bool> stop{false};
  std::vector<std::string> acked;
  std::thread load([&] {
    auto ws2 = Connect(node, alice2);
    if (!ws2) return;
    int i = 0;
    while (!stop) {
      const std::string text = "m" + std::to_string(i++);
      auto r = SendText(*ws2, bob.user_id, text, "", 10s);
      if (r && (*r)["op"] == "ok") acked.push_back(text);
    }
  });
  // A failed assertion returns early: the load thread is joined and the
  // shared server started again (the other tests of the process use it).
  struct Cleanup {
    std::atomic<bool>& stop;
    std::thread& load;
    ~Cleanup() {
      stop = true;
      if (load.joinable()) load.join();
      if (!SharedPostgres().running()) SharedPostgres().Start();
    }
  } cleanup{stop, load};
  std::this_thread::sleep_for(300ms);
  SharedPostgres().Stop();
  auto gone = WaitReady(node, 503, 20s);
  EXPECT_TRUE(gone.has_value()) << "/ready never said 503";
  auto failed = SendText(*ws, bob.user_id, "while down", "", 15s);
  ASSERT_TRUE(failed.has_value()) << "no answer while the database is down; log:\n" << node.Log();
  EXPECT_EQ((*failed)["op"], "error") << json::serialize(*failed);
  EXPECT_EQ(Str(*failed, "code"), "internal") << json::serialize(*failed);
  // The writer lost its connection (that write failed): /metrics says so.
  const std::string down = Http(node.endpoint(), "GET", "/metrics").body;
  EXPECT_NE(down.find("\nparley_pg_writer_connected 0\n"), std::string::npos) << down;

  SharedPostgres().Start();
  auto back = WaitReady(node, 200, 30s);
  ASSERT_TRUE(back.has_value()) << "/ready never came back";
  EXPECT_LE(back->count(), 5000) << "ready again only after " << back->count() << " ms";
  const std::string up = Http(node.endpoint(), "GET", "/metrics").body;
  EXPECT_NE(up.find("\nparley_pg_writer_connected 1\n"), std::string::npos) << up;
  EXPECT_NE(up.find("\nparley_pg_writer_batch_cap "), std::string::npos) << up;
  EXPECT_NE(up.find("\nparley_pg_writer_deferred_total "), std::string::npos) << up;
  EXPECT_NE(up.find("\nparley_pg_writer_lock_retries_total "), std::string::npos) << up;
  stop = true;
  load.join();  // before reading `acked`

  auto after = SendText(*ws, bob.user_id, "after", "", 10s);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ((*after)["op"], "ok") << json::serialize(*after) << "\nlog:\n" << node.Log();

  // Everything answered ok is in Bob's mailbox.
  auto ws_bob = Connect(node, bob);
  ASSERT_NE(ws_bob, nullptr);
  std::set<std::string> seen;
  for (;;) {
    auto e = NextEventOfType(*ws_bob, "message", 3s);
    if (!e) break;
    const auto& ev = EventOf(*e);
    if (auto it = ev.find("body"); it != ev.end() && it->value().is_object()) {
      seen.insert(Str(it->value().as_object(), "text"));
    }
    Ack(*ws_bob, SeqOf(*e));
  }
  for (const auto& text : acked) EXPECT_TRUE(seen.contains(text)) << text << " was lost";
  EXPECT_TRUE(seen.contains("before"));
  EXPECT_TRUE(seen.contains("after"));
}

}  // namespace
}  // namespace parley::test
