#include "hfm/xet/xorb.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace hfm::xet {
namespace {

constexpr char kFooterIdent[7] = {'X', 'E', 'T', 'B', 'L', 'O', 'B'};
constexpr char kHashesIdent[7] = {'X', 'B', 'L', 'B', 'H', 'S', 'H'};
constexpr char kBoundariesIdent[7] = {'X', 'B', 'L', 'B', 'B', 'N', 'D'};
constexpr uint8_t kHashesVersion = 0;
constexpr uint8_t kBoundariesVersion = 1;

uint32_t readU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

void appendU32(uint32_t v, std::vector<uint8_t>& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>((v >> (8 * i)) & 0xff));
}

void appendBytes(std::span<const uint8_t> b, std::vector<uint8_t>& out) {
  out.insert(out.end(), b.begin(), b.end());
}

void appendIdent(const char (&ident)[7], std::vector<uint8_t>& out) {
  for (char c : ident) out.push_back(static_cast<uint8_t>(c));
}

bool identAt(std::span<const uint8_t> bytes, size_t pos, const char (&ident)[7]) {
  return pos + 7 <= bytes.size() && std::memcmp(bytes.data() + pos, ident, 7) == 0;
}

Error footerError(const std::string& what) { return Error::invalid("xorb footer: " + what); }

// Sequential bounds-checked reader over the footer bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, size_t pos) : bytes_(bytes), pos_(pos) {}
  bool has(size_t n) const { return n <= bytes_.size() - pos_; }
  size_t pos() const { return pos_; }
  uint8_t u8() { return bytes_[pos_++]; }
  uint32_t u32() {
    uint32_t v = readU32(bytes_.data() + pos_);
    pos_ += 4;
    return v;
  }
  MerkleHash hash() {
    MerkleHash h = MerkleHash::fromRaw(bytes_.subspan(pos_, MerkleHash::kSize));
    pos_ += MerkleHash::kSize;
    return h;
  }
  void skip(size_t n) { pos_ += n; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_;
};

Status checkOffsets(const std::vector<uint32_t>& offsets, const char* what) {
  uint32_t prev = 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] < prev) {
      return footerError(std::string(what) + " offsets decrease at chunk " + std::to_string(i));
    }
    prev = offsets[i];
  }
  return okStatus();
}

}  // namespace

std::vector<uint8_t> SerializedXorb::storedForm(uint32_t nonce) const {
  std::vector<uint8_t> out;
  out.reserve(body.size() + xorbFooterV1Size(chunks.size()));
  out = body;
  std::vector<MerkleHash> hashes;
  hashes.reserve(chunks.size());
  for (const auto& c : chunks) hashes.push_back(c.hash);
  appendXorbFooter(hash, hashes, chunk_boundary_offsets, unpacked_chunk_offsets, nonce, out);
  return out;
}

Status XorbBuilder::add(std::span<const uint8_t> chunk, const MerkleHash& hash) {
  if (chunk.size() > kMaxUncompressedChunkSize) {
    return Error::invalid("chunk of " + std::to_string(chunk.size()) +
                          " bytes exceeds the 131072-byte chunk limit");
  }
  if (!fits(chunk.size())) {
    return Error::invalid("xorb full: " + std::to_string(chunks_.size()) + " chunks, " +
                          std::to_string(uncompressed_bytes_) + " bytes; cannot add " +
                          std::to_string(chunk.size()) + " more");
  }
  appendSerializedChunk(chunk, scheme_, body_);
  uncompressed_bytes_ += chunk.size();
  chunks_.push_back(ChunkInfo{hash, chunk.size()});
  // Both fit in u32: ≤ 64 MiB uncompressed and ≤ 64 MiB + 8192 headers serialized.
  boundaries_.push_back(static_cast<uint32_t>(body_.size()));
  unpacked_.push_back(static_cast<uint32_t>(uncompressed_bytes_));
  return okStatus();
}

