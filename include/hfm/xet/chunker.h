// Xet content-defined chunking (spec §2): a gear rolling hash over the bytes cuts a stream into
// chunks of 8 KiB .. 128 KiB (64 KiB target) exactly where xet-core does.
//
// Chunker is a streaming state machine: feed consecutive slices of any size (1 byte or 1 GiB)
// and it reports the same boundaries as a single pass over the whole input would. It never
// copies or retains the caller's bytes; it keeps only the rolling hash and the length of the
// unfinished chunk. At end of input, finish() returns the length of the final (possibly short)
// chunk; an empty input has zero chunks. The one-shot helpers below wrap it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "hfm/xet/hashing.h"

namespace hfm::xet {

inline constexpr size_t kTargetChunkSize = size_t{64} * 1024;
inline constexpr size_t kMinChunkSize = kTargetChunkSize / 8;  // 8 KiB
inline constexpr size_t kMaxChunkSize = kTargetChunkSize * 2;  // 128 KiB
// A boundary needs the top 16 bits of the gear hash to be zero.
inline constexpr uint64_t kGearMask = 0xFFFF'0000'0000'0000ULL;

// gearhash 0.1.3 DEFAULT_TABLE (src/xet/gear_table.cpp).
extern const std::array<uint64_t, 256> kGearTable;

class Chunker {
 public:
  // Scans `data`, the bytes that follow everything fed so far. If the current chunk ends inside
  // `data`, returns how many bytes of `data` it takes (≥ 1) and starts a new chunk: the caller
  // continues with data.subspan(returned). Otherwise all of `data` joins the current chunk and
  // nullopt is returned. Empty `data` returns nullopt.
  std::optional<size_t> nextBoundary(std::span<const uint8_t> data);

  // Feeds all of `data`, appending to `cuts` the offset (within `data`, exclusive end) of every
  // chunk that ends inside it.
  void update(std::span<const uint8_t> data, std::vector<size_t>& cuts);

  // End of input: returns the length of the final chunk (0 if no bytes are pending) and resets
  // the chunker for a new stream.
  uint64_t finish();

  // Bytes fed since the last boundary (the unfinished chunk's length so far).
  uint64_t pendingBytes() const { return pending_; }

 private:
  uint64_t hash_ = 0;     // gear hash state after the last byte fed to it
  uint64_t pending_ = 0;  // < kMaxChunkSize between calls
};

// Cumulative end offsets of the chunks of `data` (empty input → no chunks).
std::vector<uint64_t> chunkEnds(std::span<const uint8_t> data);

// Chunks `data` and hashes every chunk (spec §2 + §3.2): the leaves of its merkle tree.
std::vector<ChunkInfo> chunkAndHash(std::span<const uint8_t> data);

}  // namespace hfm::xet
