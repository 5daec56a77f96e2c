// Media against a real parleyd (PROTOCOL.md sections 1 and 6): one-shot and
// resumable uploads, downloads with Range and ETag, who may read what,
// processing of real images, video and audio, and hostile input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "media/media_helpers.hpp"

namespace parley::test {
namespace {

namespace fs = std::filesystem;

class MediaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.Log();
    alice_ = SignIn(server_, NextPhone());
    bob_ = SignIn(server_, NextPhone());
    carol_ = SignIn(server_, NextPhone());
  }
  fs::path MediaDir() const { return fs::path(server_.data_dir()) / "media"; }

  Parleyd server_;
  Account alice_, bob_, carol_;
};

TEST_F(MediaTest, JpegUploadDownloadMetadataAndThumbnail) {
  const std::string jpeg = MakeJpeg(640, 480);
  auto up = UploadMedia(server_, alice_, jpeg, "image/jpeg");
  ASSERT_EQ(up.status, 201) << up.body;
  auto o = up.Json().as_object();
  const std::string id = Str(o, "media_id");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(o.at("size").to_number<std::uint64_t>(), jpeg.size());
  EXPECT_EQ(Str(o, "sha256"), Sha256Hex(jpeg));
  EXPECT_EQ(Str(o, "content_type"), "image/jpeg");

  auto get = Http(server_.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice_));
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body, jpeg);
  EXPECT_EQ(get.headers["content-type"], "image/jpeg");
  EXPECT_EQ(get.headers["etag"], "\"" + Sha256Hex(jpeg) + "\"");
  EXPECT_EQ(get.headers["accept-ranges"], "bytes");

  auto meta = WaitProcessed(server_, alice_, id);
  EXPECT_EQ(Str(meta, "status"), "ready") << json::serialize(meta);
  EXPECT_EQ(meta.at("width").to_number<int>(), 640);
  EXPECT_EQ(meta.at("height").to_number<int>(), 480);
  EXPECT_TRUE(meta.at("duration_ms").is_null());
  EXPECT_EQ(meta.at("thumbnail"), json::value(true));
  EXPECT_EQ(Str(meta, "sha256"), Sha256Hex(jpeg));
  EXPECT_EQ(meta.at("size").to_number<std::uint64_t>(), jpeg.size());
  EXPECT_GT(meta.at("created_ms").to_number<std::int64_t>(), 0);

  auto thumb =
      Http(server_.endpoint(), "GET", "/v1/media/" + id + "/thumbnail", "", Bearer(alice_));
  ASSERT_EQ(thumb.status, 200);
  EXPECT_EQ(thumb.headers["content-type"], "image/jpeg");
  EXPECT_EQ(ImageSize(thumb.body), std::make_pair(320, 240));
  ASSERT_GE(thumb.body.size(), 2u);
  EXPECT_EQ(thumb.body.substr(0, 2), std::string("\xff\xd8"));
  // The blob is on disk under its id, and nothing is left in tmp/.
  EXPECT_TRUE(fs::exists(MediaDir() / "blobs" / id));
  EXPECT_EQ(FilesIn(MediaDir() / "tmp"), 0u);
}

