// The store contract (src/store/store.hpp), run against every backend that
// instantiates StoreContractTest (see store_contract.hpp).
#include "unit/store_contract.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parley::store::testing {
namespace {

// Counts observations per operation name. Shared with the observer, which
// the store may call until it is destroyed.
struct OpCounter : std::enable_shared_from_this<OpCounter> {
  std::mutex mu;
  std::map<std::string, int, std::less<>> counts;

  StoreObserver Observer() {
    return [self = shared_from_this()](std::string_view op, double seconds) {
      EXPECT_GE(seconds, 0.0);
      std::lock_guard lock(self->mu);
      ++self->counts[std::string(op)];
    };
  }
  int Count(std::string_view op) {
    std::lock_guard lock(mu);
    auto it = counts.find(op);
    return it == counts.end() ? 0 : it->second;
  }
};

using Outcome = SignInResult::Outcome;
using RotateOutcome = RotateResult::Outcome;

// ---- Reads of nothing ----------------------------------------------------------

TEST_P(StoreContractTest, ReadsOfMissingRecordsAreEmpty) {
  EXPECT_EQ(store().GetUser(42).value(), std::nullopt);
  EXPECT_EQ(store().FindUserByPhone("+15550000000").value(), std::nullopt);
  EXPECT_EQ(store().GetDevice(42, 7).value(), std::nullopt);
  EXPECT_TRUE(store().ListDevices(42).value().empty());
  EXPECT_EQ(store().GetRefreshToken("nope").value(), std::nullopt);
  EXPECT_EQ(store().GetOtp("+15550000000").value(), std::nullopt);
  const UserId ids[] = {1, 2};
  EXPECT_TRUE(store().GetUsers(ids).value().empty());
  const std::string hashes[] = {"a", "b"};
  EXPECT_TRUE(store().FindUsersByPhoneHash(hashes).value().empty());
}

// ---- One-time codes --------------------------------------------------------------

TEST_P(StoreContractTest, PutOtpStoresAndReplaces) {
  ASSERT_TRUE(PutOtp(store(), Code("+15550000001", "first")));
  auto code = store().GetOtp("+15550000001").value();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(code->phone, "+15550000001");
  EXPECT_EQ(code->code_hash, "first");
  EXPECT_EQ(code->expires_ms, kNow + 300'000);
  EXPECT_EQ(code->attempts, 0u);

  ASSERT_TRUE(RecordOtpFailure(store(), "+15550000001", 5));
  ASSERT_TRUE(PutOtp(store(), Code("+15550000001", "second")));
  code = store().GetOtp("+15550000001").value();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(code->code_hash, "second");
  EXPECT_EQ(code->attempts, 0u);
}

TEST_P(StoreContractTest, RecordOtpFailureCountsThenBurns) {
  ASSERT_TRUE(PutOtp(store(), Code("+15550000002")));
  for (std::uint32_t i = 1; i <= 2; ++i) {
    auto failure = RecordOtpFailure(store(), "+15550000002", 3).value();
    EXPECT_EQ(failure.attempts, i);
    EXPECT_FALSE(failure.burned);
    EXPECT_FALSE(failure.missing);
    EXPECT_EQ(store().GetOtp("+15550000002").value()->attempts, i);
  }
  auto failure = RecordOtpFailure(store(), "+15550000002", 3).value();
  EXPECT_EQ(failure.attempts, 3u);
  EXPECT_TRUE(failure.burned);
  EXPECT_FALSE(failure.missing);
  EXPECT_EQ(store().GetOtp("+15550000002").value(), std::nullopt);

  failure = RecordOtpFailure(store(), "+15550000002", 3).value();
  EXPECT_TRUE(failure.missing);
  EXPECT_FALSE(failure.burned);
}

TEST_P(StoreContractTest, RecordOtpFailureWithoutCodeReportsMissing) {
  auto failure = RecordOtpFailure(store(), "+15550000003", 3).value();
  EXPECT_TRUE(failure.missing);
  EXPECT_FALSE(failure.burned);
  EXPECT_EQ(failure.attempts, 0u);
  EXPECT_EQ(store().GetOtp("+15550000003").value(), std::nullopt);
}

// ---- Sign-in ------------------------------------------------------------------

TEST_P(StoreContractTest, SignInCreatesAccountDeviceAndTokenAndConsumesCode) {
  ASSERT_TRUE(PutOtp(store(), Code("+15550000010")));
  auto result = SignIn(store(), Request("+15550000010", 100, 1000, "tok-a")).value();
  EXPECT_EQ(result.outcome, Outcome::kOk);
  EXPECT_EQ(result.user_id, 100u);
  EXPECT_TRUE(result.new_user);

  auto user = store().GetUser(100).value();
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->id, 100u);
  EXPECT_EQ(user->phone, "+15550000010");
  EXPECT_EQ(user->created_ms, kNow);
  EXPECT_EQ(user->last_seen_visibility, "everyone");
  auto by_phone = store().FindUserByPhone("+15550000010").value();
  ASSERT_TRUE(by_phone.has_value());
  EXPECT_EQ(by_phone->id, 100u);
  const std::string hashes[] = {PhoneHash("+15550000010")};
  auto found = store().FindUsersByPhoneHash(hashes).value();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].first, PhoneHash("+15550000010"));
  EXPECT_EQ(found[0].second, 100u);

  auto device = store().GetDevice(100, 1000).value();
  ASSERT_TRUE(device.has_value());
  EXPECT_EQ(device->user_id, 100u);
  EXPECT_EQ(device->id, 1000u);
  EXPECT_EQ(device->name, "phone");
  EXPECT_EQ(device->platform, "android");
  EXPECT_EQ(device->created_ms, kNow);
  EXPECT_EQ(device->token_gen, 3u);

  auto token = store().GetRefreshToken("tok-a").value();
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->hash, "tok-a");
  EXPECT_EQ(token->user_id, 100u);
  EXPECT_EQ(token->device_id, 1000u);
  EXPECT_EQ(token->token_gen, 3u);
  EXPECT_EQ(token->expires_ms, kNow + 30 * kDay);
  EXPECT_FALSE(token->used);

  EXPECT_EQ(store().GetOtp("+15550000010").value(), std::nullopt);
}

