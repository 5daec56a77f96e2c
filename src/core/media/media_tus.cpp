// The tus endpoints other than PATCH (tus.io 1.0.0, core protocol and the
// creation and termination extensions): POST /v1/uploads creates an upload,
// HEAD /v1/uploads/{id} says its offset, DELETE /v1/uploads/{id} drops an
// unfinished one. PATCH streams through MediaApi::Patch (media_api.cpp).
#include "common/clock.hpp"
#include "core/media/media_api.hpp"
#include "core/media/media_http.hpp"
#include "proto/errors.hpp"

namespace parley::core {

namespace code = proto::code;
using media_http::DecodeBase64;
using media_http::IdIn;
using media_http::Internal;
using media_http::kMaxFilenameBytes;
using media_http::NoContent;
using media_http::NotFound;
using media_http::ParseU64;
using media_http::TooLarge;
using media_http::Trim;
using media_http::Tus;
using media_http::TusError;
using media_http::WrongTusVersion;

void MediaApi::CreateUpload(const net::HttpRequest& request, const Identity& who,
                            net::HttpRespond respond) {
  if (auto refusal = WrongTusVersion(request)) return respond(std::move(*refusal));
  if (!request.GetHeader("Upload-Defer-Length").empty()) {
    return respond(
        TusError(400, code::kBadRequest, "Upload-Defer-Length: not supported; send Upload-Length"));
  }
  auto length = ParseU64(request.GetHeader("Upload-Length"));
  if (!length) {
    return respond(TusError(400, code::kBadRequest, "Upload-Length: required, a byte count"));
  }
  const std::uint64_t limit = core_.config.media_max_bytes;
  if (*length > limit) return respond(Tus(TooLarge(limit)));

  store::Media m;
  m.content_type = "application/octet-stream";
  // Upload-Metadata: "key base64,key base64" (a key may come without a value).
  std::string_view meta = request.GetHeader("Upload-Metadata");
  while (!meta.empty()) {
    const auto comma = meta.find(',');
    std::string_view pair = Trim(meta.substr(0, comma));
    meta = comma == std::string_view::npos ? std::string_view() : meta.substr(comma + 1);
    if (pair.empty()) continue;
    const auto space = pair.find(' ');
    const std::string_view key = pair.substr(0, space);
    const std::string_view value =
        space == std::string_view::npos ? std::string_view() : Trim(pair.substr(space + 1));
    auto decoded = DecodeBase64(value);
    if (!decoded) {
      return respond(TusError(400, code::kBadRequest,
                              "Upload-Metadata: " + std::string(key) + " is not base64"));
    }
    if (key == "content_type" || key == "filetype") {
      auto type = NormalizeContentType(*decoded);
      if (!type) {
        return respond(
            TusError(400, code::kBadRequest, "Upload-Metadata: content_type is not a media type"));
      }
      if (key == "content_type" || m.content_type == "application/octet-stream") {
        m.content_type = std::move(*type);
      }
    } else if (key == "filename") {
      if (decoded->size() > kMaxFilenameBytes) {
        return respond(TusError(400, code::kBadRequest, "Upload-Metadata: filename too long"));
      }
      m.filename = media_http::SanitizeFilename(*decoded);
    }
  }
  if (auto refusal = QuotaRefusal(who.user, *length, true))
    return respond(Tus(std::move(*refusal)));
  m.id = core_.ids.Next();
  m.owner = who.user;
  m.size = *length;
  m.status = store::MediaStatus::kUploading;
  m.created_ms = NowMs();
  io_->Post([this, m = std::move(m), respond = std::move(respond)]() mutable {
    if (auto s = blobs_.CreatePartial(m.id); !s) {
      return respond(Tus(Internal(s.error(), "upload_create")));
    }
    const auto id = m.id;
    // Upload-Length is reserved here, checked in the same write.
    core_.store.PutMediaWithin(
        std::move(m), Quota(),
        [this, id, respond = std::move(respond)](Result<store::MediaQuotaVerdict> v) {
          if (!v || *v != store::MediaQuotaVerdict::kWithin) {
            (void)blobs_.RemovePartial(id);
            return respond(Tus(v ? QuotaResponse(*v) : Internal(v.error(), "put_media")));
          }
          net::HttpResponse r = Tus(NoContent());
          r.status = 201;
          r.headers.push_back({"Location", "/v1/uploads/" + IdToString(id)});
          r.headers.push_back({"Upload-Offset", "0"});
          respond(std::move(r));
        });
  });
}

namespace {

// The caller's own upload that a tus HEAD or DELETE names; when there is
// none, the answer (412, 404 or 500) is sent and nothing is returned.
std::optional<store::Media> OwnUpload(store::Store& store, const net::HttpRequest& request,
                                      const Identity& who, net::HttpRespond& respond) {
  if (auto refusal = WrongTusVersion(request)) {
    respond(std::move(*refusal));
    return std::nullopt;
  }
  auto id = IdIn(std::string_view(request.path).substr(std::string_view("/v1/uploads/").size()));
  auto found = id ? store.GetMedia(*id) : Result<std::optional<store::Media>>(std::nullopt);
  if (!found) {
    respond(Tus(Internal(found.error(), "get_media")));
    return std::nullopt;
  }
  if (!*found || (*found)->owner != who.user) {
    respond(Tus(NotFound("no such upload")));
    return std::nullopt;
  }
  return std::move(**found);
}

}  // namespace

void MediaApi::HeadUpload(const net::HttpRequest& request, const Identity& who,
                          net::HttpRespond respond) {
  auto found = OwnUpload(core_.store, request, who, respond);
  if (!found) return;
  std::uint64_t offset = found->size;
  if (found->status == store::MediaStatus::kUploading) {
    auto size = blobs_.PartialSize(found->id);
    if (!size) {
      if (size.error().code == Errc::kNotFound) return respond(Tus(NotFound("no such upload")));
      return respond(Tus(Internal(size.error(), "upload_size")));
    }
    offset = *size;
  }
  net::HttpResponse r = Tus(NoContent());
  r.status = 200;
  r.headers.push_back({"Upload-Offset", std::to_string(offset)});
  r.headers.push_back({"Upload-Length", std::to_string(found->size)});
  r.headers.push_back({"Cache-Control", "no-store"});
  respond(std::move(r));
}

void MediaApi::DeleteUpload(const net::HttpRequest& request, const Identity& who,
                            net::HttpRespond respond) {
  auto found = OwnUpload(core_.store, request, who, respond);
  if (!found) return;
  if (found->status != store::MediaStatus::kUploading) {
    return respond(Tus(NotFound("no unfinished upload with this id")));
  }
  const auto upload = found->id;
  if (!Lock(upload)) {
    return respond(TusError(423, code::kUploadLocked, "a PATCH of this upload is in progress"));
  }
  // Lock() excludes a PATCH in this process only; the partial file's writer
  // lock (the one a PATCH holds) excludes one on any node sharing
  // --media-dir, and keeps a PATCH from starting there until the upload is
  // gone. No bytes are written through it. No partial file: the record goes.
  std::shared_ptr<media::BlobWriter> held;
  if (auto writer = blobs_.AppendPartial(upload)) {
    held = std::move(*writer);
  } else if (writer.error().code == Errc::kConflict) {
    Unlock(upload);
    return respond(TusError(423, code::kUploadLocked, "a PATCH of this upload is in progress"));
  } else if (writer.error().code != Errc::kNotFound) {
    Unlock(upload);
    return respond(Tus(Internal(writer.error(), "upload_open")));
  }
  core_.store.DeleteMedia(upload, [this, upload, held = std::move(held),
                                   respond = std::move(respond)](Status st) mutable {
    if (st) (void)blobs_.RemovePartial(upload);
    held.reset();  // after the unlink: a PATCH waiting for it finds no file
    Unlock(upload);
    if (!st) return respond(Tus(Internal(st.error(), "delete_media")));
    respond(Tus(NoContent()));
  });
}

}  // namespace parley::core
