#include "media/blob_store.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <new>
#include <system_error>

#include "common/log.hpp"

namespace parley::media {
namespace {

namespace fs = std::filesystem;

std::unexpected<Error> Errno(std::string_view what, const std::string& path, int err = errno) {
  const Errc code = err == ENOENT                    ? Errc::kNotFound
                    : err == ENOSPC || err == EDQUOT ? Errc::kNoSpace
                                                     : Errc::kUnavailable;
  return Fail(code, std::string(what) + " " + path + ": " + std::strerror(err));
}

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Ok();
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Errno("fsync", dir, err);
  return Ok();
}

std::string Hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

class LocalBlobStore;

// Writes `path` (opened by the store); a one-shot file is renamed to
// `final_path` on Commit, a partial one only fsynced.
class LocalWriter final : public BlobWriter {
 public:
  LocalWriter(int fd, std::string path, std::string final_path, std::uint64_t size, bool partial)
      : fd_(fd),
        path_(std::move(path)),
        final_path_(std::move(final_path)),
        size_(size),
        partial_(partial) {}
  ~LocalWriter() override { Abort(); }

  Status Write(std::string_view bytes) override {
    if (fd_ < 0) return Fail(Errc::kInvalid, "blob writer is closed");
    if (auto s = WriteAll(fd_, bytes, path_); !s) {
      // Nothing of a failed write stays (a full disk may take part of it):
      // a partial upload resumes exactly at the end of the last good write.
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        PLOG_WARN("blob truncate failed", "path={} error={}", path_, std::strerror(errno));
      }
      return s;
    }
    size_ += bytes.size();
    return Ok();
  }
  std::uint64_t size() const override { return size_; }

  Status Commit() override {
    if (fd_ < 0) return Fail(Errc::kInvalid, "blob writer is closed");
    if (::fsync(fd_) != 0) return Errno("fsync", path_);
    ::close(fd_);
    fd_ = -1;
    if (partial_) return Ok();
    if (::rename(path_.c_str(), final_path_.c_str()) != 0) {
      auto e = Errno("rename", path_);
      ::unlink(path_.c_str());
      return e;
    }
    return SyncDir(fs::path(final_path_).parent_path().string());
  }

  void Abort() override {
    if (fd_ >= 0) {
      if (partial_) ::fsync(fd_);  // keep what arrived: the upload resumes from it
      ::close(fd_);
      fd_ = -1;
      if (!partial_) ::unlink(path_.c_str());
    }
  }

 private:
  int fd_;
  std::string path_;
  std::string final_path_;
  std::uint64_t size_;
  bool partial_;
};

class LocalBlobStore final : public BlobStore {
 public:
  explicit LocalBlobStore(std::string dir) : dir_(std::move(dir)) {}

  Status Init() {
    std::error_code ec;
    for (const char* sub : {"blobs", "thumbs", "partial", "tmp"}) {
      fs::create_directories(fs::path(dir_) / sub, ec);
      if (ec) return Fail(Errc::kUnavailable, "media dir " + dir_ + ": " + ec.message());
    }
    for (const auto& entry : fs::directory_iterator(fs::path(dir_) / "tmp", ec)) {
      fs::remove(entry.path(), ec);
    }
    return Ok();
  }

  Result<std::unique_ptr<BlobWriter>> Create(BlobId id) override {
    const std::string tmp = TmpPath(id);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return Errno("create", tmp);
    return std::unique_ptr<BlobWriter>(
        std::make_unique<LocalWriter>(fd, tmp, BlobPath(id), 0, false));
  }

