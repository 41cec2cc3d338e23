#include "hfm/vfs/prefetcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>

#include "fake_remote.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

class PrefetcherTest : public ::testing::Test {
 protected:
  std::shared_ptr<const RemoteEntry> addFile(uint64_t size, uint64_t seed = 7) {
    data_ = patternBytes(size, seed);
    remote_.putFile("f.bin", data_);
    auto st = remote_.stat("f.bin");
    EXPECT_TRUE(st.ok());
    remote_.resetCounts();
    return std::make_shared<const RemoteEntry>(*st);
  }

  PrefetchConfig config() {
    PrefetchConfig c;
    c.initial_window = 1 * kMiB;
    c.max_window = 8 * kMiB;
    c.max_request = 64 * kMiB;  // one request per batch: batches are visible in the read log
    c.retry_backoff = std::chrono::milliseconds(1);
    c.read_timeout = std::chrono::milliseconds(5000);
    return c;
  }

  void expectRead(Prefetcher& p, uint64_t off, uint64_t len) {
    std::vector<uint8_t> buf(len);
    auto got = p.read(off, buf);
    ASSERT_TRUE(got.ok()) << got.error().message();
    const uint64_t want = off >= data_.size() ? 0 : std::min<uint64_t>(len, data_.size() - off);
    ASSERT_EQ(*got, want) << "at offset " << off;
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<long>(want),
                           data_.begin() + static_cast<long>(off)))
        << "bytes differ at offset " << off;
  }

  FakeRemote remote_;
  WorkerPool pool_{4};
  std::vector<uint8_t> data_;
};

TEST_F(PrefetcherTest, SequentialReadsDoubleTheWindowUpToTheMax) {
  auto file = addFile(40 * kMiB);
  Prefetcher p(remote_, pool_, file, config());
  for (uint64_t off = 0; off < 40 * kMiB; off += 128 * kKiB) expectRead(p, off, 128 * kKiB);
  auto s = p.stats();
  std::vector<uint64_t> want = {1 * kMiB, 2 * kMiB, 4 * kMiB, 8 * kMiB,
                                8 * kMiB, 8 * kMiB, 8 * kMiB, 1 * kMiB};
  EXPECT_EQ(s.batches, want);
  EXPECT_EQ(s.random_reads, 0u);
  EXPECT_EQ(s.stream_starts, 1u);
  EXPECT_EQ(remote_.counts().bytes_read, 40 * kMiB);  // every byte fetched exactly once
}

TEST_F(PrefetcherTest, FirstRequestIsSmallAndReadAheadWaitsForASecondSequentialRead) {
  auto file = addFile(32 * kMiB);
  Prefetcher p(remote_, pool_, file, config());
  expectRead(p, 0, 4 * kKiB);
  EXPECT_EQ(p.stats().batches, std::vector<uint64_t>{1 * kMiB});
  expectRead(p, 4 * kKiB, 4 * kKiB);
  EXPECT_EQ(p.stats().batches, (std::vector<uint64_t>{1 * kMiB, 2 * kMiB}));
}

TEST_F(PrefetcherTest, RandomAccessFetchesExactlyTheRequestedBytes) {
  auto file = addFile(64 * kMiB);
  Prefetcher p(remote_, pool_, file, config());
  expectRead(p, 0, 4 * kKiB);  // first read of a handle starts a (small) stream
  remote_.resetCounts();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; ++i) {
    // Offsets at least 5 MiB apart from the previous one and beyond the stream the first
    // read started (which reaches 1 MiB + 16 MiB of forward tolerance).
    const uint64_t off =
        (i % 2 == 0 ? 40 * kMiB + (rng() % (20 * kMiB)) : 20 * kMiB + (rng() % (15 * kMiB)));
    expectRead(p, off, 4 * kKiB);
  }
  auto s = p.stats();
  EXPECT_EQ(s.random_reads, 200u);
  EXPECT_EQ(s.batches.size(), 1u);  // no read-ahead after the first read
  for (const auto& [off, len] : remote_.readLog()) EXPECT_EQ(len, 4 * kKiB);
  EXPECT_EQ(remote_.counts().bytes_read, 200 * 4 * kKiB);
}

TEST_F(PrefetcherTest, OutOfOrderKernelReadaheadStillCountsAsSequential) {
  auto file = addFile(24 * kMiB);
  Prefetcher p(remote_, pool_, file, config());
  // Pairs of 128 KiB reads arriving swapped, as parallel FUSE threads deliver them.
  for (uint64_t off = 0; off < 24 * kMiB; off += 256 * kKiB) {
    expectRead(p, off + 128 * kKiB, 128 * kKiB);
    expectRead(p, off, 128 * kKiB);
  }
  auto s = p.stats();
  EXPECT_EQ(s.random_reads, 0u);
  EXPECT_EQ(s.stream_starts, 1u);
  // The stream started at 128 KiB (the first read to arrive); [0, 128 KiB) came directly.
  EXPECT_EQ(s.batches, (std::vector<uint64_t>{1 * kMiB, 2 * kMiB, 4 * kMiB, 8 * kMiB, 8 * kMiB,
                                              1 * kMiB - 128 * kKiB}));
  EXPECT_EQ(remote_.counts().bytes_read, 24 * kMiB);
}

