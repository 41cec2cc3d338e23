#include "hfm/xet/dedup_index.h"

#include <gtest/gtest.h>

#include <string>

#include "hfm/xet/hashing.h"

namespace hfm::xet {
namespace {

MerkleHash hashOf(const std::string& s) {
  return chunkHash({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

// A xorb record whose chunks are named "<tag>-0", "<tag>-1", ...
ShardXorb xorbOf(const std::string& tag, size_t chunks) {
  ShardXorb x;
  x.hash = hashOf("xorb " + tag);
  uint32_t start = 0;
  for (size_t i = 0; i < chunks; ++i) {
    x.chunks.push_back({hashOf(tag + "-" + std::to_string(i)), start, 100, 0});
    start += 100;
  }
  x.num_bytes_in_xorb = start;
  return x;
}

TEST(DedupIndexTest, FindsEveryChunkOfAnAddedShardAtItsPosition) {
  DedupIndex index;
  const std::vector<ShardXorb> shard = {xorbOf("a", 3), xorbOf("b", 2)};
  index.addShardXorbs(shard);
  EXPECT_EQ(index.size(), 5u);
  for (const auto& x : shard) {
    for (size_t i = 0; i < x.chunks.size(); ++i) {
      auto ref = index.find(x.chunks[i].hash);
      ASSERT_TRUE(ref.has_value());
      EXPECT_EQ(ref->xorb, x.hash);
      EXPECT_EQ(ref->index, i);
    }
  }
  EXPECT_FALSE(index.find(hashOf("c-0")).has_value());
}

TEST(DedupIndexTest, AChunkKeepsItsFirstReference) {
  DedupIndex index;
  auto a = xorbOf("a", 2);
  auto again = xorbOf("other", 1);
  again.chunks[0].hash = a.chunks[1].hash;  // the same chunk stored in another xorb
  index.addShardXorbs(std::vector<ShardXorb>{a});
  index.addShardXorbs(std::vector<ShardXorb>{again});
  auto ref = index.find(a.chunks[1].hash);
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->xorb, a.hash);
  EXPECT_EQ(ref->index, 1u);
  EXPECT_EQ(index.size(), 2u);
}

TEST(DedupIndexTest, EvictsTheLeastRecentlyUsedShardToStayBounded) {
  DedupIndex index(10);
  const auto a = xorbOf("a", 4);
  const auto b = xorbOf("b", 4);
  const auto c = xorbOf("c", 4);
  index.addShardXorbs(std::vector<ShardXorb>{a});
  index.addShardXorbs(std::vector<ShardXorb>{b});
  ASSERT_TRUE(index.find(a.chunks[0].hash).has_value());  // a is now more recent than b
  index.addShardXorbs(std::vector<ShardXorb>{c});
  EXPECT_LE(index.size(), 10u);
  EXPECT_TRUE(index.find(a.chunks[3].hash).has_value());
  EXPECT_TRUE(index.find(c.chunks[3].hash).has_value());
  EXPECT_FALSE(index.find(b.chunks[0].hash).has_value());
  EXPECT_EQ(index.size(), 8u);

  // One shard larger than the whole bound keeps only what fits.
  index.addShardXorbs(std::vector<ShardXorb>{xorbOf("huge", 25)});
  EXPECT_EQ(index.size(), 10u);
  EXPECT_FALSE(index.find(a.chunks[0].hash).has_value());
  auto ref = index.find(hashOf("huge-9"));
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->index, 9u);
  EXPECT_FALSE(index.find(hashOf("huge-10")).has_value());
}

// Chunks "<tag>-<i>" at indices first, first + 1, ... of the xorb "xorb <xorb>".
std::vector<DedupIndex::KnownChunk> knownChunks(const std::string& tag, const std::string& xorb,
                                                uint32_t first, size_t count) {
  std::vector<DedupIndex::KnownChunk> out;
  for (size_t i = 0; i < count; ++i) {
    out.push_back({hashOf(tag + "-" + std::to_string(i)), hashOf("xorb " + xorb),
                   first + static_cast<uint32_t>(i)});
  }
  return out;
}

TEST(DedupIndexTest, LearnedChunksKeepTheirXorbAndRealIndex) {
  DedupIndex index;
  // One file read back: chunks 5..7 of xorb x, then chunks 0..1 of xorb y, then x again.
  auto chunks = knownChunks("f", "x", 5, 3);
  for (auto& c : knownChunks("g", "y", 0, 2)) chunks.push_back(c);
  for (auto& c : knownChunks("h", "x", 9, 1)) chunks.push_back(c);
  index.addChunks(chunks);
  EXPECT_EQ(index.size(), 6u);
  for (const auto& c : chunks) {
    auto ref = index.find(c.hash);
    ASSERT_TRUE(ref.has_value());
    EXPECT_EQ(ref->xorb, c.xorb);
    EXPECT_EQ(ref->index, c.index);
  }
  // A chunk already known from a shard keeps the shard's reference.
  const auto a = xorbOf("a", 1);
  index.addShardXorbs(std::vector<ShardXorb>{a});
  index.addChunks(std::vector<DedupIndex::KnownChunk>{{a.chunks[0].hash, hashOf("xorb z"), 4}});
  auto ref = index.find(a.chunks[0].hash);
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->xorb, a.hash);
  EXPECT_EQ(ref->index, 0u);
}

TEST(DedupIndexTest, LearnedGroupsAreEvictedLikeShards) {
  DedupIndex index(10);
  const auto first = knownChunks("f", "x", 100, 4);
  const auto second = knownChunks("g", "y", 0, 4);
  index.addChunks(first);
  index.addChunks(second);
  ASSERT_TRUE(index.find(first[0].hash).has_value());  // first is now more recent
  index.addShardXorbs(std::vector<ShardXorb>{xorbOf("c", 4)});
  EXPECT_EQ(index.size(), 8u);
  EXPECT_TRUE(index.find(first[3].hash).has_value());
  EXPECT_FALSE(index.find(second[0].hash).has_value());

  EXPECT_TRUE(index.contains(first[0].hash));
  EXPECT_FALSE(index.contains(second[0].hash));
  index.addChunks(knownChunks("huge", "h", 0, 25));
  EXPECT_EQ(index.size(), 10u);
  EXPECT_FALSE(index.contains(first[0].hash));
  auto ref = index.find(hashOf("huge-9"));
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->index, 9u);
  EXPECT_FALSE(index.find(hashOf("huge-10")).has_value());
}

}  // namespace
}  // namespace hfm::xet
