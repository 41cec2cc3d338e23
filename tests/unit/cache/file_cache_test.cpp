#include "hfm/cache/file_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../../fakes/temp_dir.h"

namespace hfm::cache {
namespace {

namespace fs = std::filesystem;

std::string hashFor(char c) {
  std::string hash(64, c);
  return hash;
}

std::vector<uint8_t> contentFor(uint64_t size, uint8_t seed) {
  std::vector<uint8_t> v(size);
  for (uint64_t i = 0; i < size; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return v;
}

// A reader over `bytes` that counts the bytes it served.
FileReader readerOf(const std::vector<uint8_t>& bytes, std::atomic<uint64_t>* served = nullptr) {
  return [&bytes, served](uint64_t offset, std::span<uint8_t> out) -> Status {
    if (offset + out.size() > bytes.size()) return Error(EIO, "read past the end");
    std::copy_n(bytes.begin() + static_cast<ptrdiff_t>(offset), out.size(), out.begin());
    if (served != nullptr) *served += out.size();
    return okStatus();
  };
}

std::vector<uint8_t> readAll(const CachedFile& f) {
  std::vector<uint8_t> out(f.size());
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(f.fd(), out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

TEST(FileCacheTest, DownloadedFileIsServedWithItsExactBytes) {
  testing::TempDir dir("hfm-filecache");
  auto cache = FileCache::open(dir.path() / "files", 1 << 30);
  ASSERT_TRUE(cache.ok()) << cache.error().message();
  const auto bytes = contentFor(20ull * 1024 * 1024 + 17, 3);  // several download pieces
  EXPECT_EQ((*cache)->open(hashFor('a'), bytes.size()), nullptr);
  (*cache)->download(hashFor('a'), bytes.size(), readerOf(bytes));
  (*cache)->waitIdle();
  auto f = (*cache)->open(hashFor('a'), bytes.size());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(readAll(*f), bytes);
  EXPECT_TRUE(fs::exists(dir.path() / "files" / "aa" / hashFor('a')));
  const auto s = (*cache)->stats();
  EXPECT_EQ(s.downloads, 1u);
  EXPECT_EQ(s.bytes, bytes.size());
  EXPECT_EQ(s.hits, 1u);
}

TEST(FileCacheTest, ConcurrentRequestsForOneHashShareOneDownload) {
  testing::TempDir dir("hfm-filecache");
  auto cache = FileCache::open(dir.path(), 1 << 30);
  ASSERT_TRUE(cache.ok());
  const auto bytes = contentFor(3ull * 1024 * 1024, 9);
  std::atomic<uint64_t> served{0};
  for (int i = 0; i < 10; ++i)
    (*cache)->download(hashFor('b'), bytes.size(), readerOf(bytes, &served));
  (*cache)->waitIdle();
  for (int i = 0; i < 10; ++i)
    (*cache)->download(hashFor('b'), bytes.size(), readerOf(bytes, &served));
  (*cache)->waitIdle();
  EXPECT_EQ(served.load(), bytes.size());
  EXPECT_EQ((*cache)->stats().downloads, 1u);
}

TEST(FileCacheTest, FailedOrShortDownloadsLeaveNothingBehind) {
  testing::TempDir dir("hfm-filecache");
  auto cache = FileCache::open(dir.path(), 1 << 30);
  ASSERT_TRUE(cache.ok());
  const auto bytes = contentFor(1 << 20, 1);
  (*cache)->download(hashFor('c'), bytes.size() + 10, readerOf(bytes));  // reader fails at the end
  (*cache)->download(hashFor('d'), bytes.size(),
                     [](uint64_t, std::span<uint8_t>) { return Status(Error(EIO, "hub down")); });
  (*cache)->waitIdle();
  EXPECT_EQ((*cache)->open(hashFor('c'), bytes.size() + 10), nullptr);
  EXPECT_EQ((*cache)->open(hashFor('d'), bytes.size()), nullptr);
  EXPECT_EQ((*cache)->stats().failed_downloads, 2u);
  EXPECT_TRUE(fs::is_empty(dir.path() / ".tmp"));
  // A later request tries again.
  (*cache)->download(hashFor('d'), bytes.size(), readerOf(bytes));
  (*cache)->waitIdle();
  EXPECT_NE((*cache)->open(hashFor('d'), bytes.size()), nullptr);
}

constexpr uint64_t kMiB = 1024ull * 1024;

uintmax_t bytesOnDisk(const fs::path& root) {
  uintmax_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    if (e.is_regular_file(ec) && e.path().filename() != ".lock") total += e.file_size(ec);
  }
  return total;
}

// A cache of 3 MiB holding the 1 MiB files '1', '2', '3' (`bytes_` each), downloaded in that
// order, so '1' is the least recently used.
class FullFileCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = FileCache::open(dir_.path(), 3 * kMiB);
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    cache_ = std::move(opened).value();
    for (char c : {'1', '2', '3'}) {
      cache_->download(hashFor(c), kMiB, readerOf(bytes_));
      cache_->waitIdle();
    }
  }

  testing::TempDir dir_{"hfm-filecache"};
  const std::vector<uint8_t> bytes_ = contentFor(kMiB, 5);
  std::unique_ptr<FileCache> cache_;
};

TEST_F(FullFileCacheTest, StaysWithinCapacityEvictingLeastRecentlyOpened) {
  auto held = cache_->open(hashFor('1'), kMiB);  // '1' is now the most recently used
  ASSERT_NE(held, nullptr);
  cache_->download(hashFor('4'), kMiB, readerOf(bytes_));
  cache_->waitIdle();
  EXPECT_EQ(cache_->open(hashFor('2'), kMiB), nullptr);  // the least recently used went
  EXPECT_NE(cache_->open(hashFor('1'), kMiB), nullptr);
  EXPECT_NE(cache_->open(hashFor('3'), kMiB), nullptr);
  EXPECT_NE(cache_->open(hashFor('4'), kMiB), nullptr);
  EXPECT_LE(cache_->stats().bytes, 3 * kMiB);
  // A file larger than the whole capacity is never downloaded.
  const auto big = contentFor(4 * kMiB, 2);
  std::atomic<uint64_t> served{0};
  cache_->download(hashFor('5'), big.size(), readerOf(big, &served));
  cache_->waitIdle();
  EXPECT_EQ(served.load(), 0u);
  // An open descriptor keeps its bytes after its file is evicted.
  cache_->download(hashFor('6'), kMiB, readerOf(bytes_));
  cache_->download(hashFor('7'), kMiB, readerOf(bytes_));
  cache_->download(hashFor('8'), kMiB, readerOf(bytes_));
  cache_->waitIdle();
  EXPECT_EQ(readAll(*held), bytes_);
}

TEST_F(FullFileCacheTest, ADownloadInProgressCountsAgainstTheCapacity) {
  EXPECT_EQ(bytesOnDisk(dir_.path()), 3 * kMiB);
  // While the next file is written, the disk never holds more than the capacity.
  const auto big = contentFor(2 * kMiB + 5, 7);
  uintmax_t worst = 0;
  auto inner = readerOf(big);
  cache_->download(hashFor('4'), big.size(), [&](uint64_t off, std::span<uint8_t> out) {
    worst = std::max(worst, bytesOnDisk(dir_.path()) + out.size());
    return inner(off, out);
  });
  cache_->waitIdle();
  EXPECT_LE(worst, 3 * kMiB);
  EXPECT_LE(bytesOnDisk(dir_.path()), 3 * kMiB);
  auto f = cache_->open(hashFor('4'), big.size());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(readAll(*f), big);
  EXPECT_EQ(cache_->open(hashFor('1'), kMiB), nullptr);  // made room, oldest first
  EXPECT_EQ(cache_->open(hashFor('2'), kMiB), nullptr);
}

// Room held by a download in progress cannot be evicted: a second download that does not fit
// beside it is refused (counted as failed, nothing read), and a later request can retry.
TEST_F(FullFileCacheTest, ADownloadThatDoesNotFitBesideARunningOneIsRefused) {
  const auto big = contentFor(2 * kMiB, 8);
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  auto inner = readerOf(big);
  cache_->download(hashFor('4'), big.size(), [&](uint64_t off, std::span<uint8_t> out) {
    started = true;
    for (int i = 0; i < 1000 && !release; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return inner(off, out);
  });
  for (int i = 0; i < 500 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(started.load());
  std::atomic<uint64_t> served{0};
  cache_->download(hashFor('5'), big.size(), readerOf(big, &served));
  for (int i = 0; i < 500 && cache_->stats().failed_downloads == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(cache_->stats().failed_downloads, 1u);
  EXPECT_NE(cache_->open(hashFor('3'), kMiB), nullptr);  // nothing evicted for it in vain
  release = true;
  cache_->waitIdle();
  EXPECT_EQ(served.load(), 0u);
  EXPECT_EQ(cache_->open(hashFor('5'), big.size()), nullptr);
  EXPECT_NE(cache_->open(hashFor('4'), big.size()), nullptr);
  EXPECT_LE(bytesOnDisk(dir_.path()), 3 * kMiB);
  // Once the first is done, asking again downloads it (making room by evicting '3' and '4').
  cache_->download(hashFor('5'), big.size(), readerOf(big, &served));
  cache_->waitIdle();
  EXPECT_NE(cache_->open(hashFor('5'), big.size()), nullptr);
  EXPECT_EQ(served.load(), big.size());
}

TEST(FileCacheTest, ReopeningFindsEarlierFilesAndDropsLeftovers) {
  testing::TempDir dir("hfm-filecache");
  const auto bytes = contentFor(100000, 4);
  {
    auto cache = FileCache::open(dir.path(), 1 << 30);
    ASSERT_TRUE(cache.ok());
    (*cache)->download(hashFor('e'), bytes.size(), readerOf(bytes));
    (*cache)->waitIdle();
  }
  std::ofstream(dir.path() / ".tmp" / "half-written") << "x";
  std::ofstream(dir.path() / "ee" / "not-a-hash") << "x";
  auto cache = FileCache::open(dir.path(), 1 << 30);
  ASSERT_TRUE(cache.ok());
  EXPECT_TRUE(fs::is_empty(dir.path() / ".tmp"));
  EXPECT_FALSE(fs::exists(dir.path() / "ee" / "not-a-hash"));
  auto f = (*cache)->open(hashFor('e'), bytes.size());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(readAll(*f), bytes);
  // A file of the wrong size (damaged outside the cache) is a miss, and is deleted.
  fs::resize_file(dir.path() / "ee" / hashFor('e'), 10);
  EXPECT_EQ((*cache)->open(hashFor('e'), bytes.size()), nullptr);
  EXPECT_FALSE(fs::exists(dir.path() / "ee" / hashFor('e')));
}

TEST(FileCacheTest, ClosingTheCacheCancelsARunningDownload) {
  testing::TempDir dir("hfm-filecache");
  constexpr uint64_t kSize = kMiB * 40;  // five download pieces of 8 MiB
  std::atomic<int> calls{0};
  std::atomic<bool> started{false};
  {
    auto cache = FileCache::open(dir.path(), 1 << 30);
    ASSERT_TRUE(cache.ok());
    (*cache)->download(hashFor('f'), kSize, [&](uint64_t, std::span<uint8_t> out) {
      if (calls++ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      std::fill(out.begin(), out.end(), uint8_t{7});
      started = true;
      return okStatus();
    });
    for (int i = 0; i < 500 && !started; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(started.load());
  }  // the destructor stops the download between two pieces
  EXPECT_LT(calls.load(), 5);
  EXPECT_TRUE(fs::is_empty(dir.path() / ".tmp"));
  auto reopened = FileCache::open(dir.path(), 1 << 30);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->open(hashFor('f'), kSize), nullptr);
}

TEST(FileCacheTest, OneProcessPerDirectoryAndOnlyHexNames) {
  testing::TempDir dir("hfm-filecache");
  auto cache = FileCache::open(dir.path(), 1 << 30);
  ASSERT_TRUE(cache.ok());
  // flock is per open file description: a second open in this process conflicts too.
  auto second = FileCache::open(dir.path(), 1 << 30);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), EBUSY);
  const auto bytes = contentFor(10, 1);
  std::atomic<uint64_t> served{0};
  for (const std::string& bad :
       std::vector<std::string>{"../../etc/passwd", std::string(64, 'G'), std::string(63, 'a')}) {
    (*cache)->download(bad, bytes.size(), readerOf(bytes, &served));
    EXPECT_EQ((*cache)->open(bad, bytes.size()), nullptr);
  }
  (*cache)->waitIdle();
  EXPECT_EQ(served.load(), 0u);
}

}  // namespace
}  // namespace hfm::cache
