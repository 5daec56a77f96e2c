// The local blob store's partial files (tus uploads) seen from two stores
// on one directory, as two nodes of a cluster sharing --media-dir see them:
// one writer per upload at a time, whichever process it is in.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "media/blob_store.hpp"

namespace parley::media {
namespace {

class SharedBlobDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "parley-blobs-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(SharedBlobDir, APartialFileHasOneWriterAcrossStores) {
  auto a = OpenLocalBlobStore(dir_);
  auto b = OpenLocalBlobStore(dir_);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE((*a)->CreatePartial(42));

  auto first = (*a)->AppendPartial(42);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE((*first)->Write("hello "));

  // The other "node" is refused while the first writer is open, and so is
  // a second writer of the same store.
  auto second = (*b)->AppendPartial(42);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::kConflict);
  auto same = (*a)->AppendPartial(42);
  ASSERT_FALSE(same);
  EXPECT_EQ(same.error().code, Errc::kConflict);

  ASSERT_TRUE((*first)->Commit());
  first->reset();
  // Once it is closed the other takes over, at the offset the first left.
  auto next = (*b)->AppendPartial(42);
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ((*next)->size(), 6u);
  ASSERT_TRUE((*next)->Write("world"));
  ASSERT_TRUE((*next)->Commit());
  next->reset();
  auto size = (*a)->PartialSize(42);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, 11u);
  // Another upload is not held by this one's writer.
  ASSERT_TRUE((*a)->CreatePartial(43));
  auto held = (*a)->AppendPartial(42);
  ASSERT_TRUE(held);
  auto other = (*b)->AppendPartial(43);
  EXPECT_TRUE(other) << other.error().message;
}

}  // namespace
}  // namespace parley::media
