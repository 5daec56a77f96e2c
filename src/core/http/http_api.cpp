#include "core/http/http_api.hpp"

#include <strings.h>

#include <cmath>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/account/otp_limits.hpp"
#include "core/session/session.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

#include <algorithm>

namespace parley::core {

namespace json = boost::json;
namespace code = proto::code;

namespace {

constexpr std::uint32_t kMaxOtpAttempts = 5;
constexpr std::string_view kPlatforms[] = {"android", "ios", "web", "desktop", "cli"};

net::HttpResponse BadRequest(const Error& e) {
  return ErrorResponse(400, code::kBadRequest, e.message);
}

net::HttpResponse Internal(const Error& e, std::string_view op) {
  PLOG_ERROR("store failure", "op={} error={}", op, LogQuote(e.message));
  const auto wire = proto::ToWire(e);
  const int status = wire.code == code::kInternal      ? 500
                     : wire.code == code::kStorageFull ? 507
                                                       : 400;
  return ErrorResponse(status, wire.code, wire.message);
}

net::HttpResponse RateLimited(double retry_after_s, std::string_view message) {
  auto r = ErrorResponse(429, code::kRateLimited, message);
  r.headers.push_back({"Retry-After", std::to_string(static_cast<long>(std::ceil(retry_after_s)))});
  return r;
}

json::object TokensJson(Core& core, store::UserId user, store::DeviceId device, std::uint32_t gen,
                        bool new_user, const std::string& refresh) {
  json::object o;
  o["user_id"] = IdToString(user);
  o["device_id"] = IdToString(device);
  o["new_user"] = new_user;
  o["access_token"] = core.tokens.IssueAccess(user, device, gen, NowMs());
  o["access_expires_in_s"] = core.tokens.access_ttl_s();
  o["refresh_token"] = refresh;
  o["refresh_expires_in_s"] = core.config.refresh_token_ttl_s;
  return o;
}

// Every X-Forwarded-For header, in order, as one list: a proxy may add its
// own header line after one the client sent.
std::string ForwardedFor(const net::HttpRequest& request) {
  std::string out;
  for (const auto& h : request.headers) {
    if (h.name.size() != 15 || strncasecmp(h.name.c_str(), "x-forwarded-for", 15) != 0) continue;
    if (!out.empty()) out += ',';
    out += h.value;
  }
  return out;
}

}  // namespace

net::HttpResponse JsonResponse(int status, const json::object& body) {
  net::HttpResponse r;
  r.status = status;
  r.body = json::serialize(body);
  return r;
}

net::HttpResponse ErrorResponse(int status, std::string_view error_code, std::string_view message) {
  net::HttpResponse r;
  r.status = status;
  r.body = proto::HttpErrorBody(error_code, message);
  return r;
}

bool IsE164(std::string_view phone) {
  if (phone.size() < 9 || phone.size() > 16 || phone[0] != '+') return false;
  for (std::size_t i = 1; i < phone.size(); ++i) {
    if (phone[i] < '0' || phone[i] > '9') return false;
  }
  return true;
}

void HttpApi::Handle(net::HttpRequest request, net::HttpRespond respond) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto only = [&](std::string_view allowed) {
    if (method == allowed) return true;
    auto r = ErrorResponse(405, code::kMethodNotAllowed, "use " + std::string(allowed));
    r.headers.push_back({"Allow", std::string(allowed)});
    respond(std::move(r));
    return false;
  };

  if (path == "/health") {
    if (!only("GET")) return;
    json::object o;
    o["status"] = "ok";
    o["node"] = core_.node_name;
    return respond(JsonResponse(200, o));
  }
  if (path == "/ready") {
    if (!only("GET")) return;
    const bool readable = core_.store.GetUser(0).has_value();
    auto writable = core_.store.Writable();
    // The media directory may be a volume of its own (docs/operations.md).
    if (writable && core_.media_volume != nullptr) writable = core_.media_volume->Check();
    const bool bus_up = core_.bus == nullptr || core_.bus->connected();
    const bool ok = readable && writable.has_value() && bus_up;
    json::object o;
    o["status"] = ok ? "ready" : "unavailable";
    if (!writable) {
      o["reason"] = proto::ToWire(writable.error()).code;
    } else if (!bus_up) {
      o["reason"] = "bus_unavailable";
    }
    return respond(JsonResponse(ok ? 200 : 503, o));
  }
  if (path == "/metrics") {
    if (!only("GET")) return;
    net::HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = core_.metrics.registry.Render();
    return respond(std::move(r));
  }
  if (path == "/v1/auth/otp") {
    if (!only("POST")) return;
    return Otp(request, std::move(respond));
  }
  if (path == "/v1/auth/verify") {
    if (!only("POST")) return;
    return Verify(request, std::move(respond));
  }
  if (path == "/v1/auth/refresh") {
    if (!only("POST")) return;
    return Refresh(request, std::move(respond));
  }
  respond(ErrorResponse(404, code::kNotFound, "no such endpoint"));
}

