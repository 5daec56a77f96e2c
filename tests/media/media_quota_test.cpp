// Media quotas and the sweeps that give space back (issue 14, item 7).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

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
