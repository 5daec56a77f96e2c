// Resumable uploads (tus 1.0.0 core, creation, termination) against a real
// parleyd: hand-made requests for every rule and error, and an unmodified
// tus-js-client (Node.js) that is interrupted mid-PATCH and resumes.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "media/media_helpers.hpp"
#include "support/base64.hpp"

namespace parley::test {
namespace {

namespace fs = std::filesystem;

class TusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.Log();
    alice_ = SignIn(server_, NextPhone());
    bob_ = SignIn(server_, NextPhone());
  }

  // Creates an upload; returns its path (/v1/uploads/{id}).
  std::string Create(std::size_t length, const std::string& type = "application/octet-stream") {
    auto r = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                  TusHeaders(alice_, {{"Upload-Length", std::to_string(length)},
                                      {"Upload-Metadata", "content_type " + B64(type) +
                                                              ",filename " + B64("a b.bin")}}));
    EXPECT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(r.headers["tus-resumable"], "1.0.0");
    return r.headers["location"];
  }
  // Retries 423 (the upload's previous PATCH still winding up), as tus clients do.
  HttpResult PatchAt(const std::string& path, std::uint64_t offset, const std::string& bytes,
                     const Account* who = nullptr) {
    HttpResult r;
    for (int i = 0; i < 50; ++i) {
      r = PatchOnce(path, offset, bytes, who);
      if (r.status != 423) break;
      std::this_thread::sleep_for(20ms);
    }
    return r;
  }
  HttpResult PatchOnce(const std::string& path, std::uint64_t offset, const std::string& bytes,
                       const Account* who = nullptr) {
    return Http(
        server_.endpoint(), "PATCH", path, bytes,
        TusHeaders(who ? *who : alice_, {{"Upload-Offset", std::to_string(offset)},
                                         {"Content-Type", "application/offset+octet-stream"}}));
  }
  HttpResult Head(const std::string& path, const Account* who = nullptr) {
    return Http(server_.endpoint(), "HEAD", path, "", TusHeaders(who ? *who : alice_));
  }
  // Waits until HEAD reports `offset` (an interrupted PATCH is still being
  // wound up on the server for a moment after the client left).
  std::string WaitOffset(const std::string& path, std::uint64_t offset) {
    std::string seen;
    for (int i = 0; i < 100; ++i) {
      seen = Head(path).headers["upload-offset"];
      if (seen == std::to_string(offset)) break;
      std::this_thread::sleep_for(20ms);
    }
    return seen;
  }
  fs::path MediaDir() const { return fs::path(server_.data_dir()) / "media"; }

  Parleyd server_;
  Account alice_, bob_;
};

TEST_F(TusTest, OptionsAdvertisesTheProtocol) {
  auto r = Http(server_.endpoint(), "OPTIONS", "/v1/uploads");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.headers["tus-resumable"], "1.0.0");
  EXPECT_EQ(r.headers["tus-version"], "1.0.0");
  EXPECT_EQ(r.headers["tus-extension"], "creation,termination");
  EXPECT_EQ(r.headers["tus-max-size"], std::to_string(100u << 20));
}