// libvips and FFmpeg are in a module that only the short-lived child of
// each processing job loads (`parleyd media-process`): parleyd itself never
// maps them, so a decoder's crash or leak never reaches it.
std::string Maps(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(MediaTest, CodecsAreLoadedOnlyInTheProcessingChild) {
  auto maps = Maps(server_.pid());
  ASSERT_FALSE(maps.empty());
  EXPECT_EQ(maps.find("libvips"), std::string::npos);
  EXPECT_EQ(maps.find("libparley_media_codecs"), std::string::npos);
  auto up = UploadMedia(server_, alice_, MakeJpeg(64, 48), "image/jpeg");
  ASSERT_EQ(up.status, 201) << up.body;
  auto meta = WaitProcessed(server_, alice_, Str(up.Json().as_object(), "media_id"));
  EXPECT_EQ(meta.at("width").to_number<int>(), 64);
  maps = Maps(server_.pid());
  EXPECT_EQ(maps.find("libparley_media_codecs"), std::string::npos);
  EXPECT_EQ(maps.find("libvips"), std::string::npos);
}

// Without the module the server keeps working: uploads are stored and
// downloadable, only unprocessed (no size, no thumbnail), and it says why.
TEST(MediaWithoutCodecsTest, UploadsAreKeptUnprocessed) {
  Parleyd::Options options;
  options.env["PARLEY_MEDIA_CODECS"] = "/nonexistent/libparley_media_codecs.so";
  Parleyd server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  auto alice = SignIn(server, NextPhone());
  const std::string jpeg = MakeJpeg(64, 48);
  auto up = UploadMedia(server, alice, jpeg, "image/jpeg");
  ASSERT_EQ(up.status, 201) << up.body;
  const std::string id = Str(up.Json().as_object(), "media_id");
  auto meta = WaitProcessed(server, alice, id);
  EXPECT_EQ(Str(meta, "status"), "ready") << json::serialize(meta);
  EXPECT_TRUE(meta.at("width").is_null()) << json::serialize(meta);
  EXPECT_EQ(meta.at("thumbnail"), json::value(false));
  EXPECT_EQ(Http(server.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice)).body, jpeg);
  const std::string log = server.Log();
  EXPECT_NE(log.find("media codecs module missing"), std::string::npos);
  EXPECT_NE(log.find("media codecs unavailable"), std::string::npos);
}

TEST_F(MediaTest, PngVideoAndAudioAreProcessed) {
  const std::string png = MakePng(200, 500);
  const std::string mp4 = MakeMp4(160, 120, 20);
  const std::string wav = MakeWav(1500);
  const std::string png_id = MediaIdOf(UploadMedia(server_, alice_, png, "image/png"));
  const std::string mp4_id = MediaIdOf(UploadMedia(server_, alice_, mp4, "video/mp4"));
  const std::string wav_id = MediaIdOf(UploadMedia(server_, alice_, wav, "audio/wav"));
  ASSERT_FALSE(png_id.empty() || mp4_id.empty() || wav_id.empty());

  auto p = WaitProcessed(server_, alice_, png_id);
  EXPECT_EQ(Str(p, "status"), "ready") << json::serialize(p);
  EXPECT_EQ(p.at("width").to_number<int>(), 200);
  EXPECT_EQ(p.at("height").to_number<int>(), 500);
  auto pt =
      Http(server_.endpoint(), "GET", "/v1/media/" + png_id + "/thumbnail", "", Bearer(alice_));
  EXPECT_EQ(ImageSize(pt.body), std::make_pair(128, 320));

  auto v = WaitProcessed(server_, alice_, mp4_id);
  EXPECT_EQ(Str(v, "status"), "ready") << json::serialize(v);
  EXPECT_EQ(v.at("width").to_number<int>(), 160);
  EXPECT_EQ(v.at("height").to_number<int>(), 120);
  ASSERT_TRUE(v.at("duration_ms").is_number()) << json::serialize(v);
  EXPECT_NEAR(v.at("duration_ms").to_number<double>(), 2000, 150);
  EXPECT_EQ(v.at("thumbnail"), json::value(true));
  auto vt =
      Http(server_.endpoint(), "GET", "/v1/media/" + mp4_id + "/thumbnail", "", Bearer(alice_));
  ASSERT_EQ(vt.status, 200);
  EXPECT_EQ(ImageSize(vt.body), std::make_pair(160, 120));  // never enlarged

  auto a = WaitProcessed(server_, alice_, wav_id);
  EXPECT_EQ(Str(a, "status"), "ready") << json::serialize(a);
  ASSERT_TRUE(a.at("duration_ms").is_number()) << json::serialize(a);
  EXPECT_NEAR(a.at("duration_ms").to_number<double>(), 1500, 20);
  EXPECT_EQ(a.at("thumbnail"), json::value(false));
}