TEST_P(StoreContractTest, SignInToExistingAccountAddsDevice) {
  SignUp(store(), "+15550000011", 110, 1100, "tok-a");
  ASSERT_TRUE(PutOtp(store(), Code("+15550000011")));
  auto result = SignIn(store(), Request("+15550000011", 999, 1101, "tok-b")).value();
  EXPECT_EQ(result.outcome, Outcome::kOk);
  EXPECT_EQ(result.user_id, 110u);
  EXPECT_FALSE(result.new_user);
  EXPECT_EQ(store().GetUser(999).value(), std::nullopt);

  auto devices = store().ListDevices(110).value();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].id, 1100u);
  EXPECT_EQ(devices[1].id, 1101u);
  EXPECT_EQ(store().GetRefreshToken("tok-b").value()->user_id, 110u);
}

TEST_P(StoreContractTest, SignInWithWrongOrMissingCodeChangesNothing) {
  auto result = SignIn(store(), Request("+15550000012", 120, 1200, "tok-a")).value();
  EXPECT_EQ(result.outcome, Outcome::kCodeGone);

  ASSERT_TRUE(PutOtp(store(), Code("+15550000012", "other-hash")));
  result = SignIn(store(), Request("+15550000012", 120, 1200, "tok-a")).value();
  EXPECT_EQ(result.outcome, Outcome::kCodeGone);

  EXPECT_EQ(store().GetUser(120).value(), std::nullopt);
  EXPECT_EQ(store().FindUserByPhone("+15550000012").value(), std::nullopt);
  EXPECT_EQ(store().GetDevice(120, 1200).value(), std::nullopt);
  EXPECT_EQ(store().GetRefreshToken("tok-a").value(), std::nullopt);
  EXPECT_EQ(store().GetOtp("+15550000012").value()->code_hash, "other-hash");
}

TEST_P(StoreContractTest, SignInCodeIsSingleUse) {
  SignUp(store(), "+15550000013", 130, 1300, "tok-a");
  auto again = SignIn(store(), Request("+15550000013", 130, 1301, "tok-b")).value();
  EXPECT_EQ(again.outcome, Outcome::kCodeGone);
  EXPECT_EQ(store().GetDevice(130, 1301).value(), std::nullopt);
  EXPECT_EQ(store().GetRefreshToken("tok-b").value(), std::nullopt);
}

