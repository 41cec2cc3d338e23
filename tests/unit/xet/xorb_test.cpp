#include "hfm/xet/xorb.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "hfm/util/hex.h"
#include "hfm/xet/chunker.h"

namespace hfm::xet {
namespace {

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> unhex(std::string_view h) { return util::fromHex(h).value(); }

// Mixed content so every scheme gets used: random, text-like runs, float32 lanes, zeros.
std::vector<uint8_t> mixedData(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  size_t pos = 0;
  while (pos < n) {
    const size_t len = std::min<size_t>(n - pos, 20000 + rng() % 200000);
    switch (rng() % 4) {
      case 0:
        for (size_t i = 0; i < len; ++i) v[pos + i] = static_cast<uint8_t>(rng());
        break;
      case 1:
        for (size_t i = 0; i < len; ++i)
          v[pos + i] = static_cast<uint8_t>("abcab cabbage "[rng() % 14]);
        break;
      case 2:
        for (size_t i = 0; i + 4 <= len; i += 4) {
          const float f = std::cos(static_cast<float>(pos + i) * 1e-3f) +
                          static_cast<float>(rng() % 256) * 1e-7f;
          std::memcpy(v.data() + pos + i, &f, 4);
        }
        break;
      default:
        break;  // zeros
    }
    pos += len;
  }
  return v;
}

// Deterministic split into chunks of 1..131072 bytes (the CDC chunker is tested elsewhere).
std::vector<std::span<const uint8_t>> split(std::span<const uint8_t> data, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::span<const uint8_t>> out;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t len = rng() % 8 == 0 ? 1 + rng() % 100 : 8192 + rng() % (131072 - 8192 + 1);
    len = std::min(len, data.size() - pos);
    out.push_back(data.subspan(pos, len));
    pos += len;
  }
  return out;
}

// §4.5 worked example.
constexpr std::string_view kHelloBody = "000b0000000b000068656c6c6f20776f726c64";
constexpr std::string_view kHelloStored =
    "000b0000000b000068656c6c6f20776f726c64584554424c4f4201119f359d8b37394e0213441f7a559081d97b"
    "a0cf5f4ea519b151e66f460bf56c58424c424853480001000000119f359d8b37394e0213441f7a559081d97ba0"
    "cf5f4ea519b151e66f460bf56c58424c42424e440101000000130000000b000000010000005c00000030000000"
    "0000000000000000000000000000000084000000";

TEST(XorbTest, HelloWorldUploadBodyAndStoredFormByteForByte) {
  const std::string hello = "hello world";
  XorbBuilder b;  // kAuto: LZ4 does not shrink 11 bytes, so None is kept
  ASSERT_TRUE(b.add(bytesOf(hello)).ok());
  EXPECT_EQ(b.numChunks(), 1u);
  EXPECT_EQ(b.serializedBytes(), 19u);
  const SerializedXorb x = b.finish();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(x.body, unhex(kHelloBody));
  EXPECT_EQ(x.hash.hex(), "4e39378b9d359f118190557a1f44130219a54e5fcfa07bd96cf50b466fe651b1");
  EXPECT_EQ(x.chunk_boundary_offsets, std::vector<uint32_t>{19});
  EXPECT_EQ(x.unpacked_chunk_offsets, std::vector<uint32_t>{11});
  const auto stored = x.storedForm();
  EXPECT_EQ(stored.size(), 155u);
  EXPECT_EQ(util::toHex(stored), kHelloStored);

  auto from_body = toStoredXorb(x.body);
  ASSERT_TRUE(from_body.ok()) << from_body.error().message();
  EXPECT_EQ(*from_body, stored);

  for (const auto& form : {x.body, stored}) {
    auto p = parseXorb(form);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->hash, x.hash);
    EXPECT_EQ(std::string(p->data.begin(), p->data.end()), hello);
    EXPECT_EQ(p->chunks, x.chunks);
    EXPECT_EQ(p->schemes, std::vector<CompressionScheme>{CompressionScheme::kNone});
    EXPECT_EQ(p->footer.has_value(), form.size() == 155);
  }
  auto footer = parseXorbFooter(stored);
  ASSERT_TRUE(footer.ok()) << footer.error().message();
  EXPECT_EQ(footer->version, 1);
  EXPECT_EQ(footer->offset, 19u);
  EXPECT_EQ(footer->xorb_hash, x.hash);
  EXPECT_EQ(footer->chunk_boundary_offsets, std::vector<uint32_t>{19});
}