TEST_F(MediaTest, EncryptedMediaIsStoredAsIs) {
  const std::string bytes = RandomBytes(5000);
  auto up = UploadMedia(server_, alice_, bytes, "application/octet-stream");
  ASSERT_EQ(up.status, 201);
  const std::string id = MediaIdOf(up);
  auto meta = Http(server_.endpoint(), "GET", "/v1/media/" + id + "/meta", "", Bearer(alice_));
  ASSERT_EQ(meta.status, 200);
  auto m = meta.Json().as_object();
  EXPECT_EQ(Str(m, "status"), "ready");  // at once: nothing to look into
  EXPECT_EQ(m.at("thumbnail"), json::value(false));
  EXPECT_TRUE(m.at("width").is_null());
  auto thumb =
      Http(server_.endpoint(), "GET", "/v1/media/" + id + "/thumbnail", "", Bearer(alice_));
  EXPECT_EQ(thumb.status, 404);
  EXPECT_EQ(thumb.ErrorCode(), "not_found");
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice_)).body, bytes);
}

TEST_F(MediaTest, FilesThatAreNotWhatTheyClaimFail) {
  const std::string fake_png = RandomBytes(20000, 7);
  std::string truncated = MakeJpeg(800, 600);
  truncated.resize(truncated.size() / 2);
  const std::string not_video = RandomBytes(30000, 9);
  const std::string jpeg_as_png = MakeJpeg(64, 64);

  const std::string fake_id = MediaIdOf(UploadMedia(server_, alice_, fake_png, "image/png"));
  const std::string trunc_id = MediaIdOf(UploadMedia(server_, alice_, truncated, "image/jpeg"));
  const std::string video_id = MediaIdOf(UploadMedia(server_, alice_, not_video, "video/mp4"));
  const std::string liar_id = MediaIdOf(UploadMedia(server_, alice_, jpeg_as_png, "image/png"));
  for (const auto& id : {fake_id, trunc_id, video_id, liar_id}) {
    ASSERT_FALSE(id.empty());
    auto m = WaitProcessed(server_, alice_, id);
    EXPECT_EQ(Str(m, "status"), "failed") << json::serialize(m);
    EXPECT_FALSE(Str(m, "reason").empty()) << json::serialize(m);
    EXPECT_EQ(m.at("thumbnail"), json::value(false));
  }
  // The server is still fine.
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/health").status, 200);
}

TEST_F(MediaTest, DecompressionBombIsRefusedWithoutDecoding) {
  const std::string bomb = MakeBombPng(50000, 50000);
  const long before = PeakRssKiB(server_.pid());
  const std::string id = MediaIdOf(UploadMedia(server_, alice_, bomb, "image/png"));
  ASSERT_FALSE(id.empty());
  auto m = WaitProcessed(server_, alice_, id);
  EXPECT_EQ(Str(m, "status"), "failed");
  EXPECT_NE(Str(m, "reason").find("50000x50000"), std::string::npos) << json::serialize(m);
  // Decoding it would take 7.5 GB; the peak stays where it was, give or take.
  const long after = PeakRssKiB(server_.pid());
  EXPECT_LT(after - before, 64 * 1024)
      << "peak RSS grew from " << before << " to " << after << " KiB";
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/health").status, 200);
}