namespace {

// Stores a new code for the phone and sends it (the limits allowed it).
void IssueOtp(Core& core, const std::string& phone_key, net::HttpRespond respond) {
  core.abuse.otp_burns.Issued(phone_key);
  const std::string digits = NewOtpCode();
  const std::int64_t now = NowMs();
  store::OtpCode otp;
  otp.phone = phone_key;
  otp.code_hash = core.tokens.HashOtp(phone_key, digits);
  otp.expires_ms = now + static_cast<std::int64_t>(core.config.otp_ttl_s) * 1000;
  core.store.PutOtp(std::move(otp),
                    [&core, phone_key, digits, now, respond = std::move(respond)](Status st) {
                      if (!st) return respond(Internal(st.error(), "put_otp"));
                      // Only a stored code is sent: a code the server would not accept is never
                      // delivered.
                      core.sms.Send(phone_key, digits, now);
                      core.metrics.otp_sent.Inc();
                      json::object o;
                      o["expires_in_s"] = core.config.otp_ttl_s;
                      respond(JsonResponse(202, o));
                    });
}

// The node's own sign-in limits (one node, or a cluster whose bus is down).
void IssueOtpIfLocalAllows(Core& core, const std::string& phone_key, const std::string& address_key,
                           double now_s, double fresh, net::HttpRespond respond) {
  double wait_phone = core.otp_per_phone.RetryAfter(phone_key, now_s);
  if (fresh >= 0) wait_phone = std::min(wait_phone, fresh);
  const double wait_addr = core.otp_per_address.RetryAfter(address_key, now_s);
  const double wait_all = core.abuse.otp_global.RetryAfter("", now_s);
  if (wait_phone > 0 || wait_addr > 0 || wait_all > 0) {
    return respond(RateLimited(std::max({wait_phone, wait_addr, wait_all}),
                               wait_phone > 0  ? "too many codes for this phone number"
                               : wait_addr > 0 ? "too many codes from this address"
                                               : "too many codes are being sent; try again soon"));
  }
  core.otp_per_phone.Add(phone_key, now_s);
  core.otp_per_address.Add(address_key, now_s);
  core.abuse.otp_global.Add("", now_s);
  IssueOtp(core, phone_key, std::move(respond));
}

}  // namespace

void HttpApi::Otp(const net::HttpRequest& request, net::HttpRespond respond) {
  auto body = proto::ParseObject(request.body);
  if (!body) return respond(BadRequest(body.error()));
  auto phone = proto::GetString(*body, "phone", 32);
  if (!phone) return respond(BadRequest(phone.error()));
  if (!IsE164(*phone)) {
    return respond(
        ErrorResponse(400, code::kInvalidPhone, "phone must be E.164: + and 8 to 15 digits"));
  }
  const std::string phone_key(*phone);
  // The client behind a trusted proxy; an IPv6 client counted by its /64.
  const std::string address_key = AddressKey(
      ClientAddress(request.remote_address, ForwardedFor(request), core_.abuse.trusted_proxies));
  const double now_s = MonoSeconds();
  // A code burned by wrong guesses never locks its phone out: a fresh one is
  // possible after a delay that grows with each burn (abuse_limits.hpp).
  const double fresh = core_.abuse.otp_burns.FreshCodeAfter(phone_key, now_s);
  // In a cluster the limits are counted for all nodes together on the bus
  // (otp_limits.hpp); without one, or while it is down, by this node.
  if (core_.Clustered() && core_.bus->connected()) {
    Core& core = core_;
    core_.bus->TakeWindows(
        OtpWindowLimits(core_.config, phone_key, address_key, /*phone_counted_only=*/fresh == 0),
        [&core, phone_key, address_key, now_s, fresh,
         respond = std::move(respond)](Result<std::int64_t> wait_ms) mutable {
          if (!wait_ms) {  // the bus went down meanwhile
            return IssueOtpIfLocalAllows(core, phone_key, address_key, now_s, fresh,
                                         std::move(respond));
          }
          if (*wait_ms > 0) {
            // A burned code's fresh one is due sooner than the windows say
            // (if the phone's window is what refused).
            double wait_s = static_cast<double>(*wait_ms) / 1000.0;
            if (fresh > 0) wait_s = std::min(wait_s, fresh);
            return respond(RateLimited(wait_s, "too many codes; try again later"));
          }
          // The node's own windows too (and kept for when the bus is
          // down): codes it issued while the bus was not yet (or no longer)
          // there are in them and not on the bus, so the bus alone let a
          // phone have its budget again (seen: a fourth code in a minute
          // right after start, the first three counted before the bus was
          // connected).
          IssueOtpIfLocalAllows(core, phone_key, address_key, now_s, fresh, std::move(respond));
        });
    return;
  }
  IssueOtpIfLocalAllows(core_, phone_key, address_key, now_s, fresh, std::move(respond));
}

