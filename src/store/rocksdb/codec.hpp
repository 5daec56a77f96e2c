// Keys and values of the RocksDB store.
//
// Keys sort the way they are scanned: integers are fixed 8-byte big-endian,
// so a (user_id, x) pair key groups a user's rows together in ascending x
// (devices now; the mailbox's (user_id, seq) later uses the same layout).
// Fields that are in the key are not repeated in the value.
//
// Values are a small binary encoding: one leading byte naming the record
// and its layout version, then the fields in a fixed order; unsigned integers
// as LEB128 varints, signed ones zigzag-encoded first (times are usually
// positive but a negative value must not cost ten bytes), strings as a varint
// length and the bytes. A value that is truncated, has trailing bytes or the
// wrong leading byte decodes as kCorruption: a changed layout gets a new
// leading byte and a format upgrade step, never a silent reinterpretation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.hpp"
#include "store/records.hpp"

namespace parley::store::rocks {

// ---- Keys -----------------------------------------------------------------

// 8 bytes, big-endian.
std::string U64Key(std::uint64_t v);
std::optional<std::uint64_t> ParseU64Key(std::string_view key);

// 16 bytes: big-endian `a` then big-endian `b`; U64Key(a) is its prefix.
std::string U64PairKey(std::uint64_t a, std::uint64_t b);
std::optional<std::pair<std::uint64_t, std::uint64_t>> ParseU64PairKey(std::string_view key);

// The smallest key greater than every key starting with `prefix`, or "" when
// there is none (the prefix is all 0xff bytes): an iterate_upper_bound.
std::string PrefixUpperBound(std::string_view prefix);

// ---- Values ---------------------------------------------------------------

// users: key U64Key(id).
std::string EncodeUser(const User& user);
Result<User> DecodeUser(UserId id, std::string_view value);

// devices: key U64PairKey(user_id, id).
std::string EncodeDevice(const Device& device);
Result<Device> DecodeDevice(UserId user, DeviceId id, std::string_view value);

// refresh_tokens: key the token hash.
std::string EncodeRefreshToken(const RefreshToken& token);
Result<RefreshToken> DecodeRefreshToken(std::string_view hash, std::string_view value);

// otp: key the phone number.
std::string EncodeOtp(const OtpCode& code);
Result<OtpCode> DecodeOtp(std::string_view phone, std::string_view value);

// phone_index and phone_hash_index values: the user id as U64Key.
Result<UserId> DecodeUserIdValue(std::string_view value);

}  // namespace parley::store::rocks