TEST(XorbTest, NonceGoesIntoFooterBufferOnly) {
  XorbBuilder b;
  ASSERT_TRUE(b.add(bytesOf(std::string("hello world"))).ok());
  const auto x = b.finish();
  const auto stored = x.storedForm(0xA1B2C3D4);
  auto p = parseXorb(stored);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->footer->nonce, 0xA1B2C3D4u);
  EXPECT_EQ(p->hash, x.hash);
  EXPECT_EQ(stored[stored.size() - 20], 0xD4);
}

TEST(XorbTest, RoundTripsSeveralMegabytesWithEveryScheme) {
  const auto data = mixedData(6 * 1024 * 1024 + 3, 42);
  const auto chunks = split(data, 43);
  for (const auto scheme : {CompressionScheme::kNone, CompressionScheme::kLz4,
                            CompressionScheme::kByteGrouping4Lz4, CompressionScheme::kAuto}) {
    XorbBuilder b(scheme);
    std::vector<ChunkInfo> expected;
    for (auto c : chunks) {
      ASSERT_TRUE(b.fits(c.size()));
      ASSERT_TRUE(b.add(c).ok());
      expected.push_back({chunkHash(c), c.size()});
    }
    EXPECT_EQ(b.uncompressedBytes(), data.size());
    const SerializedXorb x = b.finish();
    EXPECT_EQ(x.chunks, expected);
    EXPECT_EQ(x.hash, xorbHash(expected));
    EXPECT_EQ(x.chunk_boundary_offsets.back(), x.body.size());
    EXPECT_EQ(x.uncompressedBytes(), data.size());
    if (scheme != CompressionScheme::kNone) {
      EXPECT_LT(x.body.size(), data.size());  // the mix contains compressible runs
    }

    auto p = verifyXorb(x.body, x.hash);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->data, data);
    EXPECT_EQ(p->chunks, expected);
    EXPECT_EQ(p->chunk_boundary_offsets, x.chunk_boundary_offsets);
    EXPECT_EQ(p->unpacked_chunk_offsets, x.unpacked_chunk_offsets);
    bool used_requested = false;
    for (auto s : p->schemes) {
      EXPECT_TRUE(s == CompressionScheme::kNone || s == scheme ||
                  scheme == CompressionScheme::kAuto);
      used_requested = used_requested || s == scheme;
    }
    if (scheme != CompressionScheme::kAuto) {
      EXPECT_TRUE(used_requested);
    }

    const auto stored = x.storedForm(7);
    auto ps = parseXorb(stored);
    ASSERT_TRUE(ps.ok()) << ps.error().message();
    EXPECT_EQ(ps->data, data);
    ASSERT_TRUE(ps->footer.has_value());
    EXPECT_EQ(ps->footer->unpacked_chunk_offsets, x.unpacked_chunk_offsets);

    // decodeChunks over an arbitrary chunk range, as fetched by byte range from CAS.
    const size_t a = 3, e = 9;
    const auto r = chunkRangeOffsets(x.chunk_boundary_offsets, a, e).value();
    std::vector<uint8_t> out;
    auto sizes = decodeChunks(std::span(x.body).subspan(r.begin, r.end - r.begin), out);
    ASSERT_TRUE(sizes.ok());
    EXPECT_EQ(sizes->size(), e - a);
    const auto u = chunkRangeOffsets(x.unpacked_chunk_offsets, a, e).value();
    EXPECT_EQ(out.size(), u.end - u.begin);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + static_cast<long>(u.begin),
                           data.begin() + static_cast<long>(u.end)));
  }
}