TEST_F(PrefetcherTest, OneStragglerFarBehindDoesNotDropTheStream) {
  auto file = addFile(40 * kMiB);
  auto c = config();
  c.backward_tolerance = 1 * kMiB;
  Prefetcher p(remote_, pool_, file, c);
  for (uint64_t off = 0; off < 8 * kMiB; off += 128 * kKiB) expectRead(p, off, 128 * kKiB);
  const auto batches = p.stats().batches.size();
  expectRead(p, 2 * kMiB, 128 * kKiB);  // 6 MiB behind: its bytes are no longer held
  for (uint64_t off = 8 * kMiB; off < 16 * kMiB; off += 128 * kKiB) expectRead(p, off, 128 * kKiB);
  auto s = p.stats();
  EXPECT_EQ(s.random_reads, 1u);
  EXPECT_EQ(s.stream_starts, 1u);
  EXPECT_EQ(s.bytes_direct, 128 * kKiB);
  EXPECT_GT(s.batches.size(), batches);  // the stream kept growing
  EXPECT_EQ(s.batches[batches], 8 * kMiB);
}

TEST_F(PrefetcherTest, SeekResetsTheWindow) {
  auto file = addFile(64 * kMiB);
  Prefetcher p(remote_, pool_, file, config());
  for (uint64_t off = 0; off < 3 * kMiB; off += 128 * kKiB) expectRead(p, off, 128 * kKiB);
  const auto before = p.stats().batches;
  EXPECT_EQ(before, (std::vector<uint64_t>{1 * kMiB, 2 * kMiB, 4 * kMiB}));
  // Seek far ahead: a random read of just the bytes asked for, then a new stream from the
  // initial window once reads continue sequentially.
  expectRead(p, 40 * kMiB, 128 * kKiB);
  EXPECT_EQ(p.stats().random_reads, 1u);
  for (uint64_t off = 40 * kMiB + 128 * kKiB; off < 43 * kMiB; off += 128 * kKiB) {
    expectRead(p, off, 128 * kKiB);
  }
  auto s = p.stats();
  EXPECT_EQ(s.stream_starts, 2u);
  std::vector<uint64_t> after(s.batches.begin() + static_cast<long>(before.size()),
                              s.batches.end());
  EXPECT_EQ(after, (std::vector<uint64_t>{1 * kMiB, 2 * kMiB, 4 * kMiB}));
}

TEST_F(PrefetcherTest, ReadsSpanningManyPartsAreByteIdentical) {
  auto file = addFile(9 * kMiB + 12345);
  auto c = config();
  c.max_request = 96 * kKiB;  // many small parts
  c.initial_window = 200 * kKiB;
  Prefetcher p(remote_, pool_, file, c);
  std::mt19937_64 rng(3);
  uint64_t off = 0;
  while (off < data_.size()) {
    const uint64_t len = 1 + rng() % (700 * kKiB);
    expectRead(p, off, len);
    off += len;
  }
  expectRead(p, data_.size() - 10, 100);  // crosses end of file
  expectRead(p, data_.size(), 100);       // at end of file
  EXPECT_EQ(p.stats().random_reads, 0u);
}

TEST_F(PrefetcherTest, ViewsServeSequentialReadsWithoutCopyingAndMatchTheBytes) {
  auto file = addFile(3 * kMiB + 777);
  auto c = config();
  c.max_request = 96 * kKiB;  // reads span several parts: several views per read
  Prefetcher p(remote_, pool_, file, c);
  std::vector<uint8_t> out(256 * kKiB, 0xEE);
  uint64_t off = 0;
  size_t reads_with_views = 0;
  std::vector<ReadView> kept;
  uint64_t kept_off = 0;
  while (off < data_.size()) {
    std::vector<ReadView> views;
    auto got = p.read(off, out, &views);
    ASSERT_TRUE(got.ok()) << got.error().message();
    const uint64_t want = std::min<uint64_t>(out.size(), data_.size() - off);
    ASSERT_EQ(*got, want);
    std::vector<uint8_t> served;
    if (views.empty()) {
      served.assign(out.begin(), out.begin() + static_cast<long>(want));
    } else {
      if (++reads_with_views == 1) {
        kept = views;
        kept_off = off;
      }
      for (const auto& v : views) served.insert(served.end(), v.bytes.begin(), v.bytes.end());
      EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0xEE; }))
          << "a read answered with views also wrote the buffer";
    }
    ASSERT_EQ(served.size(), want);
    ASSERT_TRUE(std::equal(served.begin(), served.end(), data_.begin() + static_cast<long>(off)))
        << "bytes differ at offset " << off;
    off += want;
  }
  EXPECT_GT(reads_with_views, 5u);
  // The views of the first such read still hold their bytes after the stream moved past them.
  ASSERT_FALSE(kept.empty());
  std::vector<uint8_t> again;
  for (const auto& v : kept) again.insert(again.end(), v.bytes.begin(), v.bytes.end());
  ASSERT_TRUE(std::equal(again.begin(), again.end(), data_.begin() + static_cast<long>(kept_off)));
}

