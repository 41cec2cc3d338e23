#include "hfm/xet/compression.h"

#include <gtest/gtest.h>
#include <lz4.h>
#include <lz4frame.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace hfm::xet {
namespace {

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Text-like data: LZ4 compresses it, byte lanes look alike.
std::vector<uint8_t> textBytes(size_t n) {
  const std::string words = "the quick brown fox jumps over the lazy dog while hugging faces ";
  std::vector<uint8_t> v(n);
  std::mt19937 rng(7);
  size_t pos = 0;
  while (pos < n) {
    const size_t start = rng() % (words.size() - 8);
    const size_t len = 3 + rng() % 6;
    for (size_t i = 0; i < len && pos < n; ++i) v[pos++] = static_cast<uint8_t>(words[start + i]);
  }
  return v;
}

// float32 samples of a smooth signal with noise in the mantissa: lanes differ strongly.
std::vector<uint8_t> floatBytes(size_t n) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(11);
  for (size_t i = 0; i + 4 <= n; i += 4) {
    const float f =
        std::sin(static_cast<float>(i) * 1e-4f) * 0.05f + static_cast<float>(rng() % 1000) * 1e-6f;
    std::memcpy(v.data() + i, &f, 4);
  }
  for (size_t i = n - n % 4; i < n; ++i) v[i] = 0x3c;
  return v;
}

std::vector<uint8_t> serialize(std::span<const uint8_t> chunk, CompressionScheme s) {
  std::vector<uint8_t> out;
  appendSerializedChunk(chunk, s, out);
  return out;
}

// Every scheme a writer may ask for (kAuto picks one of the others).
constexpr std::array kRequestedSchemes = {CompressionScheme::kNone, CompressionScheme::kLz4,
                                          CompressionScheme::kByteGrouping4Lz4,
                                          CompressionScheme::kAuto};

// One chunk serialized with a requested scheme, and its header parsed back.
struct SerializedChunk {
  std::vector<uint8_t> bytes;
  Result<ChunkHeader> header;
  std::span<const uint8_t> payload() const { return std::span(bytes).subspan(kChunkHeaderSize); }
};

SerializedChunk serializeAndParse(std::span<const uint8_t> chunk, CompressionScheme s) {
  auto bytes = serialize(chunk, s);
  auto header = parseChunkHeader(bytes);
  return {std::move(bytes), std::move(header)};
}

// `frame` decodes with lz4FrameDecompress to exactly `expected`.
::testing::AssertionResult lz4FrameDecodesTo(std::span<const uint8_t> frame,
                                             const std::vector<uint8_t>& expected) {
  std::vector<uint8_t> out(expected.size());
  auto st = lz4FrameDecompress(frame, out);
  if (!st.ok()) return ::testing::AssertionFailure() << st.error().message();
  if (out != expected) return ::testing::AssertionFailure() << "decoded bytes differ";
  return ::testing::AssertionSuccess();
}

std::vector<uint8_t> lz4FrameWith(std::span<const uint8_t> src, const LZ4F_preferences_t& prefs) {
  std::vector<uint8_t> out(LZ4F_compressFrameBound(src.size(), &prefs));
  const size_t n = LZ4F_compressFrame(out.data(), out.size(), src.data(), src.size(), &prefs);
  EXPECT_FALSE(LZ4F_isError(n));
  out.resize(n);
  return out;
}

