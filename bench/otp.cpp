#include "otp.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

namespace parley::bench {

namespace json = boost::json;

OtpFile::OtpFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0) offset_ = static_cast<std::uint64_t>(st.st_size);
}

OtpFile::~OtpFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OtpFile::Poll() {
  if (fd_ < 0) {
    // The server creates the file when it starts; it may not exist yet.
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    offset_ = 0;
  }
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && static_cast<std::uint64_t>(st.st_size) < offset_) {
    offset_ = 0;  // truncated or replaced: start over
    partial_.clear();
  }
  char buf[64 * 1024];
  // Bounded: at most 256 reads (16 MiB) per poll; the rest comes next time.
  for (int i = 0; i < 256; ++i) {
    const ssize_t n = ::pread(fd_, buf, sizeof buf, static_cast<off_t>(offset_));
    if (n <= 0) break;
    offset_ += static_cast<std::uint64_t>(n);
    partial_.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string_view line(partial_.data() + start, nl - start);
      ++lines_;
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (ec || !v.is_object()) continue;
      const auto* phone = v.as_object().if_contains("phone");
      const auto* code = v.as_object().if_contains("code");
      if (phone == nullptr || code == nullptr || !phone->is_string() || !code->is_string())
        continue;
      codes_[std::string(phone->as_string())] = Code{std::string(code->as_string()), lines_};
    }
    partial_.erase(0, start);
    if (static_cast<std::size_t>(n) < sizeof buf) break;
  }
}

std::optional<std::string> OtpFile::Take(const std::string& phone, std::uint64_t since) {
  auto it = codes_.find(phone);
  if (it == codes_.end() || it->second.line <= since) return std::nullopt;
  std::string code = std::move(it->second.code);
  codes_.erase(it);
  return code;
}

}  // namespace parley::bench
