// The SDK's side of the wire (sdk/src/wire.cpp): every parser a frame or
// an HTTP body from the server goes through, fed the same hostile text.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "wire.hpp"

using namespace parley::sdk::detail;

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)TextOf(in);
  (void)Base64Decode(in);
  (void)ErrorFromHttp(size > 0 ? 400 + data[0] % 200 : 500, in, {{"retry-after", "1"}});
  auto obj = ParseObject(in);
  if (!obj) return 0;
  (void)Seq(*obj, "seq");
  (void)StrList(*obj, "ids");
  (void)ParseConv((*obj)["to"]);
  (void)ParseMessage(*obj);
  (void)ErrorFromFrame(*obj);
  (void)ParseGroupInfo(*obj);
  (void)ParseDevices(*obj);
  (void)ParseProfiles(*obj);
  (void)ParsePresence(*obj);
  (void)ParseStatuses(*obj);
  (void)ParseReceipts(*obj);
  (void)ParseGroupEvent(*obj);
  (void)ParseAddresses(*obj, "devices");
  if (auto it = obj->find("body"); it != obj->end()) (void)ParseEnvelope(it->value());
  (void)ParseEnvelope(*obj);
  return 0;
}