SerializedXorb XorbBuilder::finish() {
  SerializedXorb x;
  x.hash = xorbHash(chunks_);
  x.body = std::move(body_);
  x.chunks = std::move(chunks_);
  x.chunk_boundary_offsets = std::move(boundaries_);
  x.unpacked_chunk_offsets = std::move(unpacked_);
  body_ = {};
  chunks_ = {};
  boundaries_ = {};
  unpacked_ = {};
  uncompressed_bytes_ = 0;
  return x;
}

void appendXorbFooter(const MerkleHash& xorb_hash, std::span<const MerkleHash> chunk_hashes,
                      std::span<const uint32_t> chunk_boundary_offsets,
                      std::span<const uint32_t> unpacked_chunk_offsets, uint32_t nonce,
                      std::vector<uint8_t>& out) {
  const size_t n = chunk_hashes.size();
  if (chunk_boundary_offsets.size() != n || unpacked_chunk_offsets.size() != n) std::abort();
  const auto n32 = static_cast<uint32_t>(n);
  out.reserve(out.size() + xorbFooterV1Size(n));
  appendIdent(kFooterIdent, out);
  out.push_back(kXorbFooterVersion);
  appendBytes(xorb_hash.span(), out);
  appendIdent(kHashesIdent, out);
  out.push_back(kHashesVersion);
  appendU32(n32, out);
  for (const auto& h : chunk_hashes) appendBytes(h.span(), out);
  appendIdent(kBoundariesIdent, out);
  out.push_back(kBoundariesVersion);
  appendU32(n32, out);
  for (uint32_t v : chunk_boundary_offsets) appendU32(v, out);
  for (uint32_t v : unpacked_chunk_offsets) appendU32(v, out);
  appendU32(n32, out);
  appendU32(52 + 40 * n32, out);
  appendU32(40 + 8 * n32, out);
  appendU32(nonce, out);
  out.insert(out.end(), 12, 0);
  appendU32(92 + 40 * n32, out);
}

