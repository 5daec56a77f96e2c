// The domain's shared state: the components every handler uses, wired once
// by main. Handlers run on I/O threads and never block there: reads go to the
// store directly (they never wait for the writer), writes answer through
// store callbacks.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/config.hpp"
#include "common/ids.hpp"
#include "common/metrics.hpp"
#include "core/rate_limit.hpp"
#include "core/sessions.hpp"
#include "core/sms.hpp"
#include "core/tokens.hpp"
#include "store/store.hpp"

namespace parley::core {

struct Identity {
  store::UserId user = 0;
  store::DeviceId device = 0;
};

// Why a token was refused, in the three forms the contract needs.
struct AuthFailure {
  std::string_view code;  // invalid_token | token_expired | device_revoked | internal
  int http_status = 401;
  std::uint16_t close_code = 4401;
  std::string message;
};

// Metric handles looked up once.
struct CoreMetrics {
  explicit CoreMetrics(Registry& r);
  Counter& FrameIn(std::string_view op);
  Counter& FrameOut(std::string_view op);

  Registry& registry;
  Gauge& sessions_authenticated;
  Counter& otp_sent;
  Counter& sign_ins;

 private:
  std::unordered_map<std::string_view, Counter*> in_;
  std::unordered_map<std::string_view, Counter*> out_;
  Counter& in_other_;
  Counter& out_other_;
};

class Core {
 public:
  Core(const Config& config, store::Store& store, Registry& metrics, TokenService& tokens,
       SmsSender& sms, std::string node_name);

  // Checks an access token and that its device still holds that generation.
  std::expected<Identity, AuthFailure> Authenticate(std::string_view token);

  const Config& config;
  store::Store& store;
  TokenService& tokens;
  SmsSender& sms;
  CoreMetrics metrics;
  IdGenerator ids;
  SessionRegistry sessions;
  const std::string node_name;

  WindowLimiter otp_per_phone;
  WindowLimiter otp_per_address;
  QuotaCounter contacts_per_day;
};

}  // namespace parley::core
