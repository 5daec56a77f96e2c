// Video pixel limits are checked on decoded frames too (issue 14, item 8):
// a container's width and height are a claim, and the frames may be larger.
#include <gtest/gtest.h>

#include "media/media_helpers.hpp"

namespace parley::test {
namespace {

TEST(MediaVideoFrames, AFrameLargerThanTheContainerClaimsIsRefused) {
  Parleyd::Options options;
  options.args = {"--media-max-pixels", "250000"};
  Parleyd server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  // Claims 64x48 (within the limit); its one frame is 1000x1000 (four times
  // the limit), seen only once decoded.
  const std::string liar = MakeMkvClaiming(64, 48, MakeJpeg(1000, 1000));
  const std::string id = MediaIdOf(UploadMedia(server, alice, liar, "video/x-matroska"));
  ASSERT_FALSE(id.empty());
  auto m = WaitProcessed(server, alice, id);
  EXPECT_EQ(Str(m, "status"), "failed") << json::serialize(m);
  EXPECT_EQ(m.at("thumbnail"), json::value(false)) << json::serialize(m);

  // The same file with a frame within the limit is fine: what is refused is
  // the frame's size, not the trick of placing it after the probe.
  const std::string honest = MakeMkvClaiming(64, 48, MakeJpeg(64, 48));
  const std::string ok_id = MediaIdOf(UploadMedia(server, alice, honest, "video/x-matroska"));
  ASSERT_FALSE(ok_id.empty());
  auto ok = WaitProcessed(server, alice, ok_id);
  EXPECT_EQ(Str(ok, "status"), "ready") << json::serialize(ok);
  EXPECT_EQ(ok.at("thumbnail"), json::value(true)) << json::serialize(ok);
}

}  // namespace
}  // namespace parley::test
