#include "hfm/xet/compression.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace hfm::xet {
namespace {

uint32_t readU24(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16);
}

void writeU24(uint32_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>((v >> 8) & 0xff);
  p[2] = static_cast<uint8_t>((v >> 16) & 0xff);
}

void writeChunkHeader(const ChunkHeader& h, uint8_t* p) {
  p[0] = h.version;
  writeU24(h.compressed_size, p + 1);
  p[4] = static_cast<uint8_t>(h.scheme);
  writeU24(h.uncompressed_size, p + 5);
}

// The first n bytes of a per-thread buffer for the BG4 transform (chunks are small and frequent),
// grown once to the largest chunk so that varying chunk sizes do not zero-fill it again and again.
std::span<uint8_t> scratchFor(size_t n) {
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < n) scratch.resize(std::max<size_t>(n, kMaxUncompressedChunkSize));
  return std::span<uint8_t>(scratch).first(n);
}

Status checkPayloadSize(const ChunkHeader& header, std::span<const uint8_t> payload) {
  if (payload.size() != header.compressed_size) {
    return Error::invalid("chunk payload is " + std::to_string(payload.size()) +
                          " bytes, header says " + std::to_string(header.compressed_size));
  }
  if (header.scheme == CompressionScheme::kNone && payload.size() != header.uncompressed_size) {
    return Error::invalid("uncompressed chunk payload size differs from header");
  }
  return okStatus();
}

}  // namespace

Result<ChunkHeader> parseChunkHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < kChunkHeaderSize) {
    return Error::invalid("chunk header truncated: " + std::to_string(bytes.size()) +
                          " bytes, need 8");
  }
  ChunkHeader h;
  h.version = bytes[0];
  h.compressed_size = readU24(bytes.data() + 1);
  h.uncompressed_size = readU24(bytes.data() + 5);
  const uint8_t scheme = bytes[4];
  if (h.version != kChunkHeaderVersion) {
    return Error::invalid("unsupported chunk header version " + std::to_string(h.version));
  }
  if (scheme > 2) {
    return Error::invalid("unknown chunk compression scheme " + std::to_string(scheme));
  }
  h.scheme = static_cast<CompressionScheme>(scheme);
  if (h.compressed_size > kMaxCompressedChunkSize) {
    return Error::invalid("chunk compressed size " + std::to_string(h.compressed_size) +
                          " exceeds 262144");
  }
  if (h.uncompressed_size > kMaxUncompressedChunkSize) {
    return Error::invalid("chunk uncompressed size " + std::to_string(h.uncompressed_size) +
                          " exceeds 131072");
  }
  if (h.scheme == CompressionScheme::kNone && h.compressed_size != h.uncompressed_size) {
    return Error::invalid("uncompressed chunk with compressed size " +
                          std::to_string(h.compressed_size) + " != uncompressed size " +
                          std::to_string(h.uncompressed_size));
  }
  return h;
}

void appendChunkHeader(const ChunkHeader& header, std::vector<uint8_t>& out) {
  const size_t pos = out.size();
  out.resize(pos + kChunkHeaderSize);
  writeChunkHeader(header, out.data() + pos);
}

bool startsWithXorbFooter(std::span<const uint8_t> bytes) {
  static constexpr char kIdent[7] = {'X', 'E', 'T', 'B', 'L', 'O', 'B'};
  return bytes.size() >= 7 && std::memcmp(bytes.data(), kIdent, 7) == 0;
}

void bg4Split(std::span<const uint8_t> src, std::span<uint8_t> dst) {
  const size_t n = src.size();
  const size_t q = n / 4;
  uint8_t* g[4];
  g[0] = dst.data();
  g[1] = g[0] + bg4GroupSize(n, 0);
  g[2] = g[1] + bg4GroupSize(n, 1);
  g[3] = g[2] + bg4GroupSize(n, 2);
  const uint8_t* s = src.data();
  for (size_t k = 0; k < q; ++k) {
    g[0][k] = s[4 * k];
    g[1][k] = s[4 * k + 1];
    g[2][k] = s[4 * k + 2];
    g[3][k] = s[4 * k + 3];
  }
  for (size_t r = 0; r < n % 4; ++r) g[r][q] = s[4 * q + r];
}

void bg4Regroup(std::span<const uint8_t> src, std::span<uint8_t> dst) {
  const size_t n = src.size();
  const size_t q = n / 4;
  const uint8_t* g[4];
  g[0] = src.data();
  g[1] = g[0] + bg4GroupSize(n, 0);
  g[2] = g[1] + bg4GroupSize(n, 1);
  g[3] = g[2] + bg4GroupSize(n, 2);
  uint8_t* d = dst.data();
  for (size_t k = 0; k < q; ++k) {
    d[4 * k] = g[0][k];
    d[4 * k + 1] = g[1][k];
    d[4 * k + 2] = g[2][k];
    d[4 * k + 3] = g[3][k];
  }
  for (size_t r = 0; r < n % 4; ++r) d[4 * q + r] = g[r][q];
}

Status decodeChunkPayloadInto(const ChunkHeader& header, std::span<const uint8_t> payload,
                              std::span<uint8_t> dst) {
  HFM_TRY(checkPayloadSize(header, payload));
  if (dst.size() != header.uncompressed_size) {
    return Error::invalid("chunk output buffer is " + std::to_string(dst.size()) +
                          " bytes, header says " + std::to_string(header.uncompressed_size));
  }
  switch (header.scheme) {
    case CompressionScheme::kNone:
      if (!payload.empty()) std::memcpy(dst.data(), payload.data(), payload.size());
      return okStatus();
    case CompressionScheme::kLz4:
      return lz4FrameDecompress(payload, dst);
    case CompressionScheme::kByteGrouping4Lz4: {
      const std::span<uint8_t> grouped = scratchFor(dst.size());
      HFM_TRY(lz4FrameDecompress(payload, grouped));
      bg4Regroup(grouped, dst);
      return okStatus();
    }
    case CompressionScheme::kAuto:
      break;
  }
  return Error::invalid("chunk header has no concrete compression scheme");
}

