// DedupIndex: chunks a client already stored at the CAS, shared by several UploadSessions (a
// mount gives every file's session the same index). Fed with the xorbs of shards the CAS
// accepted, so every reference it hands out names a stored, registered xorb range: a lookup
// answers the xorb and the chunk's position in it.
//
// Memory is bounded: entries are grouped by the shard that added them and whole groups are
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

  // Adds the chunks of xorbs the CAS has stored and registered (one accepted shard's CAS
  // section) as one group. Chunks already indexed keep their first reference.
  void addShardXorbs(std::span<const ShardXorb> xorbs);
  std::optional<Ref> find(const MerkleHash& chunk_hash);

  size_t size() const;  // chunks indexed

 private:
  struct Group {
    std::vector<MerkleHash> xorbs;
    std::vector<MerkleHash> chunks;  // the chunk keys this group owns in `map_`
  };
  using GroupList = std::list<Group>;
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
