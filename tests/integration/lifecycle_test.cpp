// Start-up, configuration, shutdown, restart, TLS and the admin command,
// against the real parleyd binary.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

TEST(Lifecycle, SigtermSaysByeWith1001AndExitsZero) {
  Parleyd server;
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone());
  auto ws = Connect(server, a);
  ASSERT_TRUE(ws);
  const auto before = std::chrono::steady_clock::now();
  std::thread stopper([&] { EXPECT_EQ(server.Terminate(), 0); });
  EXPECT_EQ(ws->WaitClosed(10s), 1001);
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);
  auto bye = ws->ReceiveOp("bye", 100ms);
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["code"], 1001);
}

TEST(Lifecycle, AccountsAndTokensSurviveARestart) {
  Parleyd server;
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone());
  ASSERT_EQ(server.Terminate(), 0);
  ASSERT_TRUE(server.Restart());
  EXPECT_TRUE(Connect(server, a));  // the JWT key was kept in the data directory
  Account again = SignIn(server, a.phone);
  EXPECT_EQ(again.user_id, a.user_id);
}

TEST(Lifecycle, AdminDumpsAUsersRecords) {
  Parleyd server;
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone(), "first");
  SignIn(server, a.phone, "second");
  int exit_code = -1;
  // It reads the database while the server runs.
  const std::string out =
      RunAdmin({"--data-dir", server.data_dir(), "dump-user", "--phone", a.phone}, &exit_code);
  ASSERT_EQ(exit_code, 0) << out;
  auto dump = json::parse(out).as_object();
  EXPECT_EQ(dump["user"].at("user_id"), a.user_id);
  EXPECT_EQ(dump["user"].at("phone"), a.phone);
  ASSERT_EQ(dump["devices"].as_array().size(), 2u);
  EXPECT_EQ(dump["devices"].as_array()[0].at("name"), "first");
  RunAdmin({"--data-dir", server.data_dir(), "dump-user", "--phone", "+19999999998"}, &exit_code);
  EXPECT_NE(exit_code, 0);
}

TEST(Lifecycle, ConfigurationFileEnvironmentAndFlags) {
  char dir_template[] = "/tmp/parley-config-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string file = std::string(dir_template) + "/parley.toml";
  std::ofstream(file) << "otp-per-phone = 1\notp_per_address_per_hour = 0\n";
  {
    Parleyd server(Parleyd::Options{.args = {"--config", file}});
    ASSERT_TRUE(server.Start());
    const std::string phone = NextPhone();
    EXPECT_EQ(RequestCode(server, phone).status, 202);
    EXPECT_EQ(RequestCode(server, phone).status, 429);
  }
  {
    // The environment beats the file; a flag beats the environment.
    Parleyd server(
        Parleyd::Options{.args = {"--config", file}, .env = {{"PARLEY_OTP_PER_PHONE", "2"}}});
    ASSERT_TRUE(server.Start());
    const std::string phone = NextPhone();
    EXPECT_EQ(RequestCode(server, phone).status, 202);
    EXPECT_EQ(RequestCode(server, phone).status, 202);
    EXPECT_EQ(RequestCode(server, phone).status, 429);
  }
  {
    Parleyd server(Parleyd::Options{.args = {"--config", file, "--otp-per-phone", "3"},
                                    .env = {{"PARLEY_OTP_PER_PHONE", "2"}}});
    ASSERT_TRUE(server.Start());
    const std::string phone = NextPhone();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(RequestCode(server, phone).status, 202);
    EXPECT_EQ(RequestCode(server, phone).status, 429);
  }
  std::filesystem::remove_all(dir_template);
}

TEST(Lifecycle, ABadConfigurationIsRefusedWithTheKeyNamed) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-phone", "lots"}});
  EXPECT_FALSE(server.Start());
  EXPECT_NE(server.Log().find("otp"), std::string::npos) << server.Log();
}

TEST(Lifecycle, TlsServesHttpsAndWss) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "0"}, .tls = true});
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(server.endpoint().tls);
  EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);
  Account a = SignIn(server, NextPhone());
  EXPECT_TRUE(Connect(server, a));
  // Plain HTTP on the TLS port gets nowhere, and the server keeps serving.
  Endpoint plain = server.endpoint();
  plain.tls = false;
  EXPECT_NE(Http(plain, "GET", "/health", "", {}, 2s).status, 200);
  EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);
}

}  // namespace
}  // namespace parley::test
