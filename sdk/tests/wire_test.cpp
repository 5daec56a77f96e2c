// The SDK's wire codecs on their own: URLs, messages, errors, the e2ee
// envelope and base64.
#include "wire.hpp"

#include <gtest/gtest.h>

#include "net.hpp"

namespace parley::sdk::detail {
namespace {

TEST(UrlTest, Parses) {
  auto u = Url::Parse("http://127.0.0.1:8080");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->base, "");
  auto s = Url::Parse("wss://chat.example.org/parley/");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, "443");
  EXPECT_EQ(s->base, "/parley");
  EXPECT_EQ(s->HostHeader(), "chat.example.org");
  EXPECT_EQ(s->ToString(), "https://chat.example.org/parley");
  auto v6 = Url::Parse("http://[::1]:9000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->HostHeader(), "[::1]:9000");
  EXPECT_FALSE(Url::Parse("ftp://x"));
  EXPECT_FALSE(Url::Parse("localhost:8080"));
  EXPECT_FALSE(Url::Parse("http://host:80a"));
}

// A number past int64 (the fuzzer's sdk_frames finding: "ts_ms":1.7e96) is
// not converted (undefined behaviour) but answers the fallback.
TEST(WireTest, NumbersPastInt64AnswerTheFallback) {
  auto o =
      ParseObject(R"({"a":1.7e96,"b":-1e300,"c":1234.0,"d":9.3e18,"e":-9.2e18,"f":1700000000000})");
  ASSERT_TRUE(o);
  EXPECT_EQ(Int(*o, "a", -7), -7);
  EXPECT_EQ(Int(*o, "b", -7), -7);
  EXPECT_EQ(Int(*o, "c", -7), 1234);
  EXPECT_EQ(Int(*o, "d", -7), -7);
  EXPECT_EQ(Int(*o, "e", -7), -9200000000000000000);
  EXPECT_EQ(Int(*o, "f", -7), 1700000000000);
  auto m = ParseObject(
      R"({"type":"message","msg_id":"1","conv":{"user":"2"},"from":{"user":"2","device":"3"},)"
      R"("kind":"text","body":{"text":"hi"},"ts_ms":1708888888888888888888888888888888888888.0})");
  ASSERT_TRUE(m);
  auto message = ParseMessage(*m);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->ts_ms, 0);
}

TEST(WireTest, MessageFromAnEvent) {
  auto o = ParseObject(R"({"type":"message","msg_id":"123","client_msg_id":"c1",
      "conv":{"group":"9"},"from":{"user":"5","device":"6"},"kind":"text",
      "body":{"text":"hi"},"ts_ms":1700000000000,"outgoing":false})");
  ASSERT_TRUE(o);
  auto m = ParseMessage(*o);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->msg_id, "123");
  EXPECT_EQ(m->conv, Conv::Group("9"));
  EXPECT_EQ(m->from, (DeviceAddress{"5", "6"}));
  EXPECT_EQ(m->text, "hi");
  EXPECT_EQ(m->ts_ms, 1700000000000);
  EXPECT_EQ(m->status, MessageStatus::kReceived);
  EXPECT_FALSE(ParseMessage(*ParseObject(R"({"type":"message"})")));
}

TEST(WireTest, Errors) {
  auto e = ErrorFromFrame(*ParseObject(
      R"({"op":"error","rid":"1","code":"stale_devices","message":"m",
          "missing":[{"user":"1","device":"2"}],"extra":[{"user":"3","device":"4"}]})"));
  EXPECT_EQ(e.code, "stale_devices");
  ASSERT_EQ(e.missing.size(), 1u);
  EXPECT_EQ(e.missing[0], (DeviceAddress{"1", "2"}));
  ASSERT_EQ(e.extra.size(), 1u);
  EXPECT_EQ(e.extra[0].device, "4");
  auto h = ErrorFromHttp(429, R"({"error":{"code":"rate_limited","message":"slow down"}})",
                         {{"retry-after", "7"}});
  EXPECT_EQ(h.code, "rate_limited");
  EXPECT_EQ(h.retry_after_ms, 7000);
  EXPECT_EQ(h.http_status, 429);
  EXPECT_EQ(ErrorFromHttp(502, "<html>", {}).code, "unavailable");
}

TEST(WireTest, Base64RoundTrips) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("foob"), std::string("\x00\xff\x10", 3)}) {
    auto enc = Base64Encode(s);
    EXPECT_EQ(enc.size() % 4, 0u);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec) << enc;
    EXPECT_EQ(*dec, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("abc"));
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(WireTest, EnvelopeRoundTrips) {
  std::vector<Ciphertext> list = {
      {{"1", "2"}, Ciphertext::Type::kPreKey, std::string("\x01\x02", 2)},
      {{"3", "4"}, Ciphertext::Type::kMessage, "xyz"}};
  json::object body = EnvelopeJson("77", list);
  EXPECT_EQ(body.at("ciphertexts").as_array()[0].as_object().at("type"), "prekey");
  auto back = ParseEnvelope(body);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->sender_device, "77");
  ASSERT_EQ(back->ciphertexts.size(), 2u);
  EXPECT_EQ(back->ciphertexts[0].device, (DeviceAddress{"1", "2"}));
  EXPECT_EQ(back->ciphertexts[0].data, std::string("\x01\x02", 2));
  EXPECT_EQ(back->ciphertexts[1].type, Ciphertext::Type::kMessage);
  EXPECT_FALSE(ParseEnvelope(json::value("nope")));
  EXPECT_FALSE(
      ParseEnvelope(*ParseObject(R"({"sender_device":"1","ciphertexts":[{"type":"x"}]})")));
}

TEST(WireTest, InnerPlaintext) {
  auto inner = ParseObject(InnerJson("image", R"({"caption":"c"})", "555"));
  ASSERT_TRUE(inner);
  EXPECT_EQ(Str(*inner, "kind"), "image");
  EXPECT_EQ(Str(*inner, "media_id"), "555");
  EXPECT_EQ(Str(inner->at("body").as_object(), "caption"), "c");
}

}  // namespace
}  // namespace parley::sdk::detail
