// ChunkFetcher: file bytes by Xet file hash, through the chunk cache and the CAS.
//
// Layering: this lives in the `cache` layer, configured after `xet`, because it combines the
// xet CAS protocol client (hfm/xet/cas_client.h, via its CasReader seam) with the chunk cache
// (chunk_cache.h). `xet` itself knows nothing of caches.
//
// read(file, size, offset, out) fills `out` with file bytes [offset, offset + out.size())
// clamped to `size`, and returns how many it wrote: fewer than asked only at end of file.
// On any error nothing in `out` may be used. What is verified: every fetched range must hold
// exactly its announced chunks, each well formed and decoding to its header's size, and each
// term must decode to the plan's unpacked_length; cached chunks must pass their checksum. The
// protocol carries no per-chunk hash in plans, so a payload altered in transit but still
// decodable cannot be detected here (transport integrity is TLS's job, as in xet-core).
//
// How a read runs:
//  1. Fast path: the fetcher remembers, per file, where each chunk it has seen lies in the
//     file (file offset → xorb, chunk index, size; immutable for a file hash). If every chunk
//     of the range is known and in the cache, the read is served with no network at all.
//  2. Otherwise it gets a reconstruction plan for exactly the byte range (cached per
//     (file, range) for plan_ttl, below the ~1 h lifetime of presigned URLs; concurrent
//     identical requests share one CAS call). Terms whose chunks are all cached are copied;
//     the others need their fetch entry: every chunk of every needed entry joins a per-chunk
//     single-flight, so concurrent readers of the same chunk share one download; each
//     entry this reader leads is fetched (several in parallel: at most max_parallel_fetches
//     per read, max_inflight_fetches overall), decoded, inserted into the cache, and handed
//     to waiters. A plan must cover the request and nothing past EOF, else EIO.
//  3. A 403 from a presigned URL (ours or the one a shared flight used) drops the cached plan
//     and re-plans, at most max_replans times. 401s are handled by the CAS client.
//
// forEachChunk() walks a whole file chunk by chunk, giving each chunk's real place in its xorb
// and its bytes (for a writer that wants to reference them, see xet::DedupIndex). It goes
// through the same cache and flights, a window of walk_window bytes at a time, so memory
// stays bounded whatever the file size. It is never on the read path.
// Thread-safe; any number of concurrent reads. Locks: mu_ guards the plan cache and the
// layout map, never held during I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <semaphore>
#include <span>
#include <unordered_map>
#include <vector>

#include "hfm/cache/chunk_cache.h"
#include "hfm/cache/single_flight.h"
#include "hfm/util/result.h"
#include "hfm/xet/cas_client.h"
#include "hfm/xet/merkle_hash.h"
#include "hfm/xet/reconstruction.h"

namespace hfm::cache {

struct FetcherOptions {
  size_t max_parallel_fetches = 8;   // fetch entries in flight for one read
  size_t max_inflight_fetches = 32;  // presigned GETs in flight, all reads together
  std::chrono::seconds plan_ttl{50 * 60};
  size_t max_cached_plans = 1024;
  size_t max_layout_chunks = 1 << 20;  // chunk locations remembered, all files together
  int max_replans = 3;
  uint64_t walk_window = 64ull << 20;  // bytes of chunks forEachChunk() holds at a time
};

struct FetcherStats {
  uint64_t reads = 0;
  uint64_t fast_reads = 0;     // served from the layout map + cache, no CAS call
  uint64_t plan_requests = 0;  // reconstruction calls made (plan cache misses)
  uint64_t fetches = 0;        // presigned GETs made
  uint64_t replans = 0;        // after a 403
};

// One chunk of a file, as forEachChunk() visits it.
struct FileChunk {
  uint64_t offset = 0;  // of its first byte in the file
  xet::MerkleHash xorb;
  uint32_t index = 0;              // its position in `xorb`
  std::span<const uint8_t> bytes;  // valid during the visit only
};

class ChunkFetcher {
 public:
  // `cas` must outlive the fetcher; `cache` may be null (no caching at all).
  ChunkFetcher(xet::CasReader& cas, std::shared_ptr<ChunkCache> cache, FetcherOptions options = {});

  Result<size_t> read(const xet::MerkleHash& file, uint64_t file_size, uint64_t offset,
                      std::span<uint8_t> out);