TEST(XorbTest, ContentDefinedChunksRoundTripAcrossSeveralXorbs) {
  // 12 MB cut by the real CDC chunker, packed into xorbs of at most 4 MB by the caller's own
  // policy (fits() enforces the hard limits), every xorb parsed back from its stored form.
  const auto data = mixedData(size_t{12} * 1000 * 1000, 77);
  const auto chunks = chunkAndHash(data);
  ASSERT_GT(chunks.size(), 100u);
  std::vector<SerializedXorb> xorbs;
  XorbBuilder b;
  uint64_t pos = 0;
  for (const auto& c : chunks) {
    if (!b.fits(c.size) || b.uncompressedBytes() + c.size > uint64_t{4} * 1000 * 1000) {
      xorbs.push_back(b.finish());
    }
    ASSERT_TRUE(b.add(std::span(data).subspan(pos, c.size), c.hash).ok());
    pos += c.size;
  }
  xorbs.push_back(b.finish());
  ASSERT_GE(xorbs.size(), 3u);
  std::vector<uint8_t> rebuilt;
  std::vector<ChunkInfo> all;
  for (const auto& x : xorbs) {
    auto p = verifyXorb(x.storedForm(), x.hash);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->chunks, x.chunks);  // recomputed hashes equal the chunker's
    rebuilt.insert(rebuilt.end(), p->data.begin(), p->data.end());
    all.insert(all.end(), p->chunks.begin(), p->chunks.end());
  }
  EXPECT_EQ(rebuilt, data);
  EXPECT_EQ(all, chunks);
}

// Input generators of vectors.json (see testdata/README.md).
std::vector<uint8_t> vectorInput(const nlohmann::json& input) {
  const std::string kind = input["kind"];
  const std::string seed = input["seed"];
  const size_t size = input["size"].get<size_t>();
  std::vector<uint8_t> data;
  data.reserve(size + 8);
  if (kind == "splitmix") {
    uint64_t state = std::stoull(seed);
    while (data.size() < size) {
      state += 0x9E3779B97F4A7C15ull;
      uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      for (int i = 0; i < 8; ++i) data.push_back(static_cast<uint8_t>(z >> (8 * i)));
    }
    data.resize(size);
  } else if (kind == "affine") {
    const size_t dash = seed.find('-');
    const uint64_t a = std::stoull(seed.substr(0, dash)), b = std::stoull(seed.substr(dash + 1));
    for (uint64_t i = 0; i < size; ++i) data.push_back(static_cast<uint8_t>((i * a + b) & 0xff));
  } else if (kind == "const") {
    data.assign(size, static_cast<uint8_t>(std::stoul(seed)));
  } else {
    ADD_FAILURE() << "unknown input kind " << kind;
  }
  return data;
}

TEST(XorbTest, MatchesReferenceXorbHashesOfSpecVectors) {
  // Each vector's chunks in one xorb: its hash is the reference model's merkle root.
  std::ifstream in(std::string(HFM_TESTDATA_DIR) + "/xet/vectors.json");
  ASSERT_TRUE(in.good());
  const auto doc = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& v : doc["vectors"]) {
    if (v["chunk_ends"].empty()) continue;
    const auto data = vectorInput(v["input"]);
    XorbBuilder b;
    uint64_t prev = 0;
    for (const auto& end : v["chunk_ends"]) {
      const uint64_t e = end.get<uint64_t>();
      ASSERT_TRUE(b.add(std::span(data).subspan(prev, e - prev)).ok());
      prev = e;
    }
    const auto x = b.finish();
    const std::string expected = v["xorb_hash"];
    EXPECT_EQ(x.hash.hex(), expected) << v["input"].dump();
    auto p = verifyXorb(x.storedForm(), MerkleHash::fromHex(expected).value());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->data, data);
    ++checked;
  }
  EXPECT_GE(checked, 9);
}

TEST(XorbTest, ChunkRangeOffsetsFollowSection61) {
  // Hello world: one chunk, serialized bytes 0..18 (Range "bytes=0-18"), unpacked 0..10.
  const std::vector<uint32_t> serialized = {19};
  EXPECT_EQ(chunkRangeOffsets(serialized, 0, 1).value(), (OffsetRange{0, 19}));
  const std::vector<uint32_t> ends = {100, 250, 400, 1000};
  EXPECT_EQ(chunkRangeOffsets(ends, 1, 3).value(), (OffsetRange{100, 400}));
  EXPECT_EQ(chunkRangeOffsets(ends, 3, 4).value(), (OffsetRange{400, 1000}));
  EXPECT_FALSE(chunkRangeOffsets(ends, 2, 2).ok());
  EXPECT_FALSE(chunkRangeOffsets(ends, 3, 5).ok());
  EXPECT_FALSE(chunkRangeOffsets({}, 0, 1).ok());
  const std::vector<uint32_t> bad = {10, 5};
  EXPECT_FALSE(chunkRangeOffsets(bad, 1, 2).ok());
}

