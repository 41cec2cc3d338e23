#include "hfm/cache/chunk_fetcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "hfm/xet/compression.h"
#include "hfm/xet/hashing.h"

namespace hfm::cache {
namespace {

namespace fs = std::filesystem;
using xet::ChunkRange;
using xet::FetchEntry;
using xet::FetchRange;
using xet::InclusiveByteRange;
using xet::MerkleHash;
using xet::ReconstructionPlan;

// A xorb as a CAS stores it: serialized chunks and their boundaries.
struct FakeXorb {
  MerkleHash hash;
  std::vector<std::vector<uint8_t>> chunks;  // decoded
  std::vector<uint8_t> serialized;
  std::vector<uint64_t> starts;  // serialized start of chunk k; starts[n] = size
};

struct FakeTerm {
  size_t xorb;
  ChunkRange chunks;
};

// In-process CAS: plans ranges like a real server (trimmed terms, merged V2 ranges per xorb,
// signed URLs carrying a generation), serves fetches, counts calls, injects faults.
class FakeCas : public xet::CasReader {
 public:
  FakeCas() {
    std::mt19937 rng(1234);
    for (int x = 0; x < 3; ++x) {
      FakeXorb xorb;
      for (int c = 0; c < 10; ++c) {
        std::vector<uint8_t> chunk(1000 + rng() % 9000);  // NOLINT
        // Half compressible (runs), half random, so LZ4, BG4 and None all occur.
        for (size_t i = 0; i < chunk.size(); ++i) {
          chunk[i] = (c % 2 == 0) ? static_cast<uint8_t>(i / 64 + static_cast<size_t>(c))
                                  : static_cast<uint8_t>(rng());
        }
        xorb.starts.push_back(xorb.serialized.size());
        xet::appendSerializedChunk(
            chunk,
            c % 3 == 0 ? xet::CompressionScheme::kByteGrouping4Lz4 : xet::CompressionScheme::kLz4,
            xorb.serialized);
        xorb.chunks.push_back(std::move(chunk));
      }
      xorb.starts.push_back(xorb.serialized.size());
      xorb.hash = xet::chunkHash(xorb.serialized);  // any distinct hash will do here
      xorbs_.push_back(std::move(xorb));
    }
    // File = terms, including a second use of xorb 0's chunks (dedup) and a 1-chunk term.
    terms_ = {{0, {0, 6}}, {1, {0, 10}}, {0, {6, 10}}, {2, {3, 4}}, {0, {2, 5}}, {2, {5, 10}}};
    for (const auto& t : terms_) {
      for (uint32_t c = t.chunks.start; c < t.chunks.end; ++c) {
        const auto& d = xorbs_[t.xorb].chunks[c];
        data_.insert(data_.end(), d.begin(), d.end());
      }
    }
    file_ = xet::chunkHash(data_);
  }

  const std::vector<uint8_t>& data() const { return data_; }
  const MerkleHash& file() const { return file_; }

  // Every chunk of the file in order, where the terms say it is.
  std::vector<FileChunk> chunks() const {
    std::vector<FileChunk> out;
    uint64_t offset = 0;
    for (const auto& t : terms_) {
      for (uint32_t c = t.chunks.start; c < t.chunks.end; ++c) {
        const auto& bytes = xorbs_[t.xorb].chunks[c];
        out.push_back({offset, xorbs_[t.xorb].hash, c, bytes});
        offset += bytes.size();
      }
    }
    return out;
  }

