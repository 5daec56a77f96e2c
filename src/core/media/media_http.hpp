// Helpers shared by the media endpoints' files (media_api.cpp: uploads and
// PATCH; media_tus.cpp: tus create, HEAD and DELETE; media_download.cpp:
// downloads, metadata and thumbnails). Private to src/core.
#pragma once

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ids.hpp"
#include "common/log.hpp"
#include "common/result.hpp"
#include "core/http/http_api.hpp"
#include "net/service.hpp"
#include "proto/errors.hpp"
#include "store/records.hpp"

namespace parley::core::media_http {

namespace code = proto::code;

constexpr std::string_view kTusVersion = "1.0.0";
constexpr std::size_t kMaxFilenameBytes = 255;

// A tus response: carries Tus-Resumable.
inline net::HttpResponse Tus(net::HttpResponse r) {
  r.headers.push_back({"Tus-Resumable", std::string(kTusVersion)});
  return r;
}

inline net::HttpResponse TusError(int status, std::string_view error_code,
                                  std::string_view message) {
  return Tus(ErrorResponse(status, error_code, message));
}

// 412 for a tus request that does not speak our version, else nothing.
inline std::optional<net::HttpResponse> WrongTusVersion(const net::HttpRequest& r) {
  if (r.GetHeader("Tus-Resumable") == kTusVersion) return std::nullopt;
  auto out = TusError(412, code::kTusVersion, "Tus-Resumable: only 1.0.0 is supported");
  out.headers.push_back({"Tus-Version", std::string(kTusVersion)});
  return out;
}

inline net::HttpResponse TooLarge(std::uint64_t limit) {
  return ErrorResponse(413, code::kTooLarge,
                       "media larger than the limit of " + std::to_string(limit) + " bytes");
}

inline net::HttpResponse NoContent() {
  net::HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

// Standard base64 (Upload-Metadata values); nothing if it is not.
std::optional<std::string> DecodeBase64(std::string_view b64);

inline bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

inline std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Digits only, no sign, no overflow.
inline std::optional<std::uint64_t> ParseU64(std::string_view s) {
  s = Trim(s);
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Every media response carries X-Content-Type-Options: nosniff (a browser
// must never guess a type the server did not name).
inline net::HttpRespond NoSniff(net::HttpRespond respond) {
  return [respond = std::move(respond)](net::HttpResponse r) {
    const bool has = std::any_of(r.headers.begin(), r.headers.end(), [](const auto& h) {
      return IEquals(h.name, "X-Content-Type-Options");
    });
    if (!has) r.headers.push_back({"X-Content-Type-Options", "nosniff"});
    respond(std::move(r));
  };
}

// Whether a browser may show this type inline: raster images, video and
// audio. Anything else (text/html, SVG, XML, PDF, scripts, ...) could run
// script in the server's origin and is served as an attachment.
bool ServedInline(std::string_view content_type);

// A client-supplied file name made safe to store and to echo: its last path
// component, valid UTF-8 (bad bytes become '_'), without control
// characters, bidirectional overrides or quotes, at most 255 bytes; empty
// when nothing is left.
std::string SanitizeFilename(std::string_view name);

// The Content-Disposition value for a download: `inline` or `attachment`,
// with filename= (an ASCII fallback) and filename*= (RFC 8187, UTF-8) when
// the upload named one.
std::string ContentDisposition(bool inline_ok, std::string_view filename);

inline net::HttpResponse NotFound(std::string_view what = "no such media") {
  return ErrorResponse(404, code::kNotFound, what);
}

inline net::HttpResponse Internal(const Error& e, std::string_view op) {
  PLOG_ERROR("media failure", "op={} error={}", op, LogQuote(e.message));
  if (e.code == Errc::kNoSpace) {
    // A full volume (the blobs' or the store's): nothing was kept.
    return ErrorResponse(507, code::kStorageFull,
                         "the server's storage is full; nothing was stored, retry later");
  }
  return ErrorResponse(500, code::kInternal, "internal error; try again");
}

// The {id} of /v1/uploads/{id} or /v1/media/{id}[/suffix]: a decimal id,
// nothing else (no dots, no slashes: a path never reaches the blob store).
inline std::optional<store::MediaId> IdIn(std::string_view rest) {
  if (rest.empty() || rest.size() > 20) return std::nullopt;
  for (char c : rest) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return ParseId(rest);
}

}  // namespace parley::core::media_http
