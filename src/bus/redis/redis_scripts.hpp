// The Lua scripts the Redis bus runs (EVALSHA, loaded on connect): the node
// claim, the connection registry and the dead-node sweep. Included by
// redis_bus.cpp only; the layout they work on is in docs/architecture.md.
#pragma once

#include <openssl/sha.h>

#include <string>

namespace parley::bus::redis_scripts {

struct Script {
  explicit Script(std::string body) : text(std::move(body)) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : digest) {
      sha += hex[c >> 4];
      sha += hex[c & 15];
    }
  }
  std::string text;
  std::string sha;
};

// KEYS[1] nid:{node}; ARGV instance, ttl ms. 1 when held by ARGV[1] now,
// else the holder's instance.
inline const Script kClaim(R"(local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return cur)");

// KEYS[1] nid:{node}; ARGV instance, dead holder, ttl ms.
inline const Script kTakeOver(R"(if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0)");

// KEYS[1] nid:{node}; ARGV instance.
inline const Script kRelease(R"(if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0)");

// KEYS pr:{user}, nd:{instance}; ARGV member, expiry ms, now ms, nd member,
// key ttl ms. 1 when the user had no live registration before.
inline const Script kRegister(R"(redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if before == 0 then return 1 end
return 0)");

// The periodic refresh of many registrations in one call (what kRegister
// does for each, without its answer). KEYS nd:{instance}, then pr:{user} per
// registration; ARGV expiry ms, now ms, key ttl ms, then per registration
// its member and its nd member. The number of registrations.
inline const Script kRefresh(R"(local n = #KEYS - 1
local nd = {}
for i = 1, n do
  local key = KEYS[i + 1]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
  redis.call('ZADD', key, ARGV[1], ARGV[2 + 2 * i])
  redis.call('PEXPIRE', key, ARGV[3])
  nd[i] = ARGV[3 + 2 * i]
end
if n > 0 then
  redis.call('SADD', KEYS[1], unpack(nd))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return n)");

// KEYS pr:{user}, nd:{instance}; ARGV member, now ms, nd member. 1 when that
// was the user's last live registration.
inline const Script kUnregister(R"(redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0)");

// The sweep of one dead instance. KEYS nodes, nd:{instance}; ARGV instance,
// now ms. Only the caller that removes the instance from `nodes` sweeps it
// (so one node answers each transition); it removes every registration the
// instance held and answers the users left with none (offline everywhere).
// The pr:{user} keys come from nd:{instance}, so they are not in KEYS: fine
// on the standalone Redis the bus supports, not on Redis Cluster.
inline const Script kSweep(R"(if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {} end
local gone = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local sp = string.find(m, ' ', 1, true)
  if sp then
    local user = string.sub(m, 1, sp - 1)
    local key = 'pr:' .. user
    local member = string.sub(m, sp + 1)
    if redis.call('ZSCORE', key, member) then
      redis.call('ZREM', key, member)
      redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
      if redis.call('ZCARD', key) == 0 then table.insert(gone, user) end
    end
  end
end
redis.call('DEL', KEYS[2])
return gone)");

// KEYS: a sorted set per limit (lim:{key}), scored by event time; ARGV[1] a
// member unique to this event, then per key its limit (0: counted only) and
// window ms. Redis's own clock, so the nodes' clocks do not matter. 0 when
// the event was recorded under every key, else the ms until all allow it.
inline const Script kTakeWindows(R"(local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if limit > 0 then
    local n = redis.call('ZCARD', key)
    if n >= limit then
      local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
      local w = tonumber(oldest[2]) + window - now
      if w < 1 then w = 1 end
      if w > wait then wait = w end
    end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2 * i + 1])
end
return 0)");

inline const Script* const kScripts[] = {&kClaim,   &kTakeOver,   &kRelease, &kRegister,
                                         &kRefresh, &kUnregister, &kSweep,   &kTakeWindows};

}  // namespace parley::bus::redis_scripts