TEST_F(TusTest, UploadInPiecesWithAnInterruptionAndWrongOffsets) {
  const std::string data = MakeJpeg(400, 300) + RandomBytes(0);
  const std::string path = Create(data.size(), "image/jpeg");
  ASSERT_TRUE(path.starts_with("/v1/uploads/")) << path;
  const std::string id = path.substr(std::string("/v1/uploads/").size());

  auto head = Head(path);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["upload-offset"], "0");
  EXPECT_EQ(head.headers["upload-length"], std::to_string(data.size()));
  EXPECT_EQ(head.headers["cache-control"], "no-store");
  EXPECT_EQ(head.headers["tus-resumable"], "1.0.0");
  // Not downloadable, not sendable before its last byte.
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice_)).status, 404);

  auto first = PatchAt(path, 0, data.substr(0, 1000));
  EXPECT_EQ(first.status, 204) << first.body;
  EXPECT_EQ(first.headers["upload-offset"], "1000");

  // A wrong offset: 409 with the right one, and nothing is stored.
  auto wrong = PatchAt(path, 500, data.substr(500, 700));
  EXPECT_EQ(wrong.status, 409);
  EXPECT_EQ(wrong.headers["upload-offset"], "1000");
  EXPECT_EQ(wrong.ErrorCode(), "offset_mismatch");
  EXPECT_EQ(Head(path).headers["upload-offset"], "1000");

  // Wrong content type, missing Tus-Resumable, someone else's upload.
  auto bad_type =
      Http(server_.endpoint(), "PATCH", path, "abc",
           TusHeaders(alice_, {{"Upload-Offset", "1000"}, {"Content-Type", "text/plain"}}));
  EXPECT_EQ(bad_type.status, 415);
  auto no_tus = Http(server_.endpoint(), "PATCH", path, "abc",
                     Bearer(alice_, {{"Upload-Offset", "1000"},
                                     {"Content-Type", "application/offset+octet-stream"}}));
  EXPECT_EQ(no_tus.status, 412);
  EXPECT_EQ(no_tus.headers["tus-version"], "1.0.0");
  EXPECT_EQ(PatchAt(path, 1000, "abc", &bob_).status, 404);
  EXPECT_EQ(Head(path, &bob_).status, 404);
  EXPECT_EQ(Head(path).headers["upload-offset"], "1000");

  // A PATCH cut off mid-body: the bytes that arrived are kept.
  {
    RawConn conn(server_.endpoint());
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn.Send(
        "PATCH " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice_.access_token +
        "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 1000\r\n"
        "Content-Type: application/offset+octet-stream\r\nContent-Length: " +
        std::to_string(data.size() - 1000) + "\r\n\r\n" + data.substr(1000, 1234)));
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(WaitOffset(path, 2234), "2234");

  // Past Upload-Length: refused.
  auto over = PatchAt(path, 2234, data.substr(2234) + "extra");
  EXPECT_EQ(over.status, 413);
  EXPECT_EQ(WaitOffset(path, 2234), "2234");

  auto last = PatchAt(path, 2234, data.substr(2234));
  EXPECT_EQ(last.status, 204) << last.body;
  EXPECT_EQ(last.headers["upload-offset"], std::to_string(data.size()));

  // It is now media under the same id, hashed and processed.
  auto meta = WaitProcessed(server_, alice_, id);
  EXPECT_EQ(Str(meta, "sha256"), Sha256Hex(data));
  EXPECT_EQ(Str(meta, "content_type"), "image/jpeg");
  EXPECT_EQ(Str(meta, "filename"), "a b.bin");
  EXPECT_EQ(Str(meta, "status"), "ready") << json::serialize(meta);
  EXPECT_EQ(meta.at("width").to_number<int>(), 400);
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice_)).body, data);
  // HEAD of a finished upload reports it complete; a further PATCH is refused.
  EXPECT_EQ(Head(path).headers["upload-offset"], std::to_string(data.size()));
  EXPECT_EQ(PatchAt(path, 0, "x").status, 409);
  EXPECT_FALSE(fs::exists(MediaDir() / "partial" / id));
}

TEST_F(TusTest, OnePatchAtATime) {
  const std::string data = RandomBytes(100000, 5);
  const std::string path = Create(data.size());
  RawConn slow(server_.endpoint());
  ASSERT_TRUE(slow.ok());
  // A PATCH that has sent part of its body and is still open.
  ASSERT_TRUE(slow.Send("PATCH " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                        alice_.access_token +
                        "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                        "Connection: close\r\n"
                        "Content-Type: application/offset+octet-stream\r\nContent-Length: " +
                        std::to_string(data.size()) + "\r\n\r\n" + data.substr(0, 1000)));
  std::this_thread::sleep_for(300ms);  // its head has been handled: the upload is locked
  auto second = PatchOnce(path, 0, data);
  EXPECT_EQ(second.status, 423);
  EXPECT_EQ(second.ErrorCode(), "upload_locked");
  auto del = Http(server_.endpoint(), "DELETE", path, "", TusHeaders(alice_));
  EXPECT_EQ(del.status, 423);
  // The first PATCH finishes the upload.
  ASSERT_TRUE(slow.Send(data.substr(1000)));
  const std::string response = slow.ReadAll();
  EXPECT_EQ(RawStatus(response), 204) << response;
  const std::string id = path.substr(std::string("/v1/uploads/").size());
  auto meta = Http(server_.endpoint(), "GET", "/v1/media/" + id + "/meta", "", Bearer(alice_));
  EXPECT_EQ(Str(meta.Json().as_object(), "sha256"), Sha256Hex(data));
}

