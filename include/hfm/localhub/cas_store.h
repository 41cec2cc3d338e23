// Durable state of hf-local-hub's CAS: validated xorbs, registered files and shards, and the
// global-dedup chunk index, under `<data>/cas/`.
//
// Layout: `cas/index.sqlite` (WAL, synchronous=FULL) holds one row per xorb (sizes, and packed
// per-chunk serialized end offsets, uncompressed end offsets and chunk hashes — everything a
// byte range or a dedup answer needs without opening the blob), one row per file (ordered terms
// packed in a blob, size, optional SHA-256), one row per shard, the chunk → xorb index and the
// xorb → registering shard index (a dedup answer covers every xorb of that shard).
// Blobs: `cas/xorbs/<2 hex>/<hash>.xorb` in the stored form (the uploaded chunks unchanged,
// then a rebuilt V1 "XETBLOB" footer), so chunk byte offsets in the DB are offsets in the file
// and fetches are served straight from it; `cas/shards/<id>.shard` keeps each accepted shard.
// A blob is written to a temp file, fsync'd, renamed into place and its directory fsync'd
// before its row is committed, so a row always names a complete blob; a crash in between only
// leaves an unreferenced blob that the next upload of the same object overwrites. Every write
// is idempotent (INSERT OR IGNORE), so concurrent or repeated uploads of one object are safe.
//
// Thread-safe: one SQLite connection serialised by a mutex; xorb rows are immutable and cached.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

struct sqlite3;

namespace hfm::localhub {

// A stored xorb's chunk table. Offsets are cumulative ends: chunk k spans serialized bytes
// [chunk_ends[k-1], chunk_ends[k]) (0 for k = 0) and uncompressed bytes likewise.
struct CasXorb {
  xet::MerkleHash hash;
  std::vector<uint32_t> chunk_ends;
  std::vector<uint32_t> unpacked_ends;
  std::vector<xet::MerkleHash> chunk_hashes;

  size_t numChunks() const { return chunk_ends.size(); }
  uint64_t serializedSize() const { return chunk_ends.empty() ? 0 : chunk_ends.back(); }
  uint64_t unpackedSize() const { return unpacked_ends.empty() ? 0 : unpacked_ends.back(); }
  uint64_t chunkByteStart(size_t k) const { return k == 0 ? 0 : chunk_ends[k - 1]; }
  uint64_t chunkUnpackedStart(size_t k) const { return k == 0 ? 0 : unpacked_ends[k - 1]; }
  // Uncompressed bytes of chunks [start, end); requires start <= end <= numChunks().
  uint64_t unpackedBytes(size_t start, size_t end) const {
    return start == end ? 0 : unpacked_ends[end - 1] - chunkUnpackedStart(start);
  }
};

// One term of a file: chunks [chunk_start, chunk_end) of `xorb`, `unpacked_bytes` long.
struct CasTerm {
  xet::MerkleHash xorb;
  uint32_t chunk_start = 0;
  uint32_t chunk_end = 0;
  uint32_t unpacked_bytes = 0;
  friend bool operator==(const CasTerm&, const CasTerm&) = default;
};

struct CasFile {
  xet::MerkleHash hash;
  uint64_t size = 0;
  std::string sha256_hex;  // empty when the shard carried no metadata extension
  std::vector<CasTerm> terms;
};

// What one accepted shard adds.
struct CasShardCommit {
  xet::MerkleHash shard_id;  // content id of the shard body
  std::string body;
  std::vector<CasFile> files;
  std::vector<xet::MerkleHash> dedup_xorbs;  // xorbs whose chunks enter the dedup index
};

class CasStore {
 public:
  ~CasStore();
  CasStore(const CasStore&) = delete;
  CasStore& operator=(const CasStore&) = delete;

  // Opens or creates `cas_dir` (normally `<data>/cas`).
  static Result<std::unique_ptr<CasStore>> open(const std::filesystem::path& cas_dir);

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path xorbPath(const xet::MerkleHash& hash) const;

  // Stores a validated xorb: `stored` is the blob file content (chunks + footer). Returns
  // true if it was new, false if it already existed (the existing copy is kept).
  Result<bool> putXorb(const CasXorb& xorb, std::string_view stored);
  // The xorb's chunk table, or nullptr if unknown.
  Result<std::shared_ptr<const CasXorb>> getXorb(const xet::MerkleHash& hash);

  // Registers a validated shard's files and dedup chunks in one transaction. Returns true if
  // the shard or any of its files was new.
  Result<bool> commitShard(const CasShardCommit& commit);
  Result<bool> hasShard(const xet::MerkleHash& shard_id);

  Result<std::optional<CasFile>> getFile(const xet::MerkleHash& file_hash);
  Result<std::optional<xet::MerkleHash>> fileForSha256(const std::string& sha256_hex);
  // Xorb holding a chunk with this (raw) hash, if indexed for global dedup.
  Result<std::optional<xet::MerkleHash>> xorbForChunk(const xet::MerkleHash& chunk_hash);
  // The global-dedup answer's xorbs for a chunk: the xorb holding it first, then the other
  // xorbs registered by the same shard (at most `max_xorbs` in all). Empty if not indexed.
  Result<std::vector<xet::MerkleHash>> dedupXorbsForChunk(const xet::MerkleHash& chunk_hash,
                                                          size_t max_xorbs);

  // A 32-byte secret kept in the DB under `name`, created at random on first use.
  Result<std::string> secret(const std::string& name);

 private:
  CasStore(std::filesystem::path dir, sqlite3* db) : dir_(std::move(dir)), db_(db) {}
  Status exec(const char* sql);

  std::filesystem::path dir_;
  sqlite3* db_;
  std::mutex mu_;  // guards db_ use and xorb_cache_
  std::unordered_map<xet::MerkleHash, std::shared_ptr<const CasXorb>> xorb_cache_;
};

// Writes `data` to `path` crash-safely: temp file in the same directory, fsync, rename,
// fsync of the directory. Parent directories are created (and fsync'd) as needed.
Status writeFileDurably(const std::filesystem::path& path, std::string_view data);

}  // namespace hfm::localhub
