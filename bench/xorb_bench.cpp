// Xorb codec throughput: chunk-stream decoding (LZ4 frame, BG4; into caller storage and through
// the std::vector API), BG4 split/regroup, xorb build and full xorb parse (decode + BLAKE3 chunk
// hashes + merkle root).
//
// Data model: 16 MiB in ~64 KiB chunks mixing what Hub repos hold — float32/bf16 tensor
// weights (lane-structured, BG4 territory), text/JSON (LZ4 territory) and already-compressed
// bytes (stored raw). Throughput is reported over uncompressed bytes.
#include <benchmark/benchmark.h>
#include <lz4.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "hfm/xet/compression.h"
#include "hfm/xet/xorb.h"

namespace hfm::xet {
namespace {

constexpr size_t kChunk = size_t{64} * 1024;
constexpr size_t kTotal = size_t{16} * 1024 * 1024;

enum class Kind { kTensor, kText, kRandom, kMixed };

std::vector<uint8_t> makeData(Kind kind, size_t n) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const char* words[] = {R"({"id": )", R"("name": ")",  "model",  "weight", R"(", )",
                         "layer.",     "attention",     "0.0125", "true",   "}\n",
                         "bias",       R"("shape": [)", "768, "};
  std::vector<uint8_t> v;
  v.reserve(n + 64);
  size_t block = 0;
  while (v.size() < n) {
    Kind k = kind;
    if (kind == Kind::kMixed) k = static_cast<Kind>(block++ % 5 < 3 ? 0 : (block % 2 ? 1 : 2));
    const size_t end = std::min(n, v.size() + size_t{256} * 1024);
    while (v.size() < end) {
      switch (k) {
        case Kind::kTensor: {
          const float f = normal(rng);
          uint8_t b[4];
          std::memcpy(b, &f, 4);
          v.insert(v.end(), b, b + 4);
          break;
        }
        case Kind::kText: {
          const char* w = words[rng() % 13];
          v.insert(v.end(), w, w + std::strlen(w));
          break;
        }
        default:
          v.push_back(static_cast<uint8_t>(rng()));
      }
    }
  }
  v.resize(n);
  return v;
}

// CDC-like chunk sizes: 8 KiB .. 128 KiB, mean ~64 KiB (block boundaries fall mid-chunk).
std::vector<uint8_t> serializeAll(const std::vector<uint8_t>& data, CompressionScheme scheme) {
  std::mt19937 rng(99);
  std::vector<uint8_t> out;
  for (size_t pos = 0; pos < data.size();) {
    const size_t len = std::min<size_t>(8192 + rng() % (131072 - 8192 * 2), data.size() - pos);
    appendSerializedChunk(std::span(data).subspan(pos, len), scheme, out);
    pos += len;
  }
  return out;
}

// Decodes every chunk of the stream the way the read path should: parse each header, decode
// into caller-provided storage that is never zero-filled (decodeChunkPayloadInto).
void decodeStream(benchmark::State& state, Kind kind, CompressionScheme scheme) {
  const auto data = makeData(kind, kTotal);
  const auto stream = serializeAll(data, scheme);
  const auto out = std::make_unique_for_overwrite<uint8_t[]>(data.size());
  for (auto _ : state) {
    size_t produced = 0;
    for (size_t pos = 0; pos < stream.size();) {
      const auto rest = std::span(stream).subspan(pos);
      auto header = parseChunkHeader(rest);
      if (!header) return state.SkipWithError(header.error().message().c_str());
      const auto payload = rest.subspan(kChunkHeaderSize, header->compressed_size);
      const std::span<uint8_t> dst(out.get() + produced, header->uncompressed_size);
      if (auto st = decodeChunkPayloadInto(*header, payload, dst); !st) {
        return state.SkipWithError(st.error().message().c_str());
      }
      produced += header->uncompressed_size;
      pos += kChunkHeaderSize + header->compressed_size;
    }
    benchmark::DoNotOptimize(out.get());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
  state.counters["ratio"] = static_cast<double>(stream.size()) / static_cast<double>(data.size());
}

void BM_DecodeLz4Text(benchmark::State& s) {
  decodeStream(s, Kind::kText, CompressionScheme::kLz4);
}
void BM_DecodeLz4Tensor(benchmark::State& s) {
  decodeStream(s, Kind::kTensor, CompressionScheme::kLz4);
}
void BM_DecodeBg4Tensor(benchmark::State& s) {
  decodeStream(s, Kind::kTensor, CompressionScheme::kByteGrouping4Lz4);
}
void BM_DecodeAutoMixed(benchmark::State& s) {
  decodeStream(s, Kind::kMixed, CompressionScheme::kAuto);
}
void BM_DecodeNoneRandom(benchmark::State& s) {
  decodeStream(s, Kind::kRandom, CompressionScheme::kNone);
}
BENCHMARK(BM_DecodeLz4Text)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeLz4Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeBg4Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeAutoMixed)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeNoneRandom)->Unit(benchmark::kMillisecond);

