// Xet chunk codec (spec §4.2, §4.3): the 8-byte chunk header, the three compression schemes
// (None, LZ4 frame, ByteGrouping4 + LZ4 frame) and the serialized-chunk stream found in xorb
// upload bodies and in the byte ranges served by CAS.
//
// Contract: decoders never read outside the given span, reject every malformed header or payload
// with an Error (EINVAL for bad headers, EIO for payloads that fail to decompress or whose size
// disagrees with the header) and never trust sizes from the data for allocations beyond the
// protocol limits (compressed ≤ 262144, uncompressed ≤ 131072 per chunk). The LZ4 decoder
// accepts any standard LZ4 frame (any block size/mode, checksums, content size, concatenated or
// skippable frames; only dictionary frames are refused); the encoder writes 64 KiB independent
// blocks with no checksums, like xet-core. Everything here is stateless and thread-safe.
// Writers keep the smaller of the compressed and raw forms, so a payload is never larger than
// its chunk (scheme None on ties).
//
// Scheme choice (kAuto): a per-chunk heuristic modelled on xet-core's — build the histogram of
// per-byte popcounts for each of the 4 byte lanes (position % 4), compare each lane with the
// pooled histogram (pooled counts seeded with 1) by KL divergence; above 0.02 the data has
// lane structure (e.g. float tensors) and BG4 usually wins, otherwise plain LZ4. It costs one
// pass over the chunk instead of a second compression; the result is never worse than None.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::xet {

enum class CompressionScheme : uint8_t {
  kNone = 0,
  kLz4 = 1,
  kByteGrouping4Lz4 = 2,
  kAuto = 99,  // writer-only request "choose for me"; never serialized, rejected by parsers
};

struct ChunkHeader {
  uint8_t version = 0;
  uint32_t compressed_size = 0;  // payload bytes following the header
  CompressionScheme scheme = CompressionScheme::kNone;
  uint32_t uncompressed_size = 0;
  friend bool operator==(const ChunkHeader&, const ChunkHeader&) = default;
};

inline constexpr size_t kChunkHeaderSize = 8;
inline constexpr uint8_t kChunkHeaderVersion = 0;
inline constexpr uint32_t kMaxUncompressedChunkSize = 131072;    // per chunk
inline constexpr uint32_t kMaxCompressedChunkSize = 2 * 131072;  // payload limit of readers

// Parses and validates the first 8 bytes of `bytes` (§4.2): version 0, known scheme,
// compressed ≤ 262144, uncompressed ≤ 131072. EINVAL on violation or fewer than 8 bytes.
Result<ChunkHeader> parseChunkHeader(std::span<const uint8_t> bytes);

// Writes the 8-byte header for `header` at the end of `out`.
void appendChunkHeader(const ChunkHeader& header, std::vector<uint8_t>& out);

// True when `bytes` starts with the "XETBLOB" footer ident (end of the chunk stream).
bool startsWithXorbFooter(std::span<const uint8_t> bytes);

// Decodes the payload of one chunk (described by `header`) and appends its
// header.uncompressed_size bytes to `out`. `payload` must be exactly header.compressed_size long.
// Growing a std::vector zero-fills the new bytes before the decoder overwrites them, which costs
// ~15 % of LZ4 decode time on text: hot paths use decodeChunkPayloadInto instead.
Status decodeChunkPayload(const ChunkHeader& header, std::span<const uint8_t> payload,
                          std::vector<uint8_t>& out);

// Same, into caller-provided storage: `dst` must be exactly header.uncompressed_size bytes (EINVAL
// otherwise). It need not be initialised (e.g. std::make_unique_for_overwrite<uint8_t[]>, or one
// buffer for a whole fetched range); on error its contents are unspecified.
Status decodeChunkPayloadInto(const ChunkHeader& header, std::span<const uint8_t> payload,
                              std::span<uint8_t> dst);

// Decodes consecutive serialized chunks (upload form, no footer; stops cleanly at an "XETBLOB"
// footer), appending uncompressed bytes to `out`; returns each chunk's uncompressed size in order.
// On error `out` may hold a partial result.
Result<std::vector<uint32_t>> decodeChunks(std::span<const uint8_t> serialized,
                                           std::vector<uint8_t>& out);

// Serializes one chunk: tries the given scheme (or picks per §4.3 when asked), keeps the smaller,
// falls back to kNone. `chunk` must not exceed kMaxUncompressedChunkSize (callers check; larger
// chunks are a programming error and abort).
void appendSerializedChunk(std::span<const uint8_t> chunk, CompressionScheme preferred,
                           std::vector<uint8_t>& out);

// The kAuto heuristic: kByteGrouping4Lz4 or kLz4 for this data (see the header comment).
CompressionScheme chooseCompressionScheme(std::span<const uint8_t> data);

// --- Building blocks, exposed for tests, benchmarks and tools ---------------------------------

// LZ4 frame encoding of `src` appended to `out`: 64 KiB independent blocks (incompressible blocks
// stored raw), no checksums, no content size.
void lz4FrameCompress(std::span<const uint8_t> src, std::vector<uint8_t>& out);

// Decodes LZ4 frame(s) in `src` that must produce exactly `dst.size()` bytes into `dst`. Accepts
// linked or independent blocks, 64 KiB..4 MiB block sizes, block/content checksums (verified),
// content size (checked), concatenated and skippable frames; rejects dictionary frames. EIO on
// any violation. Stateless: safe to call from any thread.
Status lz4FrameDecompress(std::span<const uint8_t> src, std::span<uint8_t> dst);

// XXH32 (used by the LZ4 frame format for its header/block/content checksums).
uint32_t xxHash32(std::span<const uint8_t> data, uint32_t seed);

// BG4 group sizes for a buffer of n bytes: q+1 for groups g < n%4, q otherwise (q = n/4).
inline size_t bg4GroupSize(size_t n, size_t group) { return n / 4 + (group < n % 4 ? 1 : 0); }

// BG4 split: dst[...] = group0 ‖ group1 ‖ group2 ‖ group3, group g = bytes at positions 4k+g.
// dst.size() must equal src.size().
void bg4Split(std::span<const uint8_t> src, std::span<uint8_t> dst);
// Inverse of bg4Split. dst.size() must equal src.size().
void bg4Regroup(std::span<const uint8_t> src, std::span<uint8_t> dst);

}  // namespace hfm::xet
