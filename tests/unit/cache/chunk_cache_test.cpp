#include "hfm/cache/chunk_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "hfm/cache/single_flight.h"

namespace hfm::cache {
namespace {

std::vector<uint8_t> bytesOf(const ChunkData& d) {
  return d ? std::vector<uint8_t>(d->begin(), d->end()) : std::vector<uint8_t>{};
}

namespace fs = std::filesystem;

// Documented header size of an entry holding one chunk: fixed part, one slot, checksum.
constexpr uint64_t kHeader = 48 + 12 + 8;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("hfm-cache-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

xet::MerkleHash hashFor(uint8_t seed) {
  xet::MerkleHash::Bytes b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(seed * 31 + i);
  return xet::MerkleHash(b);
}

std::vector<uint8_t> bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

fs::path entryPath(const fs::path& root, const ChunkKey& key) {
  const std::string hex = key.xorb.hex();
  return root / hex.substr(0, 2) /
         (hex + "." + std::to_string(key.index) + "-" + std::to_string(key.index + 1));
}

uint64_t diskBytes(const fs::path& root) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().filename() != ".lock") total += e.file_size();
  }
  return total;
}

TEST(DiskChunkCacheTest, PutGetRoundTrip) {
  TempDir dir;
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  const ChunkKey key{hashFor(1), 7};
  const auto data = bytes(5000, 1);
  EXPECT_EQ(cache->get(key), nullptr);
  ASSERT_TRUE(cache->put(key, data));
  auto got = cache->get(key);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(bytesOf(got), data);
  EXPECT_EQ(cache->peekSize(key), 5000u);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(1), 8}), nullptr);  // same xorb, other chunk
  EXPECT_EQ(cache->get(ChunkKey{hashFor(2), 7}), nullptr);
  EXPECT_EQ(fs::file_size(entryPath(dir.path(), key)), kHeader + 5000);
  const auto s = cache->stats();
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.used_bytes, kHeader + 5000);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 3u);
}

TEST(DiskChunkCacheTest, FlippedByteIsDetectedDeletedAndMissed) {
  TempDir dir;
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  const ChunkKey key{hashFor(3), 0};
  const auto data = bytes(4096, 2);
  ASSERT_TRUE(cache->put(key, data));
  const fs::path p = entryPath(dir.path(), key);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(kHeader + 1000));
    const char flipped = static_cast<char>(data[1000] ^ 0x01);
    f.write(&flipped, 1);
  }
  EXPECT_EQ(cache->get(key), nullptr);
  EXPECT_FALSE(fs::exists(p));
  EXPECT_EQ(cache->stats().corrupt, 1u);
  EXPECT_EQ(cache->stats().used_bytes, 0u);
  EXPECT_FALSE(cache->peekSize(key).has_value());
  // Refetched data can be stored again and is served.
  ASSERT_TRUE(cache->put(key, data));
  ASSERT_NE(cache->get(key), nullptr);
  EXPECT_EQ(bytesOf(cache->get(key)), data);
}

TEST(DiskChunkCacheTest, TruncatedEntryIsAMissAndCorruptHeaderIsDroppedAtOpen) {
  TempDir dir;
  const ChunkKey truncated{hashFor(4), 1};
  const ChunkKey wrong_index{hashFor(4), 2};
  {
    auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
    ASSERT_TRUE(cache->put(truncated, bytes(3000, 3)));
    ASSERT_TRUE(cache->put(wrong_index, bytes(3000, 4)));
    fs::resize_file(entryPath(dir.path(), truncated), kHeader + 2999);
    EXPECT_EQ(cache->get(truncated), nullptr);
    EXPECT_EQ(cache->stats().corrupt, 1u);
    EXPECT_FALSE(fs::exists(entryPath(dir.path(), truncated)));
  }
  {  // header says another first chunk: must not be served under this key after a restart
    std::fstream f(entryPath(dir.path(), wrong_index),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);  // first-index field of the header
    const char other = 9;
    f.write(&other, 1);
  }
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  EXPECT_EQ(cache->get(wrong_index), nullptr);
  EXPECT_EQ(cache->stats().entries, 0u);
  EXPECT_EQ(cache->stats().used_bytes, 0u);
  EXPECT_FALSE(fs::exists(entryPath(dir.path(), wrong_index)));
}