  Result<ReconstructionPlan> getReconstruction(const MerkleHash& file_hash,
                                               std::optional<InclusiveByteRange> range) override {
    plan_calls_.fetch_add(1);
    if (file_hash != file_) return Error::notFound("no such file");
    const uint64_t first = range && !ignore_range_ ? range->start : 0;
    if (first >= data_.size()) return ReconstructionPlan{};
    const uint64_t last = std::min<uint64_t>(
        range && !ignore_range_ ? range->end : data_.size() - 1, data_.size() - 1);
    ReconstructionPlan plan;
    std::map<size_t, std::vector<ChunkRange>> needed;
    uint64_t pos = 0;
    for (const auto& t : terms_) {
      const auto& x = xorbs_[t.xorb];
      uint32_t c0 = 0, c1 = 0;
      bool any = false;
      uint64_t skip = 0;
      for (uint32_t c = t.chunks.start; c < t.chunks.end; ++c) {
        const uint64_t c_end = pos + x.chunks[c].size();
        if (c_end > first && pos <= last) {
          if (!any) {
            c0 = c;
            skip = first > pos ? first - pos : 0;
          }
          any = true;
          c1 = c + 1;
        }
        pos = c_end;
      }
      if (!any) continue;
      if (plan.terms.empty()) plan.offset_into_first_range = skip;
      uint32_t len = 0;
      for (uint32_t c = c0; c < c1; ++c) len += static_cast<uint32_t>(x.chunks[c].size());
      plan.terms.push_back({x.hash, {c0, c1}, len + unpacked_delta_});
      needed[t.xorb].push_back({c0, c1});
    }
    const int gen = generation_.load();
    for (auto& [xi, ranges] : needed) {
      std::sort(ranges.begin(), ranges.end(),
                [](const ChunkRange& a, const ChunkRange& b) { return a.start < b.start; });
      std::vector<ChunkRange> merged;
      for (const auto& r : ranges) {
        if (!merged.empty() && r.start <= merged.back().end) {
          merged.back().end = std::max(merged.back().end, r.end);
        } else {
          merged.push_back(r);
        }
      }
      FetchEntry entry;
      entry.url = "fake://xorb/" + std::to_string(xi) + "?gen=" + std::to_string(gen);
      for (const auto& r : merged) {
        entry.ranges.push_back({r, {xorbs_[xi].starts[r.start], xorbs_[xi].starts[r.end] - 1}});
      }
      plan.fetches[xorbs_[xi].hash].push_back(std::move(entry));
    }
    HFM_TRY(xet::validatePlan(plan));
    return plan;
  }

  Result<xet::FetchedRanges> fetch(const FetchEntry& entry) override {
    fetch_calls_.fetch_add(1);
    if (fetch_delay_.count() > 0) std::this_thread::sleep_for(fetch_delay_);
    const size_t q = entry.url.find("?gen=");
    const size_t xi = std::stoul(entry.url.substr(12, q - 12));
    if (static_cast<int>(xi) == lost_xorb_) return Error::notFound("xorb gone");
    if (std::stoi(entry.url.substr(q + 5)) < generation_.load()) {
      return Error(xet::kFetchUrlExpired, "403 expired");
    }
    std::vector<std::string> out;
    for (const auto& r : entry.ranges) {
      const auto& s = xorbs_[xi].serialized;
      std::string bytes(s.begin() + static_cast<std::ptrdiff_t>(r.bytes.start),
                        s.begin() + static_cast<std::ptrdiff_t>(r.bytes.end + 1));
      if (corrupt_fetches_.load() > 0) {
        corrupt_fetches_.fetch_sub(1);
        // What length/format checks can catch: a bad chunk header, or a short body. (A
        // flipped payload bit is not detectable from a plan; transport integrity is TLS's.)
        if (corrupt_fetches_.load() % 2 == 0) {
          bytes[0] = static_cast<char>(0x7f);
        } else {
          bytes.pop_back();
        }
      }
      out.push_back(std::move(bytes));
    }
    return xet::FetchedRanges::own(std::move(out));
  }

  std::atomic<int> plan_calls_{0};
  std::atomic<int> fetch_calls_{0};
  std::atomic<int> generation_{0};       // URLs of older generations get 403
  std::atomic<int> corrupt_fetches_{0};  // damage this many fetched ranges
  std::chrono::milliseconds fetch_delay_{0};
  uint32_t unpacked_delta_ = 0;  // lie about unpacked_length
  bool ignore_range_ = false;    // answer every plan request with the whole file
  int lost_xorb_ = -1;           // fetches of this xorb fail (its chunks cannot be read)

