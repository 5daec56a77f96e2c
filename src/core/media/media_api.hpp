// The media endpoints (PROTOCOL.md sections 1 and 6): one-shot uploads
// (POST /v1/media), resumable tus 1.0.0 uploads (/v1/uploads, core plus the
// creation and termination extensions), downloads with Range and ETag,
// metadata and thumbnails, and the background processing of what arrives.
//
// Threads: request heads are handled on the I/O threads (store reads only);
// body bytes are written, fsynced and hashed on a small I/O pool, and
// libvips/FFmpeg run on a separate processing pool, so neither a slow disk
// nor a large image ever holds an I/O thread. Flow control: the next chunk
// of a body is read only once the pool has written the last one.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#include "core/core.hpp"
#include "media/blob_store.hpp"
#include "media/worker_pool.hpp"
#include "net/service.hpp"

namespace parley::core {

class MediaApi {
 public:
  MediaApi(Core& core, media::BlobStore& blobs);
  ~MediaApi();

  // Whether the path is one of the media endpoints.
  static bool Owns(const std::string& path);
  // POST /v1/media and PATCH /v1/uploads/{id} stream their bodies.
  static bool Streams(const net::HttpRequest& head);

  std::shared_ptr<net::RequestBody> HandleStream(net::HttpRequest head, net::HttpRespond respond);
  void Handle(net::HttpRequest request, net::HttpRespond respond);

  // On the sweep thread (media_limits.cpp), all without a cap per run:
  // unfinished uploads older than media_upload_ttl_s, media past retention
  // (Store::ExpiredMedia), and, on the first call, files the blob store
  // holds without a record (a crash between the two writes).
  void SweepStaleUploads();
  // Finishes queued work and joins the pools (before the server goes).
  void Stop();

  // What the pools have queued or running (tests and metrics).
  std::size_t PendingWork() const;

 private:
  class SpooledBody;
  class OneShotBody;
  class PatchBody;

  std::shared_ptr<net::RequestBody> Upload(const net::HttpRequest& head, const Identity& who,
                                           net::HttpRespond& respond);
  std::shared_ptr<net::RequestBody> Patch(const net::HttpRequest& head, const Identity& who,
                                          net::HttpRespond& respond);
  void CreateUpload(const net::HttpRequest& request, const Identity& who, net::HttpRespond respond);
  void HeadUpload(const net::HttpRequest& request, const Identity& who, net::HttpRespond respond);
  void DeleteUpload(const net::HttpRequest& request, const Identity& who, net::HttpRespond respond);
  void Download(const net::HttpRequest& request, const Identity& who, net::HttpRespond respond);
  void Meta(const net::HttpRequest& request, const Identity& who, net::HttpRespond respond);
  void Thumbnail(const net::HttpRequest& request, const Identity& who, net::HttpRespond respond);

  // After the last byte is durable: the record becomes processing (or ready
  // for types the server does not look into) and processing is queued.
  void Completed(store::Media media, net::HttpRespond respond, net::HttpResponse ok);
  void ProcessLater(store::Media media);

  // The quotas (media_limits.cpp): nullopt when `owner` may add `bytes`
  // more (and, for a resumable upload, start one more); `room` gets the
  // bytes still allowed. Otherwise the response to give.
  std::optional<net::HttpResponse> QuotaRefusal(store::UserId owner, std::uint64_t bytes,
                                                bool resumable, std::uint64_t* room = nullptr);
  // The same limits, for the store to check in the write that adds the
  // record (Store::PutMediaWithin), and the answer to a record refused there.
  store::MediaQuota Quota() const;
  net::HttpResponse QuotaResponse(store::MediaQuotaVerdict verdict) const;
  void Sweep(bool orphans);
  void SweepStale();
  void SweepExpired();
  void SweepOrphans();

  // An upload whose body a PATCH is writing (one at a time per upload).
  bool Lock(store::MediaId id);
  void Unlock(store::MediaId id);

  Core& core_;
  media::BlobStore& blobs_;
  std::unique_ptr<media::WorkerPool> io_;
  std::unique_ptr<media::WorkerPool> processing_;
  std::unique_ptr<media::WorkerPool> sweeper_;
  std::atomic<bool> sweeping_{false};
  bool swept_orphans_ = false;     // sweeper thread only
  store::MediaId stale_mark_ = 0;  // where the next stale-upload sweep starts (sweeper thread)
  std::mutex mu_;
  std::unordered_set<store::MediaId> busy_;
};

// "image/png; q=1" -> "image/png"; "" -> application/octet-stream; nullopt
// when it is not a type/subtype of token characters.
std::optional<std::string> NormalizeContentType(std::string_view header);

// A single byte range of a `size`-byte body from a Range header.
struct ByteRange {
  enum class Kind { kWhole, kPartial, kUnsatisfiable };
  Kind kind = Kind::kWhole;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};
ByteRange ParseRange(std::string_view header, std::uint64_t size);

}  // namespace parley::core
