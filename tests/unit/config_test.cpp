#include "common/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace parley {
namespace {

using Env = std::map<std::string, std::string>;

Config Load(std::initializer_list<const char*> flags, const Env& env = {}) {
  std::vector<const char*> argv = {"parleyd"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return LoadConfig(static_cast<int>(argv.size()), argv.data(), env);
}

// The message LoadConfig throws, or "" when it does not throw.
std::string ErrorOf(std::initializer_list<const char*> flags, const Env& env = {}) {
  try {
    Load(flags, env);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

class ConfigFileTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("parley_config_test_" + std::to_string(getpid()) + "_" + info->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& text) {
    const auto path = (dir_ / "parley.toml").string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST(ConfigTest, DefaultsMatchTheProtocol) {
  const Config c = Load({});
  EXPECT_EQ(c.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.sms_provider, "log");
  EXPECT_EQ(c.otp_per_address_per_hour, 20u);
  EXPECT_EQ(c.otp_per_phone, 3u);
  EXPECT_EQ(c.device_send_rate, 50u);
  EXPECT_EQ(c.config, "");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_TRUE(c.store_sync);
  EXPECT_EQ(c.max_frame_bytes, 262144u);
}

TEST(ConfigTest, StoreReadersDefaultToTwoPerCore) {
  const Config defaults = Load({});
  EXPECT_EQ(defaults.store_readers, 0u);
  EXPECT_EQ(StoreReaderThreads(defaults), std::max(2u, 2 * std::thread::hardware_concurrency()));
  EXPECT_EQ(StoreReaderThreads(Load({"--store-readers", "3"})), 3u);
  EXPECT_EQ(StoreReaderThreads(Load({}, {{"PARLEY_STORE_READERS", "1"}})), 1u);
}

TEST(ConfigTest, StoreWriterPriorityIsTenStepsAndAtMostTwenty) {
  EXPECT_EQ(Load({}).store_writer_priority, 10u);
  EXPECT_EQ(Load({"--store-writer-priority", "0"}).store_writer_priority, 0u);
  EXPECT_EQ(Load({}, {{"PARLEY_STORE_WRITER_PRIORITY", "20"}}).store_writer_priority, 20u);
  EXPECT_EQ(ErrorOf({"--store-writer-priority", "21"}).rfind("config: store_writer_priority: ", 0),
            0u);
  EXPECT_EQ(ErrorOf({"--store-writer-priority", "-1"}).rfind("config: store_writer_priority: ", 0),
            0u);
}

TEST(ConfigTest, AnEmptyArgvIsAccepted) {
  EXPECT_EQ(LoadConfig(0, nullptr, {}).listen, "127.0.0.1:8080");
}

TEST(ConfigTest, KeysTableListsEveryKeyWithItsDefault) {
  const auto& keys = ConfigKeys();
  ASSERT_GE(keys.size(), 24u);
  EXPECT_EQ(keys.front().name, "listen");
  EXPECT_EQ(keys.front().default_value, "127.0.0.1:8080");
  bool saw_sync = false;
  for (const auto& k : keys) {
    EXPECT_FALSE(k.help.empty()) << k.name;
    EXPECT_EQ(k.name.find('-'), std::string::npos) << k.name;
    if (k.name == "store_sync") {
      saw_sync = true;
      EXPECT_EQ(k.default_value, "true");
    }
    if (k.name == "otp_per_phone") {
      EXPECT_EQ(k.default_value, "3");
    }
  }
  EXPECT_TRUE(saw_sync);
}

TEST(ConfigTest, FlagsUseDashesAndBothValueForms) {
  const Config c = Load({"--listen", "0.0.0.0:9000", "--data-dir=/tmp/x", "--otp-per-phone", "0",
                         "--device-send-rate=7", "--node-id", "1023"});
  EXPECT_EQ(c.listen, "0.0.0.0:9000");
  EXPECT_EQ(c.data_dir, "/tmp/x");
  EXPECT_EQ(c.otp_per_phone, 0u);
  EXPECT_EQ(c.device_send_rate, 7u);
  EXPECT_EQ(c.node_id, "1023");
  EXPECT_EQ(NodeNumber(c.node_id), 1023u);
}

TEST(ConfigTest, TheLastOfARepeatedFlagWins) {
  EXPECT_EQ(Load({"--listen", "a:1", "--listen", "b:2"}).listen, "b:2");
}

TEST(ConfigTest, BooleansAcceptTrueFalseOneZero) {
  EXPECT_FALSE(Load({"--store-sync", "false"}).store_sync);
  EXPECT_FALSE(Load({"--store-sync=0"}).store_sync);
  EXPECT_TRUE(Load({"--store-sync=1"}).store_sync);
  EXPECT_TRUE(Load({"--store-sync"}, {{"PARLEY_STORE_SYNC", "false"}}).store_sync);
  EXPECT_FALSE(Load({}, {{"PARLEY_STORE_SYNC", "0"}}).store_sync);
  EXPECT_TRUE(Load({}, {{"PARLEY_STORE_SYNC", "true"}}).store_sync);
  EXPECT_EQ(ErrorOf({"--store-sync=yes"}).rfind("config: store_sync: ", 0), 0u);
}

TEST(ConfigTest, EnvironmentUsesUpperCaseNames) {
  const Config c = Load({}, {{"PARLEY_DATA_DIR", "/srv/parley"},
                             {"PARLEY_OTP_PER_ADDRESS_PER_HOUR", "99"},
                             {"PARLEY_UNRELATED_THING", "ignored"}});
  EXPECT_EQ(c.data_dir, "/srv/parley");
  EXPECT_EQ(c.otp_per_address_per_hour, 99u);
}

TEST(ConfigTest, BadIntegersNameTheirKeyAndSource) {
  const std::string flag = ErrorOf({"--otp-per-phone", "three"});
  EXPECT_EQ(flag.rfind("config: otp_per_phone: ", 0), 0u) << flag;
  EXPECT_NE(flag.find("--otp-per-phone"), std::string::npos) << flag;
  const std::string env = ErrorOf({}, {{"PARLEY_THREADS", "-1"}});
  EXPECT_EQ(env.rfind("config: threads: ", 0), 0u) << env;
  EXPECT_NE(env.find("PARLEY_THREADS"), std::string::npos) << env;
  EXPECT_EQ(ErrorOf({"--threads", "4294967296"}).rfind("config: threads: ", 0), 0u);
  EXPECT_EQ(ErrorOf({"--threads", "12x"}).rfind("config: threads: ", 0), 0u);
}

TEST(ConfigTest, UnknownFlagIsAnErrorNamingIt) {
  const std::string e = ErrorOf({"--lisen", "x:1"});
  EXPECT_EQ(e.rfind("config: --lisen: unknown flag", 0), 0u) << e;
  const std::string eq = ErrorOf({"--no-such=1"});
  EXPECT_EQ(eq.rfind("config: --no-such: ", 0), 0u) << eq;
  EXPECT_EQ(ErrorOf({"stray"}).rfind("config: stray: ", 0), 0u);
}

TEST(ConfigTest, AFlagWithoutItsValueIsAnError) {
  const std::string e = ErrorOf({"--listen"});
  EXPECT_EQ(e.rfind("config: ", 0), 0u) << e;
  EXPECT_NE(e.find("--listen"), std::string::npos) << e;
}

TEST(ConfigTest, ValidatesListen) {
  EXPECT_EQ(Load({"--listen", "[::1]:8080"}).listen, "[::1]:8080");
  EXPECT_EQ(Load({"--listen", "localhost:0"}).listen, "localhost:0");
  EXPECT_EQ(Load({"--listen", "0.0.0.0:65535"}).listen, "0.0.0.0:65535");
  for (const char* bad : {"8080", "host:", ":8080", "host:65536", "host:-1", "host:http", "::1:80",
                          "[::1]", "[::1]8080", "[]:80", "host:123456"}) {
    EXPECT_EQ(ErrorOf({"--listen", bad}).rfind("config: listen: ", 0), 0u) << bad;
  }
}

TEST(ConfigTest, ValidatesSmsProvider) {
  EXPECT_EQ(Load({"--sms-provider", "file:/tmp/sms.log"}).sms_provider, "file:/tmp/sms.log");
  EXPECT_EQ(Load({"--sms-provider", "webhook:https://sms.example/send"}).sms_provider,
            "webhook:https://sms.example/send");
  EXPECT_EQ(Load({"--sms-provider", "webhook:http://127.0.0.1:9/x"}).sms_provider,
            "webhook:http://127.0.0.1:9/x");
  for (const char* bad :
       {"", "file:", "webhook:", "webhook:ftp://x", "webhook:https://", "twilio", "LOG"}) {
    EXPECT_EQ(ErrorOf({"--sms-provider", bad}).rfind("config: sms_provider: ", 0), 0u) << bad;
  }
}

TEST(ConfigTest, ValidatesTheOtherKeys) {
  EXPECT_EQ(ErrorOf({"--node-id", "1024"}).rfind("config: node_id: ", 0), 0u);
  EXPECT_EQ(ErrorOf({"--node-id", "a/b"}).rfind("config: node_id: ", 0), 0u);
  EXPECT_EQ(ErrorOf({"--node-id", std::string(65, 'n').c_str()}).rfind("config: node_id: ", 0), 0u);
  EXPECT_EQ(Load({"--node-id", "eu-1.parley"}).node_id, "eu-1.parley");
  EXPECT_LT(NodeNumber("eu-1.parley"), 1024u);
  EXPECT_EQ(NodeNumber("7"), 7u);
  EXPECT_EQ(Load({}).bus, "none");
  EXPECT_EQ(Load({"--bus", "redis://127.0.0.1:6379"}).bus, "redis://127.0.0.1:6379");
  for (const char* bad : {"", "redis", "redis://", "nats://x:1", "local"}) {
    EXPECT_EQ(ErrorOf({"--bus", bad}).rfind("config: bus: ", 0), 0u) << bad;
  }
  EXPECT_EQ(ErrorOf({"--log-level", "verbose"}).rfind("config: log_level: ", 0), 0u);
  for (const char* level : {"trace", "debug", "info", "warn", "error"}) {
    EXPECT_EQ(Load({"--log-level", level}).log_level, level);
  }
  EXPECT_EQ(ErrorOf({"--tls-cert", "/c.pem"}).rfind("config: tls_key: ", 0), 0u);
  EXPECT_EQ(ErrorOf({"--tls-key", "/k.pem"}).rfind("config: tls_cert: ", 0), 0u);
  EXPECT_EQ(Load({"--tls-cert", "/c.pem", "--tls-key", "/k.pem"}).tls_key, "/k.pem");
  EXPECT_EQ(ErrorOf({"--max-frame-bytes", "1023"}).rfind("config: max_frame_bytes: ", 0), 0u);
  EXPECT_EQ(Load({"--max-frame-bytes", "1024"}).max_frame_bytes, 1024u);
  EXPECT_EQ(ErrorOf({"--data-dir", ""}).rfind("config: data_dir: ", 0), 0u);
}

TEST_F(ConfigFileTest, FileKeysWithUnderscoresOrDashes) {
  const auto path = Write(R"(
listen = "0.0.0.0:7000"
otp_per_phone = 9
otp-per-address-per-hour = 11
store-sync = false
sms_provider = "file:/tmp/codes.txt"
)");
  const Config c = Load({"--config", path.c_str()});
  EXPECT_EQ(c.listen, "0.0.0.0:7000");
  EXPECT_EQ(c.otp_per_phone, 9u);
  EXPECT_EQ(c.otp_per_address_per_hour, 11u);
  EXPECT_FALSE(c.store_sync);
  EXPECT_EQ(c.sms_provider, "file:/tmp/codes.txt");
  EXPECT_EQ(c.config, path);
}

TEST_F(ConfigFileTest, PrecedenceIsDefaultsThenFileThenEnvThenFlags) {
  const auto path = Write("otp_per_phone = 4\ndevice_send_rate = 5\nmax_devices = 6\n");
  const Env env = {
      {"PARLEY_CONFIG", path}, {"PARLEY_DEVICE_SEND_RATE", "15"}, {"PARLEY_MAX_DEVICES", "16"}};
  const Config c = Load({"--max-devices", "26"}, env);
  EXPECT_EQ(c.otp_per_address_per_hour, 20u);  // default
  EXPECT_EQ(c.otp_per_phone, 4u);              // file
  EXPECT_EQ(c.device_send_rate, 15u);          // env over file
  EXPECT_EQ(c.max_devices, 26u);               // flag over env
  EXPECT_EQ(c.config, path);
}

TEST_F(ConfigFileTest, ConfigFlagWinsOverConfigEnv) {
  const auto path = Write("max_devices = 2\n");
  const Config c = Load({"--config", path.c_str()}, {{"PARLEY_CONFIG", "/nonexistent.toml"}});
  EXPECT_EQ(c.max_devices, 2u);
}

TEST_F(ConfigFileTest, ValuesFromTheFileAreValidated) {
  const auto path = Write("node_id = 5000\n");
  EXPECT_EQ(ErrorOf({"--config", path.c_str()}).rfind("config: node_id: ", 0), 0u);
}

TEST_F(ConfigFileTest, UnknownFileKeyIsNamed) {
  const auto path = Write("listen = \"a:1\"\nlisten_port = 80\n");
  const std::string e = ErrorOf({"--config", path.c_str()});
  EXPECT_EQ(e.rfind("config: listen_port: unknown key", 0), 0u) << e;
  const auto table = Write("[server]\nlisten = \"a:1\"\n");
  EXPECT_EQ(ErrorOf({"--config", table.c_str()}).rfind("config: server: ", 0), 0u);
}

TEST_F(ConfigFileTest, WrongTypeInFileIsNamed) {
  struct Case {
    const char* text;
    const char* key;
  };
  for (const Case& c :
       {Case{"otp_per_phone = \"3\"\n", "otp_per_phone"}, Case{"listen = 8080\n", "listen"},
        Case{"store_sync = 1\n", "store_sync"}, Case{"threads = 1.5\n", "threads"},
        Case{"threads = -2\n", "threads"}, Case{"max-devices = true\n", "max-devices"}}) {
    const auto path = Write(c.text);
    const std::string e = ErrorOf({"--config", path.c_str()});
    EXPECT_EQ(e.rfind(std::string("config: ") + c.key + ": ", 0), 0u) << c.text << " -> " << e;
  }
}

TEST_F(ConfigFileTest, SameKeyWrittenBothWaysIsAnError) {
  const auto path = Write("otp_per_phone = 1\notp-per-phone = 2\n");
  EXPECT_EQ(ErrorOf({"--config", path.c_str()}).rfind("config: otp_per_phone: ", 0), 0u);
}

TEST_F(ConfigFileTest, UnreadableOrMalformedFileNamesConfig) {
  const std::string missing = ErrorOf({"--config", (dir_ / "missing.toml").c_str()});
  EXPECT_EQ(missing.rfind("config: config: ", 0), 0u) << missing;
  const auto path = Write("listen = \"unterminated\n");
  const std::string bad = ErrorOf({}, {{"PARLEY_CONFIG", path}});
  EXPECT_EQ(bad.rfind("config: config: ", 0), 0u) << bad;
  EXPECT_NE(bad.find(path), std::string::npos) << bad;
}

TEST(ConfigTest, ParleyEnvironmentKeepsOnlyParleyVariables) {
  setenv("PARLEY_CONFIG_TEST_VAR", "a=b", 1);
  setenv("NOT_PARLEY_CONFIG_TEST_VAR", "x", 1);
  const auto env = ParleyEnvironment();
  unsetenv("PARLEY_CONFIG_TEST_VAR");
  unsetenv("NOT_PARLEY_CONFIG_TEST_VAR");
  ASSERT_TRUE(env.contains("PARLEY_CONFIG_TEST_VAR"));
  EXPECT_EQ(env.at("PARLEY_CONFIG_TEST_VAR"), "a=b");
  EXPECT_FALSE(env.contains("NOT_PARLEY_CONFIG_TEST_VAR"));
  for (const auto& [k, v] : env) EXPECT_TRUE(k.starts_with("PARLEY_")) << k;
}

}  // namespace
}  // namespace parley
