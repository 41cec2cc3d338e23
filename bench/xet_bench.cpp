// Throughput of the Xet hashing pipeline stages, single-threaded, on random data:
// content-defined chunking, keyed BLAKE3 chunk hashing, and incremental merkle aggregation.
// Run: build/bench/xet_bench [--benchmark_filter=...]; bench/run-hash-bench.sh compares the
// BLAKE3 figure with Debian's b3sum.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "hfm/xet/chunker.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/merkle_hash.h"

namespace {

using hfm::xet::ChunkInfo;

const std::vector<uint8_t>& randomData() {
  static const std::vector<uint8_t> data = [] {
    std::vector<uint8_t> out(64 << 20);  // larger than the L2 cache, like a real file
    std::mt19937_64 rng(1);
    for (size_t i = 0; i < out.size(); i += 8) {
      const uint64_t v = rng();
      for (size_t b = 0; b < 8; ++b) out[i + b] = static_cast<uint8_t>(v >> (8 * b));
    }
    return out;
  }();
  return data;
}

void setBytes(benchmark::State& state, size_t bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes_per_iteration));
}

// Content-defined chunking of 64 MiB, fed in 8 MiB slices (as the hash command reads).
void BM_Chunking(benchmark::State& state) {
  const auto& data = randomData();
  const auto feed = static_cast<size_t>(state.range(0));
  std::vector<size_t> cuts;
  cuts.reserve(data.size() / 8192);
  for (auto _ : state) {
    hfm::xet::Chunker chunker;
    cuts.clear();
    for (size_t pos = 0; pos < data.size(); pos += feed) {
      chunker.update(std::span(data).subspan(pos, std::min(feed, data.size() - pos)), cuts);
    }
    benchmark::DoNotOptimize(chunker.finish());
    benchmark::DoNotOptimize(cuts.data());
  }
  setBytes(state, data.size());
  state.counters["chunks"] = static_cast<double>(cuts.size() + 1);
}
BENCHMARK(BM_Chunking)->Arg(8 << 20)->Arg(64 << 10)->Unit(benchmark::kMillisecond);

// Keyed BLAKE3 (the chunk hash) over 64 KiB pieces, the typical chunk size.
void BM_ChunkHashBlake3Keyed(benchmark::State& state) {
  const auto& data = randomData();
  const auto piece = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    for (size_t pos = 0; pos + piece <= data.size(); pos += piece) {
      benchmark::DoNotOptimize(hfm::xet::chunkHash(std::span(data).subspan(pos, piece)));
    }
  }
  setBytes(state, data.size() / piece * piece);
}
BENCHMARK(BM_ChunkHashBlake3Keyed)->Arg(64 << 10)->Arg(128 << 10)->Unit(benchmark::kMillisecond);

// Keyed BLAKE3 over the whole buffer in one call: the library's single-thread ceiling.
void BM_Blake3KeyedOneShot(benchmark::State& state) {
  const auto& data = randomData();
  for (auto _ : state) {
    benchmark::DoNotOptimize(hfm::xet::blake3Keyed(hfm::xet::kDataKey, data));
  }
  setBytes(state, data.size());
}
BENCHMARK(BM_Blake3KeyedOneShot)->Unit(benchmark::kMillisecond);

// Chunk + hash + merkle: the whole single-threaded file-hash computation.
void BM_FileHashSingleThread(benchmark::State& state) {
  const auto& data = randomData();
  for (auto _ : state) {
    hfm::xet::MerkleBuilder builder;
    for (const auto& c : hfm::xet::chunkAndHash(data)) builder.add(c);
    benchmark::DoNotOptimize(builder.fileHash());
  }
  setBytes(state, data.size());
}
BENCHMARK(BM_FileHashSingleThread)->Unit(benchmark::kMillisecond);

// Incremental merkle over leaves standing for 64 KiB chunks; bytes = the data they describe.
void BM_MerkleIncremental(benchmark::State& state) {
  const auto leaves_count = static_cast<size_t>(state.range(0));
  std::vector<ChunkInfo> leaves(leaves_count);
  std::mt19937_64 rng(2);
  for (auto& leaf : leaves) {
    hfm::xet::MerkleHash::Bytes raw{};
    for (auto& b : raw) b = static_cast<uint8_t>(rng());
    leaf = {hfm::xet::MerkleHash(raw), 65536};
  }
  for (auto _ : state) {
    hfm::xet::MerkleBuilder builder;
    for (const auto& leaf : leaves) builder.add(leaf);
    benchmark::DoNotOptimize(builder.root());
  }
  setBytes(state, leaves_count * 65536);
  state.counters["leaves/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(leaves_count),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MerkleIncremental)->Arg(16384)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
