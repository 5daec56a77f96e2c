#include "core/media/media_api.hpp"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <deque>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/http/http_api.hpp"
#include "core/media/media_http.hpp"
#include "media/processor.hpp"
#include "proto/errors.hpp"

namespace parley::core {

namespace json = boost::json;
namespace code = proto::code;
using media_http::DecodeBase64;
using media_http::IdIn;
using media_http::IEquals;
using media_http::Internal;
using media_http::kTusVersion;
using media_http::NoContent;
using media_http::NotFound;
using media_http::ParseU64;
using media_http::TooLarge;
using media_http::Trim;
using media_http::Tus;
using media_http::TusError;
using media_http::WrongTusVersion;

namespace {

constexpr std::size_t kIoThreads = 2;

}  // namespace

std::optional<std::string> NormalizeContentType(std::string_view header) {
  header = Trim(header.substr(0, header.find(';')));
  if (header.empty()) return std::string("application/octet-stream");
  if (header.size() > 127) return std::nullopt;
  std::string out;
  int slashes = 0;
  for (char c : header) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/') {
      ++slashes;
    } else if (!(std::isalnum(u) ||
                 std::string_view("!#$&^_.+-").find(c) != std::string_view::npos)) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(std::tolower(u)));
  }
  if (slashes != 1 || out.front() == '/' || out.back() == '/') return std::nullopt;
  return out;
}

// ---- upload bodies ------------------------------------------------------------

namespace {

// How far net may read ahead of the disk for one body.
constexpr std::size_t kReadAheadBytes = 1 << 20;

}  // namespace

// Queues a body's chunks and writes them on the I/O pool in order, one task
// at a time per body, letting net read up to kReadAheadBytes ahead of the
// disk (one round trip per chunk would cap an upload well below the disk).
class MediaApi::SpooledBody : public net::RequestBody,
                              public std::enable_shared_from_this<SpooledBody> {
 public:
  explicit SpooledBody(media::WorkerPool& pool) : pool_(pool) {}

  void OnChunk(std::string chunk, std::function<void()> consumed) override {
    bool now = false;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      queued_ += chunk.size();
      queue_.push_back(std::move(chunk));
      if (queued_ <= kReadAheadBytes) {
        now = true;
      } else {
        held_ = std::move(consumed);
      }
      Schedule();
    }
    if (now) consumed();
  }
  void OnEnd() override {
    std::lock_guard lock(mu_);
    end_ = true;
    Schedule();
  }
  void OnAbort() override {
    std::lock_guard lock(mu_);
    abort_ = true;
    Schedule();
  }

 protected:
  // On the pool with mu_ held. Consume returns false once it has answered
  // (an error): the rest of the body is dropped.
  virtual bool Consume(std::string_view chunk) = 0;
  // Every chunk was consumed and the body is complete.
  virtual void End() = 0;
  // The client went away; every chunk that arrived was consumed.
  virtual void Abort() = 0;

  std::mutex mu_;

 private:
  // mu_ held.
  void Schedule() {
    if (draining_) return;
    draining_ = true;
    pool_.Post([self = shared_from_this()] { self->Drain(); });
  }

  void Drain() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (!queue_.empty()) {
        std::string chunk = std::move(queue_.front());
        queue_.pop_front();
        queued_ -= chunk.size();
        if (!finished_ && !Consume(chunk)) {
          finished_ = true;
          queue_.clear();
          queued_ = 0;
          held_ = nullptr;
        }
        if (held_ && queued_ <= kReadAheadBytes) {
          auto consumed = std::exchange(held_, nullptr);
          lock.unlock();
          consumed();
          lock.lock();
        }
        continue;
      }
      if (!finished_ && (abort_ || end_)) {
        finished_ = true;
        if (abort_) {
          Abort();
        } else {
          End();
        }
      }
      draining_ = false;
      return;
    }
  }

  media::WorkerPool& pool_;
  std::deque<std::string> queue_;
  std::size_t queued_ = 0;
  std::function<void()> held_;  // net's `consumed`, while over the read-ahead
  bool draining_ = false;
  bool end_ = false;
  bool abort_ = false;
  bool finished_ = false;
};

// POST /v1/media.
class MediaApi::OneShotBody final : public SpooledBody {
 public:
  // `quota_room`: the bytes the owner's quotas still allow.
  OneShotBody(MediaApi& api, store::Media media, std::unique_ptr<media::BlobWriter> writer,
              net::HttpRespond respond, std::uint64_t quota_room)
      : SpooledBody(*api.io_),
        api_(api),
        media_(std::move(media)),
        writer_(std::move(writer)),
        respond_(std::move(respond)),
        limit_(api.core_.config.media_max_bytes),
        quota_room_(quota_room) {}

