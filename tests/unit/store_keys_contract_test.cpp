// The key directory part of the store contract (src/store/store.hpp:
// GetDeviceKeys, ListDeviceKeys, ListContacts, UploadKeys, ClaimPrekeys, and
// RemoveDevice's keys_changed), run against every backend that instantiates
// StoreKeysContractTest (see store_contract.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

inline constexpr UserId kDave = 1004;  // no account: groups keep any id

// Renders the event so that a test can read what the store told it.
std::string Render(const KeysChangedInfo& info) {
  std::string s = std::to_string(info.user) + "/" + std::to_string(info.device) + "/" +
                  std::to_string(static_cast<int>(info.change)) + "/";
  for (auto d : info.current) s += std::to_string(d) + ",";
  return s;
}

KeysUpload Upload(UserId user, DeviceId device, std::string identity, std::uint32_t first_prekey,
                  std::uint32_t prekeys, bool with_signed = true) {
  KeysUpload up{.user = user, .device = device, .now_ms = kNow, .render = Render};
  if (!identity.empty()) up.identity_key = std::move(identity);
  up.registration_id = 7;
  if (with_signed) up.signed_prekey = SignedPrekey{.id = 1, .key = "spk", .signature = "sig"};
  for (std::uint32_t i = 0; i < prekeys; ++i) {
    up.one_time_prekeys.push_back({first_prekey + i, "otk" + std::to_string(first_prekey + i)});
  }
  return up;
}

Result<KeysUploadResult> UploadKeys(Store& s, KeysUpload up) {
  return Wait<KeysUploadResult>([&](auto cb) { s.UploadKeys(std::move(up), cb); });
}
Result<std::vector<PrekeyBundle>> Claim(Store& s, UserId user, DeviceId except = 0) {
  return Wait<std::vector<PrekeyBundle>>([&](auto cb) { s.ClaimPrekeys(user, except, cb); });
}
std::uint32_t Left(Store& s, UserId user, DeviceId device) {
  auto k = s.GetDeviceKeys(user, device);
  EXPECT_TRUE(k.has_value());
  return k && *k ? (*k)->one_time_prekeys : 0;
}
std::vector<UserId> Users(const std::vector<Appended>& appended) {
  std::vector<UserId> users;
  for (const auto& a : appended) users.push_back(a.user);
  std::sort(users.begin(), users.end());
  return users;
}
// The payload of the newest event of the user's mailbox (which must be keys_changed).
std::string LastKeysChanged(Store& s, UserId user) {
  auto rows = s.ReadMailbox(user, 0, 1000);
  EXPECT_TRUE(rows.has_value());
  if (!rows || rows->empty()) return {};
  EXPECT_EQ(rows->back().type, EventType::kKeysChanged);
  return rows->back().payload;
}

TEST_P(StoreKeysContractTest, UploadCountAndBundleRoundTrip) {
  SignUpCast(store());
  auto r = UploadKeys(store(), Upload(kBob, kBobPhone, "idk-bob", 10, 3));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->one_time_prekeys_left, 3u);
  EXPECT_EQ(Left(store(), kBob, kBobPhone), 3u);
  auto laptop = store().GetDeviceKeys(kBob, kBobLaptop);
  ASSERT_TRUE(laptop.has_value());
  EXPECT_FALSE(laptop->has_value()) << "a device without an identity key is not current";

  auto listed = store().ListDeviceKeys(kBob);
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].device, kBobPhone);
  EXPECT_EQ((*listed)[0].identity_key, "idk-bob");
  EXPECT_EQ((*listed)[0].registration_id, 7u);
  EXPECT_EQ((*listed)[0].signed_prekey.signature, "sig");

  std::vector<std::uint32_t> handed;
  for (int i = 0; i < 3; ++i) {
    auto b = Claim(store(), kBob);
    ASSERT_TRUE(b.has_value()) << b.error().message;
    ASSERT_EQ(b->size(), 1u);
    ASSERT_TRUE((*b)[0].one_time_prekey.has_value());
    EXPECT_EQ((*b)[0].one_time_prekey->key, "otk" + std::to_string((*b)[0].one_time_prekey->id));
    EXPECT_EQ((*b)[0].keys.identity_key, "idk-bob");
    handed.push_back((*b)[0].one_time_prekey->id);
  }
  EXPECT_EQ(handed, (std::vector<std::uint32_t>{10, 11, 12}));
  EXPECT_EQ(Left(store(), kBob, kBobPhone), 0u);
  auto empty = Claim(store(), kBob);
  ASSERT_TRUE(empty.has_value());
  ASSERT_EQ(empty->size(), 1u);
  EXPECT_FALSE((*empty)[0].one_time_prekey.has_value());

  // More prekeys later; the count survives a reopen.
  r = UploadKeys(store(), Upload(kBob, kBobPhone, "", 20, 2, false));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->one_time_prekeys_left, 2u);
  EXPECT_TRUE(r->appended.empty());
  Reopen();
  EXPECT_EQ(Left(store(), kBob, kBobPhone), 2u);
}

