// DedupIndex: chunks a client already stored at the CAS, shared by several UploadSessions (a
// mount gives every file's session the same index). Fed with the xorbs of shards the CAS
// accepted, so every reference it hands out names a stored, registered xorb range: a lookup
// answers the xorb and the chunk's position in it.
//
// It can also learn the chunks of files the mount read (addChunks): each chunk's hash computed
// from the bytes stored at its (xorb, index), so a reference never names other bytes.
//
// Memory is bounded: entries are grouped by the call that added them and whole groups are
// evicted least-recently-used (a hit refreshes its group) so that at most `max_chunks` chunks
// are indexed (about 100 bytes each). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "hfm/xet/merkle_hash.h"
#include "hfm/xet/shard.h"

namespace hfm::xet {

class DedupIndex {
 public:
  // 256 Ki chunks: ~16 GiB of file data at the 64 KiB average chunk size, ~25 MiB of memory.
  static constexpr size_t kDefaultMaxChunks = size_t{1} << 18;

  explicit DedupIndex(size_t max_chunks = kDefaultMaxChunks);

  struct Ref {
    MerkleHash xorb;
    uint32_t index = 0;  // chunk position in the xorb
  };

  // A chunk stored at the CAS: its hash and where it is.
  struct KnownChunk {
    MerkleHash hash;
    MerkleHash xorb;
    uint32_t index = 0;  // the chunk's real position in `xorb`
  };

  // Adds the chunks of xorbs the CAS has stored and registered (one accepted shard's CAS
  // section) as one group. Chunks already indexed keep their first reference.
  void addShardXorbs(std::span<const ShardXorb> xorbs);
  // Adds chunks of stored xorbs (e.g. every chunk of a file read back) as one group, with the
  // same rules.
  void addChunks(std::span<const KnownChunk> chunks);
  std::optional<Ref> find(const MerkleHash& chunk_hash);
  // Whether `chunk_hash` is indexed, without refreshing its group.
  bool contains(const MerkleHash& chunk_hash) const;

  size_t size() const;  // chunks indexed
  size_t capacity() const { return max_chunks_; }

 private:
  struct Group {
    std::vector<MerkleHash> xorbs;
    std::vector<MerkleHash> chunks;  // the chunk keys this group owns in `map_`
  };
  using GroupList = std::list<Group>;
  // Makes room for `incoming` chunks and opens a new most-recent group. Requires mu_.
  GroupList::iterator openGroupLocked(size_t incoming);
  // Indexes one chunk in `group` (xorb at `xorb_pos` of its xorbs) unless known or full.
  void insertLocked(GroupList::iterator group, const MerkleHash& hash, uint32_t xorb_pos,
                    uint32_t index);
  // Drops `group` if it owns no chunk. Requires mu_.
  void closeGroupLocked(GroupList::iterator group);
  struct Entry {
    GroupList::iterator group;
    uint32_t xorb = 0;  // position in group->xorbs
    uint32_t index = 0;
  };

  const size_t max_chunks_;
  mutable std::mutex mu_;
  GroupList groups_;                           // most recently used first. Guarded by mu_.
  std::unordered_map<MerkleHash, Entry> map_;  // Guarded by mu_.
};

}  // namespace hfm::xet