 private:
  bool Consume(std::string_view chunk) override {
    if (writer_->size() + chunk.size() > limit_) {
      // Cut off at the limit: nothing is kept, the rest is never read.
      return Fail(TooLarge(limit_));
    }
    if (writer_->size() + chunk.size() > quota_room_) {
      return Fail(
          ErrorResponse(413, code::kQuotaExceeded,
                        "over the media quota (" + std::to_string(quota_room_) + " bytes left)"));
    }
    if (auto s = writer_->Write(chunk); !s) return Fail(Internal(s.error(), "media_write"));
    hash_.Update(chunk);
    return true;
  }

  void End() override {
    if (auto s = writer_->Commit(); !s) return respond_(Internal(s.error(), "media_commit"));
    media_.size = writer_->size();
    media_.sha256 = hash_.HexDigest();
    json::object o;
    o["media_id"] = IdToString(media_.id);
    o["size"] = media_.size;
    o["sha256"] = media_.sha256;
    o["content_type"] = media_.content_type;
    api_.Completed(std::move(media_), std::move(respond_), JsonResponse(201, o));
  }

  void Abort() override { writer_->Abort(); }

  bool Fail(net::HttpResponse r) {
    writer_->Abort();
    respond_(std::move(r));
    return false;
  }

  MediaApi& api_;
  store::Media media_;
  std::unique_ptr<media::BlobWriter> writer_;
  media::Sha256 hash_;
  net::HttpRespond respond_;
  const std::uint64_t limit_;
  const std::uint64_t quota_room_;
};

// PATCH /v1/uploads/{id}: appends to the partial file; the last byte turns
// the upload into media.
class MediaApi::PatchBody final : public SpooledBody {
 public:
  PatchBody(MediaApi& api, store::Media upload, std::unique_ptr<media::BlobWriter> writer,
            net::HttpRespond respond)
      : SpooledBody(*api.io_),
        api_(api),
        upload_(std::move(upload)),
        writer_(std::move(writer)),
        respond_(std::move(respond)) {}
  ~PatchBody() override { Release(); }

 private:
  bool Consume(std::string_view chunk) override {
    const std::uint64_t room = upload_.size - writer_->size();
    if (chunk.size() > room) {
      // More than Upload-Length: keep what fits (the upload may still
      // finish with a correct PATCH), refuse the rest.
      if (room > 0) (void)writer_->Write(chunk.substr(0, room));
      return Fail(TusError(413, code::kTooLarge, "body goes past Upload-Length"));
    }
    if (auto s = writer_->Write(chunk); !s) return Fail(Tus(Internal(s.error(), "upload_write")));
    return true;
  }

  void Abort() override {
    writer_->Abort();  // fsyncs what arrived: the client resumes from there
    Release();
  }

  bool Fail(net::HttpResponse r) {
    writer_->Abort();
    Release();
    respond_(std::move(r));
    return false;
  }

  void End() override {
    if (auto s = writer_->Commit(); !s) {
      Release();
      return respond_(Tus(Internal(s.error(), "upload_sync")));
    }
    const std::uint64_t offset = writer_->size();
    net::HttpResponse ok = Tus(NoContent());
    ok.headers.push_back({"Upload-Offset", std::to_string(offset)});
    if (offset < upload_.size) {
      Release();
      return respond_(std::move(ok));
    }
    // The last byte is here: the upload becomes the media under the same id.
    if (auto s = api_.blobs_.PublishPartial(upload_.id); !s) {
      Release();
      return respond_(Tus(Internal(s.error(), "upload_publish")));
    }
    auto fd = api_.blobs_.Open(upload_.id);
    if (!fd) {
      Release();
      return respond_(Tus(Internal(fd.error(), "upload_open")));
    }
    auto sha = media::Sha256OfFile(*fd);
    ::close(*fd);
    if (!sha) {
      Release();
      return respond_(Tus(Internal(sha.error(), "upload_hash")));
    }
    upload_.sha256 = std::move(*sha);
    Release();
    api_.Completed(std::move(upload_), std::move(respond_), std::move(ok));
  }

  void Release() {
    if (locked_) {
      locked_ = false;
      api_.Unlock(upload_.id);
    }
  }

  MediaApi& api_;
  store::Media upload_;
  std::unique_ptr<media::BlobWriter> writer_;
  net::HttpRespond respond_;
  bool locked_ = true;  // the caller locked the upload for this body
};