 private:
  std::vector<FakeXorb> xorbs_;
  std::vector<FakeTerm> terms_;
  std::vector<uint8_t> data_;
  MerkleHash file_;
};

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("hfm-fetcher-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
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

std::vector<uint8_t> slice(const std::vector<uint8_t>& v, uint64_t off, uint64_t len) {
  const uint64_t end = std::min<uint64_t>(v.size(), off + len);
  if (off >= end) return {};
  return {v.begin() + static_cast<std::ptrdiff_t>(off),
          v.begin() + static_cast<std::ptrdiff_t>(end)};
}

Result<std::vector<uint8_t>> readRange(ChunkFetcher& f, const FakeCas& cas, uint64_t off,
                                       uint64_t len) {
  std::vector<uint8_t> buf(len, 0xEE);
  HFM_ASSIGN_OR_RETURN(size_t n, f.read(cas.file(), cas.data().size(), off, buf));
  buf.resize(n);
  return buf;
}

TEST(ChunkFetcherTest, FullAndRandomRangedReadsAreByteIdentical) {
  TempDir dir;
  FakeCas cas;
  std::shared_ptr<ChunkCache> cache = openDiskChunkCache(dir.path(), 64 << 20).value();
  ChunkFetcher fetcher(cas, cache);
  const auto& data = cas.data();
  auto full = readRange(fetcher, cas, 0, data.size());
  ASSERT_TRUE(full.ok()) << full.error().message();
  EXPECT_EQ(*full, data);

  // Fresh fetcher and memory cache: random ranges hit cold and partially warm chunks.
  ChunkFetcher cold(cas, makeMemoryChunkCache(1 << 20));
  std::mt19937_64 rng(99);
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % (data.size() + 100);
    const uint64_t len = 1 + rng() % 30000;
    for (ChunkFetcher* f : {&fetcher, &cold}) {
      auto got = readRange(*f, cas, off, len);
      ASSERT_TRUE(got.ok()) << got.error().message();
      ASSERT_EQ(*got, slice(data, off, len)) << "off=" << off << " len=" << len;
    }
  }
  EXPECT_GT(fetcher.stats().fast_reads, 250u);  // everything was cached by the full read
}

TEST(ChunkFetcherTest, WarmReadNeedsNoNetworkAndEofIsShort) {
  FakeCas cas;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  const auto& data = cas.data();
  ASSERT_TRUE(readRange(fetcher, cas, 1000, 50000).ok());
  const int plans = cas.plan_calls_.load();
  const int fetches = cas.fetch_calls_.load();
  auto again = readRange(fetcher, cas, 2000, 40000);  // inside what was read
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, slice(data, 2000, 40000));
  EXPECT_EQ(cas.plan_calls_.load(), plans);
  EXPECT_EQ(cas.fetch_calls_.load(), fetches);

  auto tail = readRange(fetcher, cas, data.size() - 10, 100);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->size(), 10u);
  EXPECT_EQ(*tail, slice(data, data.size() - 10, 10));
  auto past = readRange(fetcher, cas, data.size(), 100);
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->empty());
}

TEST(ChunkFetcherTest, CorruptedCacheEntryIsRefetched) {
  TempDir dir;
  FakeCas cas;
  std::shared_ptr<ChunkCache> cache = openDiskChunkCache(dir.path(), 64 << 20).value();
  ChunkFetcher fetcher(cas, cache);
  const auto& data = cas.data();
  ASSERT_TRUE(readRange(fetcher, cas, 0, data.size()).ok());
  // Flip the last data byte of every cached entry (one entry per fetched range).
  int corrupted = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
    if (!e.is_regular_file() || e.path().filename() == ".lock") continue;
    const auto last = static_cast<std::streamoff>(e.file_size() - 1);
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(last);
    char b = 0;
    f.read(&b, 1);
    b = static_cast<char>(b ^ 0x10);
    f.seekp(last);
    f.write(&b, 1);
    ++corrupted;
  }
  ASSERT_GE(corrupted, 2);
  const int fetches = cas.fetch_calls_.load();
  auto got = readRange(fetcher, cas, 0, data.size());
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(*got, data);
  EXPECT_GT(cas.fetch_calls_.load(), fetches);
  EXPECT_GT(cache->stats().corrupt, 0u);
  // And the refetched entries are good again.
  const int fetches2 = cas.fetch_calls_.load();
  auto warm = readRange(fetcher, cas, 0, data.size());
  ASSERT_TRUE(warm.ok());
  EXPECT_EQ(*warm, data);
  EXPECT_EQ(cas.fetch_calls_.load(), fetches2);
}

TEST(ChunkFetcherTest, RestartedCacheServesWithoutFetching) {
  TempDir dir;
  FakeCas cas;
  const auto& data = cas.data();
  {
    std::shared_ptr<ChunkCache> cache = openDiskChunkCache(dir.path(), 64 << 20).value();
    ChunkFetcher fetcher(cas, cache);
    ASSERT_TRUE(readRange(fetcher, cas, 0, data.size()).ok());
  }
  const int fetches = cas.fetch_calls_.load();
  std::shared_ptr<ChunkCache> cache = openDiskChunkCache(dir.path(), 64 << 20).value();
  ChunkFetcher fetcher(cas, cache);
  auto got = readRange(fetcher, cas, 0, data.size());
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(*got, data);
  EXPECT_EQ(cas.fetch_calls_.load(), fetches);  // a plan, but every chunk from the disk
  EXPECT_EQ(fetcher.stats().plan_requests, 1u);
}

