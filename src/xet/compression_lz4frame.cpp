// LZ4 frame format (lz4 "Frame format" v1.6.x) on top of liblz4's stateless block API.
//
// Why not LZ4F_*: its contexts carry state between frames, and a reused per-thread context is
// one more thing that can go wrong on hostile input. Parsing the frame here keeps every call
// independent, bounds each block by the header's maximum and by the caller's exact output size,
// and decodes straight into the destination (no intermediate copy for partial blocks).
#include <lz4.h>

#include <bit>
#include <cstring>
#include <memory>
#include <string>

#include "hfm/xet/compression.h"

namespace hfm::xet {
namespace {

constexpr uint32_t kFrameMagic = 0x184D2204;
constexpr uint32_t kSkippableMagicMask = 0xFFFFFFF0;
constexpr uint32_t kSkippableMagic = 0x184D2A50;
constexpr uint32_t kUncompressedBlockBit = 0x80000000u;
constexpr size_t kEncodeBlockSize = size_t{64} * 1024;  // what lz4_flex and liblz4 default to
constexpr size_t kLinkedWindow = size_t{64} * 1024;

uint32_t loadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t loadU64(const uint8_t* p) {
  return static_cast<uint64_t>(loadU32(p)) | (static_cast<uint64_t>(loadU32(p + 4)) << 32);
}

void storeU32(uint32_t v, uint8_t* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

constexpr uint32_t kPrime1 = 0x9E3779B1u;
constexpr uint32_t kPrime2 = 0x85EBCA77u;
constexpr uint32_t kPrime3 = 0xC2B2AE3Du;
constexpr uint32_t kPrime4 = 0x27D4EB2Fu;
constexpr uint32_t kPrime5 = 0x165667B1u;

uint32_t xxhRound(uint32_t acc, uint32_t lane) {
  return std::rotl(acc + lane * kPrime2, 13) * kPrime1;
}

Error frameError(const std::string& what) { return Error::io("LZ4 frame: " + what); }

// Compresses one block with no reference outside it. Each block starts a new stream
// (LZ4_resetStream_fast, liblz4's documented way to begin one), so nothing links blocks. Why
// the streaming call rather than LZ4_compress_default: for inputs below 64 KiB + 11 bytes (all
// of our blocks) the one-shot call switches to its small-input mode (16-bit positions, 4-byte
// hash), while the streaming call always uses the general mode (5-byte hash). On text that
// finds fewer, longer matches: bench/xorb_bench text is ~10% smaller and decodes ~20% faster
// (the decoder's cost is per sequence), and compression is no slower.
int compressIndependentBlock(const char* src, char* dst, int len, int capacity) {
  thread_local const std::unique_ptr<LZ4_stream_t> stream = [] {
    auto s = std::make_unique<LZ4_stream_t>();
    LZ4_initStream(s.get(), sizeof(LZ4_stream_t));
    return s;
  }();
  LZ4_resetStream_fast(stream.get());
  return LZ4_compress_fast_continue(stream.get(), src, dst, len, capacity, 1);
}

}  // namespace

uint32_t xxHash32(std::span<const uint8_t> data, uint32_t seed) {
  const uint8_t* p = data.data();
  const size_t n = data.size();
  size_t i = 0;
  uint32_t acc;
  if (n >= 16) {
    uint32_t v1 = seed + kPrime1 + kPrime2, v2 = seed + kPrime2, v3 = seed, v4 = seed - kPrime1;
    for (; i + 16 <= n; i += 16) {
      v1 = xxhRound(v1, loadU32(p + i));
      v2 = xxhRound(v2, loadU32(p + i + 4));
      v3 = xxhRound(v3, loadU32(p + i + 8));
      v4 = xxhRound(v4, loadU32(p + i + 12));
    }
    acc = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
  } else {
    acc = seed + kPrime5;
  }
  acc += static_cast<uint32_t>(n);
  for (; i + 4 <= n; i += 4) acc = std::rotl(acc + loadU32(p + i) * kPrime3, 17) * kPrime4;
  for (; i < n; ++i) acc = std::rotl(acc + p[i] * kPrime5, 11) * kPrime1;
  acc ^= acc >> 15;
  acc *= kPrime2;
  acc ^= acc >> 13;
  acc *= kPrime3;
  acc ^= acc >> 16;
  return acc;
}

void lz4FrameCompress(std::span<const uint8_t> src, std::vector<uint8_t>& out) {
  // Header: magic, FLG = version 01 | block independence, BD = 64 KiB max block, HC.
  const uint8_t descriptor[2] = {0x60, 0x40};
  const size_t start = out.size();
  const size_t blocks = (src.size() + kEncodeBlockSize - 1) / kEncodeBlockSize;
  out.resize(start + 7 + blocks * (4 + static_cast<size_t>(LZ4_compressBound(kEncodeBlockSize))) +
             4);
  uint8_t* o = out.data() + start;
  storeU32(kFrameMagic, o);
  o[4] = descriptor[0];
  o[5] = descriptor[1];
  o[6] = static_cast<uint8_t>((xxHash32(descriptor, 0) >> 8) & 0xff);
  size_t pos = 7;
  for (size_t off = 0; off < src.size(); off += kEncodeBlockSize) {
    const auto len = static_cast<int>(std::min(kEncodeBlockSize, src.size() - off));
    const auto* in = reinterpret_cast<const char*>(src.data() + off);
    auto* dst = reinterpret_cast<char*>(o + pos + 4);
    const int n = compressIndependentBlock(in, dst, len, LZ4_compressBound(len));
    if (n > 0 && n < len) {
      storeU32(static_cast<uint32_t>(n), o + pos);
      pos += 4 + static_cast<size_t>(n);
    } else {  // incompressible block: stored raw, flagged by the high bit
      storeU32(static_cast<uint32_t>(len) | kUncompressedBlockBit, o + pos);
      std::memcpy(dst, in, static_cast<size_t>(len));
      pos += 4 + static_cast<size_t>(len);
    }
  }
  storeU32(0, o + pos);  // end mark
  pos += 4;
  out.resize(start + pos);
}

Status lz4FrameDecompress(std::span<const uint8_t> src, std::span<uint8_t> dst) {
  if (src.empty()) return frameError("empty payload");
  size_t in = 0;
  size_t out = 0;
  auto have = [&](size_t n) { return n <= src.size() - in; };
  while (in < src.size()) {
    if (!have(4)) return frameError("truncated magic");
    const uint32_t magic = loadU32(src.data() + in);
    if ((magic & kSkippableMagicMask) == kSkippableMagic) {
      if (!have(8)) return frameError("truncated skippable frame");
      const uint32_t len = loadU32(src.data() + in + 4);
      in += 8;
      if (!have(len)) return frameError("truncated skippable frame");
      in += len;
      continue;
    }
    if (magic != kFrameMagic) return frameError("bad magic number");
    if (!have(7)) return frameError("truncated header");
    const size_t desc_start = in + 4;
    const uint8_t flg = src[desc_start];
    const uint8_t bd = src[desc_start + 1];
    if ((flg >> 6) != 1) return frameError("unsupported version");
    if ((flg & 0x02) != 0 || (bd & 0x8F) != 0) return frameError("reserved bits set");
    const bool independent = (flg & 0x20) != 0;
    const bool block_checksum = (flg & 0x10) != 0;
    const bool has_content_size = (flg & 0x08) != 0;
    const bool content_checksum = (flg & 0x04) != 0;
    if ((flg & 0x01) != 0) return frameError("frames needing a dictionary are not supported");
    const unsigned size_id = (bd >> 4) & 0x7;
    if (size_id < 4) return frameError("invalid block maximum size");
    const size_t max_block = size_t{1} << (8 + 2 * size_id);  // 64 KiB .. 4 MiB
    const size_t desc_len = 2 + (has_content_size ? 8 : 0);
    if (!have(4 + desc_len + 1)) return frameError("truncated header");
    const uint8_t hc = src[desc_start + desc_len];
    if (hc != ((xxHash32(src.subspan(desc_start, desc_len), 0) >> 8) & 0xff)) {
      return frameError("header checksum mismatch");
    }
    const uint64_t content_size = has_content_size ? loadU64(src.data() + desc_start + 2) : 0;
    in += 4 + desc_len + 1;

    const size_t frame_out = out;
    while (true) {
      if (!have(4)) return frameError("truncated block header");
      const uint32_t word = loadU32(src.data() + in);
      in += 4;
      if (word == 0) break;  // end mark
      const size_t len = word & ~kUncompressedBlockBit;
      if (len > max_block) return frameError("block larger than the frame's maximum");
      if (!have(len + (block_checksum ? 4 : 0))) return frameError("truncated block");
      const uint8_t* block = src.data() + in;
      if (block_checksum && loadU32(block + len) != xxHash32({block, len}, 0)) {
        return frameError("block checksum mismatch");
      }
      const size_t room = dst.size() - out;
      if ((word & kUncompressedBlockBit) != 0) {
        if (len > room) return frameError("decodes to more bytes than the chunk header says");
        std::memcpy(dst.data() + out, block, len);
        out += len;
      } else {
        const auto cap = static_cast<int>(std::min(room, max_block));
        auto* d = reinterpret_cast<char*>(dst.data() + out);
        const auto* s = reinterpret_cast<const char*>(block);
        int n;
        if (independent || out == frame_out) {
          n = LZ4_decompress_safe(s, d, static_cast<int>(len), cap);
        } else {
          // Linked blocks may reference up to 64 KiB of this frame's earlier output, which sits
          // right before `d` in dst (liblz4 treats a contiguous dictionary as a prefix).
          const size_t window = std::min(kLinkedWindow, out - frame_out);
          n = LZ4_decompress_safe_usingDict(s, d, static_cast<int>(len), cap, d - window,
                                            static_cast<int>(window));
        }
        if (n < 0) {
          return frameError(cap == static_cast<int>(room) && room < max_block
                                ? "corrupt block or more bytes than the chunk header says"
                                : "corrupt block");
        }
        out += static_cast<size_t>(n);
      }
      in += len + (block_checksum ? 4 : 0);
    }
    if (content_checksum) {
      if (!have(4)) return frameError("truncated content checksum");
      if (loadU32(src.data() + in) != xxHash32(dst.subspan(frame_out, out - frame_out), 0)) {
        return frameError("content checksum mismatch");
      }
      in += 4;
    }
    if (has_content_size && content_size != out - frame_out) {
      return frameError("content size field disagrees with the decoded size");
    }
  }
  if (out != dst.size()) {
    return frameError("decoded " + std::to_string(out) + " bytes, chunk header says " +
                      std::to_string(dst.size()));
  }
  return okStatus();
}

}  // namespace hfm::xet