TEST_P(StoreContractTest, SignInRefusesExpiredOrBurnedCode) {
  const std::string phone = "+15550000015";
  OtpCode expired = Code(phone);
  expired.expires_ms = kNow;  // expired at that very millisecond
  ASSERT_TRUE(PutOtp(store(), expired));
  EXPECT_EQ(SignIn(store(), Request(phone, 150, 1500, "tok-a")).value().outcome,
            Outcome::kCodeGone);

  OtpCode burned = Code(phone);
  burned.attempts = 3;
  ASSERT_TRUE(PutOtp(store(), burned));
  auto req = Request(phone, 150, 1500, "tok-a");
  req.max_otp_attempts = 3;
  EXPECT_EQ(SignIn(store(), req).value().outcome, Outcome::kCodeGone);
  EXPECT_EQ(store().GetUser(150).value(), std::nullopt);
  EXPECT_EQ(store().GetRefreshToken("tok-a").value(), std::nullopt);

  OtpCode one_left = Code(phone);
  one_left.attempts = 2;
  ASSERT_TRUE(PutOtp(store(), one_left));
  EXPECT_EQ(SignIn(store(), req).value().outcome, Outcome::kOk);
}

TEST_P(StoreContractTest, SignInAtDeviceLimitChangesNothing) {
  const std::string phone = "+15550000014";
  for (DeviceId d : {1400, 1401}) {
    ASSERT_TRUE(PutOtp(store(), Code(phone)));
    auto r = SignIn(store(), Request(phone, 140, d, "tok-" + std::to_string(d), 2)).value();
    ASSERT_EQ(r.outcome, Outcome::kOk);
  }
  ASSERT_TRUE(PutOtp(store(), Code(phone)));
  auto result = SignIn(store(), Request(phone, 140, 1402, "tok-1402", 2)).value();
  EXPECT_EQ(result.outcome, Outcome::kDeviceLimit);
  EXPECT_EQ(result.user_id, 140u);
  EXPECT_FALSE(result.new_user);

  EXPECT_EQ(store().ListDevices(140).value().size(), 2u);
  EXPECT_EQ(store().GetDevice(140, 1402).value(), std::nullopt);
  EXPECT_EQ(store().GetRefreshToken("tok-1402").value(), std::nullopt);
  // The code was not consumed: the user can remove a device and retry with it.
  EXPECT_TRUE(store().GetOtp(phone).value().has_value());
  ASSERT_TRUE(RemoveDevice(store(), 140, 1400).value());
  result = SignIn(store(), Request(phone, 140, 1402, "tok-1402", 2)).value();
  EXPECT_EQ(result.outcome, Outcome::kOk);
}

TEST_P(StoreContractTest, SignInAtDeviceLimitForNewAccountCreatesNothing) {
  const std::string phone = "+15550000015";
  ASSERT_TRUE(PutOtp(store(), Code(phone)));
  auto result = SignIn(store(), Request(phone, 150, 1500, "tok-a", 0)).value();
  EXPECT_EQ(result.outcome, Outcome::kDeviceLimit);
  EXPECT_FALSE(result.new_user);
  EXPECT_EQ(store().GetUser(150).value(), std::nullopt);
  EXPECT_EQ(store().FindUserByPhone(phone).value(), std::nullopt);
  const std::string hashes[] = {PhoneHash(phone)};
  EXPECT_TRUE(store().FindUsersByPhoneHash(hashes).value().empty());
  EXPECT_TRUE(store().GetOtp(phone).value().has_value());
}

// ---- Refresh tokens ----------------------------------------------------------------