TEST(ChunkFetcherTest, ExpiredUrlTriggersReplan) {
  FakeCas cas;
  ChunkFetcher fetcher(cas, nullptr);  // no cache: every read fetches
  const auto& data = cas.data();
  ASSERT_TRUE(readRange(fetcher, cas, 5000, 20000).ok());
  EXPECT_EQ(cas.plan_calls_.load(), 1);
  ASSERT_TRUE(readRange(fetcher, cas, 5000, 20000).ok());
  EXPECT_EQ(cas.plan_calls_.load(), 1);  // plan cached while URLs are valid
  cas.generation_ = 1;                   // every URL handed out so far now gets 403
  auto got = readRange(fetcher, cas, 5000, 20000);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(*got, slice(data, 5000, 20000));
  EXPECT_EQ(cas.plan_calls_.load(), 2);
  EXPECT_EQ(fetcher.stats().replans, 1u);
}

class AlwaysExpiredCas : public FakeCas {
 public:
  Result<xet::FetchedRanges> fetch(const FetchEntry&) override {
    fetch_calls_.fetch_add(1);
    return Error(xet::kFetchUrlExpired, "403 expired");
  }
};

TEST(ChunkFetcherTest, PersistentForbiddenGivesUpAfterBoundedReplans) {
  AlwaysExpiredCas cas;
  FetcherOptions options;
  options.max_replans = 2;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(1 << 20), options);
  auto got = readRange(fetcher, cas, 0, 1000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EACCES);
  EXPECT_EQ(cas.plan_calls_.load(), 3);
}

TEST(ChunkFetcherTest, CorruptFetchOrLyingPlanIsAnErrorNeverBytes) {
  FakeCas cas;
  std::shared_ptr<ChunkCache> cache = makeMemoryChunkCache(64 << 20);
  ChunkFetcher fetcher(cas, cache);
  cas.corrupt_fetches_ = 1000;
  auto got = readRange(fetcher, cas, 0, 30000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_EQ(cache->stats().entries, 0u);  // nothing from the bad answer was cached
  cas.corrupt_fetches_ = 0;

  FakeCas liar;
  liar.unpacked_delta_ = 1;
  ChunkFetcher fetcher2(liar, makeMemoryChunkCache(64 << 20));
  auto bad = readRange(fetcher2, liar, 0, 30000);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EIO);
  EXPECT_NE(bad.error().message().find("plan says"), std::string::npos) << bad.error().message();
}

TEST(ChunkFetcherTest, PlanIgnoringTheRangeIsRejectedNotMisplaced) {
  FakeCas cas;
  cas.ignore_range_ = true;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  auto got = readRange(fetcher, cas, 20000, 1000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EIO);
  auto from_start = readRange(fetcher, cas, 0, 1000);  // the whole-file plan fits offset 0
  ASSERT_TRUE(from_start.ok()) << from_start.error().message();
  EXPECT_EQ(*from_start, slice(cas.data(), 0, 1000));
}

