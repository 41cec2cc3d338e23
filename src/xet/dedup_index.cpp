#include "hfm/xet/dedup_index.h"

namespace hfm::xet {

DedupIndex::DedupIndex(size_t max_chunks) : max_chunks_(max_chunks) {}

void DedupIndex::addShardXorbs(std::span<const ShardXorb> xorbs) {
  size_t incoming = 0;
  for (const auto& xorb : xorbs) incoming += xorb.chunks.size();
  if (incoming == 0 || max_chunks_ == 0) return;
  std::lock_guard lock(mu_);
  // Least recently used groups make room first; a group larger than the whole bound keeps
  // only its first `max_chunks` chunks.
  while (!groups_.empty() && map_.size() + incoming > max_chunks_) {
    for (const auto& hash : groups_.back().chunks) map_.erase(hash);
    groups_.pop_back();
  }
  groups_.emplace_front();
  const auto group = groups_.begin();
  for (const auto& xorb : xorbs) {
    const auto xorb_pos = static_cast<uint32_t>(group->xorbs.size());
    group->xorbs.push_back(xorb.hash);
    for (size_t i = 0; i < xorb.chunks.size() && map_.size() < max_chunks_; ++i) {
      const MerkleHash& hash = xorb.chunks[i].hash;
      if (map_.emplace(hash, Entry{group, xorb_pos, static_cast<uint32_t>(i)}).second) {
        group->chunks.push_back(hash);
      }
    }
  }
  if (group->chunks.empty()) groups_.erase(group);
}

std::optional<DedupIndex::Ref> DedupIndex::find(const MerkleHash& chunk_hash) {
  std::lock_guard lock(mu_);
  const auto it = map_.find(chunk_hash);
  if (it == map_.end()) return std::nullopt;
  const Entry& entry = it->second;
  if (entry.group != groups_.begin()) groups_.splice(groups_.begin(), groups_, entry.group);
  return Ref{entry.group->xorbs[entry.xorb], entry.index};
}

size_t DedupIndex::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

}  // namespace hfm::xet
