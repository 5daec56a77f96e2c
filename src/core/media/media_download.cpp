// GET /v1/media/{id} (with Range, ETag and If-None-Match / If-Range),
// /v1/media/{id}/meta and /v1/media/{id}/thumbnail: PROTOCOL.md section 6.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "core/media/media_api.hpp"
//
#include "core/media/media_http.hpp"

namespace parley::core {

namespace json = boost::json;
namespace code = proto::code;
using media_http::IdIn;
using media_http::IEquals;
using media_http::Internal;
using media_http::NotFound;
using media_http::ParseU64;
using media_http::Trim;

namespace {

const char* StatusName(store::MediaStatus s) {
  switch (s) {
    case store::MediaStatus::kUploading:
      return "uploading";
    case store::MediaStatus::kProcessing:
      return "processing";
    case store::MediaStatus::kReady:
      return "ready";
    case store::MediaStatus::kFailed:
      return "failed";
  }
  return "failed";
}

json::object MetaJson(const store::Media& m) {
  json::object o;
  o["media_id"] = IdToString(m.id);
  o["content_type"] = m.content_type;
  o["size"] = m.size;
  o["sha256"] = m.sha256;
  o["width"] = m.width != 0 ? json::value(m.width) : json::value(nullptr);
  o["height"] = m.height != 0 ? json::value(m.height) : json::value(nullptr);
  o["duration_ms"] = m.duration_ms >= 0 ? json::value(m.duration_ms) : json::value(nullptr);
  o["thumbnail"] = m.thumbnail;
  o["status"] = StatusName(m.status);
  if (m.status == store::MediaStatus::kFailed) o["reason"] = m.reason;
  if (!m.filename.empty()) o["filename"] = m.filename;
  o["created_ms"] = m.created_ms;
  return o;
}

}  // namespace

ByteRange ParseRange(std::string_view header, std::uint64_t size) {
  ByteRange whole{ByteRange::Kind::kWhole, 0, size};
  header = Trim(header);
  if (header.empty()) return whole;
  const auto eq = header.find('=');
  if (eq == std::string_view::npos || !IEquals(Trim(header.substr(0, eq)), "bytes")) return whole;
  std::string_view spec = Trim(header.substr(eq + 1));
  // Several ranges would need multipart/byteranges; answering the whole body
  // instead is allowed (RFC 9110 14.2).
  if (spec.find(',') != std::string_view::npos) return whole;
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  const std::string_view first = Trim(spec.substr(0, dash));
  const std::string_view last = Trim(spec.substr(dash + 1));
  ByteRange unsatisfiable{ByteRange::Kind::kUnsatisfiable, 0, 0};
  if (first.empty()) {  // a suffix: the last N bytes
    auto n = ParseU64(last);
    if (!n) return whole;
    if (*n == 0 || size == 0) return unsatisfiable;
    const std::uint64_t len = std::min(*n, size);
    return {ByteRange::Kind::kPartial, size - len, len};
  }
  auto start = ParseU64(first);
  if (!start) return whole;
  std::uint64_t end = size == 0 ? 0 : size - 1;
  if (!last.empty()) {
    auto e = ParseU64(last);
    if (!e || *e < *start) return whole;  // invalid: ignored
    end = std::min(end, *e);
  }
  if (*start >= size) return unsatisfiable;
  return {ByteRange::Kind::kPartial, *start, end - *start + 1};
}

namespace {

// The media a GET may read, or the response to give instead.
Result<store::Media> Readable(Core& core, std::string_view path, std::string_view suffix,
                              const Identity& who) {
  // The router sends "/v1/media/meta" here too: the suffix is removed only
  // from what follows the prefix, and only when it is there.
  constexpr std::string_view kPrefix = "/v1/media/";
  if (!path.starts_with(kPrefix)) return Fail(Errc::kNotFound, "no such media");
  std::string_view rest = path.substr(kPrefix.size());
  if (!rest.ends_with(suffix)) return Fail(Errc::kNotFound, "no such media");
  rest.remove_suffix(suffix.size());
  auto id = IdIn(rest);
  if (!id) return Fail(Errc::kNotFound, "no such media");
  auto found = core.store.GetMedia(*id);
  if (!found) return std::unexpected(found.error());
  if (!*found || (*found)->status == store::MediaStatus::kUploading) {
    return Fail(Errc::kNotFound, "no such media");
  }
  if ((*found)->owner != who.user) {
    auto granted = core.store.MediaGranted(*id, who.user);
    if (!granted) return std::unexpected(granted.error());
    if (!*granted) return Fail(Errc::kNotFound, "no such media");
  }
  return std::move(**found);
}

net::HttpResponse ReadError(const Error& e, std::string_view op) {
  if (e.code == Errc::kNotFound) return NotFound(e.message);
  return Internal(e, op);
}

}  // namespace

void MediaApi::Download(const net::HttpRequest& request, const Identity& who,
                        net::HttpRespond respond) {
  auto m = Readable(core_, request.path, "", who);
  if (!m) return respond(ReadError(m.error(), "get_media"));
  const std::string etag = "\"" + m->sha256 + "\"";
  if (auto inm = request.GetHeader("If-None-Match"); !inm.empty()) {
    if (Trim(inm) == etag || Trim(inm) == "*") {
      net::HttpResponse r;
      r.status = 304;
      r.content_type.clear();
      r.headers.push_back({"ETag", etag});
      return respond(std::move(r));
    }
  }
  auto fd = blobs_.Open(m->id);
  if (!fd) return respond(Internal(fd.error(), "media_open"));
  // If-Range: a range only of the same representation.
  ByteRange range = ParseRange(request.GetHeader("Range"), m->size);
  if (auto if_range = request.GetHeader("If-Range"); !if_range.empty() && Trim(if_range) != etag) {
    range = {ByteRange::Kind::kWhole, 0, m->size};
  }
  if (range.kind == ByteRange::Kind::kUnsatisfiable) {
    ::close(*fd);
    auto r = ErrorResponse(416, code::kRangeNotSatisfiable,
                           "Range: outside the " + std::to_string(m->size) + " bytes");
    r.headers.push_back({"Content-Range", "bytes */" + std::to_string(m->size)});
    return respond(std::move(r));
  }
  net::HttpResponse r;
  r.content_type = m->content_type;
  r.headers.push_back({"ETag", etag});
  r.headers.push_back({"Accept-Ranges", "bytes"});
  r.headers.push_back({"Cache-Control", "private, max-age=31536000, immutable"});
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  // Active types (HTML, SVG, ...) are downloads, never pages of this origin;
  // and should a browser render one anyway, it runs in a sandbox.
  r.headers.push_back({"Content-Disposition",
                       media_http::ContentDisposition(media_http::ServedInline(m->content_type),
                                                      media_http::SanitizeFilename(m->filename))});
  r.headers.push_back({"Content-Security-Policy", "sandbox; default-src 'none'"});
  if (range.kind == ByteRange::Kind::kPartial) {
    r.status = 206;
    r.headers.push_back({"Content-Range", "bytes " + std::to_string(range.offset) + "-" +
                                              std::to_string(range.offset + range.length - 1) +
                                              "/" + std::to_string(m->size)});
  }
  r.file = std::make_shared<net::FileRange>(*fd, range.offset, range.length);
  respond(std::move(r));
}

void MediaApi::Meta(const net::HttpRequest& request, const Identity& who,
                    net::HttpRespond respond) {
  auto m = Readable(core_, request.path, "/meta", who);
  if (!m) return respond(ReadError(m.error(), "get_media"));
  respond(JsonResponse(200, MetaJson(*m)));
}

void MediaApi::Thumbnail(const net::HttpRequest& request, const Identity& who,
                         net::HttpRespond respond) {
  auto m = Readable(core_, request.path, "/thumbnail", who);
  if (!m) return respond(ReadError(m.error(), "get_media"));
  if (!m->thumbnail) return respond(NotFound("this media has no thumbnail"));
  auto fd = blobs_.OpenThumbnail(m->id);
  if (!fd) return respond(ReadError(fd.error(), "thumbnail_open"));
  struct stat st {};
  if (::fstat(*fd, &st) != 0) {
    ::close(*fd);
    return respond(Internal(Error{Errc::kUnavailable, "fstat"}, "thumbnail_stat"));
  }
  net::HttpResponse r;
  r.content_type = "image/jpeg";
  r.headers.push_back({"Cache-Control", "private, max-age=31536000, immutable"});
  r.file = std::make_shared<net::FileRange>(*fd, 0, static_cast<std::uint64_t>(st.st_size));
  respond(std::move(r));
}

}  // namespace parley::core
