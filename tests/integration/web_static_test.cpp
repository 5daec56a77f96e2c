// The web client's files, served by a real parleyd (PROTOCOL.md section 9,
// src/core/http/web_static.cpp): index.html for / and any non-API path, uncached;
// hashed assets immutable; a strict CSP; nothing outside the folder.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

namespace fs = std::filesystem;

class WebStaticTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("parley-web-static-" + std::to_string(::getpid())));
    fs::create_directories(*dir_ / "assets");
    std::ofstream(*dir_ / "index.html") << "<!doctype html><title>Parley</title>";
    std::ofstream(*dir_ / "assets" / "main-ABC123.js") << "console.log(1)";
    std::ofstream(*dir_ / "assets" / "main-ABC123.css") << "body{}";
    std::ofstream(*dir_ / "secret.txt") << "not for the web";
    fs::create_symlink(*dir_ / "secret.txt", *dir_ / "assets" / "link.js");
    server_ = new Parleyd(Parleyd::Options{.args = {"--web-dir", dir_->string()}});
    ASSERT_TRUE(server_->Start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static HttpResult Get(const std::string& target) {
    return Http(server_->endpoint(), "GET", target);
  }
  static Parleyd* server_;
  static fs::path* dir_;
};
Parleyd* WebStaticTest::server_ = nullptr;
fs::path* WebStaticTest::dir_ = nullptr;

TEST_F(WebStaticTest, IndexForRootAndAppPathsUncachedWithStrictCsp) {
  for (const char* path : {"/", "/chat/42", "/settings?x=1", "/favicon.ico"}) {
    SCOPED_TRACE(path);
    auto r = Get(path);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "<!doctype html><title>Parley</title>");
    EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(r.headers["cache-control"], "no-cache");
    const std::string csp = r.headers["content-security-policy"];
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
    EXPECT_NE(
        csp.find("connect-src 'self' ws://127.0.0.1:" + std::to_string(server_->endpoint().port)),
        std::string::npos)
        << csp;
    EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");
  }
}

TEST_F(WebStaticTest, HashedAssetsAreImmutable) {
  auto js = Get("/assets/main-ABC123.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.body, "console.log(1)");
  EXPECT_EQ(js.headers["content-type"], "text/javascript; charset=utf-8");
  EXPECT_EQ(js.headers["cache-control"], "public, max-age=31536000, immutable");
  auto css = Get("/assets/main-ABC123.css");
  ASSERT_EQ(css.status, 200);
  EXPECT_EQ(css.headers["content-type"], "text/css; charset=utf-8");
}

TEST_F(WebStaticTest, NothingOutsideTheFolder) {
  // A missing asset is a 404, not the page (a stale page must not run HTML as a script).
  EXPECT_EQ(Get("/assets/main-OLD.js").status, 404);
  EXPECT_EQ(Get("/assets/link.js").status, 404);  // a symlink out of assets/
  EXPECT_EQ(Get("/assets/../secret.txt").status, 404);
  EXPECT_EQ(Get("/assets/..%2Fsecret.txt").status, 404);
  EXPECT_EQ(Get("/assets/.hidden").status, 404);
  EXPECT_EQ(Get("/assets/").status, 404);
  // API paths stay the API's.
  auto api = Get("/v1/nothing");
  EXPECT_EQ(api.status, 404);
  EXPECT_EQ(api.ErrorCode(), "not_found");
  EXPECT_EQ(Get("/health").Json().at("status"), "ok");
  // Only GET.
  EXPECT_NE(Http(server_->endpoint(), "POST", "/", "{}").status, 200);
}

TEST(WebStaticOff, NoPageWhenTurnedOff) {
  Parleyd server(Parleyd::Options{.args = {"--web-dir", "off"}});
  ASSERT_TRUE(server.Start());
  auto r = Http(server.endpoint(), "GET", "/");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.ErrorCode(), "not_found");
}

}  // namespace
}  // namespace parley::test