std::vector<uint8_t> chunkWithPayload(CompressionScheme scheme, uint32_t uncompressed,
                                      std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  appendChunkHeader({0, static_cast<uint32_t>(payload.size()), scheme, uncompressed}, out);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

TEST(ChunkHeaderTest, ParsesLittleEndianU24Fields) {
  const std::vector<uint8_t> bytes = {0x00, 0x01, 0x02, 0x03, 0x01, 0x00, 0x00, 0x02, 0xAA};
  auto h = parseChunkHeader(bytes);
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_EQ(h->version, 0);
  EXPECT_EQ(h->compressed_size, 0x030201u);
  EXPECT_EQ(h->scheme, CompressionScheme::kLz4);
  EXPECT_EQ(h->uncompressed_size, 0x020000u);
}

TEST(ChunkHeaderTest, RoundTripsThroughAppend) {
  const ChunkHeader h{0, 262144, CompressionScheme::kByteGrouping4Lz4, 131072};
  std::vector<uint8_t> out;
  appendChunkHeader(h, out);
  ASSERT_EQ(out.size(), kChunkHeaderSize);
  auto back = parseChunkHeader(out);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, h);
}

TEST(ChunkHeaderTest, RejectsEveryInvalidField) {
  auto bad = [](std::vector<uint8_t> b) { return !parseChunkHeader(b).ok(); };
  EXPECT_TRUE(bad({0, 1, 0, 0, 0, 1, 0}));                        // 7 bytes
  EXPECT_TRUE(bad({1, 1, 0, 0, 0, 1, 0, 0}));                     // version 1
  EXPECT_TRUE(bad({0, 1, 0, 0, 3, 1, 0, 0}));                     // scheme 3
  EXPECT_TRUE(bad({0, 1, 0, 0, 99, 1, 0, 0}));                    // "Auto" is never serialized
  EXPECT_TRUE(bad({0, 0x01, 0x00, 0x04, 1, 0, 0, 1}));            // compressed 262145
  EXPECT_TRUE(bad({0, 0x10, 0x00, 0x00, 1, 0x01, 0x00, 0x02}));   // uncompressed 131073
  EXPECT_TRUE(bad({0, 2, 0, 0, 0, 3, 0, 0}));                     // None with sizes 2 != 3
  EXPECT_FALSE(bad({0, 0x00, 0x00, 0x04, 1, 0x00, 0x00, 0x02}));  // both limits exactly
  const auto err = parseChunkHeader(std::vector<uint8_t>{1, 1, 0, 0, 0, 1, 0, 0}).error();
  EXPECT_EQ(err.code(), EINVAL);
  EXPECT_NE(err.message().find("version"), std::string::npos);
}

