// Rendering of message events (core/render.hpp): the plain kinds are spliced
// from the stored body and must show exactly what MessageJson shows.
#include "core/session/render.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace parley::core {
namespace {

store::Message Sample() {
  return store::Message{.msg_id = 386579500123697204ull,
                        .sender = 42,
                        .sender_device = 4242,
                        .to = {store::Conversation::Kind::kUser, 7},
                        .client_msg_id = "run.1 \"quoted\" \\ \x01 é",
                        .kind = "text",
                        .body = json::serialize(json::parse(
                            R"({"text":"t=1.5 \u00e9\"x\" \n","n":[1,2.5,-3e-7,null,true]})")),
                        .ts_ms = 1764700000123};
}

std::string Rendered(const store::Message& m, store::UserId viewer) {
  store::MailboxEvent e{.seq = 9, .type = store::EventType::kMessage, .ts_ms = m.ts_ms};
  e.msg_id = m.msg_id;
  e.outgoing = m.sender == viewer;
  e.message = std::make_shared<const store::Message>(m);
  return EventBody(e, viewer, 1);
}

TEST(RenderTest, PlainMessagesRenderAsMessageJson) {
  auto m = Sample();
  for (store::UserId viewer : {store::UserId{7}, store::UserId{42}}) {
    for (const char* media : {"", "386579500123697999"}) {
      for (auto to : {store::Conversation{store::Conversation::Kind::kUser, 7},
                      store::Conversation{store::Conversation::Kind::kGroup, 99}}) {
        m.media_id = media;
        m.to = to;
        const std::string got = Rendered(m, viewer);
        EXPECT_EQ(got, json::serialize(MessageJson(m, viewer, 1)));
        EXPECT_EQ(json::parse(got), json::value(MessageJson(m, viewer, 1)));
      }
    }
  }
}

TEST(RenderTest, AnEmptyStoredBodyShowsAsNull) {
  auto m = Sample();
  m.body.clear();
  EXPECT_EQ(json::parse(Rendered(m, 7)).as_object().at("body"), json::value(nullptr));
}

}  // namespace
}  // namespace parley::core
