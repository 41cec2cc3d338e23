#include "hfm/xet/dedup_index.h"

namespace hfm::xet {

DedupIndex::DedupIndex(size_t max_chunks) : max_chunks_(max_chunks) {}

DedupIndex::GroupList::iterator DedupIndex::openGroupLocked(size_t incoming) {
  // Least recently used groups make room first; a group larger than the whole bound keeps
  // only its first `max_chunks` chunks.
  while (!groups_.empty() && map_.size() + incoming > max_chunks_) {
    for (const auto& hash : groups_.back().chunks) map_.erase(hash);
    groups_.pop_back();
  }
  groups_.emplace_front();
  return groups_.begin();
}

void DedupIndex::insertLocked(GroupList::iterator group, const MerkleHash& hash, uint32_t xorb_pos,
                              uint32_t index) {
  if (map_.size() >= max_chunks_) return;
  if (map_.emplace(hash, Entry{group, xorb_pos, index}).second) group->chunks.push_back(hash);
}

void DedupIndex::closeGroupLocked(GroupList::iterator group) {
  if (group->chunks.empty()) groups_.erase(group);
}

void DedupIndex::addShardXorbs(std::span<const ShardXorb> xorbs) {
  size_t incoming = 0;
  for (const auto& xorb : xorbs) incoming += xorb.chunks.size();
  if (incoming == 0 || max_chunks_ == 0) return;
  std::lock_guard lock(mu_);
  const auto group = openGroupLocked(incoming);
  for (const auto& xorb : xorbs) {
    const auto xorb_pos = static_cast<uint32_t>(group->xorbs.size());
    group->xorbs.push_back(xorb.hash);
    for (size_t i = 0; i < xorb.chunks.size(); ++i) {
      insertLocked(group, xorb.chunks[i].hash, xorb_pos, static_cast<uint32_t>(i));
    }
  }
  closeGroupLocked(group);
}

void DedupIndex::addChunks(std::span<const KnownChunk> chunks) {
  if (chunks.empty() || max_chunks_ == 0) return;
  std::lock_guard lock(mu_);
  const auto group = openGroupLocked(chunks.size());
  std::unordered_map<MerkleHash, uint32_t> xorb_pos;  // xorb → position in group->xorbs
  for (const auto& chunk : chunks) {
    const auto [it, added] =
        xorb_pos.emplace(chunk.xorb, static_cast<uint32_t>(group->xorbs.size()));
    if (added) group->xorbs.push_back(chunk.xorb);
    insertLocked(group, chunk.hash, it->second, chunk.index);
  }
  closeGroupLocked(group);
}

std::optional<DedupIndex::Ref> DedupIndex::find(const MerkleHash& chunk_hash) {
  std::lock_guard lock(mu_);
  const auto it = map_.find(chunk_hash);
  if (it == map_.end()) return std::nullopt;
  const Entry& entry = it->second;
  if (entry.group != groups_.begin()) groups_.splice(groups_.begin(), groups_, entry.group);
  return Ref{entry.group->xorbs[entry.xorb], entry.index};
}

bool DedupIndex::contains(const MerkleHash& chunk_hash) const {
  std::lock_guard lock(mu_);
  return map_.contains(chunk_hash);
}

size_t DedupIndex::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

}  // namespace hfm::xet
