// The store contract suites (store_contract_test.cpp for accounts and the
// writer; store_messaging_contract_test.cpp and
// store_retention_contract_test.cpp for mailboxes, messages and retention;
// store_groups_contract_test.cpp for groups): what every Store backend must
// do, written against the abstract interface only. A backend joins by
// providing a StoreFactory and instantiating every suite in its own test
// file, e.g. (rocksdb_store_test.cpp):
//
//   INSTANTIATE_TEST_SUITE_P(RocksDB, StoreContractTest,
//                            ::testing::Values(RocksStoreFactory()), StoreFactoryName);
//   INSTANTIATE_TEST_SUITE_P(RocksDB, StoreMessagingContractTest,
//                            ::testing::Values(RocksStoreFactory()), StoreFactoryName);
//   INSTANTIATE_TEST_SUITE_P(RocksDB, StoreGroupsContractTest,
//                            ::testing::Values(RocksStoreFactory()), StoreFactoryName);
//
// Also here: helpers that turn the store's callbacks into blocking calls, for
// the suite and for backend-specific tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "common/result.hpp"
#include "store/store.hpp"

namespace parley::store::testing {

struct StoreOpenOptions {
  StoreObserver observer;
};

// One private, initially empty backend instance (a temporary directory, a
// fresh database schema) that a test may open, close and reopen; everything
// in it is removed when it is destroyed.
class StoreInstance {
 public:
  virtual ~StoreInstance() = default;
  // May be called again after the previous store was closed and destroyed.
  virtual Result<std::unique_ptr<Store>> Open(const StoreOpenOptions& options) = 0;
};

struct StoreFactory {
  std::string name;  // a gtest name: letters, digits, underscores
  std::function<std::unique_ptr<StoreInstance>()> make;
};

// Makes gtest print a parameter as its name rather than as bytes.
inline void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }

inline std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

inline constexpr std::chrono::seconds kCallbackTimeout{30};

// A callback that a test can wait for.
template <class T>
class Pending {
 public:
  Pending() : promise_(std::make_shared<std::promise<Result<T>>>()) {
    future_ = promise_->get_future();
  }

  Callback<T> callback() {
    return [promise = promise_](Result<T> result) { promise->set_value(std::move(result)); };
  }

  // The result, or kInternal (and a test failure) if the callback never came.
  Result<T> Get() {
    if (future_.wait_for(kCallbackTimeout) != std::future_status::ready) {
      ADD_FAILURE() << "store callback not invoked within " << kCallbackTimeout.count() << " s";
      return Fail(Errc::kInternal, "callback timeout");
    }
    return future_.get();
  }

 private:
  std::shared_ptr<std::promise<Result<T>>> promise_;
  std::future<Result<T>> future_;
};

// Submits a write through `submit(callback)` and waits for its result.
template <class T, class F>
Result<T> Wait(F submit) {
  Pending<T> pending;
  submit(pending.callback());
  return pending.Get();
}

// Parks the store's writer inside a callback until released, so that every
// write submitted meanwhile is queued and then committed as one group. The
// contract lets callbacks run on the single writer; a real caller must never
// block in one, which is exactly why a test can use it to line a batch up.
class WriterHold {
 public:
  explicit WriterHold(Store& store) : released_(release_.get_future().share()) {
    // Shared: a std::function must be copyable.
    auto parked = std::make_shared<std::promise<void>>();
    auto parked_future = parked->get_future();
    store.TouchDevice(0, 0, 0, [released = released_, parked](Status status) {
      parked->set_value();
      if (status) released.wait();  // a refused write runs inline: never park the caller
    });
    if (parked_future.wait_for(kCallbackTimeout) != std::future_status::ready) {
      ADD_FAILURE() << "writer never reached the hold";
    }
  }
  ~WriterHold() { Release(); }
  WriterHold(const WriterHold&) = delete;
  WriterHold& operator=(const WriterHold&) = delete;

  void Release() {
    if (!done_) {
      done_ = true;
      release_.set_value();
    }
  }

 private:
  std::promise<void> release_;
  std::shared_future<void> released_;
  bool done_ = false;
};

// ---- Records shared by the contract suites ----------------------------------------

inline constexpr std::int64_t kNow = 1'750'000'000'000;
inline constexpr std::int64_t kDay = 86'400'000;

