#include "hfm/vfs/prefetcher.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hfm/util/buffer_pool.h"
#include "hfm/util/log.h"

namespace hfm::vfs {

namespace {

// Errors that a retry cannot fix.
bool isPermanent(int err) {
  switch (err) {
    case ENOENT:
    case EACCES:
    case EPERM:
    case ENOSPC:
    case EROFS:
    case EINVAL:
    case EISDIR:
    case ENOTDIR:
      return true;
    default:
      return false;
  }
}

// Part buffers are recycled (see util::BufferPool for why): at most 8 idle ones (one per part of
// two 32 MiB batches in flight) are kept, so idle memory stays bounded. fetchExact overwrites every
// byte before anyone reads a part.
util::BufferPool& partBuffers() {
  static util::BufferPool pool(8);
  return pool;
}

}  // namespace

Status fetchExact(Remote& remote, const RemoteEntry& file, uint64_t offset, std::span<uint8_t> out,
                  int attempts, std::chrono::milliseconds backoff) {
  const uint64_t expected =
      offset >= file.size ? 0 : std::min<uint64_t>(out.size(), file.size - offset);
  if (expected == 0) return okStatus();
  auto target = out.first(static_cast<size_t>(expected));
  Error last(EIO, "no attempt made");
  for (int attempt = 1; attempt <= std::max(attempts, 1); ++attempt) {
    auto got = remote.read(file, offset, target);
    if (got.ok()) {
      if (*got == expected) return okStatus();
      last = Error(EIO, "short read from remote: " + std::to_string(*got) + " of " +
                            std::to_string(expected) + " bytes at offset " +
                            std::to_string(offset) + " of " + file.path);
    } else {
      last = got.error();
      if (isPermanent(last.code())) break;
    }
    if (attempt < attempts) {
      spdlog::debug("read {}@{}+{} failed (attempt {}/{}): {}", file.path, offset, expected,
                    attempt, attempts, last.message());
      std::this_thread::sleep_for(backoff * (1 << (attempt - 1)));
    }
  }
  return last;
}

bool MemoryBudget::tryReserve(uint64_t bytes) {
  uint64_t used = used_.load();
  do {
    if (used + bytes > limit_) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes));
  return true;
}

void MemoryBudget::reserve(uint64_t bytes) { used_ += bytes; }

void MemoryBudget::release(uint64_t bytes) { used_ -= bytes; }

struct Prefetcher::Part {
  Part(uint64_t s, uint64_t l, MemoryBudget* b) : start(s), len(l), budget(b) {}
  ~Part() {
    if (budget != nullptr) budget->release(len);
  }
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;
  const uint64_t start;
  const uint64_t len;
  MemoryBudget* const budget;  // charged for len while the part exists
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;              // Guarded by mu.
  std::optional<Error> error;     // Guarded by mu.
  util::BufferPool::Buffer data;  // Guarded by mu; immutable once done.
};

Prefetcher::Prefetcher(Remote& remote, WorkerPool& pool, std::shared_ptr<const RemoteEntry> file,
                       PrefetchConfig config, MemoryBudget* budget)
    : remote_(remote), pool_(pool), file_(std::move(file)), config_(config), budget_(budget) {
  window_ = config_.initial_window;
}

Prefetcher::~Prefetcher() {
  std::lock_guard<std::mutex> lock(mu_);
  dropStreamLocked();
}

void Prefetcher::dropStreamLocked() {
  // Background tasks hold weak references: parts not yet started are skipped, parts in flight
  // finish and are freed by whoever still holds them (possibly a waiting reader).
  parts_.clear();
}

void Prefetcher::trimLocked() {
  while (!parts_.empty()) {
    const auto& front = parts_.front();
    if (front->start + front->len + config_.backward_tolerance > high_water_) break;
    parts_.pop_front();
  }
}