void HttpApi::Verify(const net::HttpRequest& request, net::HttpRespond respond) {
  auto body = proto::ParseObject(request.body);
  if (!body) return respond(BadRequest(body.error()));
  auto phone = proto::GetString(*body, "phone", 32);
  if (!phone) return respond(BadRequest(phone.error()));
  auto digits = proto::GetString(*body, "code", 32);
  if (!digits) return respond(BadRequest(digits.error()));
  auto device = proto::GetObject(*body, "device");
  if (!device) return respond(BadRequest(device.error()));
  auto name = proto::GetString(**device, "name", 64);
  if (!name) return respond(BadRequest(Error{Errc::kInvalid, "device." + name.error().message}));
  auto platform = proto::GetString(**device, "platform", 16);
  if (!platform) {
    return respond(BadRequest(Error{Errc::kInvalid, "device." + platform.error().message}));
  }
  if (std::find(std::begin(kPlatforms), std::end(kPlatforms), *platform) == std::end(kPlatforms)) {
    return respond(ErrorResponse(400, code::kBadRequest,
                                 "device.platform: one of android, ios, web, desktop, cli"));
  }
  if (!IsE164(*phone)) {
    return respond(
        ErrorResponse(400, code::kInvalidPhone, "phone must be E.164: + and 8 to 15 digits"));
  }

  auto otp = core_.store.GetOtp(*phone);
  if (!otp) return respond(Internal(otp.error(), "get_otp"));
  if (!*otp)
    return respond(ErrorResponse(401, code::kInvalidCode, "no code is pending for this phone"));
  const store::OtpCode& pending = **otp;
  // A burned code stays burned until a new one is asked for, whatever is tried.
  if (pending.attempts >= kMaxOtpAttempts) {
    core_.abuse.otp_burns.Burned(std::string(*phone), MonoSeconds());
    return respond(
        ErrorResponse(429, code::kTooManyAttempts, "too many wrong codes; ask for a new one"));
  }
  const std::int64_t now = NowMs();
  if (pending.expires_ms <= now) {
    return respond(
        ErrorResponse(410, code::kCodeExpired, "the code has expired; ask for a new one"));
  }
  const std::string hash = core_.tokens.HashOtp(*phone, *digits);
  if (hash != pending.code_hash) {
    Core& core = core_;
    core_.store.RecordOtpFailure(std::string(*phone), kMaxOtpAttempts + 1,
                                 [&core, phone_key = std::string(*phone),
                                  respond = std::move(respond)](Result<store::OtpFailure> r) {
                                   if (!r) return respond(Internal(r.error(), "otp_failure"));
                                   if (r->attempts >= kMaxOtpAttempts)
                                     core.abuse.otp_burns.Burned(phone_key, MonoSeconds());
                                   respond(ErrorResponse(401, code::kInvalidCode, "wrong code"));
                                 });
    return;
  }

  const std::string refresh = TokenService::NewRefreshToken();
  store::SignInRequest req;
  req.phone = std::string(*phone);
  req.phone_hash = Sha256Hex(*phone);
  req.code_hash = hash;
  req.new_user_id = core_.ids.Next();
  req.now_ms = now;
  req.device.id = core_.ids.Next();
  req.device.name = std::string(*name);
  req.device.platform = std::string(*platform);
  req.device.created_ms = now;
  req.device.last_active_ms = now;
  req.refresh.hash = TokenService::HashRefreshToken(refresh);
  req.refresh.expires_ms = now + static_cast<std::int64_t>(core_.config.refresh_token_ttl_s) * 1000;
  req.max_devices = core_.config.max_devices;
  const store::DeviceId device_id = req.device.id;
  const std::string device_name = req.device.name;
  Core& core = core_;
  core_.store.SignIn(std::move(req), [&core, device_id, device_name, refresh,
                                      respond = std::move(respond)](Result<store::SignInResult> r) {
    if (!r) return respond(Internal(r.error(), "sign_in"));
    switch (r->outcome) {
      case store::SignInResult::Outcome::kCodeGone:
        return respond(ErrorResponse(401, code::kInvalidCode, "the code was already used"));
      case store::SignInResult::Outcome::kDeviceLimit:
        return respond(ErrorResponse(409, code::kDeviceLimit,
                                     "this account has the most devices it may; remove one first"));
      case store::SignInResult::Outcome::kOk:
        break;
    }
    core.metrics.sign_ins.Inc();
    auto tokens = TokensJson(core, r->user_id, device_id, 0, r->new_user, refresh);
    core.AnnounceDevice(
        r->user_id, device_id, "added", device_name,
        [respond, tokens = std::move(tokens)] { respond(JsonResponse(200, tokens)); });
  });
}