TEST(XorbBuilderTest, ChunkCountLimitFollowsXetCoreRule) {
  XorbBuilder b(CompressionScheme::kNone);
  const uint8_t byte = 7;
  for (uint32_t i = 0; i < kMaxXorbChunks; ++i) {
    ASSERT_TRUE(b.fits(1));
    ASSERT_TRUE(b.add(std::span(&byte, 1)).ok());
  }
  EXPECT_FALSE(b.fits(1));
  EXPECT_FALSE(b.fits(0));
  auto st = b.add(std::span(&byte, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), EINVAL);
  EXPECT_EQ(b.numChunks(), kMaxXorbChunks);
  const auto x = b.finish();
  EXPECT_EQ(x.chunks.size(), kMaxXorbChunks);
  auto p = parseXorb(x.storedForm());
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->chunks.size(), kMaxXorbChunks);
}

TEST(XorbBuilderTest, IncompressibleXorbStaysWithinTheSerializedLimit) {
  // 512 random 128 KiB chunks are exactly 64 MiB of data, but their 8-byte headers would push
  // the upload 4 KiB past what the CAS accepts: the builder must close the xorb one chunk early.
  XorbBuilder b(CompressionScheme::kAuto);
  std::vector<uint8_t> chunk(kMaxUncompressedChunkSize);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  int added = 0;
  for (int i = 0; i < 512; ++i) {
    for (auto& byte : chunk) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      byte = static_cast<uint8_t>(state >> 56);
    }
    if (!b.fits(chunk.size())) break;
    ASSERT_TRUE(b.add(chunk).ok());
    ++added;
  }
  EXPECT_EQ(added, 511);
  EXPECT_LE(b.serializedBytes(), kMaxSerializedXorbBytes);
  EXPECT_FALSE(b.fits(chunk.size()));
  EXPECT_FALSE(b.add(chunk).ok());
  const auto x = b.finish();
  EXPECT_LE(x.body.size(), kMaxSerializedXorbBytes);
  auto p = parseXorb(x.body);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->data.size(), 511 * kMaxUncompressedChunkSize);
}

TEST(XorbBuilderTest, ByteLimitIsSixtyFourMiBUncompressed) {
  XorbBuilder b(CompressionScheme::kLz4);
  const std::vector<uint8_t> zeros(kMaxUncompressedChunkSize, 0);
  const MerkleHash h = chunkHash(zeros);
  for (int i = 0; i < 511; ++i) ASSERT_TRUE(b.add(zeros, h).ok());
  EXPECT_TRUE(b.fits(kMaxUncompressedChunkSize));  // exactly 64 MiB still fits
  EXPECT_FALSE(b.fits(kMaxUncompressedChunkSize + 1));
  ASSERT_TRUE(b.add(zeros, h).ok());
  EXPECT_EQ(b.uncompressedBytes(), kMaxXorbBytes);
  EXPECT_FALSE(b.fits(1));
  EXPECT_TRUE(b.fits(0));  // cur + 0 ≤ 64 MiB and chunks + 1 ≤ 8192
  EXPECT_FALSE(b.add(std::span(zeros).first(1)).ok());
  EXPECT_LT(b.serializedBytes(), 1u << 20);  // compressed, while the limit is on raw bytes
  const auto x = b.finish();
  auto p = parseXorb(x.body);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->data.size(), kMaxXorbBytes);
}

TEST(XorbParseTest, AcceptsMoreThanSixtyFourMiBOfCompressibleData) {
  // huggingface.js limits a xorb's serialized size, not its content: 600 zero chunks of 128 KiB
  // (75 MiB of data, a few hundred KiB serialized) is a xorb the Hub accepts and serves.
  std::vector<uint8_t> body;
  const std::vector<uint8_t> zeros(kMaxUncompressedChunkSize, 0);
  for (int i = 0; i < 600; ++i) appendSerializedChunk(zeros, CompressionScheme::kLz4, body);
  EXPECT_LT(body.size(), kMaxSerializedXorbBytes);
  auto p = parseXorb(body);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->chunks.size(), 600u);
  EXPECT_EQ(p->data.size(), 600 * kMaxUncompressedChunkSize);
  EXPECT_GT(p->data.size(), kMaxXorbBytes);
}