bool Prefetcher::issueBatchLocked(uint64_t size, bool demand) {
  const uint64_t file_size = file_->size;
  if (issued_end_ >= file_size) return false;
  size = std::min(size, file_size - issued_end_);
  if (size == 0) return false;
  if (budget_ != nullptr) {
    if (demand) {
      budget_->reserve(size);
    } else if (!budget_->tryReserve(size)) {
      stats_.readahead_skipped++;
      return false;
    }
  }
  // Each part releases its share of the reservation when it is freed.
  stats_.batches.push_back(size);
  stats_.bytes_prefetched += size;
  last_batch_start_ = issued_end_;
  const uint64_t request = std::max<uint64_t>(config_.max_request, 4096);
  for (uint64_t off = issued_end_; off < issued_end_ + size; off += request) {
    auto part = std::make_shared<Part>(off, std::min(request, issued_end_ + size - off), budget_);
    parts_.push_back(part);
    std::weak_ptr<Part> weak = part;
    auto file = file_;
    Remote* remote = &remote_;
    const int attempts = config_.fetch_attempts;
    const auto backoff = config_.retry_backoff;
    const bool queued = pool_.submit([weak, file, remote, attempts, backoff] {
      auto p = weak.lock();
      if (!p) return;  // the stream was dropped before this part started
      auto buf = partBuffers().take(static_cast<size_t>(p->len));
      Status st = fetchExact(*remote, *file, p->start,
                             std::span<uint8_t>(buf.data(), static_cast<size_t>(p->len)), attempts,
                             backoff);
      {
        std::lock_guard<std::mutex> lock(p->mu);
        if (st.ok()) {
          p->data = std::move(buf);
        } else {
          p->error = st.error();  // buf goes back to the pool
        }
        p->done = true;
      }
      p->cv.notify_all();
    });
    if (!queued) {
      std::lock_guard<std::mutex> lock(part->mu);
      part->error = Error(EIO, "read of " + file_->path + " during shutdown");
      part->done = true;
    }
  }
  issued_end_ += size;
  window_ = std::min(window_ * 2, std::max(config_.max_window, config_.initial_window));
  return true;
}

Status Prefetcher::waitAndCopy(const std::shared_ptr<Part>& part, uint64_t offset,
                               std::span<uint8_t> out, std::vector<ReadView>* views) {
  std::unique_lock<std::mutex> lock(part->mu);
  auto ready = [&] { return part->done; };
  if (config_.read_timeout.count() > 0) {
    if (!part->cv.wait_for(lock, config_.read_timeout, ready)) {
      return Error(EIO, "timed out after " + std::to_string(config_.read_timeout.count()) +
                            " ms reading " + file_->path + " at offset " +
                            std::to_string(part->start));
    }
  } else {
    part->cv.wait(lock, ready);
  }
  if (part->error) return *part->error;
  const uint64_t from = std::max(offset, part->start);
  const uint64_t to = std::min(offset + out.size(), part->start + part->len);
  if (to <= from) return okStatus();
  const uint8_t* src = part->data.data() + (from - part->start);
  if (views != nullptr) {
    views->push_back({part, {src, static_cast<size_t>(to - from)}});
  } else {
    std::memcpy(out.data() + (from - offset), src, static_cast<size_t>(to - from));
  }
  return okStatus();
}

void Prefetcher::forgetFailedLocked(const Part* part) {
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (parts_[i].get() != part) continue;
    issued_end_ = parts_[i]->start;
    last_batch_start_ = std::min(last_batch_start_, issued_end_);
    parts_.erase(parts_.begin() + static_cast<std::ptrdiff_t>(i), parts_.end());
    return;
  }
}