  // Visits every chunk of the file in file order. Stops at the first error, the visitor's
  // included (a chunk the CAS cannot serve is an error, never a skipped chunk).
  Status forEachChunk(const xet::MerkleHash& file, uint64_t file_size,
                      const std::function<Status(const FileChunk&)>& visit);

  FetcherStats stats() const;

 private:
  struct PlanKey {
    xet::MerkleHash file;
    uint64_t first = 0;
    uint64_t last = 0;
    friend bool operator==(const PlanKey&, const PlanKey&) = default;
  };
  struct PlanKeyHash {
    size_t operator()(const PlanKey& k) const noexcept {
      return static_cast<size_t>(k.file.word(0) ^ (k.first * 0x9E3779B97F4A7C15ULL) ^ k.last);
    }
  };
  using PlanPtr = std::shared_ptr<const xet::ReconstructionPlan>;
  struct CachedPlan {
    PlanPtr plan;
    std::chrono::steady_clock::time_point fetched;
    std::list<PlanKey>::iterator lru;
  };
  struct ChunkLoc {
    xet::MerkleHash xorb;
    uint32_t index = 0;
    uint32_t size = 0;
  };
  struct FileLayout {
    std::map<uint64_t, ChunkLoc> chunks;  // file offset of the chunk's first byte → chunk
    std::list<xet::MerkleHash>::iterator lru;
  };

  using LayoutRun = std::vector<std::pair<uint64_t, ChunkLoc>>;
  // The chunks of a plan term, with the file offset of its first byte.
  struct TermChunks {
    size_t term = 0;
    uint64_t file_start = 0;
    std::vector<ChunkData> chunks;  // one per chunk of the term
  };

  // The known chunks covering [offset, end) in order; false if one is unknown.
  bool layoutRun(const xet::MerkleHash& file, uint64_t offset, uint64_t end, LayoutRun& run);
  // Fast path; false if any chunk is unknown or not cached.
  bool readFromLayout(const xet::MerkleHash& file, uint64_t offset, std::span<uint8_t> out);
  Result<PlanPtr> plan(const PlanKey& key);
  void dropPlan(const PlanKey& key);
  // Runs `attempt` with the plan for `key`; re-plans after an expired URL (max_replans).
  Status withPlan(const PlanKey& key,
                  const std::function<Status(const xet::ReconstructionPlan&)>& attempt);
  // The chunks of every term of `plan` overlapping [offset, end), from the cache or fetched,
  // each term checked against its unpacked length; remembers their layout.
  Result<std::vector<TermChunks>> gatherTerms(const xet::MerkleHash& file, uint64_t file_size,
                                              const xet::ReconstructionPlan& plan, uint64_t offset,
                                              uint64_t end);
  // One attempt at the slow path with a given plan.
  Status readWithPlan(const xet::MerkleHash& file, uint64_t file_size,
                      const xet::ReconstructionPlan& plan, uint64_t offset, std::span<uint8_t> out);
  // The chunks of [offset, end) in order (the first may start before `offset`).
  Result<std::vector<FileChunk>> windowChunks(const xet::MerkleHash& file, uint64_t file_size,
                                              uint64_t offset, uint64_t end,
                                              std::vector<ChunkData>& keep);
  void rememberLayout(const xet::MerkleHash& file, std::span<const std::pair<uint64_t, ChunkLoc>>);

  xet::CasReader& cas_;
  const std::shared_ptr<ChunkCache> cache_;
  const FetcherOptions options_;
  SingleFlight<PlanKey, PlanPtr, PlanKeyHash> plan_flights_;
  SingleFlight<ChunkKey, ChunkData, ChunkKeyHash> chunk_flights_;
  std::counting_semaphore<> fetch_slots_;  // bounds max_inflight_fetches

  mutable std::mutex mu_;
  std::unordered_map<PlanKey, CachedPlan, PlanKeyHash> plans_;  // Guarded by mu_
  std::list<PlanKey> plan_lru_;                                 // Guarded by mu_; front = newest
  std::unordered_map<xet::MerkleHash, FileLayout> layouts_;     // Guarded by mu_
  std::list<xet::MerkleHash> layout_lru_;                       // Guarded by mu_
  size_t layout_chunks_ = 0;                                    // Guarded by mu_
  FetcherStats stats_;                                          // Guarded by mu_
};

}  // namespace hfm::cache
