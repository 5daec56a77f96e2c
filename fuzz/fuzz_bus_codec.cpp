// The bus codec (src/bus/codec.cpp): every payload a node receives from
// Redis, on a user's channel or the presence channel, and the channel names.
// What decodes must encode and decode again to the same message.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "bus/codec.hpp"

using namespace parley::bus;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)ParseUserChannel(in);
  (void)ValidInstance(in);
  const UserId user = size > 0 ? data[0] : 0;
  if (auto m = DecodeUserMessage(user, in)) {
    std::visit(
        [&](const auto& decoded) {
          auto again = DecodeUserMessage(user, Encode(decoded));
          Check(again.has_value());
          Check(Encode(std::get<std::decay_t<decltype(decoded)>>(*again)) == Encode(decoded));
        },
        *m);
  }
  if (auto p = DecodePresence(in)) {
    auto again = DecodePresence(Encode(*p));
    Check(again.has_value());
    Check(again->user == p->user && again->online == p->online &&
          again->last_seen_ms == p->last_seen_ms && again->origin == p->origin);
  }
  return 0;
}
