#include "hfm/localhub/cas_reconstruction.h"

#include <algorithm>

namespace hfm::localhub {

namespace {

Result<std::shared_ptr<const CasXorb>> requireXorb(const XorbLookup& lookup,
                                                   const xet::MerkleHash& hash) {
  HFM_ASSIGN_OR_RETURN(auto xorb, lookup(hash));
  if (!xorb) return Error(EIO, "file references unknown xorb " + hash.hex());
  return xorb;
}

}  // namespace

Result<ReconstructionPlan> planReconstruction(const CasFile& file, uint64_t first, uint64_t last,
                                              const XorbLookup& lookup) {
  ReconstructionPlan plan;
  if (file.size == 0 || first > last) return plan;
  uint64_t term_begin = 0;
  for (const auto& term : file.terms) {
    uint64_t term_end = term_begin + term.unpacked_bytes;  // exclusive
    uint64_t begin = term_begin;
    term_begin = term_end;
    if (term_end <= first) continue;
    if (begin > last) break;
    HFM_ASSIGN_OR_RETURN(auto xorb, requireXorb(lookup, term.xorb));
    if (term.chunk_start >= term.chunk_end || term.chunk_end > xorb->numChunks() ||
        xorb->unpackedBytes(term.chunk_start, term.chunk_end) != term.unpacked_bytes) {
      return Error(EIO,
                   "term of file " + file.hash.hex() + " disagrees with xorb " + term.xorb.hex());
    }
    uint32_t c0 = term.chunk_start;
    uint64_t offset = begin;  // file offset where chunk c0 starts
    while (offset + xorb->unpackedBytes(c0, c0 + 1) <= first) {
      offset += xorb->unpackedBytes(c0, c0 + 1);
      ++c0;
    }
    if (plan.terms.empty()) plan.offset_into_first_range = first - offset;
    uint32_t c1 = c0;
    uint64_t end = offset;
    while (c1 < term.chunk_end && end <= last) {
      end += xorb->unpackedBytes(c1, c1 + 1);
      ++c1;
    }
    plan.terms.push_back({term.xorb, c0, c1, xorb->unpackedBytes(c0, c1)});
  }
  return plan;
}

Result<std::map<xet::MerkleHash, std::vector<FetchRange>>> fetchRanges(
    const ReconstructionPlan& plan, const XorbLookup& lookup) {
  std::map<xet::MerkleHash, std::vector<std::pair<uint32_t, uint32_t>>> chunks;
  for (const auto& term : plan.terms) {
    chunks[term.xorb].emplace_back(term.chunk_start, term.chunk_end);
  }
  std::map<xet::MerkleHash, std::vector<FetchRange>> out;
  for (auto& [hash, list] : chunks) {
    HFM_ASSIGN_OR_RETURN(auto xorb, requireXorb(lookup, hash));
    std::sort(list.begin(), list.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (const auto& r : list) {
      if (!merged.empty() && r.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    auto& ranges = out[hash];
    for (const auto& [c0, c1] : merged) {
      if (c1 > xorb->numChunks() || c0 >= c1) {
        return Error(EIO, "chunk range out of xorb " + hash.hex());
      }
      ranges.push_back({c0, c1, xorb->chunkByteStart(c0), xorb->chunk_ends[c1 - 1] - 1ull});
    }
  }
  return out;
}

}  // namespace hfm::localhub