TEST(XorbParseTest, RejectsMoreThan8192Chunks) {
  std::vector<uint8_t> body;
  const uint8_t byte = 1;
  for (uint32_t i = 0; i <= kMaxXorbChunks; ++i) {
    appendSerializedChunk(std::span(&byte, 1), CompressionScheme::kNone, body);
  }
  auto p = parseXorb(body);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("8192 chunks"), std::string::npos) << p.error().message();
}

TEST(XorbBuilderTest, RejectsOversizedChunk) {
  XorbBuilder b;
  const std::vector<uint8_t> big(kMaxUncompressedChunkSize + 1, 1);
  EXPECT_FALSE(b.add(big).ok());
  EXPECT_TRUE(b.empty());
}

// --- malformed objects -------------------------------------------------------------------------

class XorbMalformedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XorbBuilder b;
    const auto data = mixedData(400000, 9);
    for (auto c : split(data, 10)) ASSERT_TRUE(b.add(c).ok());
    x_ = b.finish();
    stored_ = x_.storedForm();
    ASSERT_TRUE(parseXorb(stored_).ok());
  }
  // Offset of the footer fields for this xorb.
  size_t footerStart() const { return x_.body.size(); }
  size_t n() const { return x_.chunks.size(); }
  // `needle` must appear in the error message: each case fails for the reason it targets.
  void expectRejected(const std::vector<uint8_t>& bytes, const char* needle) {
    auto p = parseXorb(bytes);
    ASSERT_FALSE(p.ok()) << needle;
    EXPECT_TRUE(p.error().code() == EINVAL || p.error().code() == EIO) << needle;
    EXPECT_NE(p.error().message().find(needle), std::string::npos)
        << "expected '" << needle << "' in: " << p.error().message();
  }
  static void putU32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  }
  SerializedXorb x_;
  std::vector<uint8_t> stored_;
};

TEST_F(XorbMalformedTest, EveryTruncationOfTheStoredFormIsRejected) {
  // A prefix is acceptable only when it ends exactly at a chunk boundary (upload form).
  std::vector<bool> boundary(stored_.size() + 1, false);
  for (uint32_t e : x_.chunk_boundary_offsets) boundary[e] = true;
  for (size_t len = 0; len < stored_.size(); len += (len < x_.body.size() ? 61u : 1u)) {
    auto p = parseXorb(std::span(stored_).first(len));
    EXPECT_EQ(p.ok(), boundary[len] && len > 0) << len;
  }
  for (uint32_t e : x_.chunk_boundary_offsets) {
    EXPECT_TRUE(parseXorb(std::span(stored_).first(e)).ok()) << e;
  }
}

TEST_F(XorbMalformedTest, EmptyObjectAndGarbage) {
  expectRejected({}, "no chunks");
  expectRejected({0, 0, 0}, "truncated");
  expectRejected(std::vector<uint8_t>(64, 0xAB), "version 171");
  std::vector<uint8_t> only_footer(stored_.begin() + static_cast<long>(footerStart()),
                                   stored_.end());
  expectRejected(only_footer, "no chunks");
}

TEST_F(XorbMalformedTest, CorruptChunkHeaderAndPayload) {
  auto v = stored_;
  v[0] = 1;
  expectRejected(v, "header version 1");
  v = stored_;
  v[4] = 7;
  expectRejected(v, "scheme 7");
  v = stored_;
  v[1] = 0xff;
  v[2] = 0xff;
  v[3] = 0x0f;
  expectRejected(v, "exceeds 262144");
  // Flip a payload byte of a compressed chunk: decode error or hash mismatch with footer.
  size_t at = 0;
  for (size_t i = 0; i < x_.chunks.size(); ++i) {
    const size_t start = i == 0 ? 0 : x_.chunk_boundary_offsets[i - 1];
    if (stored_[start + 4] != 0) {
      at = start + 20;
      break;
    }
  }
  ASSERT_NE(at, 0u) << "expected at least one compressed chunk";
  v = stored_;
  v[at] ^= 0x55;
  expectRejected(v, "LZ4");
}

