// Reconstruction planning (spec §6.1, §11): which xorb chunk ranges rebuild a byte range of a
// file, and which stored byte ranges a client must fetch for them.
//
// planReconstruction() walks a file's terms, drops those outside [first, last], trims the first
// and last kept terms to whole chunks covering the range (offset_into_first_range = bytes to
// skip in the first term), and recomputes each trimmed term's unpacked length from the xorb's
// chunk table. fetchRanges() collects the chunk ranges per xorb, merges overlapping or adjacent
// ones and maps each to the inclusive serialized byte range in the stored xorb.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "hfm/localhub/cas_store.h"
#include "hfm/util/result.h"

namespace hfm::localhub {

struct PlannedTerm {
  xet::MerkleHash xorb;
  uint32_t chunk_start = 0;
  uint32_t chunk_end = 0;  // exclusive
  uint64_t unpacked_bytes = 0;
  friend bool operator==(const PlannedTerm&, const PlannedTerm&) = default;
};

struct ReconstructionPlan {
  uint64_t offset_into_first_range = 0;
  std::vector<PlannedTerm> terms;
};

using XorbLookup = std::function<Result<std::shared_ptr<const CasXorb>>(const xet::MerkleHash&)>;

// Plans bytes [first, last] (inclusive; `last` already clamped to file.size - 1). An empty
// file, or first > last, yields no terms. EIO if a term disagrees with its xorb's chunk table.
Result<ReconstructionPlan> planReconstruction(const CasFile& file, uint64_t first, uint64_t last,
                                              const XorbLookup& lookup);

struct FetchRange {
  uint32_t chunk_start = 0;
  uint32_t chunk_end = 0;   // exclusive
  uint64_t byte_start = 0;  // in the stored xorb
  uint64_t byte_last = 0;   // inclusive
  friend bool operator==(const FetchRange&, const FetchRange&) = default;
};

// Per xorb, the merged chunk ranges the plan needs, sorted by chunk start.
Result<std::map<xet::MerkleHash, std::vector<FetchRange>>> fetchRanges(
    const ReconstructionPlan& plan, const XorbLookup& lookup);

}  // namespace hfm::localhub
