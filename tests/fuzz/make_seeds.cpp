// Writes the seed corpus of the Xet fuzz targets: <out>/<target>/<name> for each target, small
// valid inputs of every form (plus a few near-valid ones) so fuzzing starts deep in the parsers.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "hfm/xet/compression.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/shard.h"
#include "hfm/xet/xorb.h"

using namespace hfm::xet;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> sample(size_t n, int kind, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    switch (kind) {
      case 0:
        v[i] = static_cast<uint8_t>("hello xet world "[i % 16]);
        break;
      case 1:
        v[i] = static_cast<uint8_t>(rng());
        break;
      default: {  // float32-like lanes
        const float f = std::sin(static_cast<float>(i / 4) * 0.01f);
        uint8_t b[4];
        std::memcpy(b, &f, 4);
        v[i] = b[i % 4];
      }
    }
  }
  return v;
}

SerializedXorb buildXorb(uint32_t seed, size_t chunks) {
  XorbBuilder b;
  for (size_t i = 0; i < chunks; ++i) {
    const auto data =
        sample(200 + 97 * i, static_cast<int>(i % 3), seed + static_cast<uint32_t>(i));
    if (!b.add(data).ok()) std::abort();
  }
  return b.finish();
}

Shard shardFor(const std::vector<SerializedXorb>& xorbs) {
  Shard s;
  for (const auto& x : xorbs) {
    ShardXorb sx;
    sx.hash = x.hash;
    uint32_t off = 0;
    for (size_t i = 0; i < x.chunks.size(); ++i) {
      const auto size = static_cast<uint32_t>(x.chunks[i].size);
      sx.chunks.push_back({x.chunks[i].hash, off, size, i == 0 ? kChunkFlagGlobalDedup : 0u});
      off += size;
    }
    sx.num_bytes_in_xorb = off;
    sx.num_bytes_on_disk = static_cast<uint32_t>(x.body.size());
    s.xorbs.push_back(sx);

    ShardFile f;
    f.file_hash = fileHash(x.chunks);
    const auto n = static_cast<uint32_t>(x.chunks.size());
    f.terms.push_back({x.hash, 0, off, 0, n});
    std::vector<MerkleHash> hashes;
    for (const auto& c : x.chunks) hashes.push_back(c.hash);
    f.verification.push_back(verificationHash(hashes));
    f.sha256 = x.hash;
    s.files.push_back(f);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path chunks = out / "chunk_decode_fuzz";
  const fs::path xorbs = out / "xorb_parse_fuzz";
  const fs::path shards = out / "shard_parse_fuzz";

  // Chunk streams, one per scheme, then mixed.
  int n = 0;
  for (auto scheme :
       {CompressionScheme::kNone, CompressionScheme::kLz4, CompressionScheme::kByteGrouping4Lz4}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<uint8_t> s;
      appendSerializedChunk(sample(300 + static_cast<size_t>(kind), kind, 1), scheme, s);
      write(chunks, "chunk" + std::to_string(n++), s);
    }
  }
  const auto x1 = buildXorb(10, 1);
  const auto x5 = buildXorb(20, 5);
  const auto x9 = buildXorb(30, 9);
  write(chunks, "stream5", x5.body);
  write(chunks, "stream9_footer", x9.storedForm());

  // Xorbs: upload bodies, stored forms, legacy V0 footer.
  write(xorbs, "upload1", x1.body);
  write(xorbs, "upload5", x5.body);
  write(xorbs, "stored1", x1.storedForm());
  write(xorbs, "stored9", x9.storedForm(0xdeadbeef));
  {
    std::vector<uint8_t> v0 = x5.body;
    const char ident[] = "XETBLOB";
    v0.insert(v0.end(), ident, ident + 7);
    v0.push_back(0);
    v0.insert(v0.end(), x5.hash.raw().begin(), x5.hash.raw().end());
    auto u32 = [&](uint32_t x) {
      for (int i = 0; i < 4; ++i) v0.push_back(static_cast<uint8_t>(x >> (8 * i)));
    };
    u32(static_cast<uint32_t>(x5.chunks.size()));
    for (uint32_t b : x5.chunk_boundary_offsets) u32(b);
    for (const auto& c : x5.chunks) v0.insert(v0.end(), c.hash.raw().begin(), c.hash.raw().end());
    v0.insert(v0.end(), 16, 0);
    u32(60 + 36 * static_cast<uint32_t>(x5.chunks.size()));
    write(xorbs, "stored5_v0", v0);
  }

  // Shards: upload form, stored form, HMAC'd dedup answer, hf.js-like footer.
  const Shard one = shardFor({x1});
  const Shard three = shardFor({x1, x5, x9});
  write(shards, "upload1", serializeUploadShard(one).value());
  write(shards, "upload3", serializeUploadShard(three).value());
  write(shards, "stored3",
        serializeStoredShard(three, {MerkleHash{}, 1700000000, 1800000000}).value());
  Shard dedup = three;
  dedup.files.clear();
  write(shards, "dedup_hmac",
        serializeStoredShard(dedup, {x1.hash, 1700000000, 1700003600}).value());
  {
    auto v = serializeUploadShard(one).value();
    const size_t fo = v.size();
    v[40] = 200;
    v.resize(fo + 200, 0);
    auto u64 = [&](size_t at, uint64_t x) {
      for (size_t i = 0; i < 8; ++i) v[at + i] = static_cast<uint8_t>(x >> (8 * i));
    };
    u64(fo, 1);
    u64(fo + 8, 48);
    u64(fo + 16, 48 + 48 * 4 + 48);
    u64(fo + 192, fo);
    write(shards, "hfjs_footer", v);
  }
  std::printf("seed corpus written to %s\n", out.c_str());
  return 0;
}
