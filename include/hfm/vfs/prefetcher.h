// Prefetcher: the adaptive read-ahead buffer of one open file handle.
//
// Why: every Remote::read is a network round trip (tens of ms to a CAS), while the kernel asks
// for a file in 128 KiB..1 MiB pieces. Reading each piece on demand would make a sequential
// scan latency-bound; reading far ahead on every access would waste bandwidth and memory on
// random access (safetensors headers, parquet footers, mmap page faults).
//
// How it works (in the spirit of mountpoint-s3's prefetcher):
//  1. Every read is classified against the handle's history:
//     - the first read of a handle is sequential (a new stream starts at its offset);
//     - while a stream is running, a read is sequential if its offset lies within
//       [high_water - backward_tolerance, max(high_water, issued_end) + forward_tolerance]:
//       slightly behind (the kernel's parallel readahead arrives out of order over several
//       FUSE threads), inside the bytes already requested, or a small skip forward;
//     - a read behind the stream by less than backward_tolerance + max_window is a straggler
//       (the kernel's parallel read-ahead lags more under CPU pressure): its exact bytes are
//       fetched synchronously and the stream is kept;
//     - one other read outside the stream is tolerated the same way (a peek at a header or a
//       footer);
//     - a read that continues where such an outside read ended (within
//       random_reorder_tolerance) means the reader moved: a new stream starts there; after a
//       random read, the same rule starts a stream again;
//     - a second consecutive read outside the stream (or any read in random mode that does not
//       continue the previous one) is random: the stream is dropped (in-flight parts are
//       cancelled or left to finish unobserved), the window is reset to the initial size and
//       exactly the bytes asked for are fetched, synchronously, with no read-ahead.
//  2. A stream fetches "parts". The first batch is small (initial_window, or the request size
//     if larger) so the first byte comes back quickly. Each later batch is twice the size of the
//     previous one, up to max_window ("TCP slow start"). A batch larger than max_request is
//     split into several parts of at most max_request bytes that are fetched in parallel.
//  3. A new read-ahead batch is issued when a confirmed-sequential read (the second read of a
//     stream or later) touches the most recently issued batch; so while the reader consumes one
//     batch, the next, bigger one is being fetched in the background on the WorkerPool.
//  4. A MemoryBudget shared by the mount's handles admits read-ahead batches only while they
//     fit (bytes a reader waits for are always admitted), so the total stays bounded however
//     many files are open. Parts entirely more than backward_tolerance behind the highest
//     offset served are freed,
//     so one handle holds at most about backward_tolerance + 2 * max_window + one request of
//     memory: the buffer is bounded by construction, there is no producer running unchecked.
//  5. A reader waits for the parts covering its range (at most read_timeout each), without
//     holding the handle lock, so concurrent reads on one handle proceed in parallel. Fetches
//     are retried (attempts, backoff) on transient errors; a part that still fails is dropped
//     from the buffer and its error (errno from the Remote, EIO on timeout or a short answer)
//     goes to the reader. A later read fetches it again, so a mount recovers when the remote
//     does.
//  6. A read never returns fewer bytes than asked for before end of file: a short answer from
//     the Remote is an error, never a short read (the Linux FUSE client would shrink i_size).
//
// Thread-safety: all methods may be called concurrently. Internal state is guarded by mu_;
// each Part has its own mutex/condvar. Background tasks hold only weak references to parts,
// so dropping a stream cancels fetches that have not started yet.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/vfs/remote.h"
#include "hfm/vfs/worker_pool.h"

namespace hfm::vfs {

struct PrefetchConfig {
  uint64_t initial_window = 1024ull * 1024;   // first batch of a stream
  uint64_t max_window = 32ull * 1024 * 1024;  // batches double up to this
  uint64_t max_request = 8ull * 1024 * 1024;  // largest single Remote::read
  // Out-of-order reads behind the highest offset served, and bytes kept behind it. Must cover
  // the kernel's read-ahead window (the FUSE adapter raises bdi read_ahead_kb to 16 MiB): the
  // kernel sends that window as parallel 1 MiB requests that arrive in any order.
  uint64_t backward_tolerance = 16ull * 1024 * 1024;
  uint64_t forward_tolerance = 16ull * 1024 * 1024;   // skip ahead still counted as sequential
  uint64_t random_reorder_tolerance = 256ull * 1024;  // after a random read
  std::chrono::milliseconds read_timeout{30000};      // per part wait; 0 = unbounded
  int fetch_attempts = 3;                             // total tries per fetch
  std::chrono::milliseconds retry_backoff{100};       // doubled after each failed try
};

// A byte budget shared by every prefetcher of a mount, so many open handles cannot add up to
// an unbounded amount of read-ahead (mountpoint-s3's memory limiter, simplified). Bytes a
// reader is waiting for are always admitted; read-ahead is skipped when it does not fit.
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t limit) : limit_(limit) {}
  bool tryReserve(uint64_t bytes);  // false if it would exceed the limit
  void reserve(uint64_t bytes);     // unconditional (demand reads)
  void release(uint64_t bytes);
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

