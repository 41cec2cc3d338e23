#include "hfm/xet/hashing.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace hfm::xet {
namespace {

MerkleHash hashOf(std::string_view hex) { return MerkleHash::fromHex(hex).value(); }

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(HashingTest, HelloWorldFileAndRangeHash) {
  const std::string hello = "hello world";
  const ChunkInfo chunk{chunkHash(bytesOf(hello)), hello.size()};
  EXPECT_EQ(merkleRoot(std::span(&chunk, 1)), chunk.hash);  // a single leaf is its own root
  EXPECT_EQ(fileHash(std::span(&chunk, 1)).hex(),
            "f15edd43b7e85cfd25e2758ffe13b99fdd09dfa817e8d9f6548722a7a126db7f");
  EXPECT_EQ(verificationHash(std::span(&chunk.hash, 1)).hex(),
            "22ef2fdcff5cea306e42ad7e15ed8a0c5e789e7d2ec34658c10d2758946847da");
}

TEST(HashingTest, EmptyFileHashIsZero) {
  EXPECT_TRUE(fileHash({}).isZero());
  EXPECT_TRUE(merkleRoot({}).isZero());
}

TEST(HashingTest, SingleZeroLeafFileHash) {
  const ChunkInfo zero{MerkleHash{}, 0};
  EXPECT_TRUE(merkleRoot(std::span(&zero, 1)).isZero());
  EXPECT_EQ(fileHash(std::span(&zero, 1)).hex(),
            "638a6bc391964a85939d48f008e8bdbae6a7975e7ca2d87a3ce2492f4e4d8a4c");
}

TEST(HashingTest, UpstreamHmacAndVerificationVectors) {
  const MerkleHash a = hashOf("118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882");
  const MerkleHash b = hashOf("7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827");
  const MerkleHash key = hashOf("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(hmacChunkHash(a, key).hex(),
            "1e1f5ae2bae99fe030647a14a8c5fe6cdce57826387a7552236dfbebed533e04");
  const std::vector<MerkleHash> term = {a, b};
  EXPECT_EQ(verificationHash(term).hex(),
            "82d580dd3896919ef870af78b2c7bd21e67e79777922bbc8cef1fc21630c308c");
}

TEST(HashingTest, Sha256StoredFormIsGroupReversed) {
  // sha256("hello world") = b94d27b9934d3e08...
  std::array<uint8_t, 32> digest = {0xb9, 0x4d, 0x27, 0xb9, 0x93, 0x4d, 0x3e, 0x08};
  const MerkleHash stored = sha256AsMerkleHash(digest);
  EXPECT_EQ(stored.raw()[0], 0x08);
  EXPECT_EQ(stored.raw()[7], 0xb9);
  EXPECT_EQ(stored.hex().substr(0, 16), "b94d27b9934d3e08");
}

// Leaves with random hashes; `cut_every` > 0 forces word3 % 4 == 0 on every k-th leaf and
// word3 % 4 != 0 elsewhere, to drive the group-cutting rule through all of its cases.
std::vector<ChunkInfo> randomLeaves(size_t n, uint32_t seed, size_t cut_every = 0) {
  std::mt19937_64 rng(seed);
  std::vector<ChunkInfo> leaves(n);
  for (size_t i = 0; i < n; ++i) {
    MerkleHash::Bytes raw{};
    for (auto& b : raw) b = static_cast<uint8_t>(rng());
    if (cut_every > 0) {
      raw[24] = static_cast<uint8_t>((raw[24] & ~3u) | (i % cut_every == 0 ? 0u : 1u));
    }
    leaves[i] = {MerkleHash(raw), rng() % 140000};
  }
  return leaves;
}

MerkleHash builderRoot(std::span<const ChunkInfo> leaves) {
  MerkleBuilder builder;
  for (const auto& leaf : leaves) builder.add(leaf);
  return builder.root();
}

TEST(MerkleBuilderTest, EqualsMerkleRootOnListedSizes) {
  for (size_t n :
       std::vector<size_t>{0, 1, 2, 3, 4, 8, 9, 10, 11, 17, 18, 81, 82, 100, 729, 730, 1000}) {
    const auto leaves = randomLeaves(n, static_cast<uint32_t>(n));
    EXPECT_EQ(builderRoot(leaves), merkleRoot(leaves)) << n;
  }
}

TEST(MerkleBuilderTest, EqualsMerkleRootOnRandomSizesAndCutPatterns) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    const size_t n = std::uniform_int_distribution<size_t>(0, round < 150 ? 120 : 5000)(rng);
    const auto cut_every = static_cast<size_t>(round % 12);  // 0 = random hashes
    const auto leaves = randomLeaves(n, static_cast<uint32_t>(round), cut_every);
    SCOPED_TRACE(testing::Message() << "n=" << n << " cut_every=" << cut_every);
    EXPECT_EQ(builderRoot(leaves), merkleRoot(leaves));
  }
}

TEST(MerkleBuilderTest, RootIsAvailableAfterEveryLeafAndTracksTotals) {
  const auto leaves = randomLeaves(300, 3);
  MerkleBuilder builder;
  uint64_t total = 0;
  EXPECT_TRUE(builder.root().isZero());
  EXPECT_TRUE(builder.fileHash().isZero());
  for (size_t i = 0; i < leaves.size(); ++i) {
    builder.add(leaves[i]);
    total += leaves[i].size;
    const auto prefix = std::span(leaves).first(i + 1);
    ASSERT_EQ(builder.root(), merkleRoot(prefix)) << i;
    ASSERT_EQ(builder.fileHash(), fileHash(prefix)) << i;
  }
  EXPECT_EQ(builder.leafCount(), leaves.size());
  EXPECT_EQ(builder.totalSize(), total);
}

TEST(MerkleBuilderTest, SaltedFileHashMatches) {
  const auto leaves = randomLeaves(57, 8);
  MerkleHash::Bytes salt{};
  salt[0] = 0xab;
  salt[31] = 0x01;
  MerkleBuilder builder;
  for (const auto& leaf : leaves) builder.add(leaf);
  EXPECT_EQ(builder.fileHash(salt), fileHash(leaves, salt));
  EXPECT_NE(builder.fileHash(salt), builder.fileHash());
}

}  // namespace
}  // namespace hfm::xet