TEST_P(StoreContractTest, RotateExchangesToken) {
  SignUp(store(), "+15550000020", 200, 2000, "tok-a");
  auto result = Rotate(store(), "tok-a", Replacement("tok-b")).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kRotated);
  EXPECT_EQ(result.user_id, 200u);
  EXPECT_EQ(result.device_id, 2000u);
  EXPECT_EQ(result.token_gen, 3u);

  EXPECT_TRUE(store().GetRefreshToken("tok-a").value()->used);
  auto fresh = store().GetRefreshToken("tok-b").value();
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->user_id, 200u);
  EXPECT_EQ(fresh->device_id, 2000u);
  EXPECT_EQ(fresh->token_gen, 3u);
  EXPECT_EQ(fresh->expires_ms, kNow + 30 * kDay);
  EXPECT_FALSE(fresh->used);

  // The replacement rotates in turn.
  EXPECT_EQ(Rotate(store(), "tok-b", Replacement("tok-c")).value().outcome,
            RotateOutcome::kRotated);
}

TEST_P(StoreContractTest, RotateUnknownToken) {
  auto result = Rotate(store(), "nope", Replacement("tok-b")).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kUnknown);
  EXPECT_EQ(store().GetRefreshToken("tok-b").value(), std::nullopt);
}

TEST_P(StoreContractTest, RotateExpiredToken) {
  SignUp(store(), "+15550000021", 210, 2100, "tok-a");
  const std::int64_t expiry = kNow + 30 * kDay;
  auto result = Rotate(store(), "tok-a", Replacement("tok-b"), expiry).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kExpired);
  EXPECT_EQ(store().GetRefreshToken("tok-b").value(), std::nullopt);
  EXPECT_FALSE(store().GetRefreshToken("tok-a").value()->used);
  // One millisecond earlier it is still good.
  result = Rotate(store(), "tok-a", Replacement("tok-b"), expiry - 1).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kRotated);
}

TEST_P(StoreContractTest, RotateTokenOfRemovedDeviceIsRevoked) {
  SignUp(store(), "+15550000022", 220, 2200, "tok-a");
  ASSERT_TRUE(RemoveDevice(store(), 220, 2200).value());
  auto result = Rotate(store(), "tok-a", Replacement("tok-b")).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kRevoked);
  EXPECT_EQ(store().GetRefreshToken("tok-b").value(), std::nullopt);
}

TEST_P(StoreContractTest, ReusedTokenRevokesEveryTokenOfTheDevice) {
  SignUp(store(), "+15550000023", 230, 2300, "tok-a");
  ASSERT_EQ(Rotate(store(), "tok-a", Replacement("tok-b")).value().outcome,
            RotateOutcome::kRotated);

  auto result = Rotate(store(), "tok-a", Replacement("tok-x")).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kReused);
  EXPECT_EQ(result.user_id, 230u);
  EXPECT_EQ(result.device_id, 2300u);
  EXPECT_EQ(result.token_gen, 4u);
  EXPECT_EQ(store().GetRefreshToken("tok-x").value(), std::nullopt);

  // The bump is committed, not rolled back as a failure, and survives a reopen.
  Reopen();
  EXPECT_EQ(store().GetDevice(230, 2300).value()->token_gen, 4u);
  result = Rotate(store(), "tok-b", Replacement("tok-c")).value();
  EXPECT_EQ(result.outcome, RotateOutcome::kRevoked);
  EXPECT_EQ(result.token_gen, 4u);
  EXPECT_EQ(store().GetRefreshToken("tok-c").value(), std::nullopt);
}

// ---- Devices --------------------------------------------------------------------------

TEST_P(StoreContractTest, RemoveDevice) {
  SignUp(store(), "+15550000030", 300, 3000, "tok-a");
  ASSERT_TRUE(PutOtp(store(), Code("+15550000030")));
  ASSERT_EQ(SignIn(store(), Request("+15550000030", 300, 3001, "tok-b")).value().outcome,
            Outcome::kOk);

  EXPECT_TRUE(RemoveDevice(store(), 300, 3000).value());
  EXPECT_FALSE(RemoveDevice(store(), 300, 3000).value());
  EXPECT_FALSE(RemoveDevice(store(), 301, 3001).value());
  EXPECT_EQ(store().GetDevice(300, 3000).value(), std::nullopt);
  auto devices = store().ListDevices(300).value();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].id, 3001u);
}