TEST(DiskChunkCacheTest, RangeIsOneFileServingEachChunk) {
  TempDir dir;
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  const auto a = bytes(5000, 11);
  const auto b = bytes(7000, 12);
  const auto c = bytes(100, 13);
  const std::vector<std::span<const uint8_t>> range{a, b, c};
  ASSERT_TRUE(cache->putRange(hashFor(10), 4, range));
  const fs::path file = dir.path() / hashFor(10).hex().substr(0, 2) / (hashFor(10).hex() + ".4-7");
  ASSERT_TRUE(fs::exists(file));
  const uint64_t header = 48 + 3 * 12 + 8;
  EXPECT_EQ(fs::file_size(file), header + 12'100);
  EXPECT_EQ(diskBytes(dir.path()), header + 12'100);
  EXPECT_EQ(cache->stats().used_bytes, header + 12'100);
  EXPECT_EQ(cache->stats().entries, 3u);
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(10), 4})), a);
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(10), 5})), b);
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(10), 6})), c);
  EXPECT_EQ(cache->peekSize(ChunkKey{hashFor(10), 5}), 7000u);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(10), 3}), nullptr);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(10), 7}), nullptr);

  // A flipped byte in one chunk drops the whole entry (it is one file).
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(header + 5000 + 10));  // inside chunk 5
    const char flipped = static_cast<char>(b[10] ^ 0x40);
    f.write(&flipped, 1);
  }
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(10), 4})), a);  // its own checksum still holds
  EXPECT_EQ(cache->get(ChunkKey{hashFor(10), 5}), nullptr);
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(cache->get(ChunkKey{hashFor(10), 6}), nullptr);
  EXPECT_EQ(cache->stats().used_bytes, 0u);
}

TEST(DiskChunkCacheTest, OverlappingRangesServeFromTheNewestAndFallBackToTheOlder) {
  TempDir dir;
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  const auto c0 = bytes(1000, 20);
  const auto c1 = bytes(1100, 21);
  const auto c2 = bytes(1200, 22);
  const std::vector<std::span<const uint8_t>> older{c0, c1};  // chunks 0-1
  const std::vector<std::span<const uint8_t>> newer{c1, c2};  // chunks 1-2
  ASSERT_TRUE(cache->putRange(hashFor(11), 0, older));
  ASSERT_TRUE(cache->putRange(hashFor(11), 1, newer));
  EXPECT_EQ(cache->stats().entries, 3u);
  const std::string hex = hashFor(11).hex();
  const fs::path newer_file = dir.path() / hex.substr(0, 2) / (hex + ".1-3");
  // Corrupt the newer entry: chunk 1 is then served from the older one after the drop.
  {
    std::fstream f(newer_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(48 + 2 * 12 + 8 + 5));
    const char flipped = static_cast<char>(c1[5] ^ 0x01);
    f.write(&flipped, 1);
  }
  EXPECT_EQ(cache->get(ChunkKey{hashFor(11), 1}), nullptr);      // newest is corrupt: dropped
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(11), 1})), c1);  // from the older entry
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(11), 0})), c0);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(11), 2}), nullptr);
}

TEST(DiskChunkCacheTest, OldOneFilePerChunkLayoutIsRemovedAtOpen) {
  TempDir dir;
  const std::string hex = hashFor(12).hex();
  fs::create_directories(dir.path() / hex.substr(0, 2));
  { std::ofstream(dir.path() / hex.substr(0, 2) / (hex + ".3")) << std::string(200, 'x'); }
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  EXPECT_FALSE(fs::exists(dir.path() / hex.substr(0, 2) / (hex + ".3")));
  EXPECT_EQ(cache->stats().used_bytes, 0u);
}

