#include "media/processor.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>

#include "common/log.hpp"

namespace parley::media {
namespace {

std::once_flag g_load;
CodecsEntry* g_entry = nullptr;
std::string g_load_error;

// $PARLEY_MEDIA_CODECS, else kCodecsModule beside the running executable.
std::string ModulePath() {
  if (const char* env = std::getenv("PARLEY_MEDIA_CODECS"); env != nullptr && *env != '\0') {
    return env;
  }
  std::array<char, 4096> exe{};
  const auto n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  if (n <= 0) return kCodecsModule;
  return (std::filesystem::path(std::string(exe.data(), static_cast<std::size_t>(n)))
              .parent_path() /
          kCodecsModule)
      .string();
}

void Load() {
  const std::string path = ModulePath();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    g_load_error = why != nullptr ? why : "dlopen failed";
  } else if (auto* entry = ::dlsym(handle, kCodecsEntry); entry == nullptr) {
    g_load_error = std::string(kCodecsEntry) + " not found in " + path;
  } else {
    g_entry = reinterpret_cast<CodecsEntry*>(entry);  // NOLINT: dlsym's void* is the function
    PLOG_INFO("media codecs loaded", "path={}", path);
    return;
  }
  PLOG_ERROR("media codecs unavailable", "path={} error={}", path, LogQuote(g_load_error));
}

}  // namespace

bool ShouldProcess(std::string_view type) {
  return type.starts_with("image/") || type.starts_with("video/") || type.starts_with("audio/");
}

bool CodecsPresent(std::string* where) {
  const std::string path = ModulePath();
  if (where != nullptr) *where = path;
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

ProcessResult Process(const std::string& path, std::string_view content_type,
                      std::uint64_t max_pixels) {
  std::call_once(g_load, Load);
  ProcessResult r;
  if (g_entry == nullptr) {
    r.reason = "media processing is unavailable: " + g_load_error;
    r.unavailable = true;
    return r;
  }
  g_entry(path, content_type, max_pixels, r);
  return r;
}

}  // namespace parley::media