TEST(Bg4Test, GroupSizesForEveryRemainder) {
  for (size_t n = 8; n < 12; ++n) {
    std::vector<uint8_t> src(n);
    std::iota(src.begin(), src.end(), 0);
    std::vector<uint8_t> split(n);
    bg4Split(src, split);
    // Groups g < n%4 get one extra byte; expected layout spelled out per remainder.
    std::vector<uint8_t> expected;
    for (size_t g = 0; g < 4; ++g) {
      EXPECT_EQ(bg4GroupSize(n, g), n / 4 + (g < n % 4 ? 1 : 0));
      for (size_t k = g; k < n; k += 4) expected.push_back(static_cast<uint8_t>(k));
    }
    EXPECT_EQ(split, expected) << "n=" << n;
    std::vector<uint8_t> back(n);
    bg4Regroup(split, back);
    EXPECT_EQ(back, src);
  }
  // n%4 == 3 concretely: 0..6 → [0 4][1 5][2 6][3].
  const std::vector<uint8_t> seven = {0, 1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> split(7);
  bg4Split(seven, split);
  EXPECT_EQ(split, (std::vector<uint8_t>{0, 4, 1, 5, 2, 6, 3}));
}

TEST(Bg4Test, TinyAndEmptyInputs) {
  for (size_t n = 0; n < 4; ++n) {
    std::vector<uint8_t> src(n, 0x5a);
    for (size_t i = 0; i < n; ++i) src[i] = static_cast<uint8_t>(i + 1);
    std::vector<uint8_t> split(n), back(n);
    bg4Split(src, split);
    EXPECT_EQ(split, src);  // fewer than 4 bytes: each group holds at most one byte, in order
    bg4Regroup(split, back);
    EXPECT_EQ(back, src);
  }
}

TEST(ChunkCodecTest, RoundTripsEachSchemeAndSize) {
  const std::vector<std::vector<uint8_t>> inputs = {{},
                                                    textBytes(1),
                                                    textBytes(2),
                                                    textBytes(3),
                                                    textBytes(5),
                                                    textBytes(4097),
                                                    textBytes(131072),
                                                    floatBytes(65537),
                                                    floatBytes(131070),
                                                    randomBytes(131072, 1),
                                                    std::vector<uint8_t>(131072, 0),
                                                    randomBytes(1000, 2)};
  for (const auto scheme : kRequestedSchemes) {
    for (const auto& in : inputs) {
      const auto [ser, h] = serializeAndParse(in, scheme);
      ASSERT_TRUE(h.ok()) << h.error().message();
      EXPECT_EQ(h->uncompressed_size, in.size());
      EXPECT_EQ(ser.size(), kChunkHeaderSize + h->compressed_size);
      EXPECT_LE(h->compressed_size, in.size());  // never larger than raw
      if (scheme == CompressionScheme::kNone) {
        EXPECT_EQ(h->scheme, CompressionScheme::kNone);
      }
      if (h->scheme == CompressionScheme::kNone) {
        EXPECT_EQ(h->compressed_size, in.size());
      }
      std::vector<uint8_t> out = {0xEE};  // decoding appends
      auto sizes = decodeChunks(ser, out);
      ASSERT_TRUE(sizes.ok()) << sizes.error().message();
      ASSERT_EQ(sizes->size(), 1u);
      EXPECT_EQ((*sizes)[0], in.size());
      ASSERT_EQ(out.size(), in.size() + 1);
      EXPECT_EQ(out[0], 0xEE);
      EXPECT_TRUE(std::equal(in.begin(), in.end(), out.begin() + 1));
    }
  }
}

// Decoding into caller storage: exactly the chunk's bytes land in dst, nothing outside it is
// touched, in any order of chunk sizes (the BG4 scratch is reused across sizes).
TEST(ChunkCodecTest, DecodesIntoCallerStorageOfTheExactSize) {
  const std::vector<std::vector<uint8_t>> inputs = {
      floatBytes(131072), textBytes(4097),   {},
      floatBytes(65539),  textBytes(131072), randomBytes(1000, 4)};
  constexpr uint8_t kGuard = 0xA5;
  for (const auto scheme : kRequestedSchemes) {
    for (const auto& in : inputs) {
      const auto chunk = serializeAndParse(in, scheme);
      ASSERT_TRUE(chunk.header.ok()) << chunk.header.error().message();
      std::vector<uint8_t> buffer(in.size() + 2, kGuard);
      const auto dst = std::span(buffer).subspan(1, in.size());
      auto st = decodeChunkPayloadInto(*chunk.header, chunk.payload(), dst);
      ASSERT_TRUE(st.ok()) << st.error().message();
      EXPECT_TRUE(std::equal(in.begin(), in.end(), dst.begin()));
      EXPECT_EQ(buffer.front(), kGuard);
      EXPECT_EQ(buffer.back(), kGuard);
    }
  }
}

TEST(ChunkCodecTest, DecodeIntoRejectsMissizedStorageAndBadPayloads) {
  const auto in = textBytes(5000);
  const auto chunk = serializeAndParse(in, CompressionScheme::kLz4);
  const auto& h = chunk.header;
  ASSERT_TRUE(h.ok());
  const auto payload = chunk.payload();
  for (const size_t size : {size_t{0}, in.size() - 1, in.size() + 1}) {
    std::vector<uint8_t> dst(size);
    auto st = decodeChunkPayloadInto(*h, payload, dst);
    ASSERT_FALSE(st.ok()) << size;
    EXPECT_EQ(st.error().code(), EINVAL);
  }
  std::vector<uint8_t> dst(in.size());
  auto short_payload = decodeChunkPayloadInto(*h, payload.first(payload.size() - 1), dst);
  ASSERT_FALSE(short_payload.ok());
  EXPECT_EQ(short_payload.error().code(), EINVAL);
  const std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (const auto scheme : {CompressionScheme::kLz4, CompressionScheme::kByteGrouping4Lz4}) {
    const ChunkHeader junk_header{kChunkHeaderVersion, static_cast<uint32_t>(junk.size()), scheme,
                                  100};
    std::vector<uint8_t> out(100);
    auto st = decodeChunkPayloadInto(junk_header, junk, out);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), EIO);
  }
}

