// FakeRemote: an in-memory vfs::Remote for tests, with fault and latency injection and call
// counting.
//
// Files are stored by path; directories are implicit (they exist while a file is below them),
// as on the Hub. Every version of every file is kept by its content hash, so a handle opened on
// an old version keeps reading it after the path changes (content-addressed, like Xet). Each
// mutation changes revision(). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hfm/vfs/remote.h"

namespace hfm::testing {

// Deterministic pseudo-random bytes (splitmix64), shared by tests and the mount helper.
std::vector<uint8_t> patternBytes(uint64_t size, uint64_t seed);

class FakeRemote : public vfs::Remote {
 public:
  // kAll covers the read side only; kUpload (beginUpload, write, finish) and kCommit
  // (commitFiles) are injected separately.
  enum Op : unsigned {
    kList = 1,
    kStat = 2,
    kRead = 4,
    kRevision = 8,
    kAll = 15,
    kUpload = 16,
    kCommit = 32
  };

  struct Counts {
    uint64_t list = 0;
    uint64_t stat = 0;
    uint64_t read = 0;
    uint64_t revision = 0;
    uint64_t bytes_read = 0;
    uint64_t max_concurrent_lists = 0;  // most listDirectory calls in flight at once
    uint64_t uploads = 0;               // finished uploads
    uint64_t bytes_uploaded = 0;        // bytes of finished uploads
    uint64_t commits = 0;               // successful commitFiles batches
  };

  explicit FakeRemote(bool read_only = true) : read_only_(read_only) {}

  // Adds or replaces a file; returns its content hash.
  std::string putFile(const std::string& path, std::vector<uint8_t> bytes, int64_t mtime_ns = 0);
  std::string putFile(const std::string& path, std::string_view text, int64_t mtime_ns = 0);
  bool removeFile(const std::string& path);
  std::vector<uint8_t> contents(const std::string& path) const;

  // Faults: `ops` is a mask of Op. failAlways lasts until clearFaults; failNext for `count`
  // calls. shortReads makes read() return half of what it should (a buggy backend).
  void failAlways(unsigned ops, int err);
  void failNext(unsigned ops, int count, int err);
  void setShortReads(bool on);
  void clearFaults();
  void setLatency(std::chrono::microseconds latency);
  // While paused, read() blocks (at most 30 s, then fails with ETIMEDOUT).
  void pauseReads(bool paused);
  // Emulates the bucket tree API matching raw key prefixes (#207): listing "a/b" also returns
  // "a/b.json" and friends.
  void setRawPrefixListing(bool on);

  Counts counts() const;
  void resetCounts();
  std::vector<std::pair<uint64_t, uint64_t>> readLog() const;  // (offset, length) per read
  std::vector<vfs::RemoteEntry> learnedBases() const;          // learnBase() calls, in order

  // vfs::Remote
  Result<std::vector<vfs::RemoteEntry>> listDirectory(const std::string& dir) override;
  Result<vfs::RemoteEntry> stat(const std::string& path) override;
  Result<size_t> read(const vfs::RemoteEntry& file, uint64_t offset,
                      std::span<uint8_t> out) override;
  bool readOnly() const override { return read_only_; }
  Result<std::string> revision() override;
  Result<std::unique_ptr<vfs::RemoteUpload>> beginUpload() override;
  void learnBase(const vfs::RemoteEntry& base) override;
  Status commitFiles(std::span<const vfs::RemoteAdd> adds,
                     std::span<const std::string> deletes) override;

 private:
  class Upload;
  struct File {
    vfs::RemoteEntry entry;
  };
  // Applies latency and faults for `op`; returns the injected error, if any.
  std::optional<Error> injectLocked(Op op, std::unique_lock<std::mutex>& lock);

  const bool read_only_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, File> files_;                                         // Guarded by mu_.
  std::map<std::string, std::shared_ptr<const std::vector<uint8_t>>> blobs_;  // Guarded by mu_.
  uint64_t generation_ = 1;                                                   // Guarded by mu_.
  unsigned fail_always_ops_ = 0;                                              // Guarded by mu_.
  int fail_always_err_ = EIO;                                                 // Guarded by mu_.
  unsigned fail_next_ops_ = 0;                                                // Guarded by mu_.
  int fail_next_count_ = 0;                                                   // Guarded by mu_.
  int fail_next_err_ = EIO;                                                   // Guarded by mu_.
  bool short_reads_ = false;                                                  // Guarded by mu_.
  bool paused_ = false;                                                       // Guarded by mu_.
  bool raw_prefix_ = false;                                                   // Guarded by mu_.
  std::chrono::microseconds latency_{0};                                      // Guarded by mu_.
  Counts counts_;                                                             // Guarded by mu_.
  uint64_t lists_in_flight_ = 0;                                              // Guarded by mu_.
  std::vector<std::pair<uint64_t, uint64_t>> read_log_;                       // Guarded by mu_.
  std::vector<vfs::RemoteEntry> learned_bases_;                               // Guarded by mu_.
};

}  // namespace hfm::testing
