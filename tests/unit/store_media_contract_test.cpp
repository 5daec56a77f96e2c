// The media part of the store contract (store.hpp, "Media"): records, read
// grants written with messages and avatars, the stale upload scan. Runs
// against every backend that instantiates StoreMessagingContractTest.
#include <gtest/gtest.h>

#include <map>
#include <vector>

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
  auto stale = store().StaleUploads(kNow - kDay, 0, 100).value();
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].id, old_upload);
  EXPECT_EQ(store().StaleUploads(kNow + 1, 0, 100).value().size(), 2u);
  EXPECT_EQ(store().StaleUploads(kNow + 1, 0, 1).value().size(), 1u);
}

// A sweep resumes after the last id it looked at (media_stale_sweep.hpp).
TEST_P(StoreMessagingContractTest, StaleUploadsStartAfterTheGivenId) {
  const std::int64_t old_ms = kNow - 2 * kDay;
  const MediaId first = IdFloorForTime(old_ms) + 21;
  const MediaId done = IdFloorForTime(old_ms) + 22;
  const MediaId second = IdFloorForTime(old_ms) + 23;
  ASSERT_TRUE(Put(store(), Blob(first, kAlice, MediaStatus::kUploading, old_ms)));
  ASSERT_TRUE(Put(store(), Blob(done, kAlice, MediaStatus::kReady, old_ms)));
  ASSERT_TRUE(Put(store(), Blob(second, kBob, MediaStatus::kUploading, old_ms)));
  auto all = store().StaleUploads(kNow, 0, 100).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, first);
  EXPECT_EQ(all[1].id, second);
  auto rest = store().StaleUploads(kNow, first, 100).value();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, second);
  EXPECT_TRUE(store().StaleUploads(kNow, second, 100).value().empty());
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

// The quota is checked in the write that adds the record: 30 records of one
// owner queued at once (one group commit, as concurrent uploads finishing
// together are), where only 10 fit, leave exactly 10 and nothing past the
// limit. Before, a caller could only check GetMediaUsage first, and every
// one of the 30 would have seen room.
TEST_P(StoreMessagingContractTest, MediaQuotaIsCheckedInTheWriteThatAddsTheRecord) {
  constexpr int kTried = 30;
  constexpr std::uint64_t kSize = 1000;
  const MediaQuota quota{.stored_bytes = 10 * kSize + kSize / 2};
  std::vector<Pending<MediaQuotaVerdict>> pending(kTried);
  {
    WriterHold hold(store());
    for (int i = 0; i < kTried; ++i) {
      Media m = Blob(IdFloorForTime(kNow) + 400 + i, kAlice, MediaStatus::kReady);
      m.size = kSize;
      store().PutMediaWithin(std::move(m), quota, pending[i].callback());
    }
  }
  std::map<MediaQuotaVerdict, int> verdicts;
  for (int i = 0; i < kTried; ++i) {
    auto v = pending[i].Get();
    ASSERT_TRUE(v) << v.error().message;
    ++verdicts[*v];
    // In order: the first ten fit, and a refused record was not written.
    EXPECT_EQ(*v, i < 10 ? MediaQuotaVerdict::kWithin : MediaQuotaVerdict::kStoredBytes) << i;
    EXPECT_EQ(store().GetMedia(IdFloorForTime(kNow) + 400 + i).value().has_value(), i < 10) << i;
  }
  EXPECT_EQ(verdicts[MediaQuotaVerdict::kWithin], 10);
  auto u = store().GetMediaUsage(kAlice).value();
  EXPECT_EQ(u.stored_bytes, 10 * kSize);
  EXPECT_EQ(u.day_bytes, 10 * kSize);

  // Replacing a record with one no larger passes at the limit (an upload
  // that finishes); a larger one is checked for what it adds.
  Media first = Blob(IdFloorForTime(kNow) + 400, kAlice, MediaStatus::kReady);
  first.size = kSize;
  first.thumbnail = true;
  auto same = Wait<MediaQuotaVerdict>([&](auto cb) { store().PutMediaWithin(first, quota, cb); });
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, MediaQuotaVerdict::kWithin);
  first.size = kSize + kSize / 2;  // exactly at the limit
  auto grown = Wait<MediaQuotaVerdict>([&](auto cb) { store().PutMediaWithin(first, quota, cb); });
  ASSERT_TRUE(grown);
  EXPECT_EQ(*grown, MediaQuotaVerdict::kWithin);
  first.size = kSize * 2;
  auto over = Wait<MediaQuotaVerdict>([&](auto cb) { store().PutMediaWithin(first, quota, cb); });
  ASSERT_TRUE(over);
  EXPECT_EQ(*over, MediaQuotaVerdict::kStoredBytes);
  EXPECT_EQ(store().GetMedia(first.id).value()->size, kSize + kSize / 2);
  EXPECT_EQ(store().GetMediaUsage(kAlice).value().stored_bytes, 10 * kSize + kSize / 2);
  // Another owner has a quota of its own.
  Media bobs = Blob(IdFloorForTime(kNow) + 450, kBob, MediaStatus::kReady);
  bobs.size = kSize;
  auto other = Wait<MediaQuotaVerdict>([&](auto cb) { store().PutMediaWithin(bobs, quota, cb); });
  ASSERT_TRUE(other);
  EXPECT_EQ(*other, MediaQuotaVerdict::kWithin);
}