TEST(ChunkCodecTest, CompressibleDataUsesTheRequestedScheme) {
  const auto text = textBytes(65536);
  auto h = parseChunkHeader(serialize(text, CompressionScheme::kLz4));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->scheme, CompressionScheme::kLz4);
  EXPECT_LT(h->compressed_size, text.size() * 3 / 4);
  const auto floats = floatBytes(65536);
  auto g = parseChunkHeader(serialize(floats, CompressionScheme::kByteGrouping4Lz4));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->scheme, CompressionScheme::kByteGrouping4Lz4);
  // On lane-structured data BG4 beats plain LZ4 (why the scheme exists).
  auto l = parseChunkHeader(serialize(floats, CompressionScheme::kLz4));
  ASSERT_TRUE(l.ok());
  EXPECT_LT(g->compressed_size, l->compressed_size);
}

TEST(ChunkCodecTest, IncompressibleDataFallsBackToNone) {
  const auto rnd = randomBytes(65536, 3);
  for (const auto scheme :
       {CompressionScheme::kLz4, CompressionScheme::kByteGrouping4Lz4, CompressionScheme::kAuto}) {
    const auto chunk = serializeAndParse(rnd, scheme);
    ASSERT_TRUE(chunk.header.ok());
    EXPECT_EQ(chunk.header->scheme, CompressionScheme::kNone);
    EXPECT_EQ(chunk.header->compressed_size, rnd.size());
    EXPECT_TRUE(std::ranges::equal(chunk.payload(), rnd));
  }
}

TEST(ChunkCodecTest, AutoHeuristicSeparatesLaneStructuredData) {
  EXPECT_EQ(chooseCompressionScheme(floatBytes(65536)), CompressionScheme::kByteGrouping4Lz4);
  EXPECT_EQ(chooseCompressionScheme(textBytes(65536)), CompressionScheme::kLz4);
  EXPECT_EQ(chooseCompressionScheme(randomBytes(65536, 4)), CompressionScheme::kLz4);
  auto h = parseChunkHeader(serialize(floatBytes(65536), CompressionScheme::kAuto));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->scheme, CompressionScheme::kByteGrouping4Lz4);
}

TEST(Lz4FrameTest, DecoderAcceptsAnyStandardFrame) {
  const auto text = textBytes(131072);
  std::vector<LZ4F_preferences_t> variants;
  LZ4F_preferences_t p{};
  variants.push_back(p);  // library defaults: linked blocks, 64 KB
  p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  p.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
  p.frameInfo.contentSize = text.size();
  variants.push_back(p);
  p.frameInfo.blockSizeID = LZ4F_max4MB;
  p.frameInfo.blockMode = LZ4F_blockIndependent;
  p.compressionLevel = 9;
  variants.push_back(p);
  LZ4F_preferences_t small{};
  small.frameInfo.blockSizeID = LZ4F_max256KB;
  variants.push_back(small);
  for (const auto& prefs : variants) {
    const auto frame = lz4FrameWith(text, prefs);
    EXPECT_TRUE(lz4FrameDecodesTo(frame, text));
    // Through the chunk path too.
    const auto chunk = chunkWithPayload(CompressionScheme::kLz4, 131072, frame);
    std::vector<uint8_t> decoded;
    ASSERT_TRUE(decodeChunks(chunk, decoded).ok());
    EXPECT_EQ(decoded, text);
  }
}