TEST(DiskChunkCacheTest, BoundRespectedWhileInsertingThreeTimesTheBound) {
  TempDir dir;
  constexpr uint64_t kCapacity = 200'000;
  auto cache = openDiskChunkCache(dir.path(), kCapacity).value();
  // Sequential phase: the directory itself never exceeds the bound after any insert.
  for (uint32_t i = 0; i < 60; ++i) {
    ASSERT_TRUE(cache->put(ChunkKey{hashFor(20), i}, bytes(10'000 - kHeader, i)));
    ASSERT_LE(diskBytes(dir.path()), kCapacity);
  }
  EXPECT_EQ(cache->stats().entries, 20u);
  // Concurrent phase: 4 writers insert 3x the bound again. The accounted total (an upper
  // bound of the bytes on disk, temp files included) never exceeds the bound.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> max_seen{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      const uint64_t used = cache->stats().used_bytes;
      uint64_t prev = max_seen.load();
      while (used > prev && !max_seen.compare_exchange_weak(prev, used)) {
      }
    }
  });
  std::vector<std::thread> writers;
  for (uint32_t t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (uint32_t i = 0; i < 15; ++i) {
        const auto data = bytes(10'000 - kHeader, t * 100 + i);
        EXPECT_TRUE(cache->put(ChunkKey{hashFor(static_cast<uint8_t>(t)), i}, data));
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  watcher.join();
  EXPECT_LE(max_seen.load(), kCapacity);
  EXPECT_LE(diskBytes(dir.path()), kCapacity);
  const auto s = cache->stats();
  EXPECT_EQ(s.used_bytes, diskBytes(dir.path()));
  EXPECT_EQ(s.entries, 20u);
  EXPECT_EQ(s.evictions, 100u);  // 40 in each phase + the 20 left by the first phase
}

TEST(DiskChunkCacheTest, ConcurrentReservationsNeverOvercommit) {
  TempDir dir;
  constexpr uint64_t kCapacity = 2 * 50'000;  // room for two entries only
  auto cache = openDiskChunkCache(dir.path(), kCapacity).value();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> max_seen{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      const uint64_t used = cache->stats().used_bytes;
      uint64_t prev = max_seen.load();
      while (used > prev && !max_seen.compare_exchange_weak(prev, used)) {
      }
    }
  });
  std::vector<std::thread> writers;
  for (uint32_t t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      const auto data = bytes(50'000 - kHeader, t);
      for (uint32_t i = 0; i < 20; ++i) {
        EXPECT_TRUE(cache->put(ChunkKey{hashFor(static_cast<uint8_t>(30 + t)), i}, data));
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  watcher.join();
  EXPECT_LE(max_seen.load(), kCapacity);
  EXPECT_LE(diskBytes(dir.path()), kCapacity);
  EXPECT_EQ(cache->stats().used_bytes, diskBytes(dir.path()));
}

TEST(DiskChunkCacheTest, EvictsLeastRecentlyUsed) {
  TempDir dir;
  auto cache = openDiskChunkCache(dir.path(), 3 * 1000).value();
  const auto data = bytes(1000 - kHeader, 5);
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(cache->put(ChunkKey{hashFor(6), i}, data));
  ASSERT_NE(cache->get(ChunkKey{hashFor(6), 0}), nullptr);  // 1 is now the oldest
  ASSERT_TRUE(cache->put(ChunkKey{hashFor(6), 3}, data));
  EXPECT_NE(cache->get(ChunkKey{hashFor(6), 0}), nullptr);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(6), 1}), nullptr);
  EXPECT_NE(cache->get(ChunkKey{hashFor(6), 2}), nullptr);
  EXPECT_NE(cache->get(ChunkKey{hashFor(6), 3}), nullptr);
  // Larger than the whole capacity: not cached, nothing evicted.
  ASSERT_TRUE(cache->put(ChunkKey{hashFor(6), 9}, bytes(5000, 6)));
  EXPECT_EQ(cache->get(ChunkKey{hashFor(6), 9}), nullptr);
  EXPECT_EQ(cache->stats().entries, 3u);
}

TEST(DiskChunkCacheTest, RestartRebuildsIndexAndCleansTemp) {
  TempDir dir;
  const auto a = bytes(2000, 7);
  const auto b = bytes(3000, 8);
  {
    auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
    ASSERT_TRUE(cache->put(ChunkKey{hashFor(7), 0}, a));
    ASSERT_TRUE(cache->put(ChunkKey{hashFor(8), 5}, b));
    // While open, a second opener is refused.
    auto second = openDiskChunkCache(dir.path(), 1 << 20);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code(), EBUSY);
  }
  // Leftovers of a crash: a temp file and junk names.
  { std::ofstream(dir.path() / "tmp" / "123-4") << "partial"; }
  { std::ofstream(dir.path() / hashFor(7).hex().substr(0, 2) / "garbage") << "x"; }
  auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
  EXPECT_TRUE(fs::is_empty(dir.path() / "tmp"));
  EXPECT_FALSE(fs::exists(dir.path() / hashFor(7).hex().substr(0, 2) / "garbage"));
  EXPECT_EQ(cache->stats().entries, 2u);
  EXPECT_EQ(cache->stats().used_bytes, 2 * kHeader + 5000);
  ASSERT_NE(cache->get(ChunkKey{hashFor(7), 0}), nullptr);
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(7), 0})), a);
  EXPECT_EQ(bytesOf(cache->get(ChunkKey{hashFor(8), 5})), b);
}

