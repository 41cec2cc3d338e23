// UploadSession: bytes in, Xet files out (spec §9). Files are streamed through FileWriter:
// bytes are chunked (gear CDC) and hashed as they arrive; each new chunk is deduplicated
// against chunks this session already placed and, for eligible chunks (§3.8), against the CAS
// global-dedup answer; a session given a shared DedupIndex also references, without asking
// the CAS, the chunks of xorbs other sessions' commits registered (and feeds it its own).
// Chunks still unknown are packed into xorbs (64 MiB / 8192 chunks) that are uploaded by a
// background thread while writing continues. commit() uploads what is left
// and then one shard describing every file finished since the previous commit; after it
// returns OK, those file hashes are readable from the CAS (and can be named in a bucket batch
// or an LFS commit).
//
// Memory is bounded whatever the file sizes: one open xorb plus at most
// `max_queued_xorbs` finished xorbs waiting for upload (writers block while the queue is full),
// and per file 40 bytes per chunk of bookkeeping (32-byte hash, placement).
//
// Thread-safety: a FileWriter is used by one thread at a time; several FileWriters may write
// concurrently (placement is serialized by the session mutex). commit() may run concurrently
// with writers; files finished after it started go into the next commit. A background upload
// failure is sticky: every later write/finish/commit returns it.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/xet/cas_writer.h"
#include "hfm/xet/chunker.h"
#include "hfm/xet/dedup_index.h"
#include "hfm/xet/merkle_hash.h"
#include "hfm/xet/shard.h"
#include "hfm/xet/xorb.h"

namespace hfm::xet {

struct UploadOptions {
  bool global_dedup = true;
  // Global-dedup queries per file are spaced at least this many chunks apart (xet-core: 256).
  uint32_t min_chunks_between_dedup_queries = 256;
  size_t max_queued_xorbs = 2;
  CompressionScheme compression = CompressionScheme::kAuto;
  size_t max_shard_bytes = 60ull << 20;  // below the CAS's 64 MiB limit
};

struct UploadStats {
  uint64_t bytes_in = 0;         // file bytes written
  uint64_t new_chunks = 0;       // chunks packed into new xorbs
  uint64_t new_chunk_bytes = 0;  // their uncompressed bytes
  uint64_t dedup_chunks = 0;     // chunks referenced instead of uploaded
  uint64_t dedup_bytes = 0;
  uint64_t dedup_queries = 0;     // global-dedup requests made
  uint64_t dedup_query_hits = 0;  // of which answered with a shard
  uint64_t xorbs_uploaded = 0;
  uint64_t xorb_bytes_uploaded = 0;  // serialized bytes sent
  uint64_t shards_uploaded = 0;
};

struct UploadedFile {
  MerkleHash file_hash;
  uint64_t size = 0;
  std::array<uint8_t, 32> sha256{};  // plain SHA-256 digest of the bytes
  std::string sha256Hex() const;
};

class UploadSession {
  struct XorbSlot;

 public:
  // `shared_index` (optional) is consulted before the CAS and fed with every xorb this
  // session's commits register.
  UploadSession(CasWriter& cas, UploadOptions options = {},
                std::shared_ptr<DedupIndex> shared_index = nullptr);
  ~UploadSession();  // stops the uploader; unuploaded xorbs are dropped (nothing committed)
  UploadSession(const UploadSession&) = delete;
  UploadSession& operator=(const UploadSession&) = delete;

  class FileWriter {
   public:
    ~FileWriter();
    Status write(std::span<const uint8_t> data);
    // Ends the file. Its hash is final; it becomes readable at the next successful commit().
    Result<UploadedFile> finish();

   private:
    friend class UploadSession;
    explicit FileWriter(UploadSession& session);
    Status placeChunk(std::span<const uint8_t> chunk);

    UploadSession& session_;
    Chunker chunker_;
    std::vector<uint8_t> pending_;  // bytes of the unfinished chunk
    struct Placed {
      MerkleHash hash;
      uint32_t size;
      std::shared_ptr<XorbSlot> xorb;
      uint32_t index;
    };
    std::vector<Placed> chunks_;
    uint64_t size_ = 0;
    uint64_t chunks_since_query_ = 0;
    struct ShaState;
    std::unique_ptr<ShaState> sha_;
    bool finished_ = false;
  };

  std::unique_ptr<FileWriter> beginFile();

  // Closes the open xorb, waits until every xorb is uploaded, then uploads the shard(s) for
  // the files finished so far. On failure the files stay pending for the next commit.
  Status commit();

  UploadStats stats() const;

 private:
  // A xorb of this session (new chunks) or one learned from a dedup answer (already stored).
  struct XorbSlot {
    MerkleHash hash;  // known once sealed (or from the dedup answer)
    bool sealed = false;
  };
  struct Location {
    std::shared_ptr<XorbSlot> xorb;
    uint32_t index = 0;
  };
  struct FinishedFile {
    MerkleHash file_hash;
    std::vector<FileWriter::Placed> chunks;
    MerkleHash sha256_stored;
  };
  struct SealedXorb {
    std::shared_ptr<XorbSlot> slot;
    SerializedXorb xorb;
    std::vector<uint32_t> flags;  // per chunk: kChunkFlagGlobalDedup on file starts
  };
  // A dedup answer's chunks, keyed by the HMAC'd chunk hash under `key`.
  struct KeyedIndex {
    MerkleHash key;
    std::unordered_map<MerkleHash, Location> chunks;
  };

  // Places one chunk: finds it among known chunks or appends it to the open xorb.
  Result<Location> place(std::span<const uint8_t> chunk, const MerkleHash& hash, bool file_start,
                         bool query_dedup);
  std::optional<Location> findKnownLocked(const MerkleHash& hash) const;
  // findKnownLocked, then the shared index.
  std::optional<Location> findLocked(const MerkleHash& hash);
  void learnDedupShard(const Shard& shard);
  Status sealOpenXorbLocked(std::unique_lock<std::mutex>& lock);
  void uploaderLoop();
  Status stickyErrorLocked() const;

  CasWriter& cas_;
  const UploadOptions options_;
  const std::shared_ptr<DedupIndex> shared_;  // may be null

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<MerkleHash, Location> known_;  // Guarded by mu_.
  std::vector<KeyedIndex> keyed_;                   // Guarded by mu_.
  std::unordered_map<MerkleHash, bool> queried_;    // chunk hashes asked already. mu_.
  // Slots of stored xorbs referenced through the shared index, one per xorb so runs of its
  // chunks form one term. Guarded by mu_.
  std::unordered_map<MerkleHash, std::shared_ptr<XorbSlot>> shared_slots_;
  std::shared_ptr<XorbSlot> open_slot_;    // Guarded by mu_.
  XorbBuilder open_xorb_;                  // Guarded by mu_.
  std::vector<uint32_t> open_flags_;       // Guarded by mu_.
  std::deque<SealedXorb> queue_;           // waiting for upload. Guarded by mu_.
  size_t uploading_ = 0;                   // xorbs being sent now. Guarded by mu_.
  std::vector<ShardXorb> uploaded_xorbs_;  // uploaded, not yet in a shard. Guarded by mu_.
  std::vector<FinishedFile> finished_;     // finished, not yet committed. Guarded by mu_.
  std::optional<Error> failure_;           // sticky uploader error. Guarded by mu_.
  UploadStats stats_;                      // Guarded by mu_.
  bool stopping_ = false;                  // Guarded by mu_.
  std::mutex commit_mu_;                   // one commit at a time
  std::thread uploader_;
};

}  // namespace hfm::xet