inline OtpCode Code(const std::string& phone, const std::string& code_hash = "code-hash") {
  return OtpCode{.phone = phone, .code_hash = code_hash, .expires_ms = kNow + 300'000};
}

// The store treats phone hashes as opaque strings.
inline std::string PhoneHash(const std::string& phone) { return "sha256:" + phone; }

inline SignInRequest Request(const std::string& phone, UserId new_user_id, DeviceId device_id,
                             const std::string& token_hash, std::uint32_t max_devices = 5) {
  SignInRequest req;
  req.phone = phone;
  req.phone_hash = PhoneHash(phone);
  req.code_hash = "code-hash";
  req.new_user_id = new_user_id;
  req.now_ms = kNow;
  req.device = Device{.id = device_id,
                      .name = "phone",
                      .platform = "android",
                      .created_ms = kNow,
                      .last_active_ms = kNow,
                      .token_gen = 3};
  req.refresh = RefreshToken{.hash = token_hash, .expires_ms = kNow + 30 * kDay};
  req.max_devices = max_devices;
  return req;
}

inline RefreshToken Replacement(const std::string& hash,
                                std::int64_t expires_ms = kNow + 30 * kDay) {
  return RefreshToken{.hash = hash, .expires_ms = expires_ms};
}

// ---- Blocking wrappers -------------------------------------------------------

inline Status PutOtp(Store& s, OtpCode code) {
  return Wait<void>([&](auto cb) { s.PutOtp(std::move(code), cb); });
}
inline Result<OtpFailure> RecordOtpFailure(Store& s, const std::string& phone, std::uint32_t max) {
  return Wait<OtpFailure>([&](auto cb) { s.RecordOtpFailure(phone, max, cb); });
}
inline Result<SignInResult> SignIn(Store& s, SignInRequest req) {
  return Wait<SignInResult>([&](auto cb) { s.SignIn(std::move(req), cb); });
}
inline Result<RotateResult> Rotate(Store& s, const std::string& old_hash, RefreshToken replacement,
                                   std::int64_t now_ms = kNow) {
  return Wait<RotateResult>(
      [&](auto cb) { s.RotateRefreshToken(old_hash, std::move(replacement), now_ms, cb); });
}
inline Result<RemoveDeviceResult> RemoveDeviceWith(Store& s, UserId user, DeviceId device,
                                                   KeysChangedRenderer render = {}) {
  return Wait<RemoveDeviceResult>(
      [&](auto cb) { s.RemoveDevice(user, device, kNow, std::move(render), cb); });
}
inline Result<bool> RemoveDevice(Store& s, UserId user, DeviceId device) {
  auto r = RemoveDeviceWith(s, user, device);
  if (!r) return std::unexpected(r.error());
  return r->removed;
}
inline Status TouchDevice(Store& s, UserId user, DeviceId device, std::int64_t ms) {
  return Wait<void>([&](auto cb) { s.TouchDevice(user, device, ms, cb); });
}
inline Status UpdateProfile(Store& s, UserId user, ProfilePatch patch) {
  return Wait<void>([&](auto cb) { s.UpdateProfile(user, std::move(patch), cb); });
}
inline Status SetLastSeen(Store& s, UserId user, std::int64_t ms) {
  return Wait<void>([&](auto cb) { s.SetLastSeen(user, ms, cb); });
}

// Puts a code and signs in with it; the sign-in must succeed.
inline SignInResult SignUp(Store& s, const std::string& phone, UserId new_user_id,
                           DeviceId device_id, const std::string& token_hash) {
  EXPECT_TRUE(PutOtp(s, Code(phone)));
  auto result = SignIn(s, Request(phone, new_user_id, device_id, token_hash));
  EXPECT_TRUE(result.has_value()) << result.error().message;
  if (!result) return {};
  EXPECT_EQ(result->outcome, SignInResult::Outcome::kOk);
  return *result;
}

class StoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    instance_ = GetParam().make();
    ASSERT_NE(instance_, nullptr);
    Reopen();
  }

  void TearDown() override {
    if (store_) store_->Close();
    store_.reset();
    instance_.reset();
  }

  // Closes the current store (if any) and opens the same data again.
  void Reopen(StoreObserver observer = {}) {
    if (store_) store_->Close();
    store_.reset();
    auto opened = instance_->Open({.observer = std::move(observer)});
    ASSERT_TRUE(opened.has_value()) << opened.error().message;
    store_ = std::move(*opened);
  }

  Store& store() { return *store_; }

  std::unique_ptr<StoreInstance> instance_;
  std::unique_ptr<Store> store_;
};

// The messaging half of the contract, on the same fixture.
class StoreMessagingContractTest : public StoreContractTest {};

// The groups part of the contract, on the same fixture.
class StoreGroupsContractTest : public StoreContractTest {};

// The key directory part of the contract (store_keys_contract_test.cpp).
class StoreKeysContractTest : public StoreContractTest {};

}  // namespace parley::store::testing