Result<XorbFooter> parseXorbFooter(std::span<const uint8_t> object) {
  if (object.size() < 4) return footerError("object too short for info_length");
  const uint32_t info_length = readU32(object.data() + object.size() - 4);
  if (info_length > object.size() - 4) {
    return footerError("info_length " + std::to_string(info_length) + " exceeds object size " +
                       std::to_string(object.size()));
  }
  const size_t start = object.size() - 4 - info_length;
  const auto info = object.first(object.size() - 4);  // footer body ends before info_length
  if (!identAt(info, start, kFooterIdent) || !Cursor(info, start).has(8)) {
    return footerError("missing XETBLOB ident at offset " + std::to_string(start));
  }
  XorbFooter f;
  f.offset = start;
  Cursor c(info, start + 7);
  f.version = c.u8();
  if (f.version == 0) {
    // Legacy V0: hash, N, boundaries[N], hashes[N], 16-byte buffer.
    if (!c.has(32 + 4)) return footerError("V0 footer truncated");
    f.xorb_hash = c.hash();
    const uint32_t n = c.u32();
    const uint64_t expected = 60 + 36ull * n;
    if (expected != info_length) {
      return footerError("V0 info_length " + std::to_string(info_length) + " != 60 + 36*" +
                         std::to_string(n));
    }
    f.chunk_boundary_offsets.reserve(n);
    for (uint32_t i = 0; i < n; ++i) f.chunk_boundary_offsets.push_back(c.u32());
    f.chunk_hashes.reserve(n);
    for (uint32_t i = 0; i < n; ++i) f.chunk_hashes.push_back(c.hash());
    f.nonce = c.u32();
  } else if (f.version == kXorbFooterVersion) {
    if (!c.has(32 + 8 + 4)) return footerError("V1 footer truncated");
    f.xorb_hash = c.hash();
    if (!identAt(info, c.pos(), kHashesIdent)) return footerError("missing XBLBHSH ident");
    c.skip(7);
    if (const uint8_t v = c.u8(); v != kHashesVersion) {
      return footerError("unsupported hashes section version " + std::to_string(v));
    }
    const uint32_t n = c.u32();
    const uint64_t expected = 92 + 40ull * n;
    if (expected != info_length) {
      return footerError("V1 info_length " + std::to_string(info_length) + " != 92 + 40*" +
                         std::to_string(n));
    }
    // From here on the layout is fully determined by n and fits in info (checked above).
    const size_t hashes_section = c.pos() - 12;
    f.chunk_hashes.reserve(n);
    for (uint32_t i = 0; i < n; ++i) f.chunk_hashes.push_back(c.hash());
    const size_t boundary_section = c.pos();
    if (!identAt(info, c.pos(), kBoundariesIdent)) return footerError("missing XBLBBND ident");
    c.skip(7);
    if (const uint8_t v = c.u8(); v != kBoundariesVersion) {
      return footerError("unsupported boundaries section version " + std::to_string(v));
    }
    if (const uint32_t n2 = c.u32(); n2 != n) {
      return footerError("boundaries section chunk count " + std::to_string(n2) +
                         " != " + std::to_string(n));
    }
    f.chunk_boundary_offsets.reserve(n);
    for (uint32_t i = 0; i < n; ++i) f.chunk_boundary_offsets.push_back(c.u32());
    f.unpacked_chunk_offsets.reserve(n);
    for (uint32_t i = 0; i < n; ++i) f.unpacked_chunk_offsets.push_back(c.u32());
    if (const uint32_t n3 = c.u32(); n3 != n) {
      return footerError("trailing chunk count " + std::to_string(n3) + " != " + std::to_string(n));
    }
    const uint32_t hashes_off = c.u32();
    const uint32_t bounds_off = c.u32();
    if (hashes_off != info.size() - hashes_section) {
      return footerError("hashes_section_offset_from_end " + std::to_string(hashes_off) +
                         " != " + std::to_string(info.size() - hashes_section));
    }
    if (bounds_off != info.size() - boundary_section) {
      return footerError("boundary_section_offset_from_end " + std::to_string(bounds_off) +
                         " != " + std::to_string(info.size() - boundary_section));
    }
    f.nonce = c.u32();
    HFM_TRY(checkOffsets(f.unpacked_chunk_offsets, "unpacked"));
  } else {
    return footerError("unsupported version " + std::to_string(f.version));
  }
  HFM_TRY(checkOffsets(f.chunk_boundary_offsets, "chunk boundary"));
  const uint32_t chunks_end =
      f.chunk_boundary_offsets.empty() ? 0 : f.chunk_boundary_offsets.back();
  if (chunks_end != start) {
    return footerError("last chunk boundary " + std::to_string(chunks_end) + " != footer offset " +
                       std::to_string(start));
  }
  return f;
}