TEST_F(MediaTest, RangesAndConditionalRequests) {
  const std::string bytes = RandomBytes(10000, 3);
  const std::string id = MediaIdOf(UploadMedia(server_, alice_, bytes, "application/octet-stream"));
  const std::string path = "/v1/media/" + id;
  auto get = [&](const std::string& range) {
    return Http(server_.endpoint(), "GET", path, "", Bearer(alice_, {{"Range", range}}));
  };
  auto r = get("bytes=0-9");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(0, 10));
  EXPECT_EQ(r.headers["content-range"], "bytes 0-9/10000");
  r = get("bytes=9990-");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(9990));
  r = get("bytes=-5");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(9995));
  EXPECT_EQ(r.headers["content-range"], "bytes 9995-9999/10000");
  r = get("bytes=5000-20000");  // clipped to the end
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(5000));
  r = get("bytes=10000-");
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.headers["content-range"], "bytes */10000");
  EXPECT_EQ(r.ErrorCode(), "range_not_satisfiable");
  r = get("bytes=20000-30000");
  EXPECT_EQ(r.status, 416);
  r = get("bytes=0-1,5-6");  // several ranges: the whole body
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, bytes);
  r = get("bytes=9-3");  // invalid: ignored
  EXPECT_EQ(r.status, 200);

  const std::string etag = "\"" + Sha256Hex(bytes) + "\"";
  auto cond = Http(server_.endpoint(), "GET", path, "", Bearer(alice_, {{"If-None-Match", etag}}));
  EXPECT_EQ(cond.status, 304);
  EXPECT_TRUE(cond.body.empty());
  cond = Http(server_.endpoint(), "GET", path, "",
              Bearer(alice_, {{"Range", "bytes=0-9"}, {"If-Range", "\"other\""}}));
  EXPECT_EQ(cond.status, 200);
  EXPECT_EQ(cond.body.size(), bytes.size());
}

TEST_F(MediaTest, OnlyUploaderRecipientsAndAvatarsMayRead) {
  const std::string bytes = MakeJpeg(100, 100);
  const std::string id = MediaIdOf(UploadMedia(server_, alice_, bytes, "image/jpeg"));
  ASSERT_FALSE(id.empty());
  auto status_for = [&](const Account& who, const std::string& suffix = "") {
    return Http(server_.endpoint(), "GET", "/v1/media/" + id + suffix, "", Bearer(who));
  };
  // Another user's media id looks exactly like one that does not exist.
  auto denied = status_for(bob_);
  EXPECT_EQ(denied.status, 404);
  EXPECT_EQ(denied.ErrorCode(), "not_found");
  EXPECT_EQ(status_for(bob_, "/meta").status, 404);
  EXPECT_EQ(status_for(bob_, "/thumbnail").status, 404);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + id).status, 401);

  // Carol may not pass on what she cannot read.
  auto carol_ws = Connect(server_, carol_);
  ASSERT_TRUE(carol_ws);
  auto refused = carol_ws->Request({{"op", "send"},
                                    {"to", ToUser(bob_.user_id)},
                                    {"client_msg_id", NextClientMsgId()},
                                    {"kind", "image"},
                                    {"body", {{"caption", "stolen"}}},
                                    {"media_id", id}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(Str(*refused, "code"), "not_found") << json::serialize(*refused);
  EXPECT_EQ(status_for(bob_).status, 404);

  // Alice sends it to Bob: now Bob may read it, Carol still not.
  auto alice_ws = Connect(server_, alice_);
  ASSERT_TRUE(alice_ws);
  auto sent = alice_ws->Request({{"op", "send"},
                                 {"to", ToUser(bob_.user_id)},
                                 {"client_msg_id", NextClientMsgId()},
                                 {"kind", "image"},
                                 {"body", {{"caption", "hi"}}},
                                 {"media_id", id}});
  ASSERT_TRUE(sent);
  EXPECT_EQ(Str(*sent, "op"), "ok") << json::serialize(*sent);
  auto bob_get = status_for(bob_);
  EXPECT_EQ(bob_get.status, 200);
  EXPECT_EQ(bob_get.body, bytes);
  EXPECT_EQ(status_for(carol_).status, 404);

  // Bob may forward it: the recipient of that message may read it too.
  auto bob_ws = Connect(server_, bob_);
  ASSERT_TRUE(bob_ws);
  auto fwd = bob_ws->Request({{"op", "send"},
                              {"to", ToUser(carol_.user_id)},
                              {"client_msg_id", NextClientMsgId()},
                              {"kind", "image"},
                              {"body", {{"caption", "fwd"}}},
                              {"media_id", id}});
  ASSERT_TRUE(fwd);
  EXPECT_EQ(Str(*fwd, "op"), "ok") << json::serialize(*fwd);
  EXPECT_EQ(status_for(carol_).status, 200);

  // An avatar may be read by anyone signed in; another's private media may
  // not be made one.
  const std::string avatar = MediaIdOf(UploadMedia(server_, bob_, MakePng(64, 64), "image/png"));
  const std::string secret =
      MediaIdOf(UploadMedia(server_, bob_, RandomBytes(100), "application/octet-stream"));
  auto steal = carol_ws->Request({{"op", "profile.set"}, {"avatar_media_id", secret}});
  ASSERT_TRUE(steal);
  EXPECT_EQ(Str(*steal, "code"), "not_found") << json::serialize(*steal);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + avatar, "", Bearer(alice_)).status, 404);
  auto set = bob_ws->Request({{"op", "profile.set"}, {"avatar_media_id", avatar}});
  ASSERT_TRUE(set);
  EXPECT_EQ(Str(*set, "op"), "ok") << json::serialize(*set);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + avatar, "", Bearer(alice_)).status, 200);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + secret, "", Bearer(alice_)).status, 404);

  // A group avatar likewise.
  auto created = alice_ws->Request(
      {{"op", "group.create"}, {"name", "g"}, {"members", json::array{bob_.user_id}}});
  ASSERT_TRUE(created);
  const std::string group = Str(*created, "group_id");
  const std::string group_avatar =
      MediaIdOf(UploadMedia(server_, alice_, MakePng(32, 32), "image/png"));
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + group_avatar, "", Bearer(carol_)).status,
            404);
  auto upd = alice_ws->Request(
      {{"op", "group.update"}, {"group_id", group}, {"avatar_media_id", group_avatar}});
  ASSERT_TRUE(upd);
  EXPECT_EQ(Str(*upd, "op"), "ok") << json::serialize(*upd);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + group_avatar, "", Bearer(carol_)).status,
            200);
}

