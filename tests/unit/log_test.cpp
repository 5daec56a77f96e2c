#include "common/log.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace parley {
namespace {

TEST(LogTest, PlainValuesStayUnquoted) {
  EXPECT_EQ(LogQuote("abc"), "abc");
  EXPECT_EQ(LogQuote("127.0.0.1:8080"), "127.0.0.1:8080");
  EXPECT_EQ(LogQuote("a\\b"), "a\\b");
  EXPECT_EQ(LogQuote("héllo"), "héllo");
}

TEST(LogTest, QuotesWhenNeeded) {
  EXPECT_EQ(LogQuote(""), "\"\"");
  EXPECT_EQ(LogQuote("two words"), "\"two words\"");
  EXPECT_EQ(LogQuote("k=v"), "\"k=v\"");
  EXPECT_EQ(LogQuote("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(LogQuote("a\"b"), "\"a\\\"b\"");
}

TEST(LogTest, EscapesControlCharactersAndBackslashesInsideQuotes) {
  EXPECT_EQ(LogQuote("line1\nline2"), "\"line1\\nline2\"");
  EXPECT_EQ(LogQuote("a\tb"), "\"a\\tb\"");
  EXPECT_EQ(LogQuote("x\\ y"), "\"x\\\\ y\"");
  EXPECT_EQ(LogQuote(std::string_view("a\x01", 2)), "\"a\\u0001\"");
}

TEST(LogTest, InitLoggingSetsTheLevelAndCanBeCalledAgain) {
  InitLogging("warn");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
  InitLogging("debug");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  EXPECT_THROW(InitLogging("loud"), std::invalid_argument);
  InitLogging("info");
}

TEST(LogTest, WritesLogfmtLinesToStandardError) {
  InitLogging("info");
  testing::internal::CaptureStderr();
  PLOG_INFO("started", "listen={} n={}", LogQuote("127.0.0.1:80"), 3);
  PLOG_DEBUG("hidden", "n={}", 1);
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(out.starts_with("ts=")) << out;
  EXPECT_NE(out.find("Z level=info msg=\"started\" listen=127.0.0.1:80 n=3\n"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
  // ts=YYYY-MM-DDTHH:MM:SS.mmmZ
  ASSERT_GE(out.size(), 27u);
  EXPECT_EQ(out[7], '-');
  EXPECT_EQ(out[13], 'T');
  EXPECT_EQ(out[22], '.');
  EXPECT_EQ(out[26], 'Z');
}

}  // namespace
}  // namespace parley