// ---- MediaApi ------------------------------------------------------------------

MediaApi::MediaApi(Core& core, media::BlobStore& blobs)
    : core_(core),
      blobs_(blobs),
      io_(std::make_unique<media::WorkerPool>(kIoThreads, "media-io")),
      processing_(std::make_unique<media::WorkerPool>(core.config.media_workers, "media-proc")),
      sweeper_(std::make_unique<media::WorkerPool>(1, "media-sweep")) {}

MediaApi::~MediaApi() { Stop(); }

void MediaApi::Stop() {
  sweeper_.reset();
  io_.reset();
  processing_.reset();
}

std::size_t MediaApi::PendingWork() const {
  return (io_ ? io_->pending() : 0) + (processing_ ? processing_->pending() : 0);
}

bool MediaApi::Owns(const std::string& path) {
  return path == "/v1/media" || path.starts_with("/v1/media/") || path == "/v1/uploads" ||
         path.starts_with("/v1/uploads/");
}

bool MediaApi::Streams(const net::HttpRequest& head) {
  return (head.method == "POST" && head.path == "/v1/media") ||
         (head.method == "PATCH" && head.path.starts_with("/v1/uploads/"));
}

bool MediaApi::Lock(store::MediaId id) {
  std::lock_guard lock(mu_);
  return busy_.insert(id).second;
}

void MediaApi::Unlock(store::MediaId id) {
  std::lock_guard lock(mu_);
  busy_.erase(id);
}

namespace {

std::optional<std::string> BearerToken(const net::HttpRequest& r) {
  std::string_view auth = r.GetHeader("Authorization");
  if (auth.size() > 7 && IEquals(auth.substr(0, 7), "Bearer ")) {
    return std::string(Trim(auth.substr(7)));
  }
  return std::nullopt;
}

}  // namespace

std::shared_ptr<net::RequestBody> MediaApi::HandleStream(net::HttpRequest head,
                                                         net::HttpRespond respond) {
  respond = media_http::NoSniff(std::move(respond));
  const bool tus = head.path.starts_with("/v1/uploads");
  auto token = BearerToken(head);
  if (!token) {
    auto r = ErrorResponse(401, code::kInvalidToken, "Authorization: Bearer <token> required");
    respond(tus ? Tus(std::move(r)) : std::move(r));
    return nullptr;
  }
  auto who = core_.Authenticate(*token);
  if (!who) {
    auto r = ErrorResponse(who.error().http_status, who.error().code, who.error().message);
    respond(tus ? Tus(std::move(r)) : std::move(r));
    return nullptr;
  }
  if (tus) return Patch(head, *who, respond);
  return Upload(head, *who, respond);
}

std::shared_ptr<net::RequestBody> MediaApi::Upload(const net::HttpRequest& head,
                                                   const Identity& who, net::HttpRespond& respond) {
  const std::uint64_t limit = core_.config.media_max_bytes;
  if (auto length = head.GetHeader("Content-Length"); !length.empty()) {
    auto n = ParseU64(length);
    if (n && *n > limit) {
      respond(TooLarge(limit));
      return nullptr;
    }
  }
  auto type = NormalizeContentType(head.GetHeader("Content-Type"));
  if (!type) {
    respond(ErrorResponse(400, code::kBadRequest, "Content-Type: not a media type"));
    return nullptr;
  }
  std::uint64_t declared = 0;
  if (auto length = ParseU64(head.GetHeader("Content-Length"))) declared = *length;
  std::uint64_t room = 0;
  if (auto refusal = QuotaRefusal(who.user, declared, false, &room)) {
    respond(std::move(*refusal));
    return nullptr;
  }
  store::Media m;
  m.id = core_.ids.Next();
  m.owner = who.user;
  m.content_type = std::move(*type);
  m.created_ms = NowMs();
  auto writer = blobs_.Create(m.id);
  if (!writer) {
    respond(Internal(writer.error(), "media_create"));
    return nullptr;
  }
  return std::make_shared<OneShotBody>(*this, std::move(m), std::move(*writer), std::move(respond),
                                       room);
}