Result<ParsedXorb> parseXorb(std::span<const uint8_t> object) {
  ParsedXorb x;
  size_t pos = 0;
  while (pos < object.size()) {
    const auto rest = object.subspan(pos);
    if (startsWithXorbFooter(rest)) break;
    auto header = parseChunkHeader(rest);
    if (!header) {
      return header.error().withContext("xorb chunk " + std::to_string(x.chunks.size()) +
                                        " at offset " + std::to_string(pos));
    }
    if (rest.size() - kChunkHeaderSize < header->compressed_size) {
      return Error::invalid("xorb chunk " + std::to_string(x.chunks.size()) + " at offset " +
                            std::to_string(pos) + " truncated");
    }
    // Only the chunk count is bounded here, not the uncompressed total: huggingface.js caps the
    // serialized size at 64 MiB, so a xorb of compressible data it uploads (and the Hub serves)
    // can hold up to 8192 chunks of 128 KiB. Each chunk header was checked against that size.
    if (x.chunks.size() + 1 > kMaxXorbChunks) {
      return Error::invalid("xorb exceeds 8192 chunks");
    }
    const size_t data_start = x.data.size();
    if (auto st = decodeChunkPayload(
            *header, rest.subspan(kChunkHeaderSize, header->compressed_size), x.data);
        !st) {
      return st.error().withContext("xorb chunk " + std::to_string(x.chunks.size()) +
                                    " at offset " + std::to_string(pos));
    }
    x.chunks.push_back(ChunkInfo{
        chunkHash(std::span<const uint8_t>(x.data.data() + data_start, header->uncompressed_size)),
        header->uncompressed_size});
    x.schemes.push_back(header->scheme);
    pos += kChunkHeaderSize + header->compressed_size;
    // pos ≤ 8192 * (8-byte header + 128 KiB payload + slack) < 4 GiB, and so is data.size().
    x.chunk_boundary_offsets.push_back(static_cast<uint32_t>(pos));
    x.unpacked_chunk_offsets.push_back(static_cast<uint32_t>(x.data.size()));
  }
  if (x.chunks.empty()) return Error::invalid("xorb has no chunks");
  x.hash = xorbHash(x.chunks);

  if (pos < object.size()) {
    auto footer = parseXorbFooter(object);
    if (!footer) return footer.error();
    if (footer->offset != pos) {
      return footerError("footer starts at " + std::to_string(footer->offset) +
                         " but chunk data ends at " + std::to_string(pos));
    }
    if (footer->chunk_hashes.size() != x.chunks.size()) {
      return footerError("lists " + std::to_string(footer->chunk_hashes.size()) +
                         " chunks, data has " + std::to_string(x.chunks.size()));
    }
    for (size_t i = 0; i < x.chunks.size(); ++i) {
      if (footer->chunk_hashes[i] != x.chunks[i].hash) {
        return footerError("chunk " + std::to_string(i) + " hash mismatch");
      }
    }
    if (footer->chunk_boundary_offsets != x.chunk_boundary_offsets) {
      return footerError("chunk boundary offsets disagree with chunk data");
    }
    if (footer->version >= 1 && footer->unpacked_chunk_offsets != x.unpacked_chunk_offsets) {
      return footerError("unpacked chunk offsets disagree with chunk data");
    }
    if (footer->xorb_hash != x.hash) {
      return footerError("xorb hash " + footer->xorb_hash.hex() + " != computed " + x.hash.hex());
    }
    x.footer = std::move(*footer);
  }
  return x;
}

Result<ParsedXorb> verifyXorb(std::span<const uint8_t> body, const MerkleHash& expected) {
  HFM_ASSIGN_OR_RETURN(ParsedXorb x, parseXorb(body));
  if (x.hash != expected) {
    return Error::invalid("xorb hash mismatch: expected " + expected.hex() + ", data hashes to " +
                          x.hash.hex());
  }
  return x;
}

Result<OffsetRange> chunkRangeOffsets(std::span<const uint32_t> end_offsets, uint32_t first,
                                      uint32_t last) {
  if (first >= last || last > end_offsets.size()) {
    return Error::invalid("chunk range [" + std::to_string(first) + ", " + std::to_string(last) +
                          ") invalid for a xorb of " + std::to_string(end_offsets.size()) +
                          " chunks");
  }
  const uint64_t begin = first == 0 ? 0 : end_offsets[first - 1];
  const uint64_t end = end_offsets[last - 1];
  if (end < begin) return Error::invalid("chunk offsets decrease");
  return OffsetRange{begin, end};
}

Result<std::vector<uint8_t>> toStoredXorb(std::span<const uint8_t> body, uint32_t nonce) {
  HFM_ASSIGN_OR_RETURN(ParsedXorb x, parseXorb(body));
  if (x.footer) return Error::invalid("xorb already carries a footer");
  std::vector<uint8_t> out;
  out.reserve(body.size() + xorbFooterV1Size(x.chunks.size()));
  out.assign(body.begin(), body.end());
  std::vector<MerkleHash> hashes;
  hashes.reserve(x.chunks.size());
  for (const auto& c : x.chunks) hashes.push_back(c.hash);
  appendXorbFooter(x.hash, hashes, x.chunk_boundary_offsets, x.unpacked_chunk_offsets, nonce, out);
  return out;
}

}  // namespace hfm::xet