TEST_F(MediaTest, HostileIdsAreNotFound) {
  const std::string id = MediaIdOf(UploadMedia(server_, alice_, "x", "text/plain"));
  ASSERT_FALSE(id.empty());
  for (const std::string& target : std::vector<std::string>{
           "/v1/media/../../etc/passwd", "/v1/media/..%2F..%2Fetc%2Fpasswd", "/v1/media/%2e%2e",
           "/v1/media/" + id + "%00", "/v1/media/-1", "/v1/media/" + id + "abc",
           "/v1/media/99999999999999999999999", "/v1/media/", "/v1/media/" + id + "/../" + id,
           "/v1/media/" + id + "/meta/x"}) {
    auto r = Http(server_.endpoint(), "GET", target, "", Bearer(alice_));
    EXPECT_EQ(r.status, 404) << target << " " << r.body;
  }
  for (const std::string& target : std::vector<std::string>{
           "/v1/uploads/../../etc/passwd", "/v1/uploads/..%2Fx", "/v1/uploads/1a"}) {
    auto r = Http(server_.endpoint(), "HEAD", target, "", TusHeaders(alice_));
    EXPECT_EQ(r.status, 404) << target;
    r = Http(server_.endpoint(), "PATCH", target, "abc",
             TusHeaders(alice_, {{"Upload-Offset", "0"},
                                 {"Content-Type", "application/offset+octet-stream"}}));
    EXPECT_EQ(r.status, 404) << target;
  }
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice_)).body, "x");
}

TEST_F(MediaTest, BadContentTypeIsRefused) {
  auto r = UploadMedia(server_, alice_, "abc", "not a type");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.ErrorCode(), "bad_request");
}

// ---- size limit and cut-off bodies ------------------------------------------------

class MediaLimitTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kLimit = 1000000;
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.Log();
    alice_ = SignIn(server_, NextPhone());
  }
  fs::path MediaDir() const { return fs::path(server_.data_dir()) / "media"; }
  std::size_t StoredBlobs() const { return FilesIn(MediaDir() / "blobs"); }

  Parleyd server_{Parleyd::Options{.args = {"--media-max-bytes=1000000"}}};
  Account alice_;
};

