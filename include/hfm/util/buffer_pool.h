// BufferPool: recycles large uninitialised byte buffers.
//
// Why: the read path moves megabytes per request (HTTP bodies, decoded chunk ranges, prefetch
// parts). A fresh buffer of that size is a new mmap whose pages the kernel faults in and
// zeroes on first touch; on a cold read that cost as much CPU as the useful copies. Buffers
// handed back are kept (at most `max_idle` of them) and given to the next take() that fits.
//
// Contract: take(n) returns a buffer of at least n bytes whose contents are unspecified; the
// caller overwrites what it reads. Buffers are released by destroying the handle (to the pool
// if it has room, else freed). Thread-safe; a pool must outlive its buffers (pools are
// normally function-local statics).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace hfm::util {

class BufferPool {
 public:
  // Idle buffers kept for reuse; a take(n) reuses one with n <= capacity <= 2n.
  explicit BufferPool(size_t max_idle) : max_idle_(max_idle) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&& other) noexcept { *this = std::move(other); }
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { release(); }

    uint8_t* data() const { return bytes_.get(); }
    size_t capacity() const { return capacity_; }
    explicit operator bool() const { return bytes_ != nullptr; }

   private:
    friend class BufferPool;
    void release();
    BufferPool* pool_ = nullptr;
    std::unique_ptr<uint8_t[]> bytes_;
    size_t capacity_ = 0;
  };

  Buffer take(size_t min_bytes);
  size_t idleCount() const;

 private:
  struct Idle {
    std::unique_ptr<uint8_t[]> bytes;
    size_t capacity;
  };
  void give(std::unique_ptr<uint8_t[]> bytes, size_t capacity);

  const size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<Idle> idle_;  // Guarded by mu_.
};

}  // namespace hfm::util
