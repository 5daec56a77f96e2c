#include "core/account/otp_limits.hpp"

namespace parley::core {

std::vector<bus::WindowLimit> OtpWindowLimits(const Config& config, const std::string& phone,
                                              const std::string& address, bool phone_counted_only) {
  std::vector<bus::WindowLimit> out;
  if (config.otp_per_phone > 0) {
    out.push_back({"otp:p:" + phone, phone_counted_only ? 0u : config.otp_per_phone, 600000});
  }
  if (config.otp_per_address_per_hour > 0) {
    out.push_back({"otp:a:" + address, config.otp_per_address_per_hour, 3600000});
  }
  if (config.otp_global_per_minute > 0) {
    out.push_back({"otp:all", config.otp_global_per_minute, 60000});
  }
  return out;
}

}  // namespace parley::core
