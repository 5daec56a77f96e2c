// What a media download tells the browser about the bytes: whether they may
// be shown inline, and the file name (media_http.hpp).
#include <sodium.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/media/media_http.hpp"

namespace parley::core::media_http {

namespace {

// The code point at s[i] and its length, or 0 for a malformed sequence
// (overlong forms, surrogates and values past U+10FFFF are malformed).
std::size_t Utf8At(std::string_view s, std::size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t n = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// Characters that are never kept: C0 and C1 controls, DEL, the quote and
// backslash (they would end or escape a quoted header parameter), and the
// bidirectional controls that make "evil\u202Egpj.exe" look like a picture.
bool Dropped(char32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == '"' || cp == 0x200E ||
         cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0xFEFF;
}

}  // namespace

bool ServedInline(std::string_view type) {
  const bool media =
      type.starts_with("image/") || type.starts_with("video/") || type.starts_with("audio/");
  if (!media) return false;
  // image/svg+xml, application/xhtml+xml-like subtypes and anything that
  // names XML or HTML can carry script.
  for (std::string_view active : {"svg", "xml", "html", "script"}) {
    if (type.find(active) != std::string_view::npos) return false;
  }
  return true;
}

std::string SanitizeFilename(std::string_view name) {
  // The last path component only: "../../etc/passwd" is "passwd".
  if (const auto slash = name.find_last_of("/\\"); slash != std::string_view::npos) {
    name.remove_prefix(slash + 1);
  }
  std::string out;
  out.reserve(name.size());
  for (std::size_t i = 0; i < name.size();) {
    char32_t cp = 0;
    const std::size_t n = Utf8At(name, i, cp);
    if (n == 0) {
      out.push_back('_');
      ++i;
      continue;
    }
    if (!Dropped(cp)) out.append(name.substr(i, n));
    i += n;
  }
  // Trimmed of spaces and dots at both ends ("." and ".." are not names),
  // once more after the cut, which can leave a space or a dot at the end
  // (a fuzzer found that: fuzz/corpus/parsers/crash-f55d2b77...).
  const auto trim = [&out] {
    while (!out.empty() && (out.front() == ' ' || out.front() == '.')) out.erase(0, 1);
    while (!out.empty() && (out.back() == ' ' || out.back() == '.')) out.pop_back();
  };
  trim();
  if (out.size() > kMaxFilenameBytes) {
    // Cut on a character boundary.
    std::size_t cut = kMaxFilenameBytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
    trim();
  }
  return out;
}

std::string ContentDisposition(bool inline_ok, std::string_view filename) {
  std::string out = inline_ok ? "inline" : "attachment";
  if (filename.empty()) return out;
  // filename="...": printable ASCII only, the rest as '_'.
  std::string ascii;
  std::string encoded;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : filename) {
    const auto u = static_cast<unsigned char>(c);
    const bool printable = u >= 0x20 && u < 0x7F;
    ascii.push_back(printable && c != '"' && c != '\\' && c != ';' ? c : '_');
    // RFC 8187 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"
    const bool attr = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
                      std::string_view("!#$&+-.^_`|~").find(c) != std::string_view::npos;
    if (attr) {
      encoded.push_back(c);
    } else {
      encoded.push_back('%');
      encoded.push_back(kHex[u >> 4]);
      encoded.push_back(kHex[u & 15]);
    }
  }
  out += "; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
  return out;
}

std::optional<std::string> DecodeBase64(std::string_view b64) {
  std::string out(b64.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(),
                        b64.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

}  // namespace parley::core::media_http