Result<size_t> Prefetcher::read(uint64_t offset, std::span<uint8_t> out,
                                std::vector<ReadView>* views) {
  const uint64_t size = file_->size;
  if (offset >= size || out.empty()) return size_t{0};
  const uint64_t len = std::min<uint64_t>(out.size(), size - offset);
  const uint64_t end = offset + len;
  out = out.first(static_cast<size_t>(len));

  bool direct = false;           // fetch exactly [offset, end) synchronously
  uint64_t direct_end = offset;  // [offset, direct_end) is fetched synchronously
  std::vector<std::shared_ptr<Part>> needed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool sequential = false;
    bool restart = false;
    const auto near_last = [&] {
      return offset + config_.random_reorder_tolerance >= last_end_ &&
             offset <= last_end_ + config_.random_reorder_tolerance;
    };
    switch (mode_) {
      case Mode::kNone:
        sequential = true;
        break;
      case Mode::kStream: {
        const uint64_t lo =
            high_water_ > config_.backward_tolerance ? high_water_ - config_.backward_tolerance : 0;
        const uint64_t hi = std::max(high_water_, issued_end_) + config_.forward_tolerance;
        sequential = offset >= lo && offset <= hi;
        if (!sequential && misses_ > 0 && near_last()) {
          // The previous read left the stream and this one continues from it: the reader
          // moved; follow it with a new stream.
          sequential = true;
          restart = true;
        }
        break;
      }
      case Mode::kRandom:
        sequential = near_last();
        break;
    }
    const bool straggler = !sequential && mode_ == Mode::kStream && offset < high_water_ &&
                           offset + config_.backward_tolerance + config_.max_window >= high_water_;
    if (straggler || (!sequential && mode_ == Mode::kStream && misses_ == 0)) {
      // Reads a little behind the stream (stragglers of the kernel's parallel read-ahead, which
      // lag more under CPU pressure) never drop it; one other read outside the stream (a peek
      // at a header or footer) is tolerated too. Both get exactly their bytes.
      if (!straggler) misses_++;
      last_end_ = end;
      stats_.random_reads++;
      stats_.bytes_direct += len;
      direct = true;
    } else if (!sequential) {
      spdlog::trace("{}: random read {}+{} (last_end {}, high_water {}, issued_end {})",
                    file_->path, offset, len, last_end_, high_water_, issued_end_);
      dropStreamLocked();
      mode_ = Mode::kRandom;
      window_ = config_.initial_window;
      streak_ = 0;
      misses_ = 0;
      issued_end_ = 0;
      last_batch_start_ = 0;
      last_end_ = end;
      high_water_ = end;
      stats_.random_reads++;
      stats_.bytes_direct += len;
      direct = true;
    } else {
      stats_.sequential_reads++;
      if (mode_ != Mode::kStream || restart) {
        // A new stream; a read that this one continues counts as its first read.
        streak_ = mode_ == Mode::kNone ? 1 : 2;
        dropStreamLocked();
        mode_ = Mode::kStream;
        window_ = config_.initial_window;
        issued_end_ = offset;
        last_batch_start_ = offset;
        high_water_ = offset;
        stats_.stream_starts++;
      } else {
        streak_++;
      }
      misses_ = 0;
      if (offset > issued_end_) {
        // A small skip forward past everything requested: restart the parts at the new offset,
        // keeping the window (the access is still sequential).
        dropStreamLocked();
        issued_end_ = offset;
        last_batch_start_ = offset;
      }
      while (issued_end_ < end) issueBatchLocked(std::max(window_, end - issued_end_), true);
      if (streak_ >= 2 && end > last_batch_start_) issueBatchLocked(window_, false);

      const uint64_t front = parts_.empty() ? issued_end_ : parts_.front()->start;
      if (offset < front) direct_end = std::min(end, front);
      for (const auto& p : parts_) {
        if (p->start >= end) break;
        if (p->start + p->len > offset) needed.push_back(p);
      }
      last_end_ = end;
      high_water_ = std::max(high_water_, end);
      trimLocked();
      if (direct_end > offset) stats_.bytes_direct += direct_end - offset;
    }
  }

  if (direct) {
    HFM_TRY(
        fetchExact(remote_, *file_, offset, out, config_.fetch_attempts, config_.retry_backoff));
    return static_cast<size_t>(len);
  }
  if (direct_end > offset) {
    // Tolerated read behind the retained bytes (out-of-order readahead): fetch just that piece.
    HFM_TRY(fetchExact(remote_, *file_, offset, out.first(static_cast<size_t>(direct_end - offset)),
                       config_.fetch_attempts, config_.retry_backoff));
  }
  // Views only when every byte comes from the parts (no synchronous piece in `out`).
  std::vector<ReadView>* part_views = direct_end > offset ? nullptr : views;
  for (const auto& part : needed) {
    Status st = waitAndCopy(part, offset, out, part_views);
    if (!st.ok()) {
      if (part_views != nullptr) part_views->clear();
      std::lock_guard<std::mutex> lock(mu_);
      forgetFailedLocked(part.get());
      return st.error();
    }
  }
  return static_cast<size_t>(len);
}

PrefetchStats Prefetcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

uint64_t Prefetcher::bufferedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const auto& p : parts_) total += p->len;
  return total;
}

}  // namespace hfm::vfs