TEST(Lz4FrameTest, XxHash32MatchesReferenceValues) {
  // Reference values from libxxhash (XXH32).
  auto h = [](const std::string& s, uint32_t seed) {
    return xxHash32({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, seed);
  };
  EXPECT_EQ(h("", 0), 0x02cc5d05u);
  EXPECT_EQ(h("a", 0), 0x550d7456u);
  EXPECT_EQ(h("abc", 0), 0x32d153ffu);
  EXPECT_EQ(h("Nobody inspects the spammish repetition", 0), 0xe2293b2fu);
  EXPECT_EQ(h("0123456789abcdef0123456789abcdef!", 0x9747b28c), 0xf2a4c4e2u);
}

TEST(Lz4FrameTest, LinkedBlocksAcrossOddSizes) {
  // Linked 64 KiB blocks reference earlier output; sizes that end mid-block.
  for (size_t n : {65535u, 65536u, 65537u, 100000u, 131072u}) {
    auto text = textBytes(n);
    LZ4F_preferences_t p{};
    p.frameInfo.blockMode = LZ4F_blockLinked;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    const auto frame = lz4FrameWith(text, p);
    EXPECT_TRUE(lz4FrameDecodesTo(frame, text)) << n;
    // A flipped content byte is caught by the content checksum or the block decoder.
    auto bad = frame;
    bad[bad.size() - 6] ^= 0x01;
    std::vector<uint8_t> out(n);
    EXPECT_FALSE(lz4FrameDecompress(bad, out).ok()) << n;
  }
}

TEST(Lz4FrameTest, RejectsUnsupportedHeaders) {
  const auto text = textBytes(1000);
  std::vector<uint8_t> frame;
  lz4FrameCompress(text, frame);
  std::vector<uint8_t> out(text.size());
  auto with = [&](size_t at, uint8_t value) {
    auto f = frame;
    f[at] = value;
    return lz4FrameDecompress(f, out);
  };
  EXPECT_FALSE(with(4, 0x61).ok());  // dictionary id flag (checksum mismatch or dict rejection)
  EXPECT_FALSE(with(4, 0xA0).ok());  // version 10
  EXPECT_FALSE(with(5, 0x30).ok());  // block max size id 3
  EXPECT_FALSE(with(6, static_cast<uint8_t>(frame[6] ^ 1)).ok());  // header checksum
  EXPECT_TRUE(lz4FrameDecompress(frame, out).ok());
}

TEST(Lz4FrameTest, ConcatenatedAndSkippableFrames) {
  const auto a = textBytes(1000);
  const auto b = randomBytes(500, 9);
  LZ4F_preferences_t prefs{};
  auto payload = lz4FrameWith(a, prefs);
  // Skippable frame: magic 0x184D2A50, u32 size, then that many bytes.
  const std::vector<uint8_t> skip = {0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 'x', 'y', 'z'};
  payload.insert(payload.end(), skip.begin(), skip.end());
  const auto fb = lz4FrameWith(b, prefs);
  payload.insert(payload.end(), fb.begin(), fb.end());
  std::vector<uint8_t> out(1500);
  auto st = lz4FrameDecompress(payload, out);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_TRUE(std::equal(a.begin(), a.end(), out.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), out.begin() + 1000));
}

TEST(Lz4FrameTest, EncoderWritesIndependentBlocksWithoutChecksums) {
  const auto text = textBytes(100000);
  std::vector<uint8_t> frame;
  lz4FrameCompress(text, frame);
  ASSERT_GE(frame.size(), 7u);
  EXPECT_EQ(frame[0], 0x04);  // magic 0x184D2204 LE
  EXPECT_EQ(frame[1], 0x22);
  EXPECT_EQ(frame[2], 0x4D);
  EXPECT_EQ(frame[3], 0x18);
  const uint8_t flg = frame[4];
  EXPECT_EQ(flg >> 6, 1);    // version 01
  EXPECT_TRUE(flg & 0x20);   // block independence
  EXPECT_FALSE(flg & 0x10);  // no block checksum
  EXPECT_FALSE(flg & 0x08);  // no content size
  EXPECT_FALSE(flg & 0x04);  // no content checksum
}

