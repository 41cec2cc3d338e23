#include "hfm/mount/hub_remote.h"

#include <gtest/gtest.h>

namespace hfm::mount {
namespace {

TEST(HubRemoteTest, BucketEntryPrefersClientMtime) {
  hub::TreeEntry e;
  e.path = "dir/a.bin";
  e.size = 42;
  e.xet_hash = std::string(64, 'a');
  e.mtime_ms = 1'700'000'000'123;
  e.uploaded_at_ms = 1'800'000'000'000;
  const auto r = HubRemote::toRemoteEntry(e);
  EXPECT_EQ(r.path, "dir/a.bin");
  EXPECT_FALSE(r.is_dir);
  EXPECT_EQ(r.size, 42U);
  EXPECT_EQ(r.mtime_ns, 1'700'000'000'123LL * 1'000'000);
  EXPECT_EQ(r.xet_hash, std::string(64, 'a'));
}

TEST(HubRemoteTest, RepoEntryUsesCommitDateAndLfsOidAsVersion) {
  hub::TreeEntry e;
  e.path = "model.safetensors";
  e.size = 7;
  e.oid = "blobsha";
  e.lfs_sha256 = "lfssha";
  e.last_commit_ms = 5;
  auto r = HubRemote::toRemoteEntry(e);
  EXPECT_EQ(r.etag, "lfssha");
  EXPECT_EQ(r.mtime_ns, 5'000'000);
  e.lfs_sha256.clear();
  EXPECT_EQ(HubRemote::toRemoteEntry(e).etag, "blobsha");
}

TEST(HubRemoteTest, DirectoriesHaveNoSize) {
  hub::TreeEntry e;
  e.path = "d";
  e.is_directory = true;
  e.size = 999;
  const auto r = HubRemote::toRemoteEntry(e);
  EXPECT_TRUE(r.is_dir);
  EXPECT_EQ(r.size, 0U);
}

}  // namespace
}  // namespace hfm::mount