// The same stream through decodeChunks, which appends to a std::vector (hf-local-hub, xorb
// parsing): growing the vector zero-fills each chunk's bytes before the decoder writes them.
void BM_DecodeChunksLz4Text(benchmark::State& state) {
  const auto data = makeData(Kind::kText, kTotal);
  const auto stream = serializeAll(data, CompressionScheme::kLz4);
  std::vector<uint8_t> out;
  out.reserve(data.size());
  for (auto _ : state) {
    out.clear();
    auto sizes = decodeChunks(stream, out);
    if (!sizes.ok()) return state.SkipWithError(sizes.error().message().c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_DecodeChunksLz4Text)->Unit(benchmark::kMillisecond);

// The floor under BM_DecodeLz4Text: liblz4's block decoder alone (LZ4_decompress_safe) on the
// very blocks of that stream, without frame parsing or chunk headers.
void BM_Lz4BlocksOnlyText(benchmark::State& state) {
  const auto data = makeData(Kind::kText, kTotal);
  const auto stream = serializeAll(data, CompressionScheme::kLz4);
  struct Block {
    size_t src;
    int len;
    int out;
  };
  std::vector<Block> blocks;
  for (size_t pos = 0; pos < stream.size();) {
    auto h = parseChunkHeader(std::span(stream).subspan(pos));
    if (!h) return state.SkipWithError(h.error().message().c_str());
    const size_t payload = pos + kChunkHeaderSize;
    if (h->scheme == CompressionScheme::kLz4) {
      // Our frames: 7-byte header, then (u32 length, bytes)... up to a zero end mark.
      size_t in = payload + 7;
      size_t left = h->uncompressed_size;
      while (left > 0) {
        uint32_t word = 0;
        std::memcpy(&word, stream.data() + in, 4);
        const int out = static_cast<int>(std::min<size_t>(left, 65536));
        if ((word & 0x80000000u) == 0) blocks.push_back({in + 4, static_cast<int>(word), out});
        in += 4 + (word & 0x7FFFFFFFu);
        left -= static_cast<size_t>(out);
      }
    }
    pos = payload + h->compressed_size;
  }
  std::vector<char> out(kTotal);
  size_t decoded = 0;
  for (auto _ : state) {
    decoded = 0;
    for (const auto& b : blocks) {
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(stream.data() + b.src),
                                        out.data() + decoded, b.len, b.out);
      if (n != b.out) return state.SkipWithError("LZ4_decompress_safe failed");
      decoded += static_cast<size_t>(n);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(decoded));
}
BENCHMARK(BM_Lz4BlocksOnlyText)->Unit(benchmark::kMillisecond);

void BM_Bg4Regroup(benchmark::State& state) {
  const auto src = makeData(Kind::kTensor, 131072 + 3);
  std::vector<uint8_t> dst(src.size());
  for (auto _ : state) {
    bg4Regroup(src, dst);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(src.size()));
}
BENCHMARK(BM_Bg4Regroup);

void BM_Bg4Split(benchmark::State& state) {
  const auto src = makeData(Kind::kTensor, 131072 + 3);
  std::vector<uint8_t> dst(src.size());
  for (auto _ : state) {
    bg4Split(src, dst);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(src.size()));
}
BENCHMARK(BM_Bg4Split);

void BM_ChooseScheme(benchmark::State& state) {
  const auto src = makeData(Kind::kMixed, kChunk);
  for (auto _ : state) benchmark::DoNotOptimize(chooseCompressionScheme(src));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(src.size()));
}
BENCHMARK(BM_ChooseScheme);

// Xorb build from pre-hashed chunks: the compression cost of an upload.
void BM_XorbBuild(benchmark::State& state) {
  const auto scheme = static_cast<CompressionScheme>(state.range(0));
  const auto data = makeData(Kind::kMixed, kTotal);
  std::vector<MerkleHash> hashes;
  for (size_t pos = 0; pos < data.size(); pos += kChunk) {
    hashes.push_back(chunkHash(std::span(data).subspan(pos, std::min(kChunk, data.size() - pos))));
  }
  size_t body = 0;
  for (auto _ : state) {
    XorbBuilder b(scheme);
    for (size_t pos = 0, i = 0; pos < data.size(); pos += kChunk, ++i) {
      if (!b.add(std::span(data).subspan(pos, std::min(kChunk, data.size() - pos)), hashes[i])
               .ok()) {
        state.SkipWithError("add failed");
      }
    }
    auto x = b.finish();
    body = x.body.size();
    benchmark::DoNotOptimize(x.hash);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
  state.counters["ratio"] = static_cast<double>(body) / static_cast<double>(data.size());
}
BENCHMARK(BM_XorbBuild)
    ->Arg(static_cast<int>(CompressionScheme::kLz4))
    ->Arg(static_cast<int>(CompressionScheme::kByteGrouping4Lz4))
    ->Arg(static_cast<int>(CompressionScheme::kAuto))
    ->Unit(benchmark::kMillisecond);

// What a CAS server does per upload: decode every chunk, hash it, recompute the merkle root.
void BM_ParseXorb(benchmark::State& state) {
  const auto data = makeData(Kind::kMixed, kTotal);
  XorbBuilder b;
  for (size_t pos = 0; pos < data.size(); pos += kChunk) {
    (void)b.add(std::span(data).subspan(pos, std::min(kChunk, data.size() - pos)));
  }
  const auto x = b.finish();
  for (auto _ : state) {
    auto p = verifyXorb(x.body, x.hash);
    if (!p.ok()) state.SkipWithError(p.error().message().c_str());
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_ParseXorb)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hfm::xet

BENCHMARK_MAIN();