  Status CreatePartial(BlobId id) override {
    const std::string path = PartialPath(id);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) return Errno("create", path);
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return Errno("fsync", path);
    return SyncDir((fs::path(dir_) / "partial").string());
  }

  Result<std::uint64_t> PartialSize(BlobId id) override {
    struct stat st {};
    const std::string path = PartialPath(id);
    if (::stat(path.c_str(), &st) != 0) return Errno("stat", path);
    return static_cast<std::uint64_t>(st.st_size);
  }

  Result<std::unique_ptr<BlobWriter>> AppendPartial(BlobId id) override {
    const std::string path = PartialPath(id);
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return Errno("open", path);
    // One writer per upload across every process sharing this directory
    // (the nodes of a cluster share --media-dir): the lock is the open
    // file's and goes with its last descriptor. Taken before the size is
    // read, so that the size is the offset this writer appends at.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return Fail(Errc::kConflict, "another writer holds " + path);
      return Errno("flock", path, err);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      auto e = Errno("stat", path);
      ::close(fd);
      return e;
    }
    return std::unique_ptr<BlobWriter>(std::make_unique<LocalWriter>(
        fd, path, path, static_cast<std::uint64_t>(st.st_size), true));
  }

  Status PublishPartial(BlobId id) override {
    const std::string path = PartialPath(id);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return Errno("fsync", path, err);
    if (::rename(path.c_str(), BlobPath(id).c_str()) != 0) return Errno("rename", path);
    return SyncDir((fs::path(dir_) / "blobs").string());
  }

  Status RemovePartial(BlobId id) override {
    const std::string path = PartialPath(id);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("unlink", path);
    return Ok();
  }

  Result<int> Open(BlobId id) override { return OpenRead(BlobPath(id)); }
  Result<int> OpenThumbnail(BlobId id) override { return OpenRead(ThumbPath(id)); }
  std::string LocalPath(BlobId id) const override { return BlobPath(id); }

  Status PutThumbnail(BlobId id, std::string_view jpeg) override {
    const std::string tmp = TmpPath(id) + ".thumb";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return Errno("create", tmp);
    LocalWriter writer(fd, tmp, ThumbPath(id), 0, false);
    if (auto s = writer.Write(jpeg); !s) return s;
    return writer.Commit();
  }

  Status Remove(BlobId id) override {
    for (const std::string& path : {BlobPath(id), ThumbPath(id)}) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("unlink", path);
    }
    return Ok();
  }

  Result<std::vector<StoredBlob>> List() override {
    std::vector<StoredBlob> out;
    const std::pair<const char*, StoredBlob::Kind> dirs[] = {
        {"blobs", StoredBlob::Kind::kBlob},
        {"partial", StoredBlob::Kind::kPartial},
        {"thumbs", StoredBlob::Kind::kThumbnail}};
    for (const auto& [sub, kind] : dirs) {
      const std::string dir = dir_ + "/" + sub;
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        std::string name = entry.path().filename().string();
        if (kind == StoredBlob::Kind::kThumbnail) {
          if (!name.ends_with(".jpg")) continue;
          name.resize(name.size() - 4);
        }
        BlobId id = 0;
        auto [end, parsed] = std::from_chars(name.data(), name.data() + name.size(), id);
        if (name.empty() || parsed != std::errc() || end != name.data() + name.size()) continue;
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) != 0) continue;
        StoredBlob b;
        b.id = id;
        b.kind = kind;
        b.modified_ms =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
        out.push_back(b);
      }
      if (ec) return Fail(Errc::kUnavailable, "listing " + dir + ": " + ec.message());
    }
    return out;
  }

 private:
  static Result<int> OpenRead(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path);
    return fd;
  }
  std::string BlobPath(BlobId id) const { return dir_ + "/blobs/" + std::to_string(id); }
  std::string ThumbPath(BlobId id) const { return dir_ + "/thumbs/" + std::to_string(id) + ".jpg"; }
  std::string PartialPath(BlobId id) const { return dir_ + "/partial/" + std::to_string(id); }
  std::string TmpPath(BlobId id) const {
    return dir_ + "/tmp/" + std::to_string(id) + "." + std::to_string(counter_.fetch_add(1));
  }

  std::string dir_;
  mutable std::atomic<std::uint64_t> counter_{0};
};

}  // namespace

Result<std::string> Sha256OfFile(int fd) {
  Sha256 hash;
  std::string buf(1 << 16, '\0');
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(Errc::kUnavailable, std::string("read: ") + std::strerror(errno));
    }
    if (n == 0) break;
    hash.Update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    offset += n;
  }
  return hash.HexDigest();
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    throw std::bad_alloc();
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(std::string_view bytes) {
  // Cannot fail for an initialised software digest.
  EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

std::string Sha256::HexDigest() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, out.data(), &n);
  return Hex(out.data(), n);
}

Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& dir) {
  auto store = std::make_unique<LocalBlobStore>(dir);
  if (auto s = store->Init(); !s) return std::unexpected(s.error());
  return std::unique_ptr<BlobStore>(std::move(store));
}

}  // namespace parley::media
