#include "hfm/xet/hashing.h"

#include <algorithm>
#include <string>
#include <vector>

namespace hfm::xet {
namespace {

constexpr size_t kMaxGroup = 9;     // 2 * mean branching factor + 1
constexpr uint64_t kBranchMod = 4;  // mean branching factor

// Number of nodes at the front of `level` that become one parent (§3.3 cutting rule).
size_t nextGroupSize(std::span<const ChunkInfo> level) {
  const size_t n = level.size();
  if (n <= 2) return n;
  const size_t limit = std::min(kMaxGroup, n);
  for (size_t i = 2; i < limit; ++i) {
    if (level[i].hash.word(3) % kBranchMod == 0) return i + 1;
  }
  return limit;
}

ChunkInfo parentOf(std::span<const ChunkInfo> group) {
  std::string text;
  text.reserve(group.size() * 88);
  uint64_t total = 0;
  for (const auto& child : group) {
    text += child.hash.hex();
    text += " : ";
    text += std::to_string(child.size);
    text += '\n';
    total += child.size;
  }
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  return {blake3Keyed(kInternalNodeKey, bytes), total};
}

// Appends `node` to `level` of an incremental tree, emitting decided groups upwards. A group
// is decided by the node just added: it is a cut (index ≥ 2 with word3 % 4 == 0), or it is the
// 9th pending node. Earlier nodes were tested when they arrived, so groups always end at the
// newest node and a level's buffer empties whenever it emits.
template <typename Levels>
void pushNode(Levels& levels, size_t level, const ChunkInfo& node) {
  if (levels.size() <= level) levels.emplace_back();
  auto& lv = levels[level];
  lv.pending[lv.count++] = node;
  ++lv.emitted;
  const size_t index = lv.count - 1;
  if ((index >= 2 && node.hash.word(3) % kBranchMod == 0) || lv.count == kMaxGroup) {
    const ChunkInfo parent = parentOf(std::span(lv.pending.data(), lv.count));
    lv.count = 0;
    pushNode(levels, level + 1, parent);  // may reallocate `levels`: lv is not used after
  }
}

}  // namespace

void MerkleBuilder::add(const ChunkInfo& leaf) {
  ++leaf_count_;
  total_size_ += leaf.size;
  pushNode(levels_, 0, leaf);
}

MerkleHash MerkleBuilder::root() const {
  if (leaf_count_ == 0) return MerkleHash{};
  std::vector<Level> levels = levels_;
  // End rule: a level that ever held exactly one node is the root; otherwise its pending tail
  // (1..8 nodes with no cut among them) is its last group.
  for (size_t level = 0;; ++level) {
    if (levels[level].emitted == 1) return levels[level].pending[0].hash;
    if (levels[level].count > 0) {
      const ChunkInfo parent =
          parentOf(std::span(levels[level].pending.data(), levels[level].count));
      levels[level].count = 0;
      pushNode(levels, level + 1, parent);
    }
  }
}

MerkleHash MerkleBuilder::fileHash(const MerkleHash::Bytes& salt) const {
  if (leaf_count_ == 0) return MerkleHash{};
  return blake3Keyed(salt, root().span());
}

MerkleHash chunkHash(std::span<const uint8_t> chunk) { return blake3Keyed(kDataKey, chunk); }

MerkleHash merkleRoot(std::span<const ChunkInfo> chunks) {
  if (chunks.empty()) return MerkleHash{};
  std::vector<ChunkInfo> level(chunks.begin(), chunks.end());
  while (level.size() > 1) {
    std::vector<ChunkInfo> parents;
    parents.reserve(level.size() / 2 + 1);
    std::span<const ChunkInfo> rest(level);
    while (!rest.empty()) {
      const size_t take = nextGroupSize(rest);
      parents.push_back(parentOf(rest.first(take)));
      rest = rest.subspan(take);
    }
    level = std::move(parents);
  }
  return level.front().hash;
}

MerkleHash fileHash(std::span<const ChunkInfo> chunks, const MerkleHash::Bytes& salt) {
  if (chunks.empty()) return MerkleHash{};
  return blake3Keyed(salt, merkleRoot(chunks).span());
}

MerkleHash verificationHash(std::span<const MerkleHash> chunk_hashes) {
  Blake3Hasher hasher(kVerificationKey);
  for (const auto& h : chunk_hashes) hasher.update(h.span());
  return hasher.finalize();
}

MerkleHash hmacChunkHash(const MerkleHash& chunk_hash, const MerkleHash& key) {
  return blake3Keyed(key.raw(), chunk_hash.span());
}

MerkleHash sha256AsMerkleHash(const std::array<uint8_t, 32>& digest) {
  MerkleHash::Bytes stored{};
  for (size_t group = 0; group < 4; ++group) {
    for (size_t i = 0; i < 8; ++i) stored[8 * group + i] = digest[8 * group + 7 - i];
  }
  return MerkleHash(stored);
}

}  // namespace hfm::xet