TEST(Lz4FrameTest, EncodedBlocksDecodeAloneAndWithLiblz4Frames) {
  // Every block must decode on its own (no reference to an earlier block or to an earlier call's
  // input: the encoder reuses one per-thread stream and resets it per block), and the frame must
  // be readable by liblz4's own frame decoder.
  const auto first = textBytes(131072);
  std::vector<uint8_t> warmup;
  lz4FrameCompress(first, warmup);
  auto text = textBytes(200000);
  std::reverse(text.begin(), text.end());  // same words, so matches into `first` would be tempting
  text.insert(text.end(), first.begin(), first.begin() + 70000);
  std::vector<uint8_t> frame;
  lz4FrameCompress(text, frame);
  size_t in = 7;
  size_t out = 0;
  size_t compressed_blocks = 0;
  while (true) {
    ASSERT_LE(in + 4, frame.size());
    uint32_t word = 0;
    std::memcpy(&word, frame.data() + in, 4);
    in += 4;
    if (word == 0) break;
    const size_t len = word & 0x7FFFFFFFu;
    const size_t expect = std::min<size_t>(65536, text.size() - out);
    std::vector<uint8_t> block(expect);
    if ((word & 0x80000000u) != 0) {
      std::memcpy(block.data(), frame.data() + in, len);
    } else {
      ++compressed_blocks;
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(frame.data() + in),
                                        reinterpret_cast<char*>(block.data()),
                                        static_cast<int>(len), static_cast<int>(expect));
      ASSERT_EQ(n, static_cast<int>(expect)) << "block at " << out;
    }
    EXPECT_TRUE(std::equal(block.begin(), block.end(), text.begin() + static_cast<long>(out)));
    out += expect;
    in += len;
  }
  EXPECT_EQ(in, frame.size());
  EXPECT_EQ(out, text.size());
  EXPECT_EQ(compressed_blocks, 5u);

  LZ4F_dctx* dctx = nullptr;
  ASSERT_FALSE(LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)));
  std::vector<uint8_t> decoded(text.size() + 1);
  size_t dst_size = decoded.size();
  size_t src_size = frame.size();
  const size_t rc =
      LZ4F_decompress(dctx, decoded.data(), &dst_size, frame.data(), &src_size, nullptr);
  LZ4F_freeDecompressionContext(dctx);
  EXPECT_EQ(rc, 0u);  // frame complete
  EXPECT_EQ(src_size, frame.size());
  ASSERT_EQ(dst_size, text.size());
  decoded.resize(dst_size);
  EXPECT_EQ(decoded, text);
}

TEST(Lz4FrameTest, RejectsCorruptTruncatedAndMissizedFrames) {
  const auto text = textBytes(20000);
  std::vector<uint8_t> frame;
  lz4FrameCompress(text, frame);
  std::vector<uint8_t> out(text.size());
  ASSERT_TRUE(lz4FrameDecodesTo(frame, text));

  // Every truncation fails.
  for (size_t len = 0; len < frame.size(); len += (len < 64 ? 1 : 97)) {
    std::vector<uint8_t> o(text.size());
    EXPECT_FALSE(lz4FrameDecompress(std::span(frame).first(len), o).ok()) << len;
  }
  // Header says fewer bytes than the frame produces.
  std::vector<uint8_t> small(text.size() - 1);
  auto st = lz4FrameDecompress(frame, small);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), EIO);
  // Header says more.
  std::vector<uint8_t> big(text.size() + 1);
  EXPECT_FALSE(lz4FrameDecompress(frame, big).ok());
  // Bad magic, trailing garbage.
  auto bad = frame;
  bad[0] ^= 0xff;
  EXPECT_FALSE(lz4FrameDecompress(bad, out).ok());
  auto trailing = frame;
  trailing.push_back(0x42);
  EXPECT_FALSE(lz4FrameDecompress(trailing, out).ok());
  // Random corruption of the block data must fail or decode to a clean size, never crash.
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    auto c = frame;
    c[7 + rng() % (c.size() - 7)] ^= static_cast<uint8_t>(1 + rng() % 255);
    std::vector<uint8_t> o(text.size());
    (void)lz4FrameDecompress(c, o);
  }
  // The decoder is still usable after errors (context reset).
  EXPECT_TRUE(lz4FrameDecodesTo(frame, text));
}

