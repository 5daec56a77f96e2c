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

TEST_P(StoreMessagingContractTest, MediaUsageFollowsRecordsPerOwner) {
  const MediaId a = IdFloorForTime(kNow) + 11;
  const MediaId b = IdFloorForTime(kNow) + 12;
  const MediaId c = IdFloorForTime(kNow) + 13;
  EXPECT_EQ(store().GetMediaUsage(kAlice).value().stored_bytes, 0u);
  Media upload = Blob(a, kAlice, MediaStatus::kUploading);
  upload.size = 1000;
  ASSERT_TRUE(Put(store(), upload));
  Media done = Blob(b, kAlice, MediaStatus::kReady);
  done.size = 500;
  ASSERT_TRUE(Put(store(), done));
  Media other = Blob(c, kBob, MediaStatus::kReady);
  other.size = 7;
  ASSERT_TRUE(Put(store(), other));
  auto u = store().GetMediaUsage(kAlice).value();
  EXPECT_EQ(u.stored_bytes, 1500u);
  EXPECT_EQ(u.uploading, 1u);
  EXPECT_EQ(u.day, kNow / kDay);
  EXPECT_EQ(u.day_bytes, 1500u);
  EXPECT_EQ(store().GetMediaUsage(kBob).value().stored_bytes, 7u);
  // The upload finishes: no longer uploading; replacing adds nothing to the day.
  upload.status = MediaStatus::kProcessing;
  ASSERT_TRUE(Put(store(), upload));
  upload.status = MediaStatus::kReady;
  ASSERT_TRUE(Put(store(), upload));
  u = store().GetMediaUsage(kAlice).value();
  EXPECT_EQ(u.stored_bytes, 1500u);
  EXPECT_EQ(u.uploading, 0u);
  EXPECT_EQ(u.day_bytes, 1500u);
  // Deleting gives the stored bytes back, not the day's.
  ASSERT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(a, cb); }));
  ASSERT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(a, cb); }));  // twice: no change
  u = store().GetMediaUsage(kAlice).value();
  EXPECT_EQ(u.stored_bytes, 500u);
  EXPECT_EQ(u.day_bytes, 1500u);
  // A record of another day starts that day from zero.
  const MediaId d = IdFloorForTime(kNow + kDay) + 1;
  Media tomorrow = Blob(d, kAlice, MediaStatus::kReady, kNow + kDay);
  tomorrow.size = 3;
  ASSERT_TRUE(Put(store(), tomorrow));
  u = store().GetMediaUsage(kAlice).value();
  EXPECT_EQ(u.day, kNow / kDay + 1);
  EXPECT_EQ(u.day_bytes, 3u);
  EXPECT_EQ(u.stored_bytes, 503u);
}

TEST_P(StoreMessagingContractTest, ExpiredMediaIsWhatNoLiveMessageCarries) {
  SignUpCast(store());
  const std::int64_t old_ms = kNow - 10 * kDay;
  const std::int64_t cutoff = kNow - 5 * kDay;
  const MediaId unsent = IdFloorForTime(old_ms) + 1;
  const MediaId sent_long_ago = IdFloorForTime(old_ms) + 2;
  const MediaId sent_recently = IdFloorForTime(old_ms) + 3;
  const MediaId avatar = IdFloorForTime(old_ms) + 4;
  const MediaId upload = IdFloorForTime(old_ms) + 5;
  const MediaId young = IdFloorForTime(kNow) + 6;
  for (MediaId id : {unsent, sent_long_ago, sent_recently, avatar}) {
    ASSERT_TRUE(Put(store(), Blob(id, kAlice, MediaStatus::kReady, old_ms)));
  }
  ASSERT_TRUE(Put(store(), Blob(upload, kAlice, MediaStatus::kUploading, old_ms)));
  ASSERT_TRUE(Put(store(), Blob(young, kAlice, MediaStatus::kReady, kNow)));
  Message old_message = Text(kAlice, UserConv(kBob), "c-old", 1, 0, old_ms + kDay);
  old_message.media_id = IdToString(sent_long_ago);
  ASSERT_TRUE(Send(store(), old_message, {kBob}));
  // Sent once long ago and once again recently: the recent one counts.
  Message first = Text(kAlice, UserConv(kBob), "c-first", 1, 0, old_ms + kDay);
  first.media_id = IdToString(sent_recently);
  ASSERT_TRUE(Send(store(), first, {kBob}));
  Message again = Text(kAlice, UserConv(kCarol), "c-again", 1, 0, kNow - kDay);
  again.media_id = IdToString(sent_recently);
  ASSERT_TRUE(Send(store(), again, {kCarol}));
  ProfilePatch patch;
  patch.avatar_media_id = IdToString(avatar);
  ASSERT_TRUE(UpdateProfile(store(), kAlice, patch));

  auto expired = store().ExpiredMedia(cutoff, 0, 100).value();
  std::vector<MediaId> ids;
  for (const auto& m : expired) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<MediaId>{unsent, sent_long_ago}));
  // Paged by id.
  auto first_page = store().ExpiredMedia(cutoff, 0, 1).value();
  ASSERT_EQ(first_page.size(), 1u);
  EXPECT_EQ(first_page[0].id, unsent);
  auto next_page = store().ExpiredMedia(cutoff, unsent, 1).value();
  ASSERT_EQ(next_page.size(), 1u);
  EXPECT_EQ(next_page[0].id, sent_long_ago);
  EXPECT_TRUE(store().ExpiredMedia(cutoff, sent_long_ago, 100).value().empty());
  // Deleted media is gone from the scan, and its reference with it.
  ASSERT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(sent_long_ago, cb); }));
  EXPECT_EQ(store().ExpiredMedia(cutoff, 0, 100).value().size(), 1u);
}

}  // namespace
}  // namespace parley::store::testing