TEST_P(StoreContractTest, TouchDeviceRecordsActivity) {
  SignUp(store(), "+15550000031", 310, 3100, "tok-a");
  ASSERT_TRUE(TouchDevice(store(), 310, 3100, kNow + 5000));
  EXPECT_EQ(store().GetDevice(310, 3100).value()->last_active_ms, kNow + 5000);
  EXPECT_EQ(store().GetDevice(310, 3100).value()->name, "phone");
  EXPECT_TRUE(TouchDevice(store(), 310, 9999, kNow));
  EXPECT_EQ(store().GetDevice(310, 9999).value(), std::nullopt);
}

TEST_P(StoreContractTest, ListDevicesIsPerUserOldestFirst) {
  constexpr UserId kMax = std::numeric_limits<UserId>::max();
  // Adjacent user ids and the largest one, which has no key after its prefix.
  const std::pair<std::string, UserId> users[] = {
      {"+15550000032", 1}, {"+15550000033", 2}, {"+15550000034", kMax}};
  for (const auto& [phone, id] : users) {
    for (DeviceId d : {30, 10, 20}) {
      ASSERT_TRUE(PutOtp(store(), Code(phone)));
      auto r = SignIn(store(), Request(phone, id, d + id % 7, phone + std::to_string(d)));
      ASSERT_EQ(r.value().outcome, Outcome::kOk);
    }
  }
  for (const auto& [phone, id] : users) {
    auto devices = store().ListDevices(id).value();
    ASSERT_EQ(devices.size(), 3u) << phone;
    std::vector<DeviceId> ids;
    for (const auto& d : devices) {
      EXPECT_EQ(d.user_id, id);
      ids.push_back(d.id);
    }
    const UserId off = id % 7;
    EXPECT_EQ(ids, (std::vector<DeviceId>{10 + off, 20 + off, 30 + off}));
  }
  EXPECT_TRUE(store().ListDevices(3).value().empty());
  EXPECT_TRUE(store().ListDevices(0).value().empty());
}

// ---- Users ----------------------------------------------------------------------------

TEST_P(StoreContractTest, UpdateProfileAppliesSetFields) {
  SignUp(store(), "+15550000040", 400, 4000, "tok-a");
  ASSERT_TRUE(UpdateProfile(store(), 400, {.name = "Ada", .status_text = "busy"}));
  ASSERT_TRUE(
      UpdateProfile(store(), 400, {.avatar_media_id = "m1", .last_seen_visibility = "nobody"}));
  ASSERT_TRUE(UpdateProfile(store(), 400, {.status_text = ""}));
  auto user = store().GetUser(400).value();
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->name, "Ada");
  EXPECT_EQ(user->status_text, "");
  EXPECT_EQ(user->avatar_media_id, "m1");
  EXPECT_EQ(user->last_seen_visibility, "nobody");
  EXPECT_EQ(user->phone, "+15550000040");
  EXPECT_EQ(user->created_ms, kNow);
}

TEST_P(StoreContractTest, UpdateProfileOfUnknownUserIsNotFound) {
  auto status = UpdateProfile(store(), 401, {.name = "Nobody"});
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, Errc::kNotFound);
  EXPECT_EQ(store().GetUser(401).value(), std::nullopt);
}

TEST_P(StoreContractTest, SetLastSeen) {
  SignUp(store(), "+15550000041", 410, 4100, "tok-a");
  ASSERT_TRUE(SetLastSeen(store(), 410, kNow + 42));
  EXPECT_EQ(store().GetUser(410).value()->last_seen_ms, kNow + 42);
  auto status = SetLastSeen(store(), 411, kNow);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, Errc::kNotFound);
}

TEST_P(StoreContractTest, GetUsersSkipsUnknownAndKeepsOrder) {
  SignUp(store(), "+15550000042", 420, 4200, "tok-a");
  SignUp(store(), "+15550000043", 421, 4210, "tok-b");
  SignUp(store(), "+15550000044", 422, 4220, "tok-c");
  const UserId ids[] = {422, 9, 420, 421, 10};
  auto users = store().GetUsers(ids).value();
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0].id, 422u);
  EXPECT_EQ(users[0].phone, "+15550000044");
  EXPECT_EQ(users[1].id, 420u);
  EXPECT_EQ(users[2].id, 421u);
  EXPECT_TRUE(store().GetUsers({}).value().empty());
}

