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

// A cache of 3 MiB holding the 1 MiB files '1', '2', '3' (`bytes` each), downloaded in that
// order, so '1' is the least recently used.
std::unique_ptr<FileCache> fullCacheOfThree(const fs::path& root,
                                            const std::vector<uint8_t>& bytes) {
  auto cache = FileCache::open(root, 3 * kMiB);
  EXPECT_TRUE(cache.ok());
  if (!cache.ok()) return nullptr;
  for (char c : {'1', '2', '3'}) {
    (*cache)->download(hashFor(c), bytes.size(), readerOf(bytes));
    (*cache)->waitIdle();
  }
  return std::move(cache).value();
}

TEST(FileCacheTest, StaysWithinCapacityEvictingLeastRecentlyOpened) {
  testing::TempDir dir("hfm-filecache");
  const uint64_t mib = kMiB;
  const auto bytes = contentFor(mib, 5);
  auto cache = fullCacheOfThree(dir.path(), bytes);
  ASSERT_NE(cache, nullptr);
  auto held = cache->open(hashFor('1'), mib);  // '1' is now the most recently used
  ASSERT_NE(held, nullptr);
  cache->download(hashFor('4'), mib, readerOf(bytes));
  cache->waitIdle();
  EXPECT_EQ(cache->open(hashFor('2'), mib), nullptr);  // the least recently used went
  EXPECT_NE(cache->open(hashFor('1'), mib), nullptr);
  EXPECT_NE(cache->open(hashFor('3'), mib), nullptr);
  EXPECT_NE(cache->open(hashFor('4'), mib), nullptr);
  EXPECT_LE(cache->stats().bytes, 3 * mib);
  // A file larger than the whole capacity is never downloaded.
  const auto big = contentFor(4 * mib, 2);
  std::atomic<uint64_t> served{0};
  cache->download(hashFor('5'), big.size(), readerOf(big, &served));
  cache->waitIdle();
  EXPECT_EQ(served.load(), 0u);
  // An open descriptor keeps its bytes after its file is evicted.
  cache->download(hashFor('6'), mib, readerOf(bytes));
  cache->download(hashFor('7'), mib, readerOf(bytes));
  cache->download(hashFor('8'), mib, readerOf(bytes));
  cache->waitIdle();
  EXPECT_EQ(readAll(*held), bytes);
}

uintmax_t bytesOnDisk(const fs::path& root) {
  uintmax_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    if (e.is_regular_file(ec) && e.path().filename() != ".lock") total += e.file_size(ec);
  }
  return total;
}

TEST(FileCacheTest, ADownloadInProgressCountsAgainstTheCapacity) {
  testing::TempDir dir("hfm-filecache");
  const uint64_t mib = kMiB;
  const auto bytes = contentFor(mib, 6);
  auto cache = fullCacheOfThree(dir.path(), bytes);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(bytesOnDisk(dir.path()), 3 * mib);
  // While the next file is written, the disk never holds more than the capacity.
  const auto big = contentFor(2 * mib + 5, 7);
  uintmax_t worst = 0;
  auto inner = readerOf(big);
  cache->download(hashFor('4'), big.size(), [&](uint64_t off, std::span<uint8_t> out) {
    worst = std::max(worst, bytesOnDisk(dir.path()) + out.size());
    return inner(off, out);
  });
  cache->waitIdle();
  EXPECT_LE(worst, 3 * mib);
  EXPECT_LE(bytesOnDisk(dir.path()), 3 * mib);
  auto f = cache->open(hashFor('4'), big.size());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(readAll(*f), big);
  EXPECT_EQ(cache->open(hashFor('1'), mib), nullptr);  // made room, oldest first
  EXPECT_EQ(cache->open(hashFor('2'), mib), nullptr);
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