TEST_P(StoreMessagingContractTest, MediaDayQuotaAndUploadsInProgressAreCheckedInTheWrite) {
  constexpr std::uint64_t kSize = 1000;
  auto put = [&](MediaId id, MediaStatus status, std::int64_t created_ms, MediaQuota q) {
    Media m = Blob(id, kCarol, status, created_ms);
    m.size = kSize;
    auto v = Wait<MediaQuotaVerdict>([&](auto cb) { store().PutMediaWithin(m, q, cb); });
    EXPECT_TRUE(v) << v.error().message;
    return v ? *v : MediaQuotaVerdict::kWithin;
  };
  const MediaId base = IdFloorForTime(kNow) + 500;
  // Bytes per UTC day count records created that day, deleted or not.
  const MediaQuota day{.day_bytes = 2 * kSize};
  EXPECT_EQ(put(base, MediaStatus::kReady, kNow, day), MediaQuotaVerdict::kWithin);
  ASSERT_TRUE(Wait<void>([&](auto cb) { store().DeleteMedia(base, cb); }));
  EXPECT_EQ(put(base + 1, MediaStatus::kReady, kNow, day), MediaQuotaVerdict::kWithin);
  EXPECT_EQ(put(base + 2, MediaStatus::kReady, kNow, day), MediaQuotaVerdict::kDayBytes);
  EXPECT_FALSE(store().GetMedia(base + 2).value().has_value());
  const MediaId next_day = IdFloorForTime(kNow + kDay) + 500;
  EXPECT_EQ(put(next_day, MediaStatus::kReady, kNow + kDay, day), MediaQuotaVerdict::kWithin);
  // Uploads in progress: a new one past the limit is refused; finishing
  // one is never refused, and makes room.
  const MediaQuota uploads{.uploading = 2};
  EXPECT_EQ(put(base + 10, MediaStatus::kUploading, kNow, uploads), MediaQuotaVerdict::kWithin);
  EXPECT_EQ(put(base + 11, MediaStatus::kUploading, kNow, uploads), MediaQuotaVerdict::kWithin);
  EXPECT_EQ(put(base + 12, MediaStatus::kUploading, kNow, uploads), MediaQuotaVerdict::kUploading);
  EXPECT_EQ(put(base + 10, MediaStatus::kProcessing, kNow, uploads), MediaQuotaVerdict::kWithin);
  EXPECT_EQ(put(base + 12, MediaStatus::kUploading, kNow, uploads), MediaQuotaVerdict::kWithin);
  EXPECT_EQ(store().GetMediaUsage(kCarol).value().uploading, 2u);
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