TEST_F(XorbMalformedTest, FooterInconsistencies) {
  const size_t f = footerStart();
  const size_t hashes = f + 40 + 12;             // first chunk hash
  const size_t bounds = hashes + 32 * n() + 12;  // first boundary offset
  const size_t unpacked = bounds + 4 * n();
  const size_t tail = unpacked + 4 * n();  // num_chunks, hashes_off, bounds_off, buffer, info_len
  auto v = stored_;
  v[f] = 'Y';
  expectRejected(v, "header version 89");  // 'Y' read as the next chunk header
  v = stored_;
  v[f + 7] = 2;
  expectRejected(v, "unsupported version 2");
  v = stored_;
  v[f + 8] ^= 1;
  expectRejected(v, "xorb hash");
  v = stored_;
  v[f + 40] = 'Z';
  expectRejected(v, "XBLBHSH");
  v = stored_;
  v[f + 47] = 1;
  expectRejected(v, "hashes section version");
  v = stored_;
  putU32(v, f + 48, static_cast<uint32_t>(n() + 1));
  expectRejected(v, "info_length");
  v = stored_;
  v[hashes + 5] ^= 1;
  expectRejected(v, "chunk 0 hash mismatch");
  v = stored_;
  v[bounds - 12] = 'Q';
  expectRejected(v, "XBLBBND");
  v = stored_;
  v[bounds - 5] = 0;
  expectRejected(v, "boundaries section version");
  v = stored_;
  putU32(v, bounds - 4, 1);
  expectRejected(v, "boundaries section chunk count");
  v = stored_;
  putU32(v, bounds, x_.chunk_boundary_offsets[0] + 1);
  expectRejected(v, "chunk boundary offsets disagree");
  v = stored_;
  putU32(v, unpacked, x_.unpacked_chunk_offsets[0] - 1);
  expectRejected(v, "unpacked chunk offsets disagree");
  v = stored_;
  putU32(v, tail, 0);
  expectRejected(v, "trailing chunk count");
  v = stored_;
  putU32(v, tail + 4, 0);
  expectRejected(v, "hashes_section_offset_from_end");
  v = stored_;
  putU32(v, tail + 8, 0);
  expectRejected(v, "boundary_section_offset_from_end");
  v = stored_;
  putU32(v, v.size() - 4, static_cast<uint32_t>(v.size()));
  expectRejected(v, "exceeds object size");
  v = stored_;
  putU32(v, v.size() - 4, 92 + 40 * static_cast<uint32_t>(n()) - 40);
  expectRejected(v, "missing XETBLOB");
  v = stored_;
  v.push_back(0);
  expectRejected(v, "missing XETBLOB");
  // The nonce is free-form: changing it keeps the object valid.
  v = stored_;
  v[tail + 12] = 0x99;
  EXPECT_TRUE(parseXorb(v).ok());
}

TEST_F(XorbMalformedTest, LegacyV0FooterIsAccepted) {
  std::vector<uint8_t> v(x_.body);
  const std::string ident = "XETBLOB";
  v.insert(v.end(), ident.begin(), ident.end());
  v.push_back(0);
  v.insert(v.end(), x_.hash.raw().begin(), x_.hash.raw().end());
  auto u32 = [&](uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
  };
  u32(static_cast<uint32_t>(n()));
  for (uint32_t b : x_.chunk_boundary_offsets) u32(b);
  for (const auto& c : x_.chunks) v.insert(v.end(), c.hash.raw().begin(), c.hash.raw().end());
  v.insert(v.end(), 16, 0);
  u32(60 + 36 * static_cast<uint32_t>(n()));
  auto p = parseXorb(v);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_TRUE(p->footer.has_value());
  EXPECT_EQ(p->footer->version, 0);
  EXPECT_TRUE(p->footer->unpacked_chunk_offsets.empty());
  EXPECT_EQ(p->hash, x_.hash);
  // A V0 footer whose boundaries disagree is rejected.
  auto bad = v;
  putU32(bad, x_.body.size() + 40 + 4, 5);
  expectRejected(bad, "chunk boundary offsets disagree");
}

TEST_F(XorbMalformedTest, VerifyRejectsWrongHashAndToStoredRejectsFooter) {
  MerkleHash wrong = x_.hash;
  auto raw = wrong.raw();
  raw[0] ^= 1;
  auto r = verifyXorb(x_.body, MerkleHash(raw));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_NE(r.error().message().find("mismatch"), std::string::npos);
  EXPECT_TRUE(verifyXorb(x_.body, x_.hash).ok());
  EXPECT_FALSE(toStoredXorb(stored_).ok());
}

}  // namespace
}  // namespace hfm::xet