TEST(ChunkFetcherTest, ConcurrentReadersOfTheSameChunksShareOneFetch) {
  FakeCas cas;
  cas.fetch_delay_ = std::chrono::milliseconds(100);
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  const auto& data = cas.data();
  constexpr int kReaders = 8;
  std::vector<std::thread> threads;
  std::vector<int> ok(kReaders, 0);  // not vector<bool>: its bits share words across threads
  for (int t = 0; t < kReaders; ++t) {
    threads.emplace_back([&, t] {
      // Different windows (so different plans) inside the first chunk (≥ 1000 bytes).
      const uint64_t off = static_cast<uint64_t>(t) * 10;
      auto got = readRange(fetcher, cas, off, 100);
      ok[static_cast<size_t>(t)] = got.ok() && *got == slice(data, off, 100) ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kReaders; ++t) EXPECT_EQ(ok[static_cast<size_t>(t)], 1) << t;
  EXPECT_EQ(cas.fetch_calls_.load(), 1);
}

TEST(ChunkFetcherTest, ConcurrentRandomReadsWithATightCacheStayExact) {
  TempDir dir;
  FakeCas cas;
  // ~6 chunks fit: constant eviction while readers share flights and the layout map.
  std::shared_ptr<ChunkCache> cache = openDiskChunkCache(dir.path(), 40'000).value();
  ChunkFetcher fetcher(cas, cache);
  const auto& data = cas.data();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 60; ++i) {
        const uint64_t off = rng() % data.size();
        const uint64_t len = 1 + rng() % 20000;
        auto got = readRange(fetcher, cas, off, len);
        if (!got.ok() || *got != slice(data, off, len)) bad.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(cache->stats().used_bytes, 40'000u);
  EXPECT_GT(cache->stats().evictions, 0u);
}

TEST(ChunkFetcherTest, UnknownFileIsEnoent) {
  FakeCas cas;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(1 << 20));
  std::vector<uint8_t> buf(10);
  auto r = fetcher.read(MerkleHash{}, 100, 0, buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ENOENT);
}

}  // namespace
}  // namespace hfm::cache

namespace hfm::cache {
namespace {

struct Visited {
  uint64_t offset;
  MerkleHash xorb;
  uint32_t index;
  std::vector<uint8_t> bytes;
  friend bool operator==(const Visited&, const Visited&) = default;
};

std::vector<Visited> expectedVisits(const FakeCas& cas) {
  std::vector<Visited> out;
  for (const auto& c : cas.chunks()) {
    out.push_back({c.offset, c.xorb, c.index, {c.bytes.begin(), c.bytes.end()}});
  }
  return out;
}

Result<std::vector<Visited>> walk(ChunkFetcher& fetcher, const FakeCas& cas) {
  std::vector<Visited> out;
  HFM_TRY(fetcher.forEachChunk(cas.file(), cas.data().size(), [&](const FileChunk& c) {
    out.push_back({c.offset, c.xorb, c.index, {c.bytes.begin(), c.bytes.end()}});
    return okStatus();
  }));
  return out;
}

TEST(ChunkFetcherWalkTest, VisitsEveryChunkAtItsXorbPositionWithItsBytes) {
  FakeCas cas;
  const auto expected = expectedVisits(cas);
  ASSERT_GT(expected.size(), 20u);  // six terms over three xorbs
  // Windows smaller than one chunk, a few chunks, and the whole file; with and without cache.
  for (const uint64_t window : {uint64_t{3000}, uint64_t{25000}, uint64_t{1} << 30}) {
    for (const bool cached : {true, false}) {
      FetcherOptions options;
      options.walk_window = window;
      ChunkFetcher fetcher(cas, cached ? makeMemoryChunkCache(64 << 20) : nullptr, options);
      auto visited = walk(fetcher, cas);
      ASSERT_TRUE(visited.ok()) << visited.error().message();
      EXPECT_EQ(*visited, expected) << "window " << window << " cached " << cached;
    }
  }
}

TEST(ChunkFetcherWalkTest, AFileAlreadyReadIsWalkedFromTheCache) {
  FakeCas cas;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  ASSERT_TRUE(readRange(fetcher, cas, 0, cas.data().size()).ok());
  const int plans = cas.plan_calls_.load();
  const int fetches = cas.fetch_calls_.load();
  auto visited = walk(fetcher, cas);
  ASSERT_TRUE(visited.ok()) << visited.error().message();
  EXPECT_EQ(*visited, expectedVisits(cas));
  EXPECT_EQ(cas.plan_calls_.load(), plans);
  EXPECT_EQ(cas.fetch_calls_.load(), fetches);
}

TEST(ChunkFetcherWalkTest, AChunkTheCasCannotServeIsAnError) {
  FakeCas cas;
  cas.lost_xorb_ = 2;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  auto visited = walk(fetcher, cas);
  ASSERT_FALSE(visited.ok());
  EXPECT_EQ(visited.error().code(), ENOENT);
}

TEST(ChunkFetcherWalkTest, TheVisitorsErrorStopsTheWalk) {
  FakeCas cas;
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  int visits = 0;
  Status st = fetcher.forEachChunk(cas.file(), cas.data().size(), [&](const FileChunk&) -> Status {
    if (++visits == 3) return Error(EINTR, "enough");
    return okStatus();
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), EINTR);
  EXPECT_EQ(visits, 3);
}

}  // namespace
}  // namespace hfm::cache
