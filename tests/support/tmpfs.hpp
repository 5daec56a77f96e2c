// A small size-limited tmpfs of a test's own, to fill a volume on purpose
// (full-disk tests). Needs root (mount(2)); Skipped() says why when it
// cannot be had, for a GTEST_SKIP.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace parley::test {

class Tmpfs {
 public:
  // Mounts a tmpfs of `bytes` at `dir` (created).
  Tmpfs(const std::string& dir, std::uint64_t bytes) : dir_(dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (::geteuid() != 0) {
      why_ = "not root: mounting a size-limited tmpfs needs root";
      return;
    }
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      why_ = "mount -t tmpfs refused: " + std::string(std::strerror(errno));
      return;
    }
    mounted_ = true;
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& dir() const { return dir_; }

  // Fills what is left with a file named `name` (until ENOSPC); its size.
  std::uint64_t Fill(const std::string& name = "filler") {
    const std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    std::string block(1 << 20, 'f');
    std::uint64_t total = 0;
    for (std::size_t size = block.size(); size > 0; size /= 2) {
      for (;;) {
        const ssize_t n = ::write(fd, block.data(), size);
        if (n <= 0) break;
        total += static_cast<std::uint64_t>(n);
      }
    }
    ::close(fd);
    return total;
  }
  void Unfill(const std::string& name = "filler") {
    std::error_code ec;
    std::filesystem::remove(dir_ + "/" + name, ec);
  }

 private:
  std::string dir_;
  std::string why_;
  bool mounted_ = false;
};

}  // namespace parley::test
