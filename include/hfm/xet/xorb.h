// Xorbs (spec §4): building the upload body from chunks, parsing upload bodies and stored
// objects (chunks ‖ V0/V1 "XETBLOB" footer), writing the stored form with a V1 footer, and
// recomputing a xorb's hash from its bytes (what a CAS server does before accepting an upload).
//
// Contract: XorbBuilder follows xet-core's formation rule — a chunk fits while
// bytes + len ≤ 64 MiB (uncompressed) and chunks + 1 ≤ 8192; callers ask fits() and start a new
// xorb when it says no. Offsets are u32 end offsets exactly as in the footer: serialized ends
// include each 8-byte chunk header, uncompressed ends are cumulative chunk sizes. Parsers decode
// and hash every chunk, validate the footer (ident, versions, counts, lengths, hashes and
// offsets consistent with the chunk data) and return EINVAL/EIO errors, never over-read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/xet/compression.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::xet {

inline constexpr uint64_t kMaxXorbBytes = 64ull * 1024 * 1024;  // uncompressed
inline constexpr uint32_t kMaxXorbChunks = 8192;
// What the CAS accepts per upload (the docs: "serialized xorbs > 64 MiB" are rejected).
inline constexpr uint64_t kMaxSerializedXorbBytes = 64ull * 1024 * 1024;
// Serialized chunk header: what a chunk stored uncompressed adds to its bytes.
inline constexpr size_t kXorbChunkHeaderBytes = 8;

// A finished xorb as produced by XorbBuilder::finish().
struct SerializedXorb {
  MerkleHash hash;                               // merkle root of `chunks`
  std::vector<uint8_t> body;                     // upload form: serialized chunks, no footer
  std::vector<ChunkInfo> chunks;                 // chunk hash + uncompressed size, in order
  std::vector<uint32_t> chunk_boundary_offsets;  // serialized end offset of each chunk
  std::vector<uint32_t> unpacked_chunk_offsets;  // uncompressed end offset of each chunk
  uint64_t uncompressedBytes() const {
    return unpacked_chunk_offsets.empty() ? 0 : unpacked_chunk_offsets.back();
  }
  // Stored form: body ‖ V1 footer (nonce goes into the footer's buffer, not hashed).
  std::vector<uint8_t> storedForm(uint32_t nonce = 0) const;
};

class XorbBuilder {
 public:
  explicit XorbBuilder(CompressionScheme scheme = CompressionScheme::kAuto) : scheme_(scheme) {}

  // xet-core's rule (false when adding a chunk of `len` bytes would exceed 64 MiB uncompressed
  // or 8192 chunks), plus huggingface.js's cap on the serialized size: incompressible chunks
  // carry an 8-byte header each, so 64 MiB of them serialize to more than the CAS accepts.
  // The serialized bound assumes the worst case (the chunk stored uncompressed).
  bool fits(size_t len) const {
    return uncompressed_bytes_ + len <= kMaxXorbBytes && chunks_.size() + 1 <= kMaxXorbChunks &&
           body_.size() + kXorbChunkHeaderBytes + len <= kMaxSerializedXorbBytes;
  }
  // Appends one chunk. EINVAL if it exceeds kMaxUncompressedChunkSize or does not fit().
  Status add(std::span<const uint8_t> chunk, const MerkleHash& hash);
  Status add(std::span<const uint8_t> chunk) { return add(chunk, chunkHash(chunk)); }

  bool empty() const { return chunks_.empty(); }
  size_t numChunks() const { return chunks_.size(); }
  uint64_t uncompressedBytes() const { return uncompressed_bytes_; }
  size_t serializedBytes() const { return body_.size(); }

  // Returns the xorb built so far and resets the builder for the next one.
  SerializedXorb finish();

 private:
  CompressionScheme scheme_;
  std::vector<uint8_t> body_;
  std::vector<ChunkInfo> chunks_;
  std::vector<uint32_t> boundaries_;
  std::vector<uint32_t> unpacked_;
  uint64_t uncompressed_bytes_ = 0;
};

// The "XETBLOB" footer (§4.4). unpacked_chunk_offsets is empty for version 0.
struct XorbFooter {
  uint8_t version = 1;
  MerkleHash xorb_hash;
  std::vector<MerkleHash> chunk_hashes;
  std::vector<uint32_t> chunk_boundary_offsets;
  std::vector<uint32_t> unpacked_chunk_offsets;
  uint32_t nonce = 0;  // bytes 0..3 of the 16-byte buffer
  size_t offset = 0;   // where the footer starts in the object (= end of chunk data)
};

inline constexpr uint8_t kXorbFooterVersion = 1;
inline size_t xorbFooterV1Size(size_t num_chunks) { return 92 + 40 * num_chunks + 4; }

// Appends a V1 footer (including the trailing info_length) describing the given chunks.
// The three vectors must have the same length.
void appendXorbFooter(const MerkleHash& xorb_hash, std::span<const MerkleHash> chunk_hashes,
                      std::span<const uint32_t> chunk_boundary_offsets,
                      std::span<const uint32_t> unpacked_chunk_offsets, uint32_t nonce,
                      std::vector<uint8_t>& out);

// Parses the footer at the end of a stored xorb without decoding chunks (V0 or V1). Checks the
// idents, versions, counts, section offsets, info_length and monotonic offsets, and that the
// last serialized boundary equals the footer's start.
Result<XorbFooter> parseXorbFooter(std::span<const uint8_t> object);

// A fully decoded xorb.
struct ParsedXorb {
  MerkleHash hash;                               // merkle root recomputed from the chunk data
  std::vector<uint8_t> data;                     // all chunks' uncompressed bytes, concatenated
  std::vector<ChunkInfo> chunks;                 // recomputed chunk hashes and sizes
  std::vector<CompressionScheme> schemes;        // scheme each chunk was stored with
  std::vector<uint32_t> chunk_boundary_offsets;  // serialized end offsets
  std::vector<uint32_t> unpacked_chunk_offsets;  // uncompressed end offsets
  std::optional<XorbFooter> footer;              // present for the stored form
};

// Parses an upload body or a stored object (chunks, optionally followed by a V0/V1 footer that
// must then agree with the chunks: same count, hashes, offsets and xorb hash). An object with
// zero chunks is rejected (xet-core never stores empty xorbs).
Result<ParsedXorb> parseXorb(std::span<const uint8_t> object);

// Server-side check for POST /v1/xorbs/{prefix}/{hash}: parses `body` and fails with EINVAL if
// the recomputed xorb hash differs from `expected`. Returns the parsed xorb on success.
Result<ParsedXorb> verifyXorb(std::span<const uint8_t> body, const MerkleHash& expected);

// Offsets [begin, end) covering chunks [first, last) given cumulative end offsets (§6.1): with
// chunk_boundary_offsets these are serialized byte offsets into the xorb (an HTTP Range / url_range
// is "begin-(end-1)"); with unpacked_chunk_offsets, uncompressed offsets. EINVAL unless
// first < last ≤ offsets.size().
struct OffsetRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  friend bool operator==(const OffsetRange&, const OffsetRange&) = default;
};
Result<OffsetRange> chunkRangeOffsets(std::span<const uint32_t> end_offsets, uint32_t first,
                                      uint32_t last);

// Stored form of an upload body: body ‖ V1 footer rebuilt from the chunk data.
Result<std::vector<uint8_t>> toStoredXorb(std::span<const uint8_t> body, uint32_t nonce = 0);

}  // namespace hfm::xet
