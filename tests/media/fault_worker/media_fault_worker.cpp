// A media worker for tests only (issue 14, item 8): it speaks the
// `media-process` protocol of src/media/isolated.cpp (an 8-byte little-endian
// length, then the job) and, instead of decoding, crashes or hangs on every
// job, as $PARLEY_MEDIA_TEST_FAULT says (crash | hang). parleyd runs it when
// started with `--media-worker <this program>`; the shipped parleyd has no
// such hook.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <thread>

namespace {

bool ReadN(int fd, char* out, std::uint64_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, out, n);
    if (r <= 0) return false;
    out += r;
    n -= static_cast<std::uint64_t>(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::string_view(argv[1]) != "media-process") return 2;
  const char* env = std::getenv("PARLEY_MEDIA_TEST_FAULT");
  const std::string_view fault = env != nullptr ? env : "crash";
  for (;;) {
    unsigned char head[8];
    if (!ReadN(0, reinterpret_cast<char*>(head), 8)) return 0;
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(head[i]) << (8 * i);
    if (n > (1u << 20)) return 2;
    char job[1 << 12];
    while (n > 0) {  // the job itself is not looked at
      const std::uint64_t take = n < sizeof(job) ? n : sizeof(job);
      if (!ReadN(0, job, take)) return 0;
      n -= take;
    }
    if (fault == "hang") {
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    ::raise(SIGSEGV);
  }
}