// Counters for tests, logs and benchmarks.
struct PrefetchStats {
  uint64_t sequential_reads = 0;
  uint64_t random_reads = 0;
  uint64_t stream_starts = 0;
  uint64_t bytes_prefetched = 0;   // bytes requested by read-ahead parts
  uint64_t bytes_direct = 0;       // bytes fetched synchronously for random reads
  std::vector<uint64_t> batches;   // size of every batch issued, in order
  uint64_t readahead_skipped = 0;  // read-ahead batches the MemoryBudget refused
};

// Fetches [offset, offset + out.size()) with retries; requires the full length unless the
// range ends at end of file. Shared by the prefetcher and anything else reading a Remote.
Status fetchExact(Remote& remote, const RemoteEntry& file, uint64_t offset, std::span<uint8_t> out,
                  int attempts, std::chrono::milliseconds backoff);

// Bytes served without a copy: a view into storage that `owner` keeps alive.
struct ReadView {
  std::shared_ptr<const void> owner;
  std::span<const uint8_t> bytes;
};

class Prefetcher {
 public:
  // `budget` (optional) must outlive every part, i.e. the pool's queued tasks.
  Prefetcher(Remote& remote, WorkerPool& pool, std::shared_ptr<const RemoteEntry> file,
             PrefetchConfig config, MemoryBudget* budget = nullptr);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Reads up to out.size() bytes at `offset`; returns exactly min(out.size(), size - offset)
  // bytes, 0 at or past end of file, or the error of the fetch that failed.
  // With `views`: when the bytes all come from prefetched parts they are not copied into `out`
  // but appended to *views (in order, summing to the returned size), each view keeping its part
  // alive; otherwise *views stays empty and the bytes are in `out`. Saves a copy per FUSE read.
  Result<size_t> read(uint64_t offset, std::span<uint8_t> out,
                      std::vector<ReadView>* views = nullptr);

  PrefetchStats stats() const;
  uint64_t bufferedBytes() const;  // bytes held or being fetched (for the memory-bound test)

 private:
  struct Part;
  enum class Mode { kNone, kStream, kRandom };

  // Issues one batch of `size` bytes at issued_end_; read-ahead (!demand) only if the budget
  // admits it. Returns false if skipped. Requires mu_.
  bool issueBatchLocked(uint64_t size, bool demand);
  void dropStreamLocked();
  void trimLocked();
  // Waits for `part`, then copies its overlap with [offset, offset + out.size()) into `out`,
  // or, with `views`, appends a view of that overlap instead.
  Status waitAndCopy(const std::shared_ptr<Part>& part, uint64_t offset, std::span<uint8_t> out,
                     std::vector<ReadView>* views);
  void forgetFailedLocked(const Part* part);

  Remote& remote_;
  WorkerPool& pool_;
  const std::shared_ptr<const RemoteEntry> file_;
  const PrefetchConfig config_;
  MemoryBudget* const budget_;

  mutable std::mutex mu_;
  // Contiguous parts covering [parts_.front()->start, issued_end_). Guarded by mu_.
  std::deque<std::shared_ptr<Part>> parts_;
  Mode mode_ = Mode::kNone;        // Guarded by mu_.
  uint64_t issued_end_ = 0;        // Guarded by mu_.
  uint64_t last_batch_start_ = 0;  // Guarded by mu_.
  uint64_t window_ = 0;            // size of the next batch. Guarded by mu_.
  uint64_t last_end_ = 0;          // end of the previous read. Guarded by mu_.
  uint64_t high_water_ = 0;        // highest end served in this stream. Guarded by mu_.
  uint64_t streak_ = 0;            // sequential reads since the stream started. Guarded by mu_.
  uint64_t misses_ = 0;            // consecutive reads outside the stream. Guarded by mu_.
  PrefetchStats stats_;            // Guarded by mu_.
};

}  // namespace hfm::vfs