TEST_P(StoreKeysContractTest, NoCurrentDeviceMeansNoBundle) {
  SignUpCast(store());
  auto none = Claim(store(), kAlice);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  none = Claim(store(), 424242);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  // The asking device is left out of its own user's bundle.
  ASSERT_TRUE(UploadKeys(store(), Upload(kBob, kBobPhone, "a", 1, 1)));
  auto own = Claim(store(), kBob, kBobPhone);
  ASSERT_TRUE(own.has_value());
  EXPECT_TRUE(own->empty());
  EXPECT_EQ(Left(store(), kBob, kBobPhone), 1u);
}

TEST_P(StoreKeysContractTest, FirstUploadNeedsIdentityAndSignedPrekeyAndADevice) {
  SignUpCast(store());
  auto r = UploadKeys(store(), Upload(kAlice, kAlicePhone, "", 1, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalid);
  EXPECT_TRUE(r.error().message.starts_with("identity_key")) << r.error().message;
  r = UploadKeys(store(), Upload(kAlice, kAlicePhone, "id", 1, 1, false));
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().message.starts_with("signed_prekey")) << r.error().message;
  r = UploadKeys(store(), Upload(kAlice, 999, "id", 1, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  auto k = store().GetDeviceKeys(kAlice, kAlicePhone);
  ASSERT_TRUE(k.has_value());
  EXPECT_FALSE(k->has_value());
}

TEST_P(StoreKeysContractTest, PrekeysPerDeviceAreCappedAndReuploadsCountOnce) {
  SignUpCast(store());
  auto up = Upload(kAlice, kAlicePhone, "id", 1, 4);
  up.max_one_time_prekeys = 5;
  ASSERT_TRUE(UploadKeys(store(), up));
  up = Upload(kAlice, kAlicePhone, "id", 3, 2);  // 3 and 4 again: no new ones
  up.max_one_time_prekeys = 5;
  auto r = UploadKeys(store(), up);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->one_time_prekeys_left, 4u);
  up = Upload(kAlice, kAlicePhone, "id", 10, 2);
  up.max_one_time_prekeys = 5;
  r = UploadKeys(store(), up);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalid);
  EXPECT_TRUE(r.error().message.starts_with("one_time_prekeys")) << r.error().message;
  EXPECT_EQ(Left(store(), kAlice, kAlicePhone), 4u);
  // Nothing of the refused upload stuck.
  std::set<std::uint32_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto b = Claim(store(), kAlice);
    ASSERT_TRUE(b && b->size() == 1u);
    if ((*b)[0].one_time_prekey) ids.insert((*b)[0].one_time_prekey->id);
  }
  EXPECT_EQ(ids, (std::set<std::uint32_t>{1, 2, 3, 4}));
}

