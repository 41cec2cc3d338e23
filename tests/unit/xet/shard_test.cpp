#include "hfm/xet/shard.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "hfm/util/hex.h"
#include "hfm/xet/hashing.h"

namespace hfm::xet {
namespace {

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

MerkleHash sha256Of(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> d{};
  SHA256(data.data(), data.size(), d.data());
  return sha256AsMerkleHash(d);
}

MerkleHash randomHash(std::mt19937_64& rng) {
  MerkleHash::Bytes b{};
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return MerkleHash(b);
}

void putU32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void putU64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t getU64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[at + i]) << (8 * i);
  return v;
}

// The §5.7 "hello world" shard contents.
Shard helloShard() {
  const std::string hello = "hello world";
  const MerkleHash chunk = chunkHash(bytesOf(hello));
  Shard s;
  ShardFile f;
  const ChunkInfo leaf{chunk, 11};
  f.file_hash = fileHash(std::span(&leaf, 1));
  f.terms.push_back({chunk, 0, 11, 0, 1});
  f.verification.push_back(verificationHash(std::span(&chunk, 1)));
  f.sha256 = sha256Of(bytesOf(hello));
  s.files.push_back(f);
  ShardXorb x;
  x.hash = xorbHash(std::span(&leaf, 1));
  x.chunks.push_back({chunk, 0, 11, 0});
  x.num_bytes_in_xorb = 11;
  x.num_bytes_on_disk = 19;
  s.xorbs.push_back(x);
  return s;
}

