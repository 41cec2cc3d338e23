// Memory-only chunk cache for --no-disk-cache (and when the disk cache directory is busy).
// LRU bounded by the bytes of chunk data held; one mutex mu_ guards everything.
#include <list>
#include <mutex>
#include <unordered_map>

#include "hfm/cache/chunk_cache.h"

namespace hfm::cache {
namespace {

class MemoryChunkCache final : public ChunkCache {
 public:
  explicit MemoryChunkCache(uint64_t capacity) : capacity_(capacity) {}

  ChunkData get(const ChunkKey& key) override {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.data;
  }

  std::optional<uint32_t> peekSize(const ChunkKey& key) override {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    return static_cast<uint32_t>(it->second.data->size());
  }

  Status putRange(const xet::MerkleHash& xorb, uint32_t first,
                  std::span<const std::span<const uint8_t>> chunks) override {
    for (size_t k = 0; k < chunks.size(); ++k) {
      insert(ChunkKey{xorb, first + static_cast<uint32_t>(k)}, chunks[k]);
    }
    return okStatus();
  }

  CacheStats stats() const override {
    std::lock_guard lock(mu_);
    return {capacity_, used_, index_.size(), hits_, misses_, 0, evictions_};
  }

 private:
  void insert(const ChunkKey& key, std::span<const uint8_t> data) {
    if (data.size() > capacity_) return;
    ChunkData copy = ownedChunkData(std::vector<uint8_t>(data.begin(), data.end()));
    std::lock_guard lock(mu_);
    if (index_.count(key) != 0) return;
    while (used_ + data.size() > capacity_ && !lru_.empty()) {
      auto victim = index_.find(lru_.back());
      used_ -= victim->second.data->size();
      index_.erase(victim);
      lru_.pop_back();
      ++evictions_;
    }
    lru_.push_front(key);
    index_.emplace(key, Entry{std::move(copy), lru_.begin()});
    used_ += data.size();
  }

  struct Entry {
    ChunkData data;
    std::list<ChunkKey>::iterator lru;
  };

  const uint64_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<ChunkKey, Entry, ChunkKeyHash> index_;  // Guarded by mu_
  std::list<ChunkKey> lru_;  // Guarded by mu_; front = most recently used
  uint64_t used_ = 0;        // Guarded by mu_
  uint64_t hits_ = 0;        // Guarded by mu_
  uint64_t misses_ = 0;      // Guarded by mu_
  uint64_t evictions_ = 0;   // Guarded by mu_
};

}  // namespace

std::unique_ptr<ChunkCache> makeMemoryChunkCache(uint64_t capacity_bytes) {
  return std::make_unique<MemoryChunkCache>(capacity_bytes);
}

}  // namespace hfm::cache
