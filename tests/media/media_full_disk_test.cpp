// The media volume fills up (issue 14, item 10): uploads answer 507
// storage_full and leave nothing half-written, what was stored stays
// intact, and uploads work again once space is freed. The blobs live on a
// small tmpfs of the test's own.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "media/media_helpers.hpp"
#include "support/tmpfs.hpp"

namespace parley::test {
namespace {

namespace fs = std::filesystem;

TEST(MediaFullDisk, UploadsAnswer507AndLeaveNothingHalfWritten) {
  char tmpl[] = "/tmp/parley-mediafull-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string data = tmpl;
  {
    Tmpfs volume(data + "/media", 8ull << 20);
    if (!volume.mounted()) {
      fs::remove_all(data);
      GTEST_SKIP() << "media full-disk test skipped: " << volume.why();
    }
    Parleyd::Options options;
    options.data_dir = data;
    Parleyd server(options);
    ASSERT_TRUE(server.Start()) << server.Log();
    const Account alice = SignIn(server, NextPhone());
    const fs::path media = data + "/media";

    const std::string kept = RandomBytes(2 << 20, 1);
    const std::string kept_id =
        MediaIdOf(UploadMedia(server, alice, kept, "application/octet-stream"));
    ASSERT_FALSE(kept_id.empty());

    // A resumable upload that has its first half.
    const std::string half = RandomBytes(1 << 20, 2);
    auto create = Http(server.endpoint(), "POST", "/v1/uploads", "",
                       TusHeaders(alice, {{"Upload-Length", std::to_string(2 * half.size())}}));
    ASSERT_EQ(create.status, 201) << create.body;
    const std::string upload = create.headers["location"];
    auto patch = [&](std::uint64_t offset, const std::string& bytes) {
      return Http(server.endpoint(), "PATCH", upload, bytes,
                  TusHeaders(alice, {{"Upload-Offset", std::to_string(offset)},
                                     {"Content-Type", "application/offset+octet-stream"}}),
                  60s);
    };
    ASSERT_EQ(patch(0, half).status, 204);

    ASSERT_GT(volume.Fill(), 0u);
    // One-shot: 507, and no temporary file stays behind.
    auto full = UploadMedia(server, alice, RandomBytes(1 << 20, 3), "application/octet-stream");
    EXPECT_EQ(full.status, 507) << full.body;
    EXPECT_EQ(full.ErrorCode(), "storage_full");
    EXPECT_EQ(FilesIn(media / "tmp"), 0u);
    // Resumable: 507, and the offset is exactly where the good bytes end.
    auto second = patch(half.size(), RandomBytes(half.size(), 4));
    EXPECT_EQ(second.status, 507) << second.body;
    EXPECT_EQ(second.ErrorCode(), "storage_full");
    auto head = Http(server.endpoint(), "HEAD", upload, "", TusHeaders(alice));
    ASSERT_EQ(head.status, 200);
    EXPECT_EQ(head.headers["upload-offset"], std::to_string(half.size()));
    EXPECT_EQ(fs::file_size(media / "partial" / upload.substr(upload.rfind('/') + 1)), half.size());
    EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);

    volume.Unfill();
    // What was stored is intact, and uploads work again.
    auto get = Http(server.endpoint(), "GET", "/v1/media/" + kept_id, "", Bearer(alice));
    EXPECT_EQ(get.status, 200);
    EXPECT_TRUE(get.body == kept) << "stored media changed";
    const std::string rest = RandomBytes(half.size(), 5);
    EXPECT_EQ(patch(half.size(), rest).status, 204);
    const std::string id = upload.substr(upload.rfind('/') + 1);
    auto whole = Http(server.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice));
    EXPECT_TRUE(whole.body == half + rest) << "resumed upload differs";
    auto after = UploadMedia(server, alice, RandomBytes(1 << 20, 6), "application/octet-stream");
    EXPECT_EQ(after.status, 201) << after.body;
    server.Terminate();
  }
  fs::remove_all(data);
}

int ReadyStatus(Parleyd& server, std::string* body = nullptr) {
  auto r = Http(server.endpoint(), "GET", "/ready");
  if (body != nullptr) *body = r.body;
  return r.status;
}

bool WaitReady(Parleyd& server, int want, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (ReadyStatus(server) == want) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// The media directory on a volume of its own (--media-dir): below its
// reserve the node is not ready, with the store's reason, and it is ready
// again by itself once space is freed. Messaging is not refused meanwhile.
TEST(MediaFullDisk, ReadyAnswers503WhileTheMediaVolumeIsBelowItsReserve) {
  char tmpl[] = "/tmp/parley-mediaready-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string data = tmpl;
  {
    Tmpfs volume(data + "/media-volume", 8ull << 20);
    if (!volume.mounted()) {
      fs::remove_all(data);
      GTEST_SKIP() << "media full-disk test skipped: " << volume.why();
    }
    Parleyd::Options options;
    options.data_dir = data + "/data";
    options.args = {"--media-dir", volume.dir(), "--media-min-free-mib", "2"};
    Parleyd server(options);
    ASSERT_TRUE(server.Start()) << server.Log();
    const Account alice = SignIn(server, NextPhone());
    const Account bob = SignIn(server, NextPhone());
    EXPECT_TRUE(WaitReady(server, 200, 10s)) << "/ready stays " << ReadyStatus(server);

    ASSERT_GT(volume.Fill(), 0u);
    EXPECT_TRUE(WaitReady(server, 503, 10s)) << "/ready stays " << ReadyStatus(server);
    std::string body;
    EXPECT_EQ(ReadyStatus(server, &body), 503);
    EXPECT_NE(body.find("storage_full"), std::string::npos) << body;
    EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);
    // The store's volume has room: messages are still taken.
    auto ws = Connect(server, alice);
    ASSERT_TRUE(ws);
    auto sent = SendText(*ws, bob.user_id, "media is full, text is not");
    ASSERT_TRUE(sent);
    EXPECT_EQ(Str(*sent, "op"), "ok") << json::serialize(*sent);

    volume.Unfill();
    EXPECT_TRUE(WaitReady(server, 200, 10s)) << "/ready stays " << ReadyStatus(server);
    server.Terminate();
  }
  fs::remove_all(data);
}

}  // namespace
}  // namespace parley::test