std::shared_ptr<net::RequestBody> MediaApi::Patch(const net::HttpRequest& head, const Identity& who,
                                                  net::HttpRespond& respond) {
  if (auto refusal = WrongTusVersion(head)) {
    respond(std::move(*refusal));
    return nullptr;
  }
  auto id = IdIn(std::string_view(head.path).substr(std::string_view("/v1/uploads/").size()));
  if (!id) {
    respond(Tus(NotFound("no such upload")));
    return nullptr;
  }
  if (!IEquals(Trim(head.GetHeader("Content-Type")), "application/offset+octet-stream")) {
    respond(TusError(415, code::kUnsupportedMediaType,
                     "Content-Type: must be application/offset+octet-stream"));
    return nullptr;
  }
  auto offset = ParseU64(head.GetHeader("Upload-Offset"));
  if (!offset) {
    respond(TusError(400, code::kBadRequest, "Upload-Offset: required, a byte offset"));
    return nullptr;
  }
  auto found = core_.store.GetMedia(*id);
  if (!found) {
    respond(Tus(Internal(found.error(), "get_media")));
    return nullptr;
  }
  if (!*found || (*found)->owner != who.user) {
    respond(Tus(NotFound("no such upload")));
    return nullptr;
  }
  store::Media upload = std::move(**found);
  std::optional<std::uint64_t> length;
  if (auto cl = head.GetHeader("Content-Length"); !cl.empty()) length = ParseU64(cl);

  auto mismatch = [&](std::uint64_t right) {
    auto r = TusError(409, code::kOffsetMismatch,
                      "Upload-Offset: the upload is at " + std::to_string(right));
    r.headers.push_back({"Upload-Offset", std::to_string(right)});
    respond(std::move(r));
    return nullptr;
  };
  if (upload.status != store::MediaStatus::kUploading) {
    // Complete already: only an empty PATCH at its end is accepted.
    if (*offset != upload.size) return mismatch(upload.size);
    if (length && *length == 0) {
      auto r = Tus(NoContent());
      r.headers.push_back({"Upload-Offset", std::to_string(upload.size)});
      respond(std::move(r));
      return nullptr;
    }
    respond(TusError(413, code::kTooLarge, "body goes past Upload-Length"));
    return nullptr;
  }
  if (!Lock(upload.id)) {
    respond(TusError(423, code::kUploadLocked, "another PATCH of this upload is in progress"));
    return nullptr;
  }
  auto writer = blobs_.AppendPartial(upload.id);
  if (!writer) {
    Unlock(upload.id);
    if (writer.error().code == Errc::kNotFound) {
      respond(Tus(NotFound("no such upload")));
    } else if (writer.error().code == Errc::kConflict) {
      // A PATCH of it on another node (a shared --media-dir).
      respond(TusError(423, code::kUploadLocked, "another PATCH of this upload is in progress"));
    } else {
      respond(Tus(Internal(writer.error(), "upload_open")));
    }
    return nullptr;
  }
  const std::uint64_t current = (*writer)->size();
  // A refused PATCH frees the upload before it is answered: the client's
  // next PATCH, on this node or another, may arrive as soon as the answer
  // leaves, and must not find the partial file's lock still held.
  auto release = [&] {
    writer->reset();
    Unlock(upload.id);
  };
  if (*offset != current) {
    release();
    return mismatch(current);
  }
  if (length && current + *length > upload.size) {
    release();
    respond(TusError(413, code::kTooLarge, "body goes past Upload-Length"));
    return nullptr;
  }
  return std::make_shared<PatchBody>(*this, std::move(upload), std::move(*writer),
                                     std::move(respond));
}

void MediaApi::Completed(store::Media media, net::HttpRespond respond, net::HttpResponse ok) {
  const bool process = media::ShouldProcess(media.content_type);
  media.status = process ? store::MediaStatus::kProcessing : store::MediaStatus::kReady;
  store::Media copy = media;
  // The quota is checked again in the write itself: the check before the
  // body could not see uploads of the same user finishing meanwhile.
  core_.store.PutMediaWithin(
      std::move(media), Quota(),
      [this, copy = std::move(copy), process, respond = std::move(respond),
       ok = std::move(ok)](Result<store::MediaQuotaVerdict> r) mutable {
        if (!r || *r != store::MediaQuotaVerdict::kWithin) {
          (void)blobs_.Remove(copy.id);
          return respond(r ? QuotaResponse(*r) : Internal(r.error(), "put_media"));
        }
        respond(std::move(ok));
        if (process) ProcessLater(std::move(copy));
      });
}