TEST_P(StoreContractTest, FindUsersByPhoneHashReturnsMatchesInOrder) {
  SignUp(store(), "+15550000045", 450, 4500, "tok-a");
  SignUp(store(), "+15550000046", 451, 4510, "tok-b");
  const std::string hashes[] = {PhoneHash("+15550000046"), PhoneHash("+19999999999"),
                                PhoneHash("+15550000045")};
  auto found = store().FindUsersByPhoneHash(hashes).value();
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], std::make_pair(PhoneHash("+15550000046"), UserId{451}));
  EXPECT_EQ(found[1], std::make_pair(PhoneHash("+15550000045"), UserId{450}));
}

// ---- The writer: batches, ordering, durability, lifecycle ----------------------------

TEST_P(StoreContractTest, FailedWriteRollsBackAloneInItsBatch) {
  const std::string phone = "+15550000050";
  Pending<void> put_code, bad_profile;
  Pending<SignInResult> at_limit, good;
  Pending<OtpFailure> counted;
  {
    WriterHold hold(store());
    store().PutOtp(Code(phone), put_code.callback());
    // Writes an account, then hits the limit: all of it must be undone...
    store().SignIn(Request(phone, 500, 5000, "tok-a", 0), at_limit.callback());
    // ...and an error mid-batch must not disturb its neighbours either.
    store().UpdateProfile(12345, {.name = "x"}, bad_profile.callback());
    store().RecordOtpFailure(phone, 10, counted.callback());
    store().SignIn(Request(phone, 501, 5010, "tok-b"), good.callback());
  }
  EXPECT_TRUE(put_code.Get());
  EXPECT_EQ(at_limit.Get().value().outcome, Outcome::kDeviceLimit);
  auto bad = bad_profile.Get();
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Errc::kNotFound);
  EXPECT_EQ(counted.Get().value().attempts, 1u);
  auto result = good.Get().value();
  EXPECT_EQ(result.outcome, Outcome::kOk);
  EXPECT_EQ(result.user_id, 501u);
  EXPECT_TRUE(result.new_user);

  EXPECT_EQ(store().GetUser(500).value(), std::nullopt);
  EXPECT_EQ(store().GetDevice(500, 5000).value(), std::nullopt);
  EXPECT_EQ(store().GetRefreshToken("tok-a").value(), std::nullopt);
  EXPECT_EQ(store().FindUserByPhone(phone).value()->id, 501u);
  EXPECT_EQ(store().GetUser(12345).value(), std::nullopt);
  EXPECT_EQ(store().GetOtp(phone).value(), std::nullopt);
}

