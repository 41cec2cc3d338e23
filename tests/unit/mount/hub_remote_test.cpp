#include "hfm/mount/hub_remote.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hfm/xet/dedup_index.h"
#include "hfm/xet/hashing.h"

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

xet::MerkleHash hashOf(const std::string& s) {
  return xet::chunkHash({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

TEST(HubRemoteKnownFilesTest, ALearnedVersionIsLearnedAgainOnceTheIndexEvictedItsChunks) {
  auto index = std::make_shared<xet::DedupIndex>(4);
  HubRemote::KnownFiles known(8, index);
  const auto file = hashOf("file v1");
  const auto xorb = hashOf("xorb");
  ASSERT_TRUE(known.add(file));
  EXPECT_FALSE(known.add(file));  // being learned: nobody else starts
  const std::vector<xet::DedupIndex::KnownChunk> chunks = {{hashOf("c0"), xorb, 0},
                                                           {hashOf("c1"), xorb, 1}};
  index->addChunks(chunks);
  known.setSample(file, chunks[0].hash);
  EXPECT_FALSE(known.add(file));  // learned, chunks still indexed
  // Other files' chunks push the learned group out of the bounded index.
  index->addChunks(std::vector<xet::DedupIndex::KnownChunk>{
      {hashOf("o0"), xorb, 2}, {hashOf("o1"), xorb, 3}, {hashOf("o2"), xorb, 4}});
  ASSERT_FALSE(index->contains(chunks[0].hash));
  EXPECT_TRUE(known.add(file));   // learn it again
  EXPECT_FALSE(known.add(file));  // and only once
}

TEST(HubRemoteKnownFilesTest, UploadedVersionsNeedNoSampleAndTheOldestAreForgotten) {
  auto index = std::make_shared<xet::DedupIndex>(4);
  HubRemote::KnownFiles known(2, index);
  const auto a = hashOf("a");
  const auto b = hashOf("b");
  const auto c = hashOf("c");
  ASSERT_TRUE(known.add(a));  // an upload of this mount: its shard fed the index
  EXPECT_FALSE(known.add(a));
  ASSERT_TRUE(known.add(b));
  ASSERT_TRUE(known.add(c));  // a is the oldest of 3 with room for 2
  EXPECT_FALSE(known.add(c));
  EXPECT_TRUE(known.add(a));
  known.remove(a);  // a learning that failed
  EXPECT_TRUE(known.add(a));
}

}  // namespace
}  // namespace hfm::mount