// Whatever a PATCH is answered, the upload is free again before the answer
// leaves: the next PATCH is not refused with 423 (no retries here).
TEST_F(TusTest, AnAnsweredPatchLeavesTheUploadFree) {
  constexpr std::uint64_t kRounds = 40;
  const std::string data = RandomBytes(kRounds + 1, 6);
  const std::string path = Create(data.size());
  for (std::uint64_t at = 0; at < kRounds; ++at) {
    auto wrong = PatchOnce(path, at + 1, "x");
    ASSERT_EQ(wrong.status, 409) << "at " << at << ": " << wrong.body;
    auto over = PatchOnce(path, at, std::string(data.size() - at + 1, 'y'));
    ASSERT_EQ(over.status, 413) << "at " << at << ": " << over.body;
    auto ok = PatchOnce(path, at, data.substr(at, 1));
    ASSERT_EQ(ok.status, 204) << "at " << at << ": " << ok.body;
    ASSERT_EQ(ok.headers["upload-offset"], std::to_string(at + 1));
  }
  EXPECT_EQ(Head(path).headers["upload-offset"], std::to_string(kRounds));
}

TEST_F(TusTest, CreationErrors) {
  auto no_length = Http(server_.endpoint(), "POST", "/v1/uploads", "", TusHeaders(alice_));
  EXPECT_EQ(no_length.status, 400);
  EXPECT_EQ(no_length.ErrorCode(), "bad_request");
  auto bad_length = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                         TusHeaders(alice_, {{"Upload-Length", "-5"}}));
  EXPECT_EQ(bad_length.status, 400);
  auto deferred = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                       TusHeaders(alice_, {{"Upload-Defer-Length", "1"}}));
  EXPECT_EQ(deferred.status, 400);
  auto old = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                  Bearer(alice_, {{"Tus-Resumable", "0.2.2"}, {"Upload-Length", "10"}}));
  EXPECT_EQ(old.status, 412);
  auto bad_meta =
      Http(server_.endpoint(), "POST", "/v1/uploads", "",
           TusHeaders(alice_, {{"Upload-Length", "10"}, {"Upload-Metadata", "filename %%%"}}));
  EXPECT_EQ(bad_meta.status, 400);
  auto anonymous = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                        {{"Tus-Resumable", "1.0.0"}, {"Upload-Length", "10"}});
  EXPECT_EQ(anonymous.status, 401);
}

TEST_F(TusTest, TerminationRemovesTheUpload) {
  const std::string path = Create(5000);
  const std::string id = path.substr(std::string("/v1/uploads/").size());
  EXPECT_EQ(PatchAt(path, 0, RandomBytes(100)).status, 204);
  EXPECT_TRUE(fs::exists(MediaDir() / "partial" / id));
  auto other = Http(server_.endpoint(), "DELETE", path, "", TusHeaders(bob_));
  EXPECT_EQ(other.status, 404);
  auto del = Http(server_.endpoint(), "DELETE", path, "", TusHeaders(alice_));
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(del.headers["tus-resumable"], "1.0.0");
  EXPECT_EQ(Head(path).status, 404);
  EXPECT_EQ(PatchAt(path, 100, "x").status, 404);
  EXPECT_FALSE(fs::exists(MediaDir() / "partial" / id));
}

TEST_F(TusTest, EmptyUploadCompletes) {
  const std::string path = Create(0);
  auto r = PatchAt(path, 0, "");
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(r.headers["upload-offset"], "0");
  const std::string id = path.substr(std::string("/v1/uploads/").size());
  auto meta = Http(server_.endpoint(), "GET", "/v1/media/" + id + "/meta", "", Bearer(alice_));
  EXPECT_EQ(meta.status, 200);
  EXPECT_EQ(Str(meta.Json().as_object(), "sha256"), Sha256Hex(""));
}