TEST_F(MediaLimitTest, ExactlyTheLimitIsAccepted) {
  const std::string bytes = RandomBytes(kLimit);
  auto r = UploadMedia(server_, alice_, bytes, "application/octet-stream");
  EXPECT_EQ(r.status, 201) << r.body;
}

TEST_F(MediaLimitTest, DeclaredLengthPastTheLimitIsRefusedAtOnce) {
  auto r = UploadMedia(server_, alice_, RandomBytes(kLimit + 1), "application/octet-stream");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.ErrorCode(), "too_large");
  EXPECT_EQ(StoredBlobs(), 0u);
}

TEST_F(MediaLimitTest, ChunkedBodyIsCutOffAtTheLimitAndNothingIsKept) {
  RawConn conn(server_.endpoint());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn.Send("POST /v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                        alice_.access_token +
                        "\r\nContent-Type: application/octet-stream\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"));
  // 3 MB in 64 KiB chunks, with no length announced: the server must count.
  const std::string piece = RandomBytes(65536);
  char size_line[32];
  std::snprintf(size_line, sizeof(size_line), "%zx\r\n", piece.size());
  std::size_t sent = 0;
  for (int i = 0; i < 48; ++i) {
    if (!conn.Send(std::string(size_line) + piece + "\r\n")) break;
    sent += piece.size();
  }
  conn.Send("0\r\n\r\n");
  const std::string response = conn.ReadAll();
  EXPECT_EQ(RawStatus(response), 413) << response.substr(0, 200);
  EXPECT_NE(response.find("too_large"), std::string::npos);
  // Nothing under a media id, nothing left in tmp/ once the pool is done.
  for (int i = 0; i < 100 && FilesIn(MediaDir() / "tmp") != 0; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(FilesIn(MediaDir() / "tmp"), 0u);
  EXPECT_EQ(StoredBlobs(), 0u);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/health").status, 200);
}

TEST_F(MediaLimitTest, TruncatedBodyKeepsNothing) {
  {
    RawConn conn(server_.endpoint());
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn.Send(
        "POST /v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice_.access_token +
        "\r\nContent-Type: image/png\r\nContent-Length: 50000\r\n\r\n" + RandomBytes(20000)));
    // Closed only once the server has started the upload, or the checks
    // below could run before its temporary file exists.
    for (int i = 0; i < 200 && FilesIn(MediaDir() / "tmp") == 0; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(FilesIn(MediaDir() / "tmp"), 1u);
  }  // closed after 20,000 of 50,000 bytes
  for (int i = 0; i < 100 && FilesIn(MediaDir() / "tmp") != 0; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(FilesIn(MediaDir() / "tmp"), 0u);
  EXPECT_EQ(StoredBlobs(), 0u);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/health").status, 200);
}

TEST_F(MediaLimitTest, CrashMidUploadLeavesNothingUnderAnId) {
  RawConn conn(server_.endpoint());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn.Send(
      "POST /v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice_.access_token +
      "\r\nContent-Type: image/png\r\nContent-Length: 900000\r\n\r\n" + RandomBytes(300000)));
  for (int i = 0; i < 200 && FilesIn(MediaDir() / "tmp") == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(FilesIn(MediaDir() / "tmp"), 1u);  // the upload in flight
  server_.Kill();
  conn.Close();
  EXPECT_EQ(StoredBlobs(), 0u);
  ASSERT_TRUE(server_.Restart()) << server_.Log();
  EXPECT_EQ(FilesIn(MediaDir() / "tmp"), 0u);  // what the crash left is gone
  EXPECT_EQ(StoredBlobs(), 0u);
}

TEST_F(MediaLimitTest, ResumableUploadPastTheLimitIsRefused) {
  auto r = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                TusHeaders(alice_, {{"Upload-Length", std::to_string(kLimit + 1)}}));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.ErrorCode(), "too_large");
  auto opts = Http(server_.endpoint(), "OPTIONS", "/v1/uploads");
  EXPECT_EQ(opts.headers["tus-max-size"], std::to_string(kLimit));
}

}  // namespace
}  // namespace parley::test
