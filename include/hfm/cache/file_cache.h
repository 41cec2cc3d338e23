// FileCache: whole files on local disk, content-addressed by their Xet hash
// (`--cache-mode file`, reference §3.4).
//
// Why: a file read again and again (model weights loaded by every run) is served from one
// local file: a read is a pread with no chunk lookups, and on FUSE the kernel can read the
// file itself (passthrough), at the speed of a local file. The chunk cache cannot offer that:
// its entries are pieces of xorbs, not files.
//
// Layout under its root (`<--cache-dir>/files`):
//   <root>/.lock            flock()ed while open: one process per directory
//   <root>/.tmp/<random>    downloads in progress (deleted at open)
//   <root>/<hh>/<hash>      complete files; hh = the first two hex digits of the hash
// A download is written to .tmp, fsync()ed, checked against the expected size and renamed
// into place, so a file under its final name is complete (also after a crash or power loss).
// The name is the content's hash, so a cached file never goes stale: a new version of a path
// is another hash. Its bytes are those the verified read path produced; unlike a chunk-cache
// entry a copy carries no checksum checked on every read (FUSE passthrough reads it without
// us), so it is trusted once complete: its size is checked at every open. LRU by last open (by
// mtime after a restart; an open refreshes the mtime). The total size on disk stays within the
// capacity, downloads in progress included: a download first makes room by deleting the least
// recently opened files (open descriptors keep their bytes); a file larger than the capacity is
// never cached.
//
// Downloads run on the cache's own threads (at most `max_downloads` at once); concurrent
// requests for one hash share one download. All methods are thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::cache {

// An open cached file: its descriptor stays valid (and its bytes readable) until the last
// reference goes, even if the cache deletes the file meanwhile.
class CachedFile {
 public:
  CachedFile(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~CachedFile();
  CachedFile(const CachedFile&) = delete;
  CachedFile& operator=(const CachedFile&) = delete;
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  const int fd_;
  const uint64_t size_;
};

// Fills `out` with the file's bytes at `offset` (exactly out.size() of them) or fails.
using FileReader = std::function<Status(uint64_t offset, std::span<uint8_t> out)>;

struct FileCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t downloads = 0;         // completed
  uint64_t failed_downloads = 0;  // reader errors, size mismatches, disk errors, no room
  uint64_t evictions = 0;
  uint64_t bytes = 0;  // currently cached
  uint64_t files = 0;
};

class FileCache {
 public:
  static constexpr size_t kDefaultMaxDownloads = 8;

  // Opens (creating) `root`; EBUSY if another process holds it.
  static Result<std::unique_ptr<FileCache>> open(const std::filesystem::path& root,
                                                 uint64_t capacity_bytes,
                                                 size_t max_downloads = kDefaultMaxDownloads);
  ~FileCache();  // cancels queued downloads and waits for the running ones
  FileCache(const FileCache&) = delete;
  FileCache& operator=(const FileCache&) = delete;

  // The cached file with this hash and size, or nullptr (a miss; a file of another size is
  // deleted as corrupt).
  std::shared_ptr<CachedFile> open(const std::string& hash, uint64_t size);

  // Queues a download of the file unless it is cached, already queued, larger than the
  // capacity or the queue is full. `read` runs on a cache thread.
  void download(const std::string& hash, uint64_t size, FileReader read);

  // Blocks until no download is queued or running (tests, benchmarks).
  void waitIdle();

  FileCacheStats stats() const;

 private:
  struct Entry {
    uint64_t size = 0;
    std::list<std::string>::iterator lru;  // position in lru_ (front = least recently used)
  };
  struct Job {
    std::string hash;
    uint64_t size = 0;
    FileReader read;
  };

  FileCache(std::filesystem::path root, uint64_t capacity, size_t max_downloads, int lock_fd);
  std::filesystem::path pathOf(const std::string& hash) const;
  Status rebuild();
  void work();
  Status fetchInto(const Job& job, const std::filesystem::path& tmp);
  void insertLocked(const std::string& hash, uint64_t size);
  void eraseLocked(const std::string& hash);
  // Deletes least recently opened files until `incoming` more bytes fit; false if they cannot
  // (the room is held by downloads in progress).
  bool evictLocked(uint64_t incoming);

  const std::filesystem::path root_;
  const uint64_t capacity_;
  const int lock_fd_;
  mutable std::mutex mu_;
  std::condition_variable cv_;                      // jobs queued, or stopping
  std::condition_variable idle_cv_;                 // a job finished
  std::unordered_map<std::string, Entry> entries_;  // Guarded by mu_.
  std::list<std::string> lru_;                      // Guarded by mu_.
  uint64_t bytes_ = 0;                              // Guarded by mu_.
  uint64_t reserved_ = 0;                    // bytes of downloads in progress. Guarded by mu_.
  std::deque<Job> queue_;                    // Guarded by mu_.
  std::unordered_set<std::string> pending_;  // queued or running. Guarded by mu_.
  bool stopping_ = false;                    // Guarded by mu_.
  FileCacheStats stats_;                     // Guarded by mu_ (bytes/files derived).
  uint64_t tmp_counter_ = 0;                 // Guarded by mu_.
  std::vector<std::thread> workers_;
};

}  // namespace hfm::cache