TEST(TusStaleTest, UnfinishedUploadsAreSweptAfterTheirTtl) {
  Parleyd server(Parleyd::Options{.args = {"--media-upload-ttl-s=2"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  auto alice = SignIn(server, NextPhone());
  auto create = [&] {
    auto r = Http(server.endpoint(), "POST", "/v1/uploads", "",
                  TusHeaders(alice, {{"Upload-Length", "100"}}));
    EXPECT_EQ(r.status, 201);
    return r.headers["location"];
  };
  const std::string stale = create();
  const std::string id = stale.substr(std::string("/v1/uploads/").size());
  const fs::path partial = fs::path(server.data_dir()) / "media" / "partial" / id;
  EXPECT_TRUE(fs::exists(partial));
  auto head = [&](const std::string& path) {
    return Http(server.endpoint(), "HEAD", path, "", TusHeaders(alice)).status;
  };
  EXPECT_EQ(head(stale), 200);  // young enough
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(100ms);
    gone = head(stale) == 404;
  }
  EXPECT_TRUE(gone) << "the stale upload is still there";
  for (int i = 0; i < 50 && fs::exists(partial); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(fs::exists(partial));
  // A finished upload is media, and is never swept.
  const std::string done = create();
  auto r = Http(server.endpoint(), "PATCH", done, RandomBytes(100),
                TusHeaders(alice, {{"Upload-Offset", "0"},
                                   {"Content-Type", "application/offset+octet-stream"}}));
  EXPECT_EQ(r.status, 204);
  std::this_thread::sleep_for(3500ms);
  const std::string done_id = done.substr(std::string("/v1/uploads/").size());
  EXPECT_EQ(Http(server.endpoint(), "GET", "/v1/media/" + done_id, "", Bearer(alice)).status, 200);
}

// ---- an unmodified tus client -------------------------------------------------

TEST_F(TusTest, TusJsClientUploadsAndResumesAfterAnInterruption) {
  const fs::path dir = fs::path(PARLEY_SOURCE_DIR) / "tests" / "media" / "tus";
  ASSERT_TRUE(fs::exists(dir / "node_modules" / "tus-js-client"))
      << "tus-js-client is not installed: run scripts/bootstrap (npm ci in " << dir << ")";
  // 3 MiB: twelve 256 KiB PATCHes, aborted after 40 %.
  const std::string data = RandomBytes(3 << 20, 42);
  const fs::path file = fs::path(server_.data_dir()) / "upload.bin";
  std::ofstream(file, std::ios::binary) << data;
  const std::string base = "http://127.0.0.1:" + std::to_string(server_.endpoint().port);
  const std::string cmd = "node " + (dir / "upload.cjs").string() + " " + base + " " +
                          alice_.access_token + " " + file.string() +
                          " application/octet-stream 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  auto parsed = json::parse(out.substr(0, out.find('\n')));
  const auto& o = parsed.as_object();
  const std::string url = Str(o, "url");
  const auto resumed = o.at("resumed_from").to_number<std::int64_t>();
  // It resumed from what the server had stored, neither from scratch nor at the end.
  EXPECT_GT(resumed, 0) << out;
  EXPECT_LT(resumed, static_cast<std::int64_t>(data.size())) << out;
  const std::string id = url.substr(url.rfind('/') + 1);
  auto meta = Http(server_.endpoint(), "GET", "/v1/media/" + id + "/meta", "", Bearer(alice_));
  ASSERT_EQ(meta.status, 200) << meta.body;
  EXPECT_EQ(Str(meta.Json().as_object(), "sha256"), Sha256Hex(data));
  EXPECT_EQ(Str(meta.Json().as_object(), "filename"), "upload.bin");
  auto get = Http(server_.endpoint(), "GET", "/v1/media/" + id, "", Bearer(alice_));
  EXPECT_EQ(get.body == data, true);
}

}  // namespace
}  // namespace parley::test
