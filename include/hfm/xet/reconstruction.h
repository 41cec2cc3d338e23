// File reconstruction plans (spec §6.1) and the pieces needed to turn fetched xorb bytes back
// into file bytes: JSON parsing (V1 and V2 into one form), validation, multipart/byteranges
// parsing (RFC 7233 §4.1 / RFC 2046) and decoding of fetched chunk ranges.
//
// Contract: everything here is pure (no I/O) and never trusts the server. A plan returned by
// parseReconstruction() has been validated: each term has a non-empty chunk range and a
// plausible unpacked_length, offset_into_first_range lies inside the first term, every fetch
// range is well formed, the ranges of one fetch entry are ascending and disjoint, and every
// term is covered by a fetch range of its xorb (ReconstructionPlan::sources says which).
// Violations are EIO with a message naming the offending field. Ranges: chunk ranges are
// [start, end); byte ranges are inclusive, as on the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hfm/util/buffer_pool.h"
#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::xet {

struct ChunkRange {
  uint32_t start = 0;
  uint32_t end = 0;  // exclusive
  uint32_t size() const { return end - start; }
  friend bool operator==(const ChunkRange&, const ChunkRange&) = default;
};

struct InclusiveByteRange {
  uint64_t start = 0;
  uint64_t end = 0;  // inclusive
  uint64_t size() const { return end - start + 1; }
  friend bool operator==(const InclusiveByteRange&, const InclusiveByteRange&) = default;
};

struct ReconstructionTerm {
  MerkleHash xorb;
  ChunkRange chunks;
  uint32_t unpacked_length = 0;  // decoded bytes of `chunks`
};

// One signed byte range of a fetch URL and the chunks it holds.
struct FetchRange {
  ChunkRange chunks;
  InclusiveByteRange bytes;
};

// One presigned URL: GET it without Authorization, with exactly rangeHeader().
struct FetchEntry {
  std::string url;
  std::vector<FetchRange> ranges;  // ascending, disjoint

  std::string rangeHeader() const;  // "bytes=s1-e1,s2-e2,..."
};

struct TermSource {
  size_t entry = 0;  // index in fetches.at(term.xorb)
  size_t range = 0;  // index in that entry's ranges
};

struct ReconstructionPlan {
  uint64_t offset_into_first_range = 0;
  std::vector<ReconstructionTerm> terms;                            // in file order
  std::unordered_map<MerkleHash, std::vector<FetchEntry>> fetches;  // per xorb
  std::vector<TermSource> sources;  // per term: the first fetch range that covers it
  int version = 2;                  // JSON form it came from (1 or 2)

  // Decoded bytes the plan yields: Σ unpacked_length − offset_into_first_range.
  uint64_t availableBytes() const;
  const FetchEntry& entryFor(size_t term) const {
    return fetches.at(terms[term].xorb)[sources[term].entry];
  }
  const FetchRange& rangeFor(size_t term) const {
    return entryFor(term).ranges[sources[term].range];
  }
};

// Parses a V1 (`fetch_info`) or V2 (`xorbs`) reconstruction answer and validates it.
Result<ReconstructionPlan> parseReconstruction(std::string_view json);

// Re-runs the validation (used by parseReconstruction; exposed for plans built in code).
Status validatePlan(ReconstructionPlan& plan);

// --- multipart/byteranges ------------------------------------------------------------------

// The boundary parameter of a "multipart/byteranges; boundary=..." Content-Type (quoted or
// not); nullopt when the type is not multipart/byteranges or has no usable boundary.
std::optional<std::string> multipartBoundary(std::string_view content_type);

struct BodyPart {
  InclusiveByteRange range;  // from the part's Content-Range
  std::string_view data;     // points into the parsed body
};

// Splits a multipart/byteranges body. Each part needs a "Content-Range: bytes s-e/total"
// header and exactly e-s+1 data bytes; a missing closing delimiter, a truncated part or a
// malformed header is EIO.
Result<std::vector<BodyPart>> parseMultipartByteRanges(std::string_view body,
                                                       std::string_view boundary);

// Parses "bytes s-e/total" or "bytes s-e/*"; nullopt otherwise.
std::optional<InclusiveByteRange> parseContentRange(std::string_view value);

// Finds the bytes of `wanted` among the parts (a part may cover more than asked for). EIO if
// no part contains it.
Result<std::string_view> sliceParts(std::span<const BodyPart> parts,
                                    const InclusiveByteRange& wanted);

// --- decoding ------------------------------------------------------------------------------

// The decoded chunks of one fetched range, as views. A chunk stored uncompressed is a view into
// the fetched bytes themselves (no copy: the caller keeps those alive as long as the views);
// compressed chunks are decoded into `decoded`, one pooled buffer for the whole range.
struct DecodedRange {
  util::BufferPool::Buffer decoded;
  std::vector<std::span<const uint8_t>> chunks;  // in chunk order
};

// Decodes the serialized chunks fetched for `range`. EIO unless the bytes hold exactly
// range.chunks.size() well-formed chunks and nothing else.
Result<DecodedRange> decodeFetchedRange(std::span<const uint8_t> bytes, const FetchRange& range);

}  // namespace hfm::xet
