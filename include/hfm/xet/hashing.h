// Xet hash functions over chunk lists (spec §3): chunk hash, merkle root (= xorb hash),
// file hash, term verification ("range") hash, and HMAC'd chunk hashes for global dedup.
// MerkleBuilder computes the same merkle root incrementally, one leaf at a time, in memory
// that grows only with the logarithm of the leaf count (for hashing files of any size).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "hfm/xet/merkle_hash.h"

namespace hfm::xet {

// One leaf of the merkle tree: a chunk's hash and its uncompressed length.
struct ChunkInfo {
  MerkleHash hash;
  uint64_t size = 0;
  friend bool operator==(const ChunkInfo&, const ChunkInfo&) = default;
};

// BLAKE3 keyed with kDataKey over the uncompressed chunk bytes.
MerkleHash chunkHash(std::span<const uint8_t> chunk);

// Merkle aggregation (§3.3). Empty → all-zero hash; one leaf → that leaf's hash.
MerkleHash merkleRoot(std::span<const ChunkInfo> chunks);
inline MerkleHash xorbHash(std::span<const ChunkInfo> chunks) { return merkleRoot(chunks); }

// Incremental merkle aggregation: add() the leaves in order, then root() or fileHash() give
// exactly merkleRoot()/fileHash() of the whole list. A level's next group is decided as soon as
// a cut node arrives or 9 nodes are pending, so each level buffers at most 9 nodes.
class MerkleBuilder {
 public:
  void add(const ChunkInfo& leaf);
  // Applies the end rule to a copy of the state: the builder can keep growing afterwards.
  MerkleHash root() const;
  MerkleHash fileHash(const MerkleHash::Bytes& salt = {}) const;
  uint64_t leafCount() const { return leaf_count_; }
  uint64_t totalSize() const { return total_size_; }

 private:
  struct Level {
    std::array<ChunkInfo, 9> pending;
    size_t count = 0;      // nodes in `pending`
    uint64_t emitted = 0;  // nodes ever added to this level
  };
  void push(size_t level, const ChunkInfo& node);
  std::vector<Level> levels_;
  uint64_t leaf_count_ = 0;
  uint64_t total_size_ = 0;
};

// File hash (§3.4): keyed BLAKE3 of the merkle root under `salt` (zero key by default).
// A file with zero chunks hashes to all zeros.
MerkleHash fileHash(std::span<const ChunkInfo> chunks, const MerkleHash::Bytes& salt = {});

// Verification hash of a term covering `chunk_hashes` in order (§3.5).
MerkleHash verificationHash(std::span<const MerkleHash> chunk_hashes);

// Global-dedup keyed chunk hash (§3.6): BLAKE3 keyed with `key` over the raw chunk hash.
MerkleHash hmacChunkHash(const MerkleHash& chunk_hash, const MerkleHash& key);

// Global-dedup eligibility (§3.8): first chunk of a file, or word3 % 1024 == 0.
inline bool isGlobalDedupEligible(const MerkleHash& chunk_hash, bool first_in_file) {
  return first_in_file || chunk_hash.word(3) % 1024 == 0;
}

// SHA-256 digest as stored in shards' metadata extension (§3.7): each 8-byte group reversed,
// so that hex() of the result is the ordinary SHA-256 hex string.
MerkleHash sha256AsMerkleHash(const std::array<uint8_t, 32>& digest);

}  // namespace hfm::xet