Status decodeChunkPayload(const ChunkHeader& header, std::span<const uint8_t> payload,
                          std::vector<uint8_t>& out) {
  HFM_TRY(checkPayloadSize(header, payload));
  if (header.scheme == CompressionScheme::kNone) {  // a plain append: no zero-fill, no copy
    out.insert(out.end(), payload.begin(), payload.end());
    return okStatus();
  }
  const size_t start = out.size();
  out.resize(start + header.uncompressed_size);
  auto st = decodeChunkPayloadInto(header, payload, std::span<uint8_t>(out).subspan(start));
  if (!st) out.resize(start);
  return st;
}

Result<std::vector<uint32_t>> decodeChunks(std::span<const uint8_t> serialized,
                                           std::vector<uint8_t>& out) {
  std::vector<uint32_t> sizes;
  size_t pos = 0;
  while (pos < serialized.size()) {
    const auto rest = serialized.subspan(pos);
    if (startsWithXorbFooter(rest)) break;
    auto header = parseChunkHeader(rest);
    if (!header)
      return header.error().withContext("chunk " + std::to_string(sizes.size()) + " at offset " +
                                        std::to_string(pos));
    if (rest.size() - kChunkHeaderSize < header->compressed_size) {
      return Error::invalid("chunk " + std::to_string(sizes.size()) + " at offset " +
                            std::to_string(pos) + " truncated: payload " +
                            std::to_string(header->compressed_size) + " bytes, " +
                            std::to_string(rest.size() - kChunkHeaderSize) + " available");
    }
    auto st =
        decodeChunkPayload(*header, rest.subspan(kChunkHeaderSize, header->compressed_size), out);
    if (!st) {
      return st.error().withContext("chunk " + std::to_string(sizes.size()) + " at offset " +
                                    std::to_string(pos));
    }
    sizes.push_back(header->uncompressed_size);
    pos += kChunkHeaderSize + header->compressed_size;
  }
  return sizes;
}

CompressionScheme chooseCompressionScheme(std::span<const uint8_t> data) {
  // Byte-value histogram per lane (cheap: one increment per byte, no popcount in the loop),
  // folded into popcount (0..8) histograms afterwards.
  std::array<std::array<uint32_t, 256>, 4> values{};
  const size_t n = data.size();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++values[0][data[i]];
    ++values[1][data[i + 1]];
    ++values[2][data[i + 2]];
    ++values[3][data[i + 3]];
  }
  for (; i < n; ++i) ++values[i % 4][data[i]];
  std::array<std::array<uint32_t, 9>, 4> lanes{};
  for (size_t lane = 0; lane < 4; ++lane) {
    for (size_t v = 0; v < 256; ++v) {
      lanes[lane][static_cast<size_t>(std::popcount(static_cast<uint8_t>(v)))] += values[lane][v];
    }
  }

  std::array<double, 9> pooled{};
  double pooled_total = 0;
  for (size_t b = 0; b < 9; ++b) {
    pooled[b] = 1.0;  // seeded so that log(p/q) stays finite
    for (const auto& lane : lanes) pooled[b] += lane[b];
    pooled_total += pooled[b];
  }
  double max_kl = 0;
  for (const auto& lane : lanes) {
    double total = 0;
    for (uint32_t c : lane) total += c;
    if (total == 0) continue;
    double kl = 0;
    for (size_t b = 0; b < 9; ++b) {
      if (lane[b] == 0) continue;
      const double p = lane[b] / total;
      const double q = pooled[b] / pooled_total;
      kl += p * std::log(p / q);
    }
    max_kl = std::max(max_kl, kl);
  }
  return max_kl > 0.02 ? CompressionScheme::kByteGrouping4Lz4 : CompressionScheme::kLz4;
}

void appendSerializedChunk(std::span<const uint8_t> chunk, CompressionScheme preferred,
                           std::vector<uint8_t>& out) {
  if (chunk.size() > kMaxUncompressedChunkSize) std::abort();  // documented precondition
  const auto n = static_cast<uint32_t>(chunk.size());
  CompressionScheme scheme = preferred;
  if (scheme == CompressionScheme::kAuto) scheme = chooseCompressionScheme(chunk);

  const size_t header_pos = out.size();
  out.resize(header_pos + kChunkHeaderSize);
  if (scheme == CompressionScheme::kLz4) {
    lz4FrameCompress(chunk, out);
  } else if (scheme == CompressionScheme::kByteGrouping4Lz4) {
    const std::span<uint8_t> grouped = scratchFor(chunk.size());
    bg4Split(chunk, grouped);
    lz4FrameCompress(grouped, out);
  }
  size_t payload = out.size() - header_pos - kChunkHeaderSize;
  if (scheme == CompressionScheme::kNone || payload >= chunk.size()) {
    // Not smaller (or not asked): store raw bytes.
    out.resize(header_pos + kChunkHeaderSize);
    out.insert(out.end(), chunk.begin(), chunk.end());
    scheme = CompressionScheme::kNone;
    payload = chunk.size();
  }
  writeChunkHeader(ChunkHeader{kChunkHeaderVersion, static_cast<uint32_t>(payload), scheme, n},
                   out.data() + header_pos);
}

}  // namespace hfm::xet
