// The media part of the store contract (store.hpp, "Media"): records, read
// grants written with messages and avatars, the stale upload scan. Runs
// against every backend that instantiates StoreMessagingContractTest.
#include <gtest/gtest.h>

#include "common/ids.hpp"
#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

Media Blob(MediaId id, UserId owner, MediaStatus status, std::int64_t created_ms = kNow) {
  Media m;
  m.id = id;
  m.owner = owner;
  m.content_type = "image/png";
  m.filename = "cat.png";
  m.size = 1234;
  m.sha256 = status == MediaStatus::kUploading ? "" : std::string(64, 'a');
  m.status = status;
  m.created_ms = created_ms;
  return m;
}

Status Put(Store& s, Media m) {
  return Wait<void>([&](auto cb) { s.PutMedia(std::move(m), cb); });
}

TEST_P(StoreMessagingContractTest, MediaRecordsRoundTripAndDelete) {
  const MediaId id = IdFloorForTime(kNow) + 7;
  EXPECT_EQ(store().GetMedia(id).value(), std::nullopt);
  Media m = Blob(id, kAlice, MediaStatus::kFailed);
  m.reason = "not a PNG";
  m.width = 640;
  m.height = 480;
  m.duration_ms = 1500;
  m.thumbnail = true;
  ASSERT_TRUE(Put(store(), m));
  auto got = store().GetMedia(id).value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->owner, kAlice);
  EXPECT_EQ(got->content_type, "image/png");
  EXPECT_EQ(got->filename, "cat.png");
  EXPECT_EQ(got->size, 1234u);
  EXPECT_EQ(got->sha256, std::string(64, 'a'));
  EXPECT_EQ(got->status, MediaStatus::kFailed);
  EXPECT_EQ(got->reason, "not a PNG");
  EXPECT_EQ(got->width, 640u);
  EXPECT_EQ(got->height, 480u);
  EXPECT_EQ(got->duration_ms, 1500);
  EXPECT_TRUE(got->thumbnail);
  EXPECT_EQ(got->created_ms, kNow);
  ASSERT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(id, cb); }));
  EXPECT_EQ(store().GetMedia(id).value(), std::nullopt);
  // Deleting what is not there is not an error.
  EXPECT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(id, cb); }));
}

TEST_P(StoreMessagingContractTest, SendingMediaGrantsEveryRecipientAndNoOneElse) {
  SignUpCast(store());
  const MediaId id = IdFloorForTime(kNow) + 1;
  ASSERT_TRUE(Put(store(), Blob(id, kAlice, MediaStatus::kReady)));
  EXPECT_FALSE(store().MediaGranted(id, kBob).value());
  Message m = Text(kAlice, UserConv(kBob), "c-media");
  m.media_id = IdToString(id);
  ASSERT_TRUE(Send(store(), m, {kBob}));
  EXPECT_TRUE(store().MediaGranted(id, kBob).value());
  EXPECT_FALSE(store().MediaGranted(id, kCarol).value());
  // A duplicate send grants nothing new and fails nothing.
  ASSERT_TRUE(Send(store(), m, {kBob}));
  EXPECT_FALSE(store().MediaGranted(id, kCarol).value());
  // Deleting the media takes its grants along.
  ASSERT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(id, cb); }));
  EXPECT_FALSE(store().MediaGranted(id, kBob).value());
}

TEST_P(StoreMessagingContractTest, AnAvatarIsGrantedToEveryone) {
  SignUpCast(store());
  const MediaId id = IdFloorForTime(kNow) + 2;
  ASSERT_TRUE(Put(store(), Blob(id, kAlice, MediaStatus::kReady)));
  ProfilePatch patch;
  patch.avatar_media_id = IdToString(id);
  ASSERT_TRUE(UpdateProfile(store(), kAlice, patch));
  EXPECT_TRUE(store().MediaGranted(id, kBob).value());
  EXPECT_TRUE(store().MediaGranted(id, kCarol).value());
  EXPECT_TRUE(store().MediaGranted(id, 424242).value());
}

TEST_P(StoreMessagingContractTest, StaleUploadsAreOnlyOldUnfinishedOnes) {
  const std::int64_t old_ms = kNow - 2 * kDay;
  const MediaId old_upload = IdFloorForTime(old_ms) + 1;
  const MediaId old_done = IdFloorForTime(old_ms) + 2;
  const MediaId young_upload = IdFloorForTime(kNow) + 3;
  ASSERT_TRUE(Put(store(), Blob(old_upload, kAlice, MediaStatus::kUploading, old_ms)));
  ASSERT_TRUE(Put(store(), Blob(old_done, kAlice, MediaStatus::kReady, old_ms)));
  ASSERT_TRUE(Put(store(), Blob(young_upload, kAlice, MediaStatus::kUploading, kNow)));
  auto stale = store().StaleUploads(kNow - kDay, 100).value();
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].id, old_upload);
  EXPECT_EQ(store().StaleUploads(kNow + 1, 100).value().size(), 2u);
  EXPECT_EQ(store().StaleUploads(kNow + 1, 1).value().size(), 1u);
}

}  // namespace
}  // namespace parley::store::testing
