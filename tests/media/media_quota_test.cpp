// Media quotas and the sweeps that give space back (issue 14, item 7).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "media/media_helpers.hpp"

namespace parley::test {
namespace {

namespace fs = std::filesystem;

HttpResult CreateUpload(Parleyd& server, const Account& a, std::size_t length) {
  return Http(server.endpoint(), "POST", "/v1/uploads", "",
              TusHeaders(a, {{"Upload-Length", std::to_string(length)}}));
}

TEST(MediaQuota, StoredBytesAreLimitedPerUser) {
  Parleyd server(
      Parleyd::Options{.args = {"--media-quota-mib", "1", "--media-quota-mib-per-day", "0"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  const Account bob = SignIn(server, NextPhone());
  const std::string first =
      MediaIdOf(UploadMedia(server, alice, RandomBytes(600 << 10, 1), "application/octet-stream"));
  ASSERT_FALSE(first.empty());
  auto over = UploadMedia(server, alice, RandomBytes(600 << 10, 2), "application/octet-stream");
  EXPECT_EQ(over.status, 413) << over.body;
  EXPECT_EQ(over.ErrorCode(), "quota_exceeded");
  auto tus = CreateUpload(server, alice, 600 << 10);
  EXPECT_EQ(tus.status, 413) << tus.body;
  EXPECT_EQ(tus.ErrorCode(), "quota_exceeded");
  // Another user has a quota of their own.
  EXPECT_EQ(UploadMedia(server, bob, RandomBytes(600 << 10, 3), "application/octet-stream").status,
            201);
  // What fits still fits; an unfinished upload counts at its Upload-Length,
  // and deleting it gives the room back.
  auto small = CreateUpload(server, alice, 300 << 10);
  ASSERT_EQ(small.status, 201) << small.body;
  EXPECT_EQ(CreateUpload(server, alice, 300 << 10).status, 413);
  ASSERT_EQ(
      Http(server.endpoint(), "DELETE", small.headers["location"], "", TusHeaders(alice)).status,
      204);
  EXPECT_EQ(CreateUpload(server, alice, 300 << 10).status, 201);
}

TEST(MediaQuota, BytesPerDayAreLimited) {
  Parleyd server(
      Parleyd::Options{.args = {"--media-quota-mib", "0", "--media-quota-mib-per-day", "1"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  auto first = UploadMedia(server, alice, RandomBytes(700 << 10, 1), "application/octet-stream");
  ASSERT_EQ(first.status, 201) << first.body;
  // Refused from its Content-Length, before a byte is stored.
  auto over = UploadMedia(server, alice, RandomBytes(700 << 10, 2), "application/octet-stream");
  EXPECT_EQ(over.status, 413) << over.body;
  EXPECT_EQ(over.ErrorCode(), "quota_exceeded");
  EXPECT_EQ(FilesIn(fs::path(server.data_dir()) / "media" / "tmp"), 0u);
}

TEST(MediaQuota, UploadsInProgressAreLimited) {
  Parleyd server(Parleyd::Options{.args = {"--media-uploads-in-progress", "2"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  auto a = CreateUpload(server, alice, 10);
  auto b = CreateUpload(server, alice, 10);
  ASSERT_EQ(a.status, 201);
  ASSERT_EQ(b.status, 201);
  auto c = CreateUpload(server, alice, 10);
  EXPECT_EQ(c.status, 429) << c.body;
  EXPECT_EQ(c.ErrorCode(), "too_many_uploads");
  // Finishing one makes room.
  auto patch = Http(server.endpoint(), "PATCH", a.headers["location"], "0123456789",
                    TusHeaders(alice, {{"Upload-Offset", "0"},
                                       {"Content-Type", "application/offset+octet-stream"}}));
  ASSERT_EQ(patch.status, 204) << patch.body;
  EXPECT_EQ(CreateUpload(server, alice, 10).status, 201);
}

// Statuses of `n` requests made at once, one thread each.
template <class F>
std::vector<int> AtOnce(int n, F request) {
  std::vector<int> status(n, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { status[i] = request(i); });
  for (auto& t : threads) t.join();
  return status;
}

int Count(const std::vector<int>& statuses, int status) {
  return static_cast<int>(std::count(statuses.begin(), statuses.end(), status));
}

// Concurrent uploads at a nearly full quota: the check before the body and
// the record written after it were two steps, and every upload in between
// passed the first (16 one-shot uploads of 200 KiB with 424 KiB left all
// went through). The store now checks in the write that adds the record.
TEST(MediaQuota, ConcurrentUploadsNeverGoPastTheQuota) {
  constexpr int kConcurrent = 16;
  constexpr std::size_t kEach = 200 << 10;
  Parleyd server(Parleyd::Options{.args = {"--media-quota-mib", "1", "--media-quota-mib-per-day",
                                           "0", "--media-uploads-in-progress", "3"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  const Account bob = SignIn(server, NextPhone());
  const Account carol = SignIn(server, NextPhone());
  ASSERT_EQ(
      UploadMedia(server, alice, RandomBytes(600 << 10, 1), "application/octet-stream").status,
      201);

  // One-shot uploads: 424 KiB left, room for two.
  const std::string bytes = RandomBytes(kEach, 2);
  auto one_shot = AtOnce(kConcurrent, [&](int) {
    auto r = UploadMedia(server, alice, bytes, "application/octet-stream");
    EXPECT_TRUE(r.status == 201 || r.ErrorCode() == "quota_exceeded") << r.status << r.body;
    return r.status;
  });
  EXPECT_EQ(Count(one_shot, 201), 2) << "uploads stored past the quota";
  EXPECT_EQ(Count(one_shot, 413), kConcurrent - 2);
  const fs::path media = fs::path(server.data_dir()) / "media";
  // A refused upload keeps no file.
  EXPECT_EQ(FilesIn(media / "blobs"), static_cast<std::size_t>(1 + Count(one_shot, 201)));
  EXPECT_EQ(FilesIn(media / "tmp"), 0u);

  // Resumable uploads reserve their Upload-Length when created.
  ASSERT_EQ(UploadMedia(server, bob, RandomBytes(600 << 10, 3), "application/octet-stream").status,
            201);
  auto created = AtOnce(kConcurrent, [&](int) { return CreateUpload(server, bob, kEach).status; });
  EXPECT_EQ(Count(created, 201), 2) << "uploads created past the quota";
  EXPECT_EQ(Count(created, 413), kConcurrent - 2);

  // And uploads in progress, their own limit (3).
  auto started = AtOnce(kConcurrent, [&](int) { return CreateUpload(server, carol, 10).status; });
  EXPECT_EQ(Count(started, 201), 3) << "more uploads in progress than allowed";
  EXPECT_EQ(Count(started, 429), kConcurrent - 3);
  EXPECT_EQ(FilesIn(media / "partial"), static_cast<std::size_t>(2 + 3));
}

void Age(const fs::path& p) {
  // An hour old: past the orphan sweep's grace period.
  const timespec old[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), old, 0), 0) << p;
}

TEST(MediaSweep, OrphanFilesLeftByACrashAreRemovedAtStart) {
  Parleyd server;
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  const std::string kept =
      MediaIdOf(UploadMedia(server, alice, RandomBytes(1000), "application/octet-stream"));
  ASSERT_FALSE(kept.empty());
  ASSERT_EQ(server.Terminate(), 0);
  const fs::path media = fs::path(server.data_dir()) / "media";
  // What a crash between the file and its record leaves behind.
  for (const fs::path& p : {media / "blobs" / "1234567", media / "partial" / "2345678",
                            media / "thumbs" / "3456789.jpg", media / "blobs" / "4567890"}) {
    std::ofstream(p) << "orphan";
  }
  for (const fs::path& p : {media / "blobs" / "1234567", media / "partial" / "2345678",
                            media / "thumbs" / "3456789.jpg", media / "blobs" / kept}) {
    Age(p);
  }
  ASSERT_TRUE(server.Restart()) << server.Log();
  // The sweep runs in the background after start, one folder after another:
  // wait for all three (the thumbnail goes last; on PostgreSQL the
  // first check often saw it still there).
  for (int i = 0; i < 100 && (fs::exists(media / "blobs" / "1234567") ||
                              fs::exists(media / "partial" / "2345678") ||
                              fs::exists(media / "thumbs" / "3456789.jpg"));
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(fs::exists(media / "blobs" / "1234567"));
  EXPECT_FALSE(fs::exists(media / "partial" / "2345678"));
  EXPECT_FALSE(fs::exists(media / "thumbs" / "3456789.jpg"));
  // A file with a record stays however old; a young one may be in flight.
  EXPECT_TRUE(fs::exists(media / "blobs" / kept));
  EXPECT_TRUE(fs::exists(media / "blobs" / "4567890"));
  EXPECT_EQ(Http(server.endpoint(), "GET", "/v1/media/" + kept, "", Bearer(alice)).status, 200);
}

// More stale uploads than one batch of the scan go in one sweep.
TEST(MediaSweep, StaleUploadSweepHasNoCapPerRun) {
  Parleyd server(Parleyd::Options{.args = {"--media-uploads-in-progress", "0"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  constexpr int kUploads = 300;
  for (int i = 0; i < kUploads; ++i) {
    ASSERT_EQ(CreateUpload(server, alice, 10).status, 201) << i;
  }
  ASSERT_EQ(server.Terminate(), 0);
  const fs::path partial = fs::path(server.data_dir()) / "media" / "partial";
  ASSERT_EQ(FilesIn(partial), static_cast<std::size_t>(kUploads));
  // Restarted with a TTL they have all outlived: the sweep at start takes
  // every one of them, in one run.
  std::this_thread::sleep_for(1100ms);
  Parleyd::Options options;
  options.data_dir = server.data_dir();
  options.args = {"--media-upload-ttl-s", "1", "--media-uploads-in-progress", "0"};
  Parleyd again(options);
  ASSERT_TRUE(again.Start()) << again.Log();
  for (int i = 0; i < 300 && FilesIn(partial) > 0; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(FilesIn(partial), 0u);
  EXPECT_NE(again.Log().find("count=" + std::to_string(kUploads)), std::string::npos)
      << "not all in one sweep run";
  again.Terminate();
}

}  // namespace
}  // namespace parley::test