TEST(ShardTest, HelloWorldUploadShardByteForByte) {
  const Shard s = helloShard();
  EXPECT_EQ(s.files[0].file_hash.hex(),
            "f15edd43b7e85cfd25e2758ffe13b99fdd09dfa817e8d9f6548722a7a126db7f");
  auto bytes = serializeUploadShard(s);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message();
  ASSERT_EQ(bytes->size(), 432u);

  const std::string zeros16(32, '0');
  const std::string bookend = std::string(64, 'f') + zeros16;
  const std::string xorb_raw = "119f359d8b37394e0213441f7a559081d97ba0cf5f4ea519b151e66f460bf56c";
  std::string expected;
  expected += "48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa9";  // magic
  expected +=
      "0200000000000000"
      "0000000000000000";                                                          // v2, footer 0
  expected += "fd5ce8b743dd5ef19fb913fe8f75e225f6d9e817a8df09dd7fdb26a1a7228754";  // file hash
  expected +=
      "000000c0"
      "01000000"
      "0000000000000000";  // flags, n, 0
  expected += xorb_raw +
              "00000000"
              "0b000000"
              "00000000"
              "01000000";  // term
  expected += "30ea5cffdc2fef220c8aed157ead426e5846c32e7d9e785eda47689458270dc1" + zeros16;
  expected += "083e4d93b9274db9faab7ddad7522ea5ee80537ae3ef84c4e9cdefe2acf78890" + zeros16;
  expected += bookend;
  expected += xorb_raw +
              "00000000"
              "01000000"
              "0b000000"
              "13000000";  // xorb header
  expected += xorb_raw +
              "00000000"
              "0b000000"
              "00000000"
              "00000000";  // chunk entry
  expected += bookend;
  EXPECT_EQ(util::toHex(*bytes), expected);

  auto parsed = parseShard(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_FALSE(parsed->footer.has_value());
  ASSERT_EQ(parsed->files.size(), 1u);
  EXPECT_EQ(parsed->files[0].flags, kFileFlagWithVerification | kFileFlagWithMetadataExt);
  EXPECT_EQ(parsed->files[0].terms, s.files[0].terms);
  EXPECT_EQ(parsed->files[0].verification, s.files[0].verification);
  EXPECT_EQ(parsed->files[0].sha256->hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
  EXPECT_EQ(parsed->files[0].size(), 11u);
  EXPECT_EQ(parsed->xorbs, s.xorbs);
}

// A shard with several files (one empty, one without sha256) and xorbs.
Shard randomShard(uint32_t seed, bool with_verification) {
  std::mt19937_64 rng(seed);
  Shard s;
  std::vector<ShardXorb> xorbs(3);
  for (auto& x : xorbs) {
    x.hash = randomHash(rng);
    uint32_t off = 0;
    const size_t n = 1 + rng() % 40;
    for (size_t i = 0; i < n; ++i) {
      const auto size = static_cast<uint32_t>(8192 + rng() % 100000);
      x.chunks.push_back({randomHash(rng), off, size, i == 0 ? kChunkFlagGlobalDedup : 0u});
      off += size;
    }
    x.num_bytes_in_xorb = off;
    x.num_bytes_on_disk = off / 2;
  }
  s.xorbs = xorbs;
  for (int i = 0; i < 5; ++i) {
    ShardFile f;
    f.file_hash = randomHash(rng);
    if (i != 2) {  // file 2 is empty
      for (size_t t = 0; t < 1 + rng() % 4; ++t) {
        const auto& x = xorbs[rng() % xorbs.size()];
        const auto a = static_cast<uint32_t>(rng() % x.chunks.size());
        const auto b = static_cast<uint32_t>(a + 1 + rng() % (x.chunks.size() - a));
        uint32_t bytes = 0;
        for (uint32_t k = a; k < b; ++k) bytes += x.chunks[k].size;
        f.terms.push_back({x.hash, 0, bytes, a, b});
        if (with_verification) f.verification.push_back(randomHash(rng));
      }
    }
    if (i % 2 == 0) f.sha256 = randomHash(rng);
    s.files.push_back(f);
  }
  return s;
}

void expectSameContent(const Shard& got, const Shard& want, const MerkleHash& key) {
  ASSERT_EQ(got.files.size(), want.files.size());
  for (size_t i = 0; i < want.files.size(); ++i) {
    EXPECT_EQ(got.files[i].file_hash, want.files[i].file_hash);
    EXPECT_EQ(got.files[i].terms, want.files[i].terms);
    EXPECT_EQ(got.files[i].verification, want.files[i].verification);
    EXPECT_EQ(got.files[i].sha256, want.files[i].sha256);
  }
  ASSERT_EQ(got.xorbs.size(), want.xorbs.size());
  for (size_t i = 0; i < want.xorbs.size(); ++i) {
    ShardXorb expected = want.xorbs[i];
    if (!key.isZero()) {
      for (auto& c : expected.chunks) c.hash = hmacChunkHash(c.hash, key);
    }
    EXPECT_EQ(got.xorbs[i], expected);
  }
}

TEST(ShardTest, UploadFormRoundTrip) {
  for (bool verified : {true, false}) {
    const Shard s = randomShard(1, verified);
    auto bytes = serializeUploadShard(s);
    ASSERT_TRUE(bytes.ok()) << bytes.error().message();
    EXPECT_EQ(getU64(*bytes, 40), 0u);
    auto p = parseShard(*bytes);
    ASSERT_TRUE(p.ok()) << p.error().message();
    expectSameContent(*p, s, MerkleHash{});
    for (const auto& f : p->files) {
      EXPECT_EQ((f.flags & kFileFlagWithVerification) != 0, verified);
      EXPECT_EQ((f.flags & kFileFlagWithMetadataExt) != 0, f.sha256.has_value());
    }
    EXPECT_FALSE(p->footer.has_value());
    EXPECT_TRUE(p->file_lookup.empty());
  }
}

TEST(ShardTest, StoredFormRoundTripWithLookupTablesAndFooter) {
  const Shard s = randomShard(2, true);
  StoredShardOptions opts;
  opts.creation_timestamp = 1763860000;
  opts.key_expiry = 1763870000;
  auto bytes = serializeStoredShard(s, opts);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message();
  EXPECT_EQ(getU64(*bytes, 40), kShardFooterSize);
  auto p = parseShard(*bytes);
  ASSERT_TRUE(p.ok()) << p.error().message();
  expectSameContent(*p, s, MerkleHash{});
  ASSERT_TRUE(p->footer.has_value());
  const ShardFooter& f = *p->footer;
  EXPECT_EQ(f.version, 1u);
  EXPECT_EQ(f.file_info_offset, 48u);
  EXPECT_EQ(f.footer_offset, bytes->size() - 200);
  EXPECT_EQ(f.shard_creation_timestamp, 1763860000u);
  EXPECT_EQ(f.shard_key_expiry, 1763870000u);
  EXPECT_TRUE(f.chunk_hash_hmac_key.isZero());
  EXPECT_FALSE(p->hasHmacKey());
  uint64_t on_disk = 0, in_xorb = 0, materialized = 0, chunks = 0;
  for (const auto& x : s.xorbs) {
    on_disk += x.num_bytes_on_disk;
    in_xorb += x.num_bytes_in_xorb;
    chunks += x.chunks.size();
  }
  for (const auto& file : s.files) materialized += file.size();
  EXPECT_EQ(f.stored_bytes_on_disk, on_disk);
  EXPECT_EQ(f.stored_bytes, in_xorb);
  EXPECT_EQ(f.materialized_bytes, materialized);
  EXPECT_EQ(f.file_lookup_num_entry, s.files.size());
  EXPECT_EQ(f.xorb_lookup_num_entry, s.xorbs.size());
  EXPECT_EQ(f.chunk_lookup_num_entry, chunks);
  // Tables are contiguous between the CAS bookend and the footer, in this order.
  EXPECT_EQ(f.xorb_lookup_offset, f.file_lookup_offset + 12 * f.file_lookup_num_entry);
  EXPECT_EQ(f.chunk_lookup_offset, f.xorb_lookup_offset + 12 * f.xorb_lookup_num_entry);
  EXPECT_EQ(f.footer_offset, f.chunk_lookup_offset + 16 * f.chunk_lookup_num_entry);
  auto sorted = [](const auto& v) {
    return std::is_sorted(v.begin(), v.end(), [](auto& a, auto& b) { return a.key < b.key; });
  };
  EXPECT_TRUE(sorted(p->file_lookup));
  EXPECT_TRUE(sorted(p->xorb_lookup));
  EXPECT_TRUE(sorted(p->chunk_lookup));
  // File lookup indices count 48-byte records: header + terms + verification + ext.
  std::vector<uint32_t> idx;
  for (const auto& e : p->file_lookup) idx.push_back(e.index);
  std::sort(idx.begin(), idx.end());
  std::vector<uint32_t> expected_idx;
  uint32_t rec = 0;
  for (const auto& file : s.files) {
    expected_idx.push_back(rec);
    rec += 1 + 2 * static_cast<uint32_t>(file.terms.size()) + (file.sha256 ? 1 : 0);
  }
  EXPECT_EQ(idx, expected_idx);

  ShardChunkIndex index(*p);
  EXPECT_FALSE(index.keyed());
  for (size_t x = 0; x < s.xorbs.size(); ++x) {
    for (size_t c = 0; c < s.xorbs[x].chunks.size(); ++c) {
      EXPECT_EQ(index.find(s.xorbs[x].chunks[c].hash), (ChunkLocation{x, c}));
    }
  }
  std::mt19937_64 rng(99);
  EXPECT_FALSE(index.find(randomHash(rng)).has_value());
}

TEST(ShardTest, GlobalDedupShardWithHmacKey) {
  // A dedup answer: no files, chunk hashes keyed.
  Shard s = randomShard(3, true);
  s.files.clear();
  std::mt19937_64 rng(4);
  StoredShardOptions opts;
  opts.hmac_key = randomHash(rng);
  opts.creation_timestamp = 5;
  auto bytes = serializeStoredShard(s, opts);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message();
  auto p = parseShard(*bytes);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_TRUE(p->hasHmacKey());
  EXPECT_EQ(p->footer->chunk_hash_hmac_key, opts.hmac_key);
  EXPECT_EQ(p->footer->shard_key_expiry, kShardNoExpiry);
  EXPECT_TRUE(p->files.empty());
  expectSameContent(*p, s, opts.hmac_key);
  // No plain chunk hash appears anywhere in the bytes.
  for (const auto& x : s.xorbs) {
    for (const auto& c : x.chunks) {
      EXPECT_EQ(std::search(bytes->begin(), bytes->end(), c.hash.raw().begin(), c.hash.raw().end()),
                bytes->end());
    }
  }
  ShardChunkIndex index(*p);
  EXPECT_TRUE(index.keyed());
  const auto& probe = s.xorbs[1].chunks.back().hash;
  EXPECT_EQ(index.find(probe), (ChunkLocation{1, s.xorbs[1].chunks.size() - 1}));
  EXPECT_FALSE(index.find(hmacChunkHash(probe, opts.hmac_key)).has_value());
  // Chunk lookup keys are truncated keyed hashes.
  const auto& first_x = p->xorbs[0];
  bool found = false;
  for (const auto& e : p->chunk_lookup) {
    if (e.xorb_index == 0 && e.chunk_index == 0) {
      EXPECT_EQ(e.key, first_x.chunks[0].hash.word(0));
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(ShardTest, AcceptsHfJsUploadFooterWithZeroLookupCounts) {
  auto bytes = serializeUploadShard(helloShard()).value();
  putU64(bytes, 40, 200);
  const size_t footer = bytes.size();
  bytes.resize(footer + 200, 0);
  putU64(bytes, footer, 1);
  putU64(bytes, footer + 8, 48);
  putU64(bytes, footer + 16, 48 + 4 * 48 + 48);  // after the file bookend
  putU64(bytes, footer + 104, 1763860000);       // timestamp; expiry 0 as hf.js writes
  putU64(bytes, footer + 168, 19);
  putU64(bytes, footer + 176, 11);
  putU64(bytes, footer + 184, 11);
  putU64(bytes, footer + 192, footer);
  auto p = parseShard(bytes);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_TRUE(p->footer.has_value());
  EXPECT_EQ(p->footer->shard_key_expiry, 0u);
  EXPECT_EQ(p->footer->stored_bytes_on_disk, 19u);
  EXPECT_EQ(p->files.size(), 1u);
  EXPECT_EQ(p->xorbs.size(), 1u);
  EXPECT_TRUE(p->chunk_lookup.empty());
}

TEST(ShardTest, EmptyShardAndEmptyFileFlags) {
  Shard empty;
  for (bool stored : {false, true}) {
    auto bytes = stored ? serializeStoredShard(empty) : serializeUploadShard(empty);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(bytes->size(), 48u + 96u + (stored ? 200u : 0u));
    auto p = parseShard(*bytes);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_TRUE(p->files.empty() && p->xorbs.empty());
  }
  // An empty file alone keeps the verification bit it was given (xet-core sets it).
  Shard s;
  ShardFile f;
  f.flags = kFileFlagWithVerification;
  f.sha256 = MerkleHash{};
  s.files.push_back(f);
  auto p = parseShard(serializeUploadShard(s).value());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->files[0].flags, kFileFlagWithVerification | kFileFlagWithMetadataExt);
  EXPECT_TRUE(p->files[0].terms.empty());
}

TEST(ShardWriterTest, RejectsInconsistentVerification) {
  Shard s = randomShard(5, true);
  s.files[0].verification.pop_back();
  auto r = serializeUploadShard(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), EINVAL);
  s = randomShard(5, true);
  s.files[1].verification.clear();  // others have them
  EXPECT_FALSE(serializeUploadShard(s).ok());
  EXPECT_FALSE(serializeStoredShard(s).ok());
}

// --- malformed input ---------------------------------------------------------------------------

void expectRejected(const std::vector<uint8_t>& bytes, const char* needle) {
  auto p = parseShard(bytes);
  ASSERT_FALSE(p.ok()) << needle;
  EXPECT_EQ(p.error().code(), EINVAL);
  EXPECT_NE(p.error().message().find(needle), std::string::npos)
      << "expected '" << needle << "' in: " << p.error().message();
}

TEST(ShardMalformedTest, EveryTruncationIsRejected) {
  const auto upload = serializeUploadShard(randomShard(6, true)).value();
  const auto stored = serializeStoredShard(randomShard(6, true)).value();
  for (const auto* b : {&upload, &stored}) {
    for (size_t len = 0; len < b->size(); ++len) {
      EXPECT_FALSE(parseShard(std::span(*b).first(len)).ok()) << len;
    }
    EXPECT_TRUE(parseShard(*b).ok());
  }
}

TEST(ShardMalformedTest, HeaderErrors) {
  const auto good = serializeUploadShard(helloShard()).value();
  auto v = good;
  v[3] ^= 1;
  expectRejected(v, "magic");
  v = good;
  putU64(v, 32, 1);
  expectRejected(v, "header version 1");
  v = good;
  putU64(v, 40, 100);
  expectRejected(v, "footer_size 100");
  v = good;
  putU64(v, 40, 200);  // claims a footer that is not there
  EXPECT_FALSE(parseShard(v).ok());
  expectRejected(std::vector<uint8_t>(good.begin(), good.begin() + 20), "too short");
}

TEST(ShardMalformedTest, SectionErrors) {
  const auto good = serializeUploadShard(helloShard()).value();
  // Layout: header 48 | file hdr 48 | term 48 | verif 48 | ext 48 | bookend 48 | xorb 48 |
  // chunk 48 | bookend 48.
  auto v = good;
  putU32(v, 48 + 36, 1000000);
  expectRejected(v, "file entry count 2000001 exceeds");  // 2 records per term + ext
  v = good;
  putU32(v, 48 + 36, 0xffffffff);
  expectRejected(v, "exceeds");
  v = good;
  putU32(v, 288 + 36, 1000);
  expectRejected(v, "xorb chunk count 1000 exceeds");
  v = good;
  std::fill(v.begin() + 240, v.begin() + 272, 0x11);  // file bookend destroyed
  EXPECT_FALSE(parseShard(v).ok());
  v = good;
  std::fill(v.begin() + 384, v.begin() + 416, 0x22);  // CAS bookend destroyed
  expectRejected(v, "bookend");
  v = good;
  v.insert(v.end(), 48, 0);
  expectRejected(v, "trailing bytes");
  v = good;
  putU32(v, 96 + 40, 1);  // chunk range [1, 1)
  expectRejected(v, "empty or reversed chunk range");
}

TEST(ShardMalformedTest, InconsistentVerificationFlagsBetweenFiles) {
  // An empty file carrying the verification bit next to a file with a term but no entries:
  // parseable record by record, but the shard mixes the two kinds.
  const Shard s = randomShard(7, false);
  Shard two;
  ShardFile a, b;
  a.file_hash = MerkleHash{};
  b.file_hash = s.files[0].file_hash;
  a.flags = kFileFlagWithVerification;  // empty file with the bit
  b.terms = {s.files[0].terms[0]};      // file with a term, no verification
  two.files = {a, b};
  two.xorbs = s.xorbs;
  auto mixed = serializeUploadShard(two).value();
  expectRejected(mixed, "inconsistent verification flags");
}

TEST(ShardMalformedTest, FooterAndLookupErrors) {
  const Shard s = randomShard(8, true);
  const auto good = serializeStoredShard(s).value();
  const size_t fo = good.size() - 200;
  auto v = good;
  putU64(v, fo, 2);
  expectRejected(v, "footer version 2");
  v = good;
  putU64(v, fo + 192, fo - 1);
  expectRejected(v, "footer_offset");
  v = good;
  putU64(v, fo + 8, 0);
  expectRejected(v, "file_info_offset");
  v = good;
  putU64(v, fo + 16, 48);
  expectRejected(v, "cas_info_offset");
  v = good;
  putU64(v, fo + 32, 1ull << 40);
  expectRejected(v, "out of bounds");
  v = good;
  putU64(v, fo + 24, 0);
  expectRejected(v, "out of bounds");
  v = good;
  putU64(v, fo + 64, getU64(good, fo + 64) - 1);
  expectRejected(v, "chunk lookup has");
  v = good;
  putU64(v, fo + 48, getU64(good, fo + 48) + 1);
  EXPECT_FALSE(parseShard(v).ok());
  // Swap two chunk lookup rows: no longer sorted.
  const size_t cl = getU64(good, fo + 56);
  v = good;
  std::swap_ranges(v.begin() + static_cast<long>(cl), v.begin() + static_cast<long>(cl + 16),
                   v.begin() + static_cast<long>(cl + 16));
  expectRejected(v, "chunk lookup not sorted");
  // Point a chunk lookup row at the wrong chunk.
  v = good;
  putU32(v, cl + 12, 1000);
  expectRejected(v, "chunk lookup entry 0");
  // File lookup index pointing into the middle of a file.
  const size_t fl = getU64(good, fo + 24);
  v = good;
  putU32(v, fl + 8, 1);
  expectRejected(v, "file lookup entry 0");
  const size_t xl = getU64(good, fo + 40);
  v = good;
  v[xl] ^= 1;
  EXPECT_FALSE(parseShard(v).ok());
}

TEST(ShardMalformedTest, RandomCorruptionNeverCrashes) {
  const auto good = serializeStoredShard(randomShard(9, true)).value();
  std::mt19937 rng(10);
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    auto v = good;
    for (int k = 0; k < 3; ++k) v[rng() % v.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    rejected += parseShard(v).ok() ? 0 : 1;
  }
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace hfm::xet
