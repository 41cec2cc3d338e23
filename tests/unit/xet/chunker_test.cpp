#include "hfm/xet/chunker.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "hfm/util/hex.h"

namespace hfm::xet {
namespace {

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// The algorithm of spec §2 written the slow, obvious way: hash every byte of each chunk from a
// zero state (no skip-ahead), cut at the first match once the chunk has kMinChunkSize bytes,
// or at kMaxChunkSize. The optimized chunker must agree with it on any input.
std::vector<uint64_t> referenceEnds(const std::vector<uint8_t>& data) {
  std::vector<uint64_t> ends;
  size_t start = 0;
  while (start < data.size()) {
    uint64_t h = 0;
    size_t end = data.size();
    for (size_t i = start; i < data.size(); ++i) {
      h = (h << 1) + kGearTable[data[i]];
      const size_t len = i - start + 1;
      if ((len >= kMinChunkSize && (h & kGearMask) == 0) || len == kMaxChunkSize) {
        end = i + 1;
        break;
      }
    }
    ends.push_back(end);
    start = end;
  }
  return ends;
}

std::vector<uint64_t> streamedEnds(const std::vector<uint8_t>& data,
                                   const std::vector<size_t>& feeds) {
  Chunker chunker;
  std::vector<uint64_t> ends;
  std::vector<size_t> cuts;
  size_t pos = 0;
  for (size_t k = 0; pos < data.size(); ++k) {
    const size_t n = std::min(feeds[k % feeds.size()], data.size() - pos);
    cuts.clear();
    chunker.update(std::span(data).subspan(pos, n), cuts);
    for (size_t cut : cuts) ends.push_back(pos + cut);
    pos += n;
  }
  if (chunker.finish() > 0) ends.push_back(data.size());
  return ends;
}

TEST(GearTableTest, IntegrityFiguresOfTheSpec) {
  EXPECT_EQ(kGearTable[0], 0xb088d3a9e840f559ULL);
  EXPECT_EQ(kGearTable[11], 0x8e95053a1086d3adULL);  // differs from fastcdc-rs's table
  EXPECT_EQ(kGearTable[128], 0xa315f5ebfb706d26ULL);
  EXPECT_EQ(kGearTable[255], 0x63c7a906c1dd187bULL);
  uint64_t x = 0;
  for (uint64_t v : kGearTable) x ^= v;
  EXPECT_EQ(x, 0x6aa26c5ca5f6cbfcULL);

  std::array<uint8_t, 256 * 8> packed{};
  for (size_t i = 0; i < 256; ++i) {
    for (size_t b = 0; b < 8; ++b)
      packed[8 * i + b] = static_cast<uint8_t>(kGearTable[i] >> (8 * b));
  }
  std::array<uint8_t, SHA256_DIGEST_LENGTH> digest{};
  SHA256(packed.data(), packed.size(), digest.data());
  EXPECT_EQ(util::toHex(digest),
            "e1d3936666d7ae7a977c958e9afcc75f90aaca758ce5fbe4ece61dffefe1912c");

  // Rendering the table as the text file of testdata gives that file's published digest.
  std::string text;
  for (uint64_t v : kGearTable) {
    char line[32];
    std::snprintf(line, sizeof line, "0x%016llx\n", static_cast<unsigned long long>(v));
    text += line;
  }
  SHA256(reinterpret_cast<const uint8_t*>(text.data()), text.size(), digest.data());
  EXPECT_EQ(util::toHex(digest),
            "1e28659c1e21d4f4f3273eb3a484e4829a986d5527935c5b2a4be95672a94ce7");
  std::ifstream in(std::string(HFM_TESTDATA_DIR) + "/xet/gear_table.txt");
  ASSERT_TRUE(in.good());
  std::stringstream file;
  file << in.rdbuf();
  EXPECT_EQ(file.str(), text);
}

TEST(ChunkerTest, EmptyInputHasNoChunks) {
  EXPECT_TRUE(chunkEnds({}).empty());
  EXPECT_TRUE(chunkAndHash({}).empty());
  Chunker chunker;
  EXPECT_FALSE(chunker.nextBoundary({}).has_value());
  EXPECT_EQ(chunker.finish(), 0u);
}

TEST(ChunkerTest, ShortInputsAreOneChunk) {
  for (size_t n : {size_t{1}, size_t{64}, kMinChunkSize - 1, kMinChunkSize}) {
    const auto data = randomBytes(n, 7);
    EXPECT_EQ(chunkEnds(data), std::vector<uint64_t>{n}) << n;
  }
}

TEST(ChunkerTest, SizesStayWithinBounds) {
  const auto data = randomBytes(8 << 20, 1);
  const auto ends = chunkEnds(data);
  ASSERT_GT(ends.size(), 50u);
  uint64_t prev = 0;
  for (size_t i = 0; i < ends.size(); ++i) {
    const uint64_t len = ends[i] - prev;
    EXPECT_LE(len, kMaxChunkSize);
    if (i + 1 < ends.size()) {
      EXPECT_GE(len, kMinChunkSize);
    }
    prev = ends[i];
  }
  EXPECT_EQ(ends.back(), data.size());
  // Random data: the mean lands near the 64 KiB target (plus the minimum), not at a bound.
  const double mean = static_cast<double>(data.size()) / static_cast<double>(ends.size());
  EXPECT_GT(mean, 50000.0);
  EXPECT_LT(mean, 100000.0);
}

TEST(ChunkerTest, MatchesTheSlowReferenceModel) {
  std::vector<std::vector<uint8_t>> inputs;
  inputs.push_back(randomBytes(3 << 20, 2));
  inputs.emplace_back(400000, 0);
  // Low-entropy data: long runs, repeats of a short random block, an alternating pattern.
  auto runs = randomBytes(1 << 20, 3);
  for (size_t i = 0; i < runs.size(); ++i) runs[i] = runs[i - i % 4096];
  inputs.push_back(std::move(runs));
  auto block = randomBytes(5000, 4);
  std::vector<uint8_t> repeated;
  while (repeated.size() < (1 << 20)) repeated.insert(repeated.end(), block.begin(), block.end());
  inputs.push_back(std::move(repeated));
  for (const auto& data : inputs) {
    const auto expected = referenceEnds(data);
    EXPECT_EQ(chunkEnds(data), expected);
    EXPECT_EQ(streamedEnds(data, {1, 7, 64, 65, 8127, 8128, 100000}), expected);
  }
}

// The first 64 bytes of xet-core's "hitting data" pattern: a window whose gear hash matches.
// Since the hash depends only on the last 64 bytes, planting it anywhere puts a match at its
// last byte, which lets the test place matches where it likes (e.g. several per 16 KiB).
constexpr std::array<uint8_t, 64> kMatchingWindow = {
    154, 52,  42,  34,  159, 75,  126, 224, 70,  236, 12,  196, 79,  236, 178, 124,
    127, 50,  99,  178, 44,  176, 174, 126, 250, 235, 205, 174, 252, 122, 35,  10,
    20,  101, 214, 69,  193, 8,   115, 105, 158, 228, 120, 111, 136, 162, 198, 251,
    211, 183, 253, 252, 164, 147, 63,  16,  186, 162, 117, 23,  170, 36,  205, 187};

TEST(ChunkerTest, MatchesReferenceWithPlantedMatches) {
  uint64_t h = 0;
  for (uint8_t b : kMatchingWindow) h = (h << 1) + kGearTable[b];
  ASSERT_EQ(h & kGearMask, 0u);

  std::mt19937 rng(5);
  for (int trial = 0; trial < 150; ++trial) {
    auto data = randomBytes(300000, static_cast<uint32_t>(1000 + trial));
    // Clusters of matches, a few hundred bytes to a few KiB apart, then some anywhere.
    const size_t clusters = 1 + rng() % 4;
    for (size_t c = 0; c < clusters; ++c) {
      size_t at = rng() % (data.size() - 70000);
      for (size_t k = 0; k < 1 + rng() % 5; ++k) {
        std::copy(kMatchingWindow.begin(), kMatchingWindow.end(),
                  data.begin() + static_cast<std::ptrdiff_t>(at));
        at += 64 + rng() % 9000;
      }
    }
    const auto expected = referenceEnds(data);
    SCOPED_TRACE(trial);
    ASSERT_EQ(chunkEnds(data), expected);
    ASSERT_EQ(streamedEnds(data, {1 + rng() % 70000, 1 + rng() % 5000}), expected);
  }
}

TEST(ChunkerTest, StreamingWithRandomFeedSizesMatchesOneShot) {
  std::mt19937 rng(11);
  for (int round = 0; round < 20; ++round) {
    const size_t n = std::uniform_int_distribution<size_t>(0, 1 << 20)(rng);
    const auto data = randomBytes(n, static_cast<uint32_t>(round));
    std::vector<size_t> feeds;
    for (int k = 0; k < 16; ++k) {
      feeds.push_back(std::uniform_int_distribution<size_t>(1, round % 2 ? 300 : 200000)(rng));
    }
    SCOPED_TRACE(n);
    EXPECT_EQ(streamedEnds(data, feeds), chunkEnds(data));
  }
}

TEST(ChunkerTest, NextBoundaryReportsConsumedBytesAndResets) {
  const auto data = randomBytes(1 << 20, 5);
  const auto ends = chunkEnds(data);
  ASSERT_GE(ends.size(), 3u);
  Chunker chunker;
  auto first = chunker.nextBoundary(data);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, ends[0]);
  EXPECT_EQ(chunker.pendingBytes(), 0u);
  // Feeding part of the next chunk leaves it pending.
  auto rest = std::span(data).subspan(*first, 100);
  EXPECT_FALSE(chunker.nextBoundary(rest).has_value());
  EXPECT_EQ(chunker.pendingBytes(), 100u);
  EXPECT_EQ(chunker.finish(), 100u);
  EXPECT_EQ(chunker.pendingBytes(), 0u);
  // After finish() the chunker starts a fresh stream.
  EXPECT_EQ(chunker.nextBoundary(data), first);
}

TEST(ChunkerTest, ChunkHashesCoverTheData) {
  const auto data = randomBytes(700000, 9);
  const auto chunks = chunkAndHash(data);
  uint64_t offset = 0;
  for (const auto& c : chunks) {
    EXPECT_EQ(c.hash, chunkHash(std::span(data).subspan(offset, c.size)));
    offset += c.size;
  }
  EXPECT_EQ(offset, data.size());
}

}  // namespace
}  // namespace hfm::xet