TEST_P(StoreKeysContractTest, ConcurrentClaimsNeverShareAPrekey) {
  SignUpCast(store());
  ASSERT_TRUE(UploadKeys(store(), Upload(kBob, kBobPhone, "b1", 1, 50)));
  ASSERT_TRUE(UploadKeys(store(), Upload(kBob, kBobLaptop, "b2", 1, 50)));
  // Queued together: they run in the same batches of the writer.
  std::vector<Pending<std::vector<PrekeyBundle>>> claims(60);
  for (auto& c : claims) store().ClaimPrekeys(kBob, 0, c.callback());
  std::set<std::pair<DeviceId, std::uint32_t>> handed;
  int without = 0;
  for (auto& c : claims) {
    auto b = c.Get();
    ASSERT_TRUE(b.has_value()) << b.error().message;
    ASSERT_EQ(b->size(), 2u);
    for (const auto& d : *b) {
      if (!d.one_time_prekey) {
        ++without;
        continue;
      }
      EXPECT_TRUE(handed.insert({d.keys.device, d.one_time_prekey->id}).second)
          << "prekey " << d.one_time_prekey->id << " of " << d.keys.device << " handed out twice";
    }
  }
  EXPECT_EQ(handed.size(), 100u);
  EXPECT_EQ(without, 20);
  EXPECT_EQ(Left(store(), kBob, kBobPhone), 0u);
}

TEST_P(StoreKeysContractTest, KeysChangedReachesPeersGroupMatesAndTheUser) {
  SignUpCast(store());
  SendText(store(), kAlice, kBob, "hi");  // Alice and Bob share a 1:1 chat
  CreateGroup(store(), kCarol, {kBob, kDave});
  auto contacts = store().ListContacts(kBob);
  ASSERT_TRUE(contacts.has_value());
  EXPECT_EQ(*contacts, (std::vector<UserId>{kAlice, kCarol, kDave}));

  // A first identity key: the device becomes current.
  auto r = UploadKeys(store(), Upload(kBob, kBobLaptop, "id-1", 1, 2));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(Users(r->appended), (std::vector<UserId>{kAlice, kBob, kCarol, kDave}));
  const std::string added = std::to_string(kBob) + "/" + std::to_string(kBobLaptop) + "/" +
                            std::to_string(static_cast<int>(KeysChange::kAdded)) + "/" +
                            std::to_string(kBobLaptop) + ",";
  EXPECT_EQ(LastKeysChanged(store(), kAlice), added);
  EXPECT_EQ(LastKeysChanged(store(), kDave), added);

  // The same identity again, or prekeys only: nothing to announce.
  r = UploadKeys(store(), Upload(kBob, kBobLaptop, "id-1", 5, 1));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->appended.empty());

  // A new identity needs a signed prekey, and drops the old one-time prekeys.
  r = UploadKeys(store(), Upload(kBob, kBobLaptop, "id-2", 9, 1, false));
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().message.starts_with("signed_prekey")) << r.error().message;
  r = UploadKeys(store(), Upload(kBob, kBobLaptop, "id-2", 9, 1));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->one_time_prekeys_left, 1u);
  EXPECT_EQ(Users(r->appended), (std::vector<UserId>{kAlice, kBob, kCarol, kDave}));
  EXPECT_TRUE(LastKeysChanged(store(), kCarol)
                  .starts_with(std::to_string(kBob) + "/" + std::to_string(kBobLaptop) + "/" +
                               std::to_string(static_cast<int>(KeysChange::kIdentityChanged))));
  auto b = Claim(store(), kBob);
  ASSERT_TRUE(b && b->size() == 1u);
  ASSERT_TRUE((*b)[0].one_time_prekey.has_value());
  EXPECT_EQ((*b)[0].one_time_prekey->id, 9u);

  // Dave leaves the group: he no longer hears of Bob.
  auto left = ChangeGroup(store(), Change(GroupChange::Kind::kLeave, kDave));
  ASSERT_TRUE(left && left->outcome == GroupChangeResult::Outcome::kOk);
  contacts = store().ListContacts(kBob);
  ASSERT_TRUE(contacts.has_value());
  EXPECT_EQ(*contacts, (std::vector<UserId>{kAlice, kCarol}));
  Reopen();
  contacts = store().ListContacts(kAlice);
  ASSERT_TRUE(contacts.has_value());
  EXPECT_EQ(*contacts, (std::vector<UserId>{kBob}));
}

