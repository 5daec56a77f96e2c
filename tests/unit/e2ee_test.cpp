#include "core/account/e2ee.hpp"

#include <gtest/gtest.h>

#include "common/ids.hpp"
#include "core/session/render.hpp"

namespace parley::core {
namespace {

TEST(Base64DecodedSize, AcceptsCanonicalPaddedBase64Only) {
  EXPECT_EQ(Base64DecodedSize("AAAA"), 3u);
  EXPECT_EQ(Base64DecodedSize("AAA="), 2u);
  EXPECT_EQ(Base64DecodedSize("AA=="), 1u);
  EXPECT_EQ(Base64DecodedSize("YWJjZA=="), 4u);
  EXPECT_EQ(Base64DecodedSize("+/+/"), 3u);
  for (const char* bad : {"", "A", "AAA", "AAAAA", "A===", "====", "AA=A", "A=AA", "AAA-", "AAA_",
                          "AAA ", "AB==", "AAB="}) {
    EXPECT_FALSE(Base64DecodedSize(bad)) << bad;  // AB== and AAB= have stray bits
  }
}

TEST(ParseEnvelope, NamesTheFieldThatIsWrong) {
  auto parse = [](const char* text, std::string_view kind = "e2ee") {
    return ParseEnvelope(json::parse(text), kind);
  };
  auto ok = parse(
      R"({"sender_device":"5","ciphertexts":[{"user":"1","device":"2","type":"prekey","data":"AAAA"},
         {"user":"1","device":"3","type":"message","data":"AA=="}]})");
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->sender_device, 5u);
  ASSERT_EQ(ok->targets.size(), 2u);
  EXPECT_EQ(ok->targets[1], (DeviceAddr{1, 3}));

  const std::pair<const char*, const char*> bad[] = {
      {R"([])", "body:"},
      {R"({"ciphertexts":[]})", "body.sender_device:"},
      {R"({"sender_device":5,"ciphertexts":[]})", "body.sender_device:"},
      {R"({"sender_device":"5"})", "body.ciphertexts:"},
      {R"({"sender_device":"5","ciphertexts":{}})", "body.ciphertexts:"},
      {R"({"sender_device":"5","ciphertexts":[1]})", "body.ciphertexts:"},
      {R"({"sender_device":"5","ciphertexts":[],"x":1})", "body.x:"},
      {R"({"sender_device":"5","ciphertexts":[{"user":"1","device":"2","type":"message","data":"AAAA","x":1}]})",
       "body.ciphertexts.x:"},
      {R"({"sender_device":"5","ciphertexts":[{"device":"2","type":"message","data":"AAAA"}]})",
       "body.ciphertexts.user:"},
      {R"({"sender_device":"5","ciphertexts":[{"user":"1","device":"b","type":"message","data":"AAAA"}]})",
       "body.ciphertexts.device:"},
      {R"({"sender_device":"5","ciphertexts":[{"user":"1","device":"2","type":"whisper","data":"AAAA"}]})",
       "body.ciphertexts.type:"},
      {R"({"sender_device":"5","ciphertexts":[{"user":"1","device":"2","type":"message","data":""}]})",
       "body.ciphertexts.data:"},
      {R"({"sender_device":"5","ciphertexts":[{"user":"1","device":"2","type":"message","data":"AAAA"},
          {"user":"1","device":"2","type":"prekey","data":"AAAA"}]})",
       "body.ciphertexts:"},
  };
  for (const auto& [text, prefix] : bad) {
    auto r = parse(text);
    ASSERT_FALSE(r) << text;
    EXPECT_TRUE(r.error().starts_with(prefix)) << text << " -> " << r.error();
  }
  // A sender_key body may carry fields of the client's own.
  EXPECT_TRUE(parse(R"({"sender_device":"5","ciphertexts":[],"group":"9"})", "sender_key"));
}

// The spliced frame of each device says exactly what rendering the whole
// event for that device says.
TEST(EncryptedFrames, SplicedEventsEqualPerDeviceRendering) {
  for (const char* kind : {"e2ee", "sender_key"}) {
    store::Message m{.msg_id = 77,
                     .sender = 10,
                     .sender_device = 100,
                     .to = {store::Conversation::Kind::kUser, 20},
                     .client_msg_id = "c\"1",
                     .kind = kind,
                     .body = R"({"sender_device":"100","ciphertexts":[)"
                             R"({"user":"20","device":"200","type":"prekey","data":"AAAA"},)"
                             R"({"user":"20","device":"201","type":"message","data":"AA=="},)"
                             R"({"user":"10","device":"101","type":"message","data":"AAA="}]})",
                     .ts_ms = 123};
    if (std::string_view(kind) == "sender_key") {
      m.body.insert(1, R"("group":"9","x":{"ciphertexts":[1]},)");
    }
    EncryptedFrames frames;
    ASSERT_TRUE(frames.Prepare(m));
    const std::pair<store::UserId, store::DeviceId> viewers[] = {
        {20, 200}, {20, 201}, {20, 202}, {10, 100}, {10, 101}};
    for (auto [user, device] : viewers) {
      store::MailboxEvent e{.seq = 5, .type = store::EventType::kMessage, .msg_id = m.msg_id};
      e.outgoing = user == m.sender;
      e.message = std::make_shared<store::Message>(m);
      const json::value spliced = json::parse(frames.EventBodyFor(user, device));
      const json::value whole = json::parse(EventBody(e, user, device));
      EXPECT_EQ(spliced, whole) << kind << " " << user << "/" << device << "\n"
                                << json::serialize(spliced) << "\n"
                                << json::serialize(whole);
      const auto& cts = whole.at("body").at("ciphertexts").as_array();
      const bool has_own = device == 200 || device == 201 || device == 101;
      ASSERT_EQ(cts.size(), has_own ? 1u : 0u) << device;
      if (has_own) {
        EXPECT_EQ(cts[0].at("device").as_string(), IdToString(device));
      }
    }
  }
}

TEST(RenderKeysChanged, NamesTheDeviceTheChangeAndTheCurrentSet) {
  const json::value v = json::parse(RenderKeysChanged({.user = 1,
                                                       .device = 2,
                                                       .change = store::KeysChange::kRemoved,
                                                       .current = {3, 4},
                                                       .ts_ms = 9}));
  EXPECT_EQ(v, json::parse(R"({"type":"keys_changed","user":"1","device":"2","change":"removed",
                              "devices":["3","4"],"ts_ms":9})"));
}

}  // namespace
}  // namespace parley::core
