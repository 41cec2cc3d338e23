#include "hfm/xet/merkle_hash.h"

#include <gtest/gtest.h>

#include <string>

namespace hfm::xet {
namespace {

TEST(MerkleHashTest, HexIsWordReversed) {
  MerkleHash::Bytes raw{};
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(MerkleHash(raw).hex(),
            "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918");
}

TEST(MerkleHashTest, UpstreamEndiannessVector) {
  const MerkleHash::Bytes raw = {22, 175, 58,  132, 4,   75,  131, 214, 190, 153, 138,
                                 66, 226, 3,   153, 242, 204, 86,  80,  234, 249, 153,
                                 80, 99,  159, 80,  65,  138, 236, 231, 149, 78};
  const std::string hex = "d6834b04843aaf16f29903e2428a99be635099f9ea5056cc4e95e7ec8a41509f";
  EXPECT_EQ(MerkleHash(raw).hex(), hex);
  auto parsed = MerkleHash::fromHex(hex);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->raw(), raw);
}

TEST(MerkleHashTest, RejectsBadHex) {
  EXPECT_FALSE(MerkleHash::fromHex("00").has_value());
  EXPECT_FALSE(MerkleHash::fromHex(std::string(64, 'g')).has_value());
  EXPECT_FALSE(MerkleHash::fromHex(std::string(65, '0')).has_value());
}

TEST(MerkleHashTest, OrdersByLittleEndianWords) {
  MerkleHash::Bytes a{};
  MerkleHash::Bytes b{};
  a[7] = 1;  // most significant byte of word 0
  b[0] = 2;  // least significant byte of word 0
  EXPECT_GT(MerkleHash(a), MerkleHash(b));
}

TEST(MerkleHashTest, KeyedBlake3MatchesSpecVectors) {
  const std::string hello = "hello world";
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(hello.data()), hello.size());
  EXPECT_EQ(blake3Keyed(kDataKey, bytes).hex(),
            "4e39378b9d359f118190557a1f44130219a54e5fcfa07bd96cf50b466fe651b1");
  EXPECT_EQ(blake3Keyed(kDataKey, {}).hex(),
            "e0f2cf784e7e5f10c34f84af150e9a5ff9664216debad915364d741049870f67");
  Blake3Hasher incremental(kDataKey);
  incremental.update(bytes.subspan(0, 5));
  incremental.update(bytes.subspan(5));
  EXPECT_EQ(incremental.finalize(), blake3Keyed(kDataKey, bytes));
}

}  // namespace
}  // namespace hfm::xet
