// HubRemote: the vfs::Remote of a real mount. Namespace from the Hub API (tree listings, HEAD
// on resolve), Xet file bytes through the chunk fetcher (cache + CAS), and plain HTTP ranged
// downloads for the few repo files that are not stored in Xet (small git blobs).
//
// read() honours the vfs contract of content addressing: Xet files are read by their xet hash,
// so a handle keeps reading the version it opened. Non-Xet files have no content address on
// the resolve endpoint; their reads check the returned ETag against the entry's and fail with
// ESTALE (never mixing versions) when the file changed underneath.
//
// Writes (buckets, when built with a CasWriter): beginUpload() gives each file its own
// xet::UploadSession (so one file's upload failure never poisons another's), all sharing one
// mount-wide xet::DedupIndex of the xorbs this mount's commits registered, so rewriting a file
// the mount wrote references the stored chunks without a dedup query; finish() ends the
// file and commits the session (xorbs, then the shard), after which the content is readable by
// its xet hash. commitFiles() is one HubClient::batch (adds before deletes). Without a writer
// (repos, --read-only) the writes answer EROFS.
//
// learnBase() adds the chunks of a version the mount downloaded to edit (another client's
// upload) to that index, so re-uploading the edited file sends only the changed chunks. Each
// chunk's hash is computed from the bytes stored at its (xorb, index) as the fetcher walks the
// file (mostly from the cache, filled when the copy was staged), never from a re-chunking, so
// a reference cannot name other bytes. It runs on the caller's (committer) thread, never on
// reads; a bounded set of file hashes already learned (or uploaded by this mount) makes an
// edited file that commits many times learn once (again only once the index evicted them).
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "hfm/cache/chunk_fetcher.h"
#include "hfm/http/http_client.h"
#include "hfm/http/xet_credentials.h"
#include "hfm/hub/hub_client.h"
#include "hfm/vfs/remote.h"
#include "hfm/xet/cas_writer.h"
#include "hfm/xet/dedup_index.h"

namespace hfm::mount {

class HubRemote final : public vfs::Remote {
 public:
  // `hub` and `fetcher` must outlive the remote. `read_only` is true for repos and
  // --read-only bucket mounts.
  HubRemote(std::shared_ptr<const hub::HubClient> hub, std::shared_ptr<cache::ChunkFetcher> fetcher,
            bool read_only);
  // Writable remote: `cas_writer` uploads xorbs and shards (nullptr keeps the remote
  // read-only whatever `read_only` says).
  HubRemote(std::shared_ptr<const hub::HubClient> hub, std::shared_ptr<cache::ChunkFetcher> fetcher,
            bool read_only, std::shared_ptr<xet::CasWriter> cas_writer);

  // A CasWriteClient that keeps `http` and `tokens` (write credentials) alive.
  static std::shared_ptr<xet::CasWriter> makeCasWriter(
      std::shared_ptr<http::HttpClient> http, std::shared_ptr<http::XetTokenProvider> tokens);

  Result<std::vector<vfs::RemoteEntry>> listDirectory(const std::string& dir) override;
  Result<vfs::RemoteEntry> stat(const std::string& path) override;
  Result<size_t> read(const vfs::RemoteEntry& file, uint64_t offset,
                      std::span<uint8_t> out) override;
  bool readOnly() const override { return read_only_; }
  Result<std::string> revision() override;
  Result<std::unique_ptr<vfs::RemoteUpload>> beginUpload() override;
  void learnBase(const vfs::RemoteEntry& base) override;
  Status commitFiles(std::span<const vfs::RemoteAdd> adds,
                     std::span<const std::string> deletes) override;

  // Conversion used for listings (exposed for tests).
  static vfs::RemoteEntry toRemoteEntry(const hub::TreeEntry& entry);

  // The file versions whose chunks the dedup index was given (learned or uploaded here),
  // the most recent `capacity`. A learned version keeps one of its chunks as a sample: once the
  // index has evicted that chunk, the version may be learned again. Thread-safe.
  class KnownFiles {
   public:
    KnownFiles(size_t capacity, std::shared_ptr<const xet::DedupIndex> index)
        : capacity_(capacity), index_(std::move(index)) {}
    // Records `file`; false if it was already recorded and, when it has a sample, that sample
    // is still indexed (a learning in progress counts as recorded).
    bool add(const xet::MerkleHash& file);
    // The chunk of a learned `file` that tells whether its chunks are still indexed.
    void setSample(const xet::MerkleHash& file, const xet::MerkleHash& chunk);
    void remove(const xet::MerkleHash& file);

   private:
    const size_t capacity_;
    const std::shared_ptr<const xet::DedupIndex> index_;
    std::mutex mu_;
    std::list<xet::MerkleHash> order_;  // newest first. Guarded by mu_.
    std::unordered_map<xet::MerkleHash, std::optional<xet::MerkleHash>>
        samples_;  // Guarded by mu_.
  };
  static constexpr size_t kKnownFiles = 4096;

 private:
  Result<size_t> readPlain(const vfs::RemoteEntry& file, uint64_t offset, std::span<uint8_t> out);

  std::shared_ptr<const hub::HubClient> hub_;
  std::shared_ptr<cache::ChunkFetcher> fetcher_;
  std::shared_ptr<xet::CasWriter> cas_writer_;    // nullptr: read-only
  std::shared_ptr<xet::DedupIndex> dedup_index_;  // shared by every upload of this remote
  std::shared_ptr<KnownFiles> known_files_;       // file versions dedup_index_ was given
  bool read_only_;
};

}  // namespace hfm::mount