TEST_P(StoreContractTest, WritesApplyAndCompleteInSubmissionOrder) {
  const std::string phone = "+15550000051";
  constexpr int kFailures = 20;
  std::mutex mu;
  std::vector<int> completion_order;
  std::vector<Pending<OtpFailure>> failures(kFailures);
  Pending<void> put;
  {
    WriterHold hold(store());
    store().PutOtp(Code(phone), put.callback());
    for (int i = 0; i < kFailures; ++i) {
      store().RecordOtpFailure(phone, 1000, [&, i, cb = failures[i].callback()](auto r) {
        {
          std::lock_guard lock(mu);
          completion_order.push_back(i);
        }
        cb(std::move(r));
      });
    }
  }
  ASSERT_TRUE(put.Get());
  for (int i = 0; i < kFailures; ++i) {
    EXPECT_EQ(failures[i].Get().value().attempts, static_cast<std::uint32_t>(i + 1));
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(completion_order.size(), static_cast<std::size_t>(kFailures));
  for (int i = 0; i < kFailures; ++i) EXPECT_EQ(completion_order[i], i);
}

TEST_P(StoreContractTest, GroupCommitBatchesQueuedWrites) {
  auto counter = std::make_shared<OpCounter>();
  Reopen(counter->Observer());
  constexpr int kWrites = 500;
  std::vector<Pending<void>> writes(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    store().PutOtp(Code("+1666" + std::to_string(i)), writes[i].callback());
  }
  for (auto& w : writes) ASSERT_TRUE(w.Get());
  EXPECT_EQ(counter->Count("put_otp"), kWrites);
  EXPECT_GE(counter->Count("commit"), 1);
  EXPECT_LT(counter->Count("commit"), kWrites);

  // Queued behind a parked writer, they all go in one commit.
  std::vector<Pending<void>> more(kWrites);
  int before = 0;
  {
    WriterHold hold(store());
    before = counter->Count("commit");
    for (int i = 0; i < kWrites; ++i) {
      store().PutOtp(Code("+1777" + std::to_string(i)), more[i].callback());
    }
  }
  for (auto& w : more) ASSERT_TRUE(w.Get());
  EXPECT_EQ(counter->Count("commit") - before, 1);
  EXPECT_TRUE(store().GetOtp("+1777499").value().has_value());
}

TEST_P(StoreContractTest, ObserverSeesReadsAndWrites) {
  auto counter = std::make_shared<OpCounter>();
  Reopen(counter->Observer());
  SignUp(store(), "+15550000052", 520, 5200, "tok-a");
  (void)store().GetUser(520);
  (void)store().ListDevices(520);
  EXPECT_EQ(counter->Count("put_otp"), 1);
  EXPECT_EQ(counter->Count("sign_in"), 1);
  EXPECT_EQ(counter->Count("get_user"), 1);
  EXPECT_EQ(counter->Count("list_devices"), 1);
  EXPECT_EQ(counter->Count("commit"), 2);
}

TEST_P(StoreContractTest, ConcurrentWritesAllCompleteAndSurviveReopen) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  std::atomic<int> ok{0}, failed{0}, done{0};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        OtpCode code = Code("+1888" + std::to_string(t * kPerThread + i));
        code.attempts = static_cast<std::uint32_t>(i);
        store().PutOtp(std::move(code), [&](Status s) {
          (s ? ok : failed).fetch_add(1);
          if (done.fetch_add(1) + 1 == kThreads * kPerThread) {
            std::lock_guard lock(mu);
            cv.notify_all();
          }
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(
        cv.wait_for(lock, kCallbackTimeout, [&] { return done.load() == kThreads * kPerThread; }));
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);

  Reopen();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto code = store().GetOtp("+1888" + std::to_string(t * kPerThread + i)).value();
      ASSERT_TRUE(code.has_value()) << t << "/" << i;
      EXPECT_EQ(code->attempts, static_cast<std::uint32_t>(i));
    }
  }
}

TEST_P(StoreContractTest, ReopenKeepsData) {
  SignUp(store(), "+15550000053", 530, 5300, "tok-a");
  ASSERT_TRUE(UpdateProfile(store(), 530, {.name = "Grace"}));
  ASSERT_TRUE(PutOtp(store(), Code("+15550000054")));
  Reopen();
  EXPECT_EQ(store().GetUser(530).value()->name, "Grace");
  EXPECT_EQ(store().FindUserByPhone("+15550000053").value()->id, 530u);
  EXPECT_EQ(store().ListDevices(530).value().size(), 1u);
  EXPECT_EQ(store().GetRefreshToken("tok-a").value()->device_id, 5300u);
  EXPECT_TRUE(store().GetOtp("+15550000054").value().has_value());
}

TEST_P(StoreContractTest, CloseRunsQueuedWrites) {
  constexpr int kWrites = 200;
  std::atomic<int> ok{0};
  for (int i = 0; i < kWrites; ++i) {
    store().PutOtp(Code("+1999" + std::to_string(i)), [&](Status s) {
      if (s) ok.fetch_add(1);
    });
  }
  store().Close();
  EXPECT_EQ(ok.load(), kWrites);
  Reopen();
  EXPECT_TRUE(store().GetOtp("+1999" + std::to_string(kWrites - 1)).value().has_value());
}

TEST_P(StoreContractTest, WritesAfterCloseAreUnavailable) {
  SignUp(store(), "+15550000055", 550, 5500, "tok-a");
  store().Close();
  store().Close();  // idempotent
  auto status = PutOtp(store(), Code("+15550000056"));
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, Errc::kUnavailable);
  auto sign_in = SignIn(store(), Request("+15550000055", 550, 5501, "tok-b"));
  ASSERT_FALSE(sign_in.has_value());
  EXPECT_EQ(sign_in.error().code, Errc::kUnavailable);
}

}  // namespace
}  // namespace parley::store::testing
