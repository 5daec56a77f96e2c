// Media against hostile clients (issue 14): what a download tells the
// browser (active types are attachments, nosniff everywhere, sanitised file
// names) and paths that once reached undefined behaviour.
#include <gtest/gtest.h>

#include "media/media_helpers.hpp"
#include "support/base64.hpp"

namespace parley::test {
namespace {

class MediaHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.Log();
    alice_ = SignIn(server_, NextPhone());
  }
  HttpResult Get(const std::string& path) {
    return Http(server_.endpoint(), "GET", path, "", Bearer(alice_));
  }

  Parleyd server_;
  Account alice_;
};

TEST_F(MediaHardeningTest, ActiveTypesAreAttachmentsAndEveryResponseIsNosniff) {
  const std::string html = "<html><script>alert(document.cookie)</script></html>";
  const std::string svg =
      "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><rect width='1'/></svg>";
  struct Case {
    std::string type;
    std::string bytes;
    bool inline_ok;
  };
  const std::vector<Case> cases = {
      {"text/html", html, false},
      {"image/svg+xml", svg, false},
      {"application/xhtml+xml", html, false},
      {"text/plain", "hello", false},
      {"application/pdf", "%PDF-1.4", false},
      {"application/octet-stream", RandomBytes(100), false},
      {"image/jpeg", MakeJpeg(16, 16), true},
      {"audio/wav", MakeWav(100), true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type);
    auto up = UploadMedia(server_, alice_, c.bytes, c.type);
    ASSERT_EQ(up.status, 201) << up.body;
    EXPECT_EQ(up.headers["x-content-type-options"], "nosniff");
    const std::string id = MediaIdOf(up);
    auto get = Get("/v1/media/" + id);
    ASSERT_EQ(get.status, 200);
    EXPECT_EQ(get.body, c.bytes);
    EXPECT_EQ(get.headers["x-content-type-options"], "nosniff");
    const std::string disposition = get.headers["content-disposition"];
    if (c.inline_ok) {
      EXPECT_EQ(disposition, "inline");
    } else {
      EXPECT_EQ(disposition, "attachment");
    }
    EXPECT_NE(get.headers["content-security-policy"].find("sandbox"), std::string::npos);
    auto meta = Get("/v1/media/" + id + "/meta");
    EXPECT_EQ(meta.status, 200);
    EXPECT_EQ(meta.headers["x-content-type-options"], "nosniff");
  }
  // Errors and tus answers too.
  for (const auto& r : {Get("/v1/media/123456789"), Get("/v1/media/1/thumbnail"),
                        Http(server_.endpoint(), "GET", "/v1/media/1"),
                        Http(server_.endpoint(), "OPTIONS", "/v1/uploads"),
                        Http(server_.endpoint(), "POST", "/v1/uploads", "", TusHeaders(alice_))}) {
    EXPECT_EQ(r.headers.count("x-content-type-options"), 1u) << r.status << " " << r.body;
    EXPECT_EQ(r.headers.at("x-content-type-options"), "nosniff");
  }
}

TEST_F(MediaHardeningTest, FilenamesAreSanitised) {
  struct Case {
    std::string given;
    std::string stored;
  };
  const std::vector<Case> cases = {
      {"../../etc/passwd", "passwd"},
      {"..\\..\\boot.ini", "boot.ini"},
      // A right-to-left override makes "evil\u202Egpj.exe" read "evilexe.jpg".
      {"evil\xE2\x80\xAEgpj.exe", "evilgpj.exe"},
      {"a\r\nSet-Cookie: x=1\".txt", "aSet-Cookie: x=1.txt"},
      {"bad\xff\xfe utf8.bin", "bad__ utf8.bin"},
      {"  .hidden. ", "hidden"},
      {"caf\xC3\xA9 menu.pdf", "caf\xC3\xA9 menu.pdf"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.given);
    const std::string bytes = "<b>hi</b>";
    auto create = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                       TusHeaders(alice_, {{"Upload-Length", std::to_string(bytes.size())},
                                           {"Upload-Metadata", "content_type " + B64("text/html") +
                                                                   ",filename " + B64(c.given)}}));
    ASSERT_EQ(create.status, 201) << create.body;
    const std::string path = create.headers["location"];
    auto patch = Http(server_.endpoint(), "PATCH", path, bytes,
                      TusHeaders(alice_, {{"Upload-Offset", "0"},
                                          {"Content-Type", "application/offset+octet-stream"}}));
    ASSERT_EQ(patch.status, 204) << patch.body;
    const std::string id = path.substr(std::string("/v1/uploads/").size());
    auto meta = Get("/v1/media/" + id + "/meta");
    ASSERT_EQ(meta.status, 200);
    EXPECT_EQ(Str(meta.Json().as_object(), "filename"), c.stored);
    auto get = Get("/v1/media/" + id);
    ASSERT_EQ(get.status, 200);
    const std::string disposition = get.headers["content-disposition"];
    EXPECT_TRUE(disposition.starts_with("attachment; filename=\"")) << disposition;
    EXPECT_EQ(disposition.find_first_of("\r\n"), std::string::npos);
    EXPECT_NE(disposition.find("filename*=UTF-8''"), std::string::npos) << disposition;
  }
  // Nothing left once sanitised: no filename at all.
  auto create = Http(server_.endpoint(), "POST", "/v1/uploads", "",
                     TusHeaders(alice_, {{"Upload-Length", "1"},
                                         {"Upload-Metadata", "filename " + B64("../..")}}));
  ASSERT_EQ(create.status, 201) << create.body;
  const std::string path = create.headers["location"];
  ASSERT_EQ(Http(server_.endpoint(), "PATCH", path, "x",
                 TusHeaders(alice_, {{"Upload-Offset", "0"},
                                     {"Content-Type", "application/offset+octet-stream"}}))
                .status,
            204);
  auto meta = Get("/v1/media/" + path.substr(std::string("/v1/uploads/").size()) + "/meta");
  EXPECT_FALSE(meta.Json().as_object().contains("filename")) << meta.body;
}

// "/v1/media/meta" ends with "/meta" but has no id before it: the route once
// removed a suffix longer than what was left (undefined behaviour, caught by
// the sanitizer build's _GLIBCXX_ASSERTIONS).
TEST_F(MediaHardeningTest, SuffixWithoutIdIsNotFound) {
  for (const std::string path :
       {"/v1/media/meta", "/v1/media/thumbnail", "/v1/media/", "/v1/media//meta",
        "/v1/media/humbnail", "/v1/media/x/thumbnail", "/v1/media/1/meta/meta"}) {
    SCOPED_TRACE(path);
    auto r = Get(path);
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(r.ErrorCode(), "not_found");
  }
  EXPECT_EQ(Http(server_.endpoint(), "GET", "/health").status, 200);
}

}  // namespace
}  // namespace parley::test