TEST_F(PrefetcherTest, BufferIsBounded) {
  auto file = addFile(48 * kMiB);
  auto c = config();
  c.max_window = 4 * kMiB;
  c.max_request = 1 * kMiB;
  Prefetcher p(remote_, pool_, file, c);
  uint64_t peak = 0;
  for (uint64_t off = 0; off < 48 * kMiB; off += 128 * kKiB) {
    expectRead(p, off, 128 * kKiB);
    peak = std::max(peak, p.bufferedBytes());
  }
  EXPECT_LE(peak, c.backward_tolerance + 2 * c.max_window + c.max_request);
  EXPECT_GT(peak, 0u);
}

TEST_F(PrefetcherTest, SharedMemoryBudgetCapsReadAheadAcrossHandles) {
  auto file = addFile(24 * kMiB);
  MemoryBudget budget(6 * kMiB);
  uint64_t peak = 0;
  {
    auto c = config();
    c.backward_tolerance = 1 * kMiB;
    Prefetcher a(remote_, pool_, file, c, &budget);
    Prefetcher b(remote_, pool_, file, c, &budget);
    for (uint64_t off = 0; off < 24 * kMiB; off += 128 * kKiB) {
      expectRead(a, off, 128 * kKiB);
      expectRead(b, off, 128 * kKiB);
      peak = std::max(peak, budget.used());
    }
    EXPECT_GT(a.stats().readahead_skipped + b.stats().readahead_skipped, 0u);
  }
  // Read-ahead only within the limit; beyond it, per handle, only what readers wait for and
  // the bytes kept behind them (backward tolerance + the part being read + one demand batch).
  EXPECT_LE(peak, budget.limit() + 2 * (1 * kMiB + 2 * 8 * kMiB));
  // Every part gave its bytes back once freed (tasks may still hold the last references).
  for (int i = 0; i < 200 && budget.used() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(budget.used(), 0u);
}

TEST_F(PrefetcherTest, FailedFetchGivesTheRemoteErrnoAndALaterReadRecovers) {
  auto file = addFile(4 * kMiB);
  auto c = config();
  c.fetch_attempts = 2;
  Prefetcher p(remote_, pool_, file, c);
  remote_.failAlways(FakeRemote::kRead, EIO);
  std::vector<uint8_t> buf(128 * kKiB);
  auto got = p.read(0, buf);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EIO);
  remote_.clearFaults();
  expectRead(p, 0, 128 * kKiB);
  expectRead(p, 128 * kKiB, 128 * kKiB);
}

TEST_F(PrefetcherTest, TransientFailuresAreRetried) {
  auto file = addFile(2 * kMiB);
  auto c = config();
  c.fetch_attempts = 3;
  Prefetcher p(remote_, pool_, file, c);
  remote_.failNext(FakeRemote::kRead, 2, EAGAIN);
  expectRead(p, 0, 64 * kKiB);
}

TEST_F(PrefetcherTest, PermanentErrorsAreNotRetried) {
  auto file = addFile(2 * kMiB);
  auto c = config();
  c.fetch_attempts = 3;
  Prefetcher p(remote_, pool_, file, c);
  remote_.failAlways(FakeRemote::kRead, EACCES);
  std::vector<uint8_t> buf(4096);
  auto got = p.read(0, buf);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EACCES);
  EXPECT_EQ(remote_.counts().read, 1u);
}

TEST_F(PrefetcherTest, ShortAnswerFromTheRemoteIsAnErrorNeverAShortRead) {
  auto file = addFile(2 * kMiB);
  auto c = config();
  c.fetch_attempts = 1;
  Prefetcher p(remote_, pool_, file, c);
  remote_.setShortReads(true);
  std::vector<uint8_t> buf(64 * kKiB);
  auto got = p.read(0, buf);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EIO);
}

TEST_F(PrefetcherTest, StalledFetchTimesOutWithEio) {
  auto file = addFile(2 * kMiB);
  auto c = config();
  c.read_timeout = std::chrono::milliseconds(100);
  c.fetch_attempts = 1;
  Prefetcher p(remote_, pool_, file, c);
  remote_.pauseReads(true);
  std::vector<uint8_t> buf(64 * kKiB);
  const auto start = std::chrono::steady_clock::now();
  auto got = p.read(0, buf);
  const auto waited = std::chrono::steady_clock::now() - start;
  remote_.pauseReads(false);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_LT(waited, std::chrono::seconds(5));
  expectRead(p, 0, 64 * kKiB);
}

}  // namespace
}  // namespace hfm::vfs
