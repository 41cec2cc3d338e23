// ChunkCache: decoded Xet chunks, content-addressed by (xorb hash, chunk index).
//
// Layering: `cache` sits after `xet` in the build (it uses xet::MerkleHash and, in
// chunk_fetcher.h, the CAS client); `xet` is the CAS protocol client only and knows nothing
// of files on disk.
//
// One entry = one chunk's uncompressed bytes (≤ 128 KiB). Per-chunk keys (rather than term
// runs) mean a hit never depends on how an earlier read happened to group chunks, so entries
// never overlap or fragment. Chunk content is immutable for a given key, so an entry is never
// updated, only inserted, read or dropped.
//
// Contract shared by every implementation:
//  * get() returns the exact bytes that were put() or nullptr (a miss). It never returns
//    corrupt data: the disk cache verifies an XXH3-64 checksum over key + length + data on
//    every read, and deletes an entry that fails (bad checksum, truncated, wrong key) before
//    reporting the miss, so the caller refetches.
//  * The total accounted size never exceeds the capacity, also while several threads insert:
//    put() reserves space (evicting least-recently-used entries, file deleted first) before
//    the bytes reach the disk. An entry larger than the capacity is silently not cached.
//  * put() of a key already present: the disk cache replaces the entry (atomically, by
//    rename), which heals an entry that would fail verification; the memory cache keeps it.
//    Either way the content is the same: a key names immutable bytes.
//  * All methods are thread-safe.
//
// DiskChunkCache layout under its root (`<--cache-dir>/chunks`):
//   <root>/.lock                          flock()ed while open: one process per directory
//   <root>/tmp/<random>                   entries being written (deleted at open)
//   <root>/<hh>/<xorbhex>.<first>-<end>   committed entries; hh = first two hex digits
// One entry holds the consecutive chunks [first, end) of one xorb: everything one fetched
// range decoded to. Why not a file per chunk: creating, renaming and later deleting a file
// for every ~64 KiB chunk cost more CPU than the rest of a cold read's bookkeeping.
// Entry file = header ‖ chunk data in order. Header: "HFMRNG01", raw xorb hash, u32 first,
// u32 count, count × (u32 length, u64 XXH3 of the chunk's data seeded with its index), u64
// XXH3 of all preceding header bytes. The header is verified when the index is rebuilt at
// open; each chunk's checksum on every read of that chunk, and a chunk that fails drops its
// whole entry. Writes go to tmp/ and are renamed into place, so a crash leaves either no
// entry or a complete one; no fsync: a torn file after power loss fails its checksums and is
// dropped. Entries of the older one-file-per-chunk layout are deleted at open. A chunk in
// several entries (overlapping fetched ranges) is served from the newest. The accounted size
// of an entry is its file size; LRU order is per entry (by mtime after a restart).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::cache {

struct ChunkKey {
  xet::MerkleHash xorb;
  uint32_t index = 0;

  friend bool operator==(const ChunkKey&, const ChunkKey&) = default;
};

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const noexcept {
    return static_cast<size_t>(k.xorb.word(0) ^ (uint64_t{k.index} * 0x9E3779B97F4A7C15ULL));
  }
};

// Immutable shared chunk bytes: a view whose shared owner keeps the storage alive (a fetched
// body, a decode buffer, a cache read), so a hit stays valid after the entry is evicted and
// fetched chunks reach readers without a copy.
using ChunkData = std::shared_ptr<const std::span<const uint8_t>>;

// ChunkData owning `bytes`.
inline ChunkData ownedChunkData(std::vector<uint8_t> bytes) {
  struct Owned {
    std::vector<uint8_t> bytes;
    std::span<const uint8_t> view;
  };
  auto owned = std::make_shared<Owned>();
  owned->bytes = std::move(bytes);
  owned->view = owned->bytes;
  return {owned, &owned->view};
}

struct CacheStats {
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;  // committed entries + space reserved by in-progress puts
  uint64_t entries = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t corrupt = 0;  // entries dropped because verification failed
  uint64_t evictions = 0;
};

class ChunkCache {
 public:
  virtual ~ChunkCache() = default;

  // The chunk's bytes, or nullptr on a miss.
  virtual ChunkData get(const ChunkKey& key) = 0;

  // Decoded size of the chunk if it is indexed (no I/O, no verification; get() may still
  // miss). Lets a reader map file offsets to chunks before reading them.
  virtual std::optional<uint32_t> peekSize(const ChunkKey& key) = 0;

  // Inserts a chunk. Failure (e.g. ENOSPC) leaves the cache consistent; callers may ignore it
  // since the cache is only an optimisation.
  Status put(const ChunkKey& key, std::span<const uint8_t> data) {
    return putRange(key.xorb, key.index, std::span<const std::span<const uint8_t>>(&data, 1));
  }

  // Inserts the consecutive chunks first, first+1, ... of `xorb` (one fetched range) as a
  // single entry where the implementation can. Same failure contract as put().
  virtual Status putRange(const xet::MerkleHash& xorb, uint32_t first,
                          std::span<const std::span<const uint8_t>> chunks) = 0;

  virtual CacheStats stats() const = 0;
};

// Disk cache rooted at `root` (created if missing) holding at most `capacity_bytes`.
// EBUSY if another process holds the directory's lock.
Result<std::unique_ptr<ChunkCache>> openDiskChunkCache(const std::filesystem::path& root,
                                                       uint64_t capacity_bytes);

// Memory-only LRU bounded by `capacity_bytes` of chunk data (for --no-disk-cache).
std::unique_ptr<ChunkCache> makeMemoryChunkCache(uint64_t capacity_bytes);

struct ChunkCacheOptions {
  std::filesystem::path cache_dir;           // --cache-dir; entries live in cache_dir / "chunks"
  uint64_t capacity_bytes = 10'000'000'000;  // --cache-size
  bool disk = true;                          // false for --no-disk-cache
  uint64_t memory_capacity_bytes = 256ULL << 20;  // used when !disk or the dir is locked
};

// The cache a mount uses: the disk cache, or a memory cache when `disk` is false or when the
// directory is in use by another process (logged as a warning). Errors only when the disk
// cache cannot be created for another reason (permissions, not a directory, ...).
Result<std::unique_ptr<ChunkCache>> openChunkCache(const ChunkCacheOptions& options);

}  // namespace hfm::cache

template <>
struct std::hash<hfm::cache::ChunkKey> : hfm::cache::ChunkKeyHash {};
