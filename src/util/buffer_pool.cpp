// Buffer pool (see buffer_pool.h).
#include "hfm/util/buffer_pool.h"

#include <utility>

namespace hfm::util {

BufferPool::Buffer& BufferPool::Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    bytes_ = std::move(other.bytes_);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

void BufferPool::Buffer::release() {
  if (bytes_ && pool_ != nullptr) pool_->give(std::move(bytes_), capacity_);
  bytes_.reset();
  capacity_ = 0;
  pool_ = nullptr;
}

BufferPool::Buffer BufferPool::take(size_t min_bytes) {
  Buffer b;
  b.pool_ = this;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < idle_.size(); ++i) {
      const size_t cap = idle_[i].capacity;
      if (cap < min_bytes || cap / 2 > min_bytes) continue;  // too small, or wastes over half
      std::swap(idle_[i], idle_.back());
      b.bytes_ = std::move(idle_.back().bytes);
      b.capacity_ = cap;
      idle_.pop_back();
      return b;
    }
  }
  b.bytes_ = std::make_unique_for_overwrite<uint8_t[]>(min_bytes);  // uninitialised
  b.capacity_ = min_bytes;
  return b;
}

size_t BufferPool::idleCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

void BufferPool::give(std::unique_ptr<uint8_t[]> bytes, size_t capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < max_idle_) idle_.push_back({std::move(bytes), capacity});
  // else: `bytes` is freed on return
}

}  // namespace hfm::util
