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
#pragma once

#include <memory>
#include <string>

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
  Status commitFiles(std::span<const vfs::RemoteAdd> adds,
                     std::span<const std::string> deletes) override;

  // Conversion used for listings (exposed for tests).
  static vfs::RemoteEntry toRemoteEntry(const hub::TreeEntry& entry);

 private:
  Result<size_t> readPlain(const vfs::RemoteEntry& file, uint64_t offset, std::span<uint8_t> out);

  std::shared_ptr<const hub::HubClient> hub_;
  std::shared_ptr<cache::ChunkFetcher> fetcher_;
  std::shared_ptr<xet::CasWriter> cas_writer_;    // nullptr: read-only
  std::shared_ptr<xet::DedupIndex> dedup_index_;  // shared by every upload of this remote
  bool read_only_;
};

}  // namespace hfm::mount