TEST(DecodeChunksTest, DecodesSequenceAndStopsAtFooter) {
  const auto a = textBytes(70000);
  const auto b = floatBytes(40001);
  const auto c = randomBytes(9000, 6);
  std::vector<uint8_t> stream;
  appendSerializedChunk(a, CompressionScheme::kLz4, stream);
  appendSerializedChunk(b, CompressionScheme::kByteGrouping4Lz4, stream);
  appendSerializedChunk(c, CompressionScheme::kAuto, stream);
  const std::string footer = "XETBLOB\x01 and whatever follows";
  auto with_footer = stream;
  with_footer.insert(with_footer.end(), footer.begin(), footer.end());
  for (const auto* s : {&stream, &with_footer}) {
    std::vector<uint8_t> out;
    auto sizes = decodeChunks(*s, out);
    ASSERT_TRUE(sizes.ok()) << sizes.error().message();
    EXPECT_EQ(*sizes, (std::vector<uint32_t>{70000, 40001, 9000}));
    std::vector<uint8_t> expected = a;
    expected.insert(expected.end(), b.begin(), b.end());
    expected.insert(expected.end(), c.begin(), c.end());
    EXPECT_EQ(out, expected);
  }
  std::vector<uint8_t> out;
  auto empty = decodeChunks({}, out);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(DecodeChunksTest, RejectsTruncationAndBadPayloads) {
  std::vector<uint8_t> stream;
  appendSerializedChunk(textBytes(5000), CompressionScheme::kLz4, stream);
  appendSerializedChunk(floatBytes(5000), CompressionScheme::kByteGrouping4Lz4, stream);
  for (size_t len = 1; len < stream.size(); ++len) {
    std::vector<uint8_t> out;
    // A prefix is valid only if it ends exactly at a chunk boundary.
    auto r = decodeChunks(std::span(stream).first(len), out);
    auto first = parseChunkHeader(stream);
    const size_t first_end = kChunkHeaderSize + first->compressed_size;
    EXPECT_EQ(r.ok(), len == first_end) << len;
  }
  // LZ4 chunk whose header claims a different uncompressed size.
  auto lie = stream;
  lie[5] = static_cast<uint8_t>(lie[5] + 1);
  std::vector<uint8_t> out;
  auto r = decodeChunks(lie, out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_NE(r.error().message().find("chunk 0"), std::string::npos);
  // Garbage instead of an LZ4 frame.
  const std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto bad = chunkWithPayload(CompressionScheme::kLz4, 100, junk);
  EXPECT_FALSE(decodeChunks(bad, out).ok());
  auto bad_bg4 = chunkWithPayload(CompressionScheme::kByteGrouping4Lz4, 100, junk);
  EXPECT_FALSE(decodeChunks(bad_bg4, out).ok());
  // Empty LZ4 payload is not a frame.
  EXPECT_FALSE(decodeChunks(chunkWithPayload(CompressionScheme::kLz4, 0, {}), out).ok());
}

}  // namespace
}  // namespace hfm::xet
