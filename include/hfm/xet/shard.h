// Shards (MDB files, spec §5): the metadata that maps files to xorb chunk ranges and lists the
// chunks of xorbs. Two forms:
//  * upload form (POST /v1/shards): header with footer_size 0, file section, bookend, CAS
//    section, bookend — no lookup tables, no footer (xet-core's choice);
//  * stored form (server storage, global-dedup answers of GET /v1/chunks/...): the same plus the
//    file/xorb/chunk lookup tables (sorted by truncated hash) and the 200-byte footer, optionally
//    with an HMAC key under which every chunk hash of the CAS section and chunk lookup is keyed.
//
// Contract: Shard holds plain values; the writer derives file flags (verification/metadata bits)
// from the data and, when an HMAC key is given, keys the chunk hashes itself (callers pass plain
// chunk hashes). The reader accepts both forms (footer_size 0 or 200, and hf.js's footer with
// zero lookup counts) and returns chunk hashes exactly as stored — keyed when the footer carries a
// key; ShardChunkIndex applies the key for lookups. Malformed input (bad magic/version, records
// past the end, counts exceeding the buffer, missing bookends, inconsistent verification flags,
// footer offsets out of order) yields EINVAL with the byte offset in the message.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::xet {

inline constexpr size_t kShardHeaderSize = 48;
inline constexpr size_t kShardRecordSize = 48;
inline constexpr size_t kShardFooterSize = 200;
inline constexpr uint64_t kShardHeaderVersion = 2;
inline constexpr uint64_t kShardFooterVersion = 1;
inline constexpr uint32_t kFileFlagWithVerification = 0x80000000u;
inline constexpr uint32_t kFileFlagWithMetadataExt = 0x40000000u;
inline constexpr uint32_t kChunkFlagGlobalDedup = 0x80000000u;
inline constexpr uint64_t kShardNoExpiry = UINT64_MAX;
extern const std::array<uint8_t, 32> kShardMagic;

// One term of a file: chunks [chunk_start, chunk_end) of a xorb, unpacked_bytes long.
struct FileTerm {
  MerkleHash xorb_hash;
  uint32_t xorb_flags = 0;
  uint32_t unpacked_bytes = 0;
  uint32_t chunk_start = 0;
  uint32_t chunk_end = 0;
  friend bool operator==(const FileTerm&, const FileTerm&) = default;
};

struct ShardFile {
  MerkleHash file_hash;
  std::vector<FileTerm> terms;
  std::vector<MerkleHash> verification;  // empty, or one range hash (§3.5) per term
  std::optional<MerkleHash> sha256;      // metadata extension, stored form of §3.7
  uint32_t flags = 0;                    // as read; the writer recomputes it
  uint64_t size() const;                 // Σ unpacked_bytes
  friend bool operator==(const ShardFile&, const ShardFile&) = default;
};

struct XorbChunkEntry {
  MerkleHash hash;      // plain chunk hash (keyed when read from an HMAC'd shard)
  uint32_t offset = 0;  // uncompressed start offset within the xorb
  uint32_t size = 0;    // uncompressed length
  uint32_t flags = 0;   // kChunkFlagGlobalDedup on chunks that start a file (xet-core)
  friend bool operator==(const XorbChunkEntry&, const XorbChunkEntry&) = default;
};

struct ShardXorb {
  MerkleHash hash;
  uint32_t flags = 0;
  std::vector<XorbChunkEntry> chunks;
  uint32_t num_bytes_in_xorb = 0;  // Σ chunk sizes
  uint32_t num_bytes_on_disk = 0;  // serialized size (xet-core writes 0)
  friend bool operator==(const ShardXorb&, const ShardXorb&) = default;
};

struct ShardFooter {
  uint64_t version = kShardFooterVersion;
  uint64_t file_info_offset = 0;
  uint64_t cas_info_offset = 0;
  uint64_t file_lookup_offset = 0;
  uint64_t file_lookup_num_entry = 0;
  uint64_t xorb_lookup_offset = 0;
  uint64_t xorb_lookup_num_entry = 0;
  uint64_t chunk_lookup_offset = 0;
  uint64_t chunk_lookup_num_entry = 0;
  MerkleHash chunk_hash_hmac_key;  // all zero = none
  uint64_t shard_creation_timestamp = 0;
  uint64_t shard_key_expiry = kShardNoExpiry;
  uint64_t stored_bytes_on_disk = 0;
  uint64_t materialized_bytes = 0;
  uint64_t stored_bytes = 0;
  uint64_t footer_offset = 0;
  friend bool operator==(const ShardFooter&, const ShardFooter&) = default;
};

// Lookup-table rows (stored form). `index` counts 48-byte records from the section start.
struct ShardLookupEntry {
  uint64_t key = 0;  // truncated hash = word 0
  uint32_t index = 0;
  friend bool operator==(const ShardLookupEntry&, const ShardLookupEntry&) = default;
};
struct ShardChunkLookupEntry {
  uint64_t key = 0;          // truncated (keyed) chunk hash
  uint32_t xorb_index = 0;   // record index of the xorb header in the CAS section
  uint32_t chunk_index = 0;  // chunk position within that xorb
  friend bool operator==(const ShardChunkLookupEntry&, const ShardChunkLookupEntry&) = default;
};

struct Shard {
  std::vector<ShardFile> files;
  std::vector<ShardXorb> xorbs;
  // Set by the reader for the stored form (and hf.js uploads); ignored by the writers.
  std::optional<ShardFooter> footer;
  std::vector<ShardLookupEntry> file_lookup;
  std::vector<ShardLookupEntry> xorb_lookup;
  std::vector<ShardChunkLookupEntry> chunk_lookup;

  bool hasHmacKey() const { return footer && !footer->chunk_hash_hmac_key.isZero(); }
};

// Upload form. EINVAL if a file's verification list is neither empty nor one per term, if some
// files have verification entries and others not, or a count does not fit in u32.
Result<std::vector<uint8_t>> serializeUploadShard(const Shard& shard);

struct StoredShardOptions {
  MerkleHash hmac_key;                   // zero = chunk hashes stored plain
  uint64_t creation_timestamp = 0;       // unix seconds, written as is
  uint64_t key_expiry = kShardNoExpiry;  // unix seconds
};
// Stored form with lookup tables and footer; same validation as the upload form.
Result<std::vector<uint8_t>> serializeStoredShard(const Shard& shard,
                                                  const StoredShardOptions& options = {});

// Reads either form. Lookup tables are parsed and checked against the sections when present.
Result<Shard> parseShard(std::span<const uint8_t> bytes);

// Where a chunk lives: xorbs[xorb] chunk `chunk` of the Shard it was built from.
struct ChunkLocation {
  size_t xorb = 0;
  size_t chunk = 0;
  friend bool operator==(const ChunkLocation&, const ChunkLocation&) = default;
};

// Chunk-hash index over a parsed shard, for dedup: find() takes a *plain* chunk hash and applies
// the shard's HMAC key (if any) before looking it up.
class ShardChunkIndex {
 public:
  explicit ShardChunkIndex(const Shard& shard);
  std::optional<ChunkLocation> find(const MerkleHash& plain_chunk_hash) const;
  bool keyed() const { return !key_.isZero(); }

 private:
  MerkleHash key_;
  std::unordered_map<MerkleHash, ChunkLocation> map_;
};

}  // namespace hfm::xet
