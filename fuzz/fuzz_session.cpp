// A WebSocket session (src/core/session/session.cpp and every op's validation):
// the input is up to 32 text frames, one per line, sent by a signed-in
// device (alice) after its hello, against a real core on RocksDB. The
// placeholders @A @B @D @G @T in the input become alice's and bob's ids,
// alice's device, their group and alice's token (world.hpp). Every frame
// the server sends back must be a JSON object with an op, under 256 KiB.
#include <cstdint>
#include <string>
#include <string_view>

#include "world.hpp"

using parley::fuzz::FakeConnection;
using parley::fuzz::World;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)World::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& world = World::Get();
  const std::string text =
      world.Expand(std::string_view(reinterpret_cast<const char*>(data), size));
  auto conn = std::make_shared<FakeConnection>();
  auto session = world.app().OpenWebSocket(conn, parley::net::HttpRequest{});
  // The first line may be the device's own hello; otherwise one is sent.
  std::string_view rest = text;
  if (!rest.starts_with("{\"op\":\"hello\"")) {
    session->OnFrame(R"({"op":"hello","token":")" + world.alice().token + R"("})");
  }
  for (int frames = 0; frames < 32 && !rest.empty() && !conn->closed(); ++frames) {
    const auto nl = rest.find('\n');
    session->OnFrame(rest.substr(0, nl));
    (void)session->ReadyForMore();
    conn->RunPosted();
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  world.Settle();
  conn->RunPosted();
  session->OnClose();
  return 0;
}
