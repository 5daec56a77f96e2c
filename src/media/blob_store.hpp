// The BlobStore seam (ARCHITECTURE.md): where media bytes live. Core never
// knows which backend runs; the local directory is the embedded one (a
// shared volume in a cluster), S3 may come later.
//
// Crash safety: a blob appears under its media id only complete. New bytes
// go to a temporary (or, for a resumable upload, a partial) file, which is
// fsynced and then renamed into place; a crash leaves at most a temporary
// file, which the next start removes, or a partial file, which the stale
// upload sweep removes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace parley::media {

using BlobId = std::uint64_t;

// One file being written. Not thread-safe: one writer at a time.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Appends bytes at the end.
  virtual Status Write(std::string_view bytes) = 0;
  // Bytes in the file (for a partial file, also those of earlier writers).
  virtual std::uint64_t size() const = 0;
  // Makes the bytes durable. A one-shot blob is then renamed to its id and
  // becomes readable; a partial file stays partial (PublishPartial finishes it).
  virtual Status Commit() = 0;
  // A one-shot blob's temporary file is deleted (as when the writer is
  // destroyed uncommitted); a partial file keeps the bytes written.
  virtual void Abort() = 0;
};

// One file a BlobStore holds (List).
struct StoredBlob {
  enum class Kind { kBlob, kPartial, kThumbnail };
  BlobId id = 0;
  Kind kind = Kind::kBlob;
  std::int64_t modified_ms = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // A new blob that becomes `id` on Commit.
  virtual Result<std::unique_ptr<BlobWriter>> Create(BlobId id) = 0;

  // Resumable uploads: a partial file per upload id.
  virtual Status CreatePartial(BlobId id) = 0;
  // kNotFound when there is none.
  virtual Result<std::uint64_t> PartialSize(BlobId id) = 0;
  // kNotFound when there is none; kConflict while another writer holds it
  // (in any process whose store shares this directory).
  virtual Result<std::unique_ptr<BlobWriter>> AppendPartial(BlobId id) = 0;
  // fsync, then rename the partial file to the blob `id`.
  virtual Status PublishPartial(BlobId id) = 0;
  virtual Status RemovePartial(BlobId id) = 0;

  // A read-only descriptor (the caller closes it); kNotFound when absent.
  virtual Result<int> Open(BlobId id) = 0;
  virtual Result<int> OpenThumbnail(BlobId id) = 0;
  // A path the media libraries can open (the local backend's own file).
  virtual std::string LocalPath(BlobId id) const = 0;
  // Written whole, atomically (temporary file, fsync, rename).
  virtual Status PutThumbnail(BlobId id, std::string_view jpeg) = 0;
  // Removes the blob and its thumbnail; absent ones are not an error.
  virtual Status Remove(BlobId id) = 0;
  // Every blob, partial file and thumbnail held (names that are not ids are
  // skipped): the orphan sweep compares them with the store's records.
  virtual Result<std::vector<StoredBlob>> List() = 0;
};

// Lowercase hex SHA-256 of everything `fd` holds, read with pread in pieces.
Result<std::string> Sha256OfFile(int fd);

// Incremental SHA-256 for hashing while streaming: OpenSSL's, which uses
// the CPU's SHA extensions where it has them (about 5x libsodium's here).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view bytes);
  std::string HexDigest();  // once

 private:
  ::evp_md_ctx_st* ctx_;
};

// The directory backend: <dir>/blobs/<id>, <dir>/thumbs/<id>.jpg,
// <dir>/partial/<id>, <dir>/tmp/. Opening it creates the directories and
// empties tmp/ (what a crash left there was never published).
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& dir);

}  // namespace parley::media