TEST(DiskChunkCacheTest, RestartWithSmallerBoundEvictsOldest) {
  TempDir dir;
  const auto data = bytes(1000 - kHeader, 9);
  {
    auto cache = openDiskChunkCache(dir.path(), 1 << 20).value();
    for (uint32_t i = 0; i < 5; ++i) {
      ASSERT_TRUE(cache->put(ChunkKey{hashFor(9), i}, data));
      // Distinct mtimes so the LRU order survives the restart.
      fs::last_write_time(entryPath(dir.path(), ChunkKey{hashFor(9), i}),
                          fs::file_time_type::clock::now() - std::chrono::seconds(100 - i));
    }
  }
  auto cache = openDiskChunkCache(dir.path(), 2000).value();
  EXPECT_EQ(cache->stats().entries, 2u);
  EXPECT_LE(diskBytes(dir.path()), 2000u);
  EXPECT_NE(cache->get(ChunkKey{hashFor(9), 3}), nullptr);
  EXPECT_NE(cache->get(ChunkKey{hashFor(9), 4}), nullptr);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(9), 0}), nullptr);
}

TEST(ChunkCacheTest, OpenFallsBackToMemoryWhenDirectoryBusyOrDisabled) {
  TempDir dir;
  ChunkCacheOptions options;
  options.cache_dir = dir.path();
  options.capacity_bytes = 1 << 20;
  options.memory_capacity_bytes = 4096;
  auto first = openChunkCache(options).value();
  ASSERT_TRUE(fs::exists(dir.path() / "chunks" / ".lock"));
  auto second = openChunkCache(options).value();  // busy → memory
  EXPECT_EQ(second->stats().capacity_bytes, 4096u);
  options.disk = false;
  auto mem = openChunkCache(options).value();
  EXPECT_EQ(mem->stats().capacity_bytes, 4096u);
}

TEST(MemoryChunkCacheTest, PutGetAndByteBound) {
  auto cache = makeMemoryChunkCache(10'000);
  for (uint32_t i = 0; i < 30; ++i) {
    ASSERT_TRUE(cache->put(ChunkKey{hashFor(10), i}, bytes(1000, i)));
    EXPECT_LE(cache->stats().used_bytes, 10'000u);
  }
  EXPECT_EQ(cache->stats().entries, 10u);
  EXPECT_EQ(cache->get(ChunkKey{hashFor(10), 0}), nullptr);
  auto got = cache->get(ChunkKey{hashFor(10), 29});
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(bytesOf(got), bytes(1000, 29));
}

TEST(SingleFlightTest, EightThreadsShareOneComputation) {
  SingleFlight<ChunkKey, int, ChunkKeyHash> flight;
  constexpr int kThreads = 8;
  std::atomic<int> calls{0};
  std::atomic<int> entered{0};
  std::vector<std::thread> threads;
  std::vector<int> results(kThreads, -1);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      entered.fetch_add(1);
      auto r = flight.run(ChunkKey{hashFor(11), 3}, [&]() -> Result<int> {
        calls.fetch_add(1);
        // Hold the flight until every thread has arrived (bounded wait).
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (entered.load() < kThreads && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return 42;
      });
      results[static_cast<size_t>(t)] = r.ok() ? *r : -2;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(calls.load(), 1);
  for (int r : results) EXPECT_EQ(r, 42);
  EXPECT_EQ(flight.inFlight(), 0u);
  // A later request starts a new flight, and errors are shared too.
  auto err = flight.run(ChunkKey{hashFor(11), 3}, [] { return Result<int>(Error::io("boom")); });
  EXPECT_FALSE(err.ok());
  EXPECT_EQ(err.error().code(), EIO);
}

}  // namespace
}  // namespace hfm::cache
