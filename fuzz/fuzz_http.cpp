// The HTTP API through core's router (src/core/app.cpp): accounts (otp,
// verify, refresh bodies), the operations endpoints, and the media
// endpoints (tus headers, Upload-Metadata, Range, ids in paths), streamed
// bodies included. The input is a request as text:
//   METHOD TARGET\nName: value\n...\n\nbody
// with the placeholders of world.hpp (@T is a valid access token).
#include <cstdint>
#include <future>
#include <string>
#include <string_view>

#include "world.hpp"

using parley::fuzz::World;
namespace net = parley::net;

namespace {

net::HttpRequest Parse(std::string_view in) {
  net::HttpRequest r;
  r.remote_address = "192.0.2.7";
  const auto head_end = in.find("\n\n");
  std::string_view head = in.substr(0, head_end);
  if (head_end != std::string_view::npos) r.body = std::string(in.substr(head_end + 2));
  const auto nl = head.find('\n');
  std::string_view line = head.substr(0, nl);
  head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
  const auto sp = line.find(' ');
  r.method = std::string(line.substr(0, sp));
  r.target = sp == std::string_view::npos ? "/" : std::string(line.substr(sp + 1));
  const auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  for (int n = 0; !head.empty() && n < 64; ++n) {
    const auto end = head.find('\n');
    std::string_view h = head.substr(0, end);
    head = end == std::string_view::npos ? std::string_view() : head.substr(end + 1);
    const auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers.push_back({std::string(h.substr(0, colon)), std::string(value)});
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)World::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& world = World::Get();
  net::HttpRequest request =
      Parse(world.Expand(std::string_view(reinterpret_cast<const char*>(data), size)));
  auto answered = std::make_shared<std::promise<void>>();
  net::HttpRespond respond = [answered](net::HttpResponse) { answered->set_value(); };
  auto& app = world.app();
  if (app.BodyModeFor(request) == net::BodyMode::kStream) {
    std::string body = std::move(request.body);
    auto sink = app.HandleHttpStream(std::move(request), std::move(respond));
    if (sink) {
      // In two chunks, each handed on only once the last was consumed.
      const std::size_t half = body.size() / 2;
      for (std::string chunk : {body.substr(0, half), body.substr(half)}) {
        std::promise<void> consumed;
        sink->OnChunk(std::move(chunk), [&consumed] { consumed.set_value(); });
        consumed.get_future().wait();
      }
      sink->OnEnd();
    }
  } else {
    app.HandleHttp(std::move(request), std::move(respond));
  }
  // Every request is answered exactly once (a second answer would throw
  // std::future_error here), and not after 30 s.
  if (answered->get_future().wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    std::abort();
  }
  world.Settle();
  return 0;
}
