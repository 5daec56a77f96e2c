// Accounts for the scenarios, made through the public API only: a one-time
// code is asked for (POST /v1/auth/otp), read back from the server's file:
// SMS provider, and verified (POST /v1/auth/verify), many sign-ups in
// flight. With --accounts FILE they are cached as JSON lines, so later runs
// reuse them (refreshing access tokens that would expire during the run).
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "histogram.hpp"
#include "options.hpp"

namespace parley::bench {

struct Account {
  std::string phone;
  std::string user_id;
  std::string device_id;
  std::string access_token;
  std::string refresh_token;
  std::int64_t access_exp_s = 0;  // the JWT's exp claim (Unix seconds)
  int node = 0;                   // which --url its sessions use (index i mod nodes)
};

struct ProvisionReport {
  std::size_t wanted = 0;
  std::size_t reused = 0;     // from the cache, token still good
  std::size_t refreshed = 0;  // from the cache, POST /v1/auth/refresh
  std::size_t signed_up = 0;  // new, through otp + verify
  std::size_t failed = 0;
  double seconds = 0;
  double signup_seconds = 0;  // wall time of the sign-up phase alone
  Histogram signup;           // otp request sent -> tokens received
  Histogram refresh;
  std::map<std::string, std::uint64_t> errors;

  boost::json::object ToJson() const;
};

// `count` accounts whose access tokens stay valid for at least `valid_for_s`
// more seconds. Fewer when some could not be made (the report says why).
std::vector<Account> Provision(const Options& opt, std::size_t count, double valid_for_s,
                               ProvisionReport* report);

}  // namespace parley::bench