void MediaApi::ProcessLater(store::Media media) {
  if (!processing_) return;
  if (processing_->queued() >= core_.config.media_queue) {
    // The queue is bounded: past it the bytes are kept but not looked at,
    // as when the codecs are missing (nothing is said against them).
    PLOG_WARN("media processing queue full: stored unprocessed", "media={} queued={}", media.id,
              processing_->queued());
    media.status = store::MediaStatus::kReady;
    const auto id = media.id;
    core_.store.PutMedia(std::move(media), [id](Status st) {
      if (!st) {
        PLOG_ERROR("media metadata write failed", "media={} error={}", id,
                   LogQuote(st.error().message));
      }
    });
    return;
  }
  processing_->Post([this, media = std::move(media)]() mutable {
    media::ProcessResult r;
    try {
      // In a child process with a time budget: a decoder that crashes or
      // hangs fails this job only.
      r = media::ProcessIsolated(blobs_.LocalPath(media.id), media.content_type,
                                 core_.config.media_max_pixels, core_.config.media_job_timeout_s);
    } catch (const std::exception& e) {
      r = media::ProcessResult{};
      r.reason = std::string("processing failed: ") + e.what();
    }
    media.width = r.width;
    media.height = r.height;
    media.duration_ms = r.duration_ms;
    if (!r.thumbnail_jpeg.empty()) {
      if (auto s = blobs_.PutThumbnail(media.id, r.thumbnail_jpeg); s) {
        media.thumbnail = true;
      } else {
        PLOG_ERROR("thumbnail write failed", "media={} error={}", media.id,
                   LogQuote(s.error().message));
      }
    }
    // Without the codecs the bytes were not looked at, which is the
    // operator's problem (logged), not a reason to refuse them.
    media.status = r.ok || r.unavailable ? store::MediaStatus::kReady : store::MediaStatus::kFailed;
    media.reason = r.unavailable ? std::string() : r.reason;
    if (!r.ok && !r.unavailable) {
      PLOG_INFO("media failed processing", "media={} type={} reason={}", media.id,
                LogQuote(media.content_type), LogQuote(r.reason));
    }
    const auto id = media.id;
    core_.store.PutMedia(std::move(media), [id](Status st) {
      if (!st) {
        PLOG_ERROR("media metadata write failed", "media={} error={}", id,
                   LogQuote(st.error().message));
      }
    });
  });
}

void MediaApi::Handle(net::HttpRequest request, net::HttpRespond respond) {
  respond = media_http::NoSniff(std::move(respond));
  const std::string& path = request.path;
  const std::string& method = request.method;
  const bool tus = path.starts_with("/v1/uploads");
  if (tus && method == "OPTIONS") {
    if (path != "/v1/uploads") return respond(NotFound("no such endpoint"));
    auto r = Tus(NoContent());
    r.headers.push_back({"Tus-Version", std::string(kTusVersion)});
    r.headers.push_back({"Tus-Extension", "creation,termination"});
    r.headers.push_back({"Tus-Max-Size", std::to_string(core_.config.media_max_bytes)});
    return respond(std::move(r));
  }
  auto token = BearerToken(request);
  if (!token) {
    auto r = ErrorResponse(401, code::kInvalidToken, "Authorization: Bearer <token> required");
    return respond(tus ? Tus(std::move(r)) : std::move(r));
  }
  auto who = core_.Authenticate(*token);
  if (!who) {
    auto r = ErrorResponse(who.error().http_status, who.error().code, who.error().message);
    return respond(tus ? Tus(std::move(r)) : std::move(r));
  }
  auto not_allowed = [&](std::string_view allowed) {
    auto r = ErrorResponse(405, code::kMethodNotAllowed, "use " + std::string(allowed));
    r.headers.push_back({"Allow", std::string(allowed)});
    respond(tus ? Tus(std::move(r)) : std::move(r));
  };

  if (path == "/v1/media") {
    if (method != "POST") return not_allowed("POST");
    // An empty body is not streamed: finish it here.
    if (auto sink = Upload(request, *who, respond)) sink->OnEnd();
    return;
  }
  if (path == "/v1/uploads") {
    if (method != "POST") return not_allowed("POST, OPTIONS");
    return CreateUpload(request, *who, std::move(respond));
  }
  if (tus) {
    if (method == "HEAD") return HeadUpload(request, *who, std::move(respond));
    if (method == "DELETE") return DeleteUpload(request, *who, std::move(respond));
    if (method == "PATCH") {
      if (auto sink = Patch(request, *who, respond)) sink->OnEnd();
      return;
    }
    return not_allowed("HEAD, PATCH, DELETE");
  }
  // /v1/media/{id}[/meta|/thumbnail]
  if (method != "GET" && method != "HEAD") return not_allowed("GET");
  if (path.ends_with("/meta")) return Meta(request, *who, std::move(respond));
  if (path.ends_with("/thumbnail")) return Thumbnail(request, *who, std::move(respond));
  return Download(request, *who, std::move(respond));
}

}  // namespace parley::core