// HasWrittenTo: who chose whom. Receiving a message is not choosing.
TEST_P(StoreKeysContractTest, HasWrittenToRecordsTheDirectionOfOneToOneMessages) {
  SignUpCast(store());
  auto wrote = [&](UserId from, UserId to) {
    auto r = store().HasWrittenTo(from, to);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return r && *r;
  };
  EXPECT_FALSE(wrote(kAlice, kBob));
  SendText(store(), kAlice, kBob, "c1");
  EXPECT_TRUE(wrote(kAlice, kBob));
  EXPECT_FALSE(wrote(kBob, kAlice)) << "Bob only received";
  // A second message changes nothing; a reply records the other direction.
  SendText(store(), kAlice, kBob, "c2");
  EXPECT_FALSE(wrote(kBob, kAlice));
  SendText(store(), kBob, kAlice, "c3");
  EXPECT_TRUE(wrote(kBob, kAlice));
  // A note to self and a group message record nothing.
  SendText(store(), kCarol, kCarol, "c4");
  EXPECT_FALSE(wrote(kCarol, kCarol));
  CreateGroup(store(), kCarol, {kAlice});
  auto g = Send(store(), Text(kCarol, Conversation{Conversation::Kind::kGroup, kGroupId}, "c5"),
                {kCarol, kAlice});
  ASSERT_TRUE(g.has_value()) << g.error().message;
  EXPECT_FALSE(wrote(kCarol, kAlice));
  // Both directions are peers for ListContacts either way, and all of it is durable.
  auto contacts = store().ListContacts(kBob);
  ASSERT_TRUE(contacts.has_value());
  EXPECT_EQ(*contacts, (std::vector<UserId>{kAlice}));
  SendText(store(), kCarol, kBob, "c6");
  Reopen();
  EXPECT_TRUE(wrote(kAlice, kBob));
  EXPECT_TRUE(wrote(kBob, kAlice));
  EXPECT_TRUE(wrote(kCarol, kBob));
  EXPECT_FALSE(wrote(kBob, kCarol));
  contacts = store().ListContacts(kBob);
  ASSERT_TRUE(contacts.has_value());
  EXPECT_EQ(*contacts, (std::vector<UserId>{kAlice, kCarol}));
}

TEST_P(StoreKeysContractTest, RemovingACurrentDeviceDeletesItsKeysAndAnnouncesIt) {
  SignUpCast(store());
  SendText(store(), kAlice, kBob, "hi");
  ASSERT_TRUE(UploadKeys(store(), Upload(kBob, kBobPhone, "p", 1, 3)));
  ASSERT_TRUE(UploadKeys(store(), Upload(kBob, kBobLaptop, "l", 1, 3)));
  auto r = RemoveDeviceWith(store(), kBob, kBobLaptop, Render);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->removed);
  EXPECT_EQ(Users(r->appended), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_EQ(LastKeysChanged(store(), kAlice),
            std::to_string(kBob) + "/" + std::to_string(kBobLaptop) + "/" +
                std::to_string(static_cast<int>(KeysChange::kRemoved)) + "/" +
                std::to_string(kBobPhone) + ",");
  auto listed = store().ListDeviceKeys(kBob);
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].device, kBobPhone);
  auto b = Claim(store(), kBob);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->size(), 1u);

  // A device that never uploaded keys goes without an announcement.
  r = RemoveDeviceWith(store(), kAlice, kAlicePhone, Render);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->removed);
  EXPECT_TRUE(r->appended.empty());
  r = RemoveDeviceWith(store(), kAlice, kAlicePhone, Render);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->removed);
}

}  // namespace
}  // namespace parley::store::testing
