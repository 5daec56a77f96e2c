// Reads one-time codes from the server's `file:` SMS provider: a JSON-lines
// file that grows while we read it. Only lines appended after this reader
// was opened matter (a code is asked for afterwards), so it starts at the
// end of the file and never rereads what earlier runs left there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace parley::bench {

class OtpFile {
 public:
  explicit OtpFile(std::string path);
  ~OtpFile();
  OtpFile(const OtpFile&) = delete;
  OtpFile& operator=(const OtpFile&) = delete;

  // Reads every complete line appended since the last call.
  void Poll();
  // Lines read so far: a code asked for now will be on a later line.
  std::uint64_t lines() const { return lines_; }
  // The newest code for `phone` read after line `since`; it is then
  // forgotten (each code is used once).
  std::optional<std::string> Take(const std::string& phone, std::uint64_t since);

 private:
  struct Code {
    std::string code;
    std::uint64_t line = 0;
  };
  std::string path_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;
  std::uint64_t lines_ = 0;
  std::string partial_;
  std::unordered_map<std::string, Code> codes_;
};

}  // namespace parley::bench
