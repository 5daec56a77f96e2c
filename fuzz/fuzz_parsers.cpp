// The small parsers of untrusted text, with the promises each makes checked:
// media filenames (SanitizeFilename: valid UTF-8, no path, no control or
// bidi characters, at most 255 bytes), Content-Disposition (one header
// line), Content-Type (NormalizeContentType), Range (within the body),
// phone numbers (IsE164), access tokens (VerifyAccess) and JSON frames
// (proto::ParseObject and its accessors).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/account/tokens.hpp"
#include "core/http/http_api.hpp"
#include "core/media/media_api.hpp"
#include "core/media/media_http.hpp"
#include "proto/json.hpp"

using namespace parley;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool ValidUtf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  const std::string name = core::media_http::SanitizeFilename(in);
  Check(name.size() <= 255);
  Check(ValidUtf8(name));
  Check(name.find_first_of("/\\") == std::string::npos);
  for (unsigned char c : name) Check(c >= 0x20 && c != 0x7F);
  Check(name.empty() ||
        (name.front() != '.' && name.front() != ' ' && name.back() != '.' && name.back() != ' '));
  Check(core::media_http::SanitizeFilename(name) == name);
  for (bool inline_ok : {false, true}) {
    const std::string cd = core::media_http::ContentDisposition(inline_ok, name);
    for (unsigned char c : cd) Check(c >= 0x20 && c < 0x7F);
  }

  if (auto type = core::NormalizeContentType(in)) {
    Check(!type->empty());
    Check(core::NormalizeContentType(*type) == type);
  }

  const std::uint64_t body = size > 0 ? data[0] * 997u : 0;
  const auto range = core::ParseRange(in, body);
  if (range.kind == core::ByteRange::Kind::kPartial) {
    Check(range.length > 0 && range.offset < body && range.length <= body - range.offset);
  }

  if (core::IsE164(in)) {
    Check(in.size() >= 9 && in.size() <= 16 && in[0] == '+');
    for (char c : in.substr(1)) Check(c >= '0' && c <= '9');
  }

  static const core::TokenService tokens(std::string(48, 'k'), 900);
  if (auto claims = tokens.VerifyAccess(in, 0)) {
    // What verifies names what the key signed: issued again, it verifies
    // to the same claims.
    auto again =
        tokens.VerifyAccess(tokens.IssueAccess(claims->user, claims->device, claims->gen, 0), 0);
    Check(again && again->user == claims->user && again->device == claims->device &&
          again->gen == claims->gen);
  }

  if (auto obj = proto::ParseObject(in)) {
    (void)proto::GetString(*obj, "op", 64);
    (void)proto::GetId(*obj, "id");
    (void)proto::GetInt(*obj, "seq");
    (void)proto::GetObject(*obj, "body");
    (void)proto::GetArray(*obj, "members", 256);
    (void)proto::GetOptString(*obj, "token");
    (void)proto::GetOptId(*obj, "to");
    (void)proto::Serialize(*obj);
  }
  return 0;
}