void HttpApi::Refresh(const net::HttpRequest& request, net::HttpRespond respond) {
  auto body = proto::ParseObject(request.body);
  if (!body) return respond(BadRequest(body.error()));
  auto token = proto::GetString(*body, "refresh_token", 256);
  if (!token) return respond(BadRequest(token.error()));
  const std::string old_hash = TokenService::HashRefreshToken(*token);

  // A removed device answers device_revoked, which the rotation alone cannot tell apart.
  auto known = core_.store.GetRefreshToken(old_hash);
  if (!known) return respond(Internal(known.error(), "get_refresh_token"));
  if (*known) {
    auto device = core_.store.GetDevice((*known)->user_id, (*known)->device_id);
    if (!device) return respond(Internal(device.error(), "get_device"));
    if (!*device)
      return respond(ErrorResponse(403, code::kDeviceRevoked, "this device was removed"));
  }

  const std::string refresh = TokenService::NewRefreshToken();
  store::RefreshToken replacement;
  replacement.hash = TokenService::HashRefreshToken(refresh);
  const std::int64_t now = NowMs();
  replacement.expires_ms = now + static_cast<std::int64_t>(core_.config.refresh_token_ttl_s) * 1000;
  Core& core = core_;
  core_.store.RotateRefreshToken(
      old_hash, std::move(replacement), now,
      [&core, refresh, respond = std::move(respond)](Result<store::RotateResult> r) {
        if (!r) return respond(Internal(r.error(), "rotate_refresh_token"));
        using O = store::RotateResult::Outcome;
        switch (r->outcome) {
          case O::kRotated:
            return respond(JsonResponse(
                200, TokensJson(core, r->user_id, r->device_id, r->token_gen, false, refresh)));
          case O::kUnknown:
            return respond(ErrorResponse(401, code::kInvalidToken, "unknown refresh token"));
          case O::kExpired:
            return respond(
                ErrorResponse(401, code::kTokenExpired, "the refresh token has expired"));
          case O::kRevoked:
            return respond(
                ErrorResponse(401, code::kInvalidToken, "the refresh token was revoked"));
          case O::kReused:
            PLOG_WARN("refresh token reused; device tokens revoked", "user={} device={}",
                      r->user_id, r->device_id);
            // Whoever holds the device's sockets may be the thief: they go too.
            core.CloseDevice(r->user_id, r->device_id, bus::Control::Kind::kRevoked);
            return respond(ErrorResponse(401, code::kInvalidToken,
                                         "this refresh token was already used; every token of "
                                         "this device is revoked, sign in again"));
        }
      });
}

}  // namespace parley::core
