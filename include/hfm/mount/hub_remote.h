// HubRemote: the vfs::Remote of a real mount. Namespace from the Hub API (tree listings, HEAD
// on resolve), Xet file bytes through the chunk fetcher (cache + CAS), and plain HTTP ranged
// downloads for the few repo files that are not stored in Xet (small git blobs).
//
// read() honours the vfs contract of content addressing: Xet files are read by their xet hash,
// so a handle keeps reading the version it opened. Non-Xet files have no content address on
// the resolve endpoint; their reads check the returned ETag against the entry's and fail with
// ESTALE (never mixing versions) when the file changed underneath.
#pragma once

#include <memory>
#include <string>

#include "hfm/cache/chunk_fetcher.h"
#include "hfm/hub/hub_client.h"
#include "hfm/vfs/remote.h"

namespace hfm::mount {

class HubRemote final : public vfs::Remote {
 public:
  // `hub` and `fetcher` must outlive the remote. `read_only` is true for repos and
  // --read-only bucket mounts.
  HubRemote(std::shared_ptr<const hub::HubClient> hub, std::shared_ptr<cache::ChunkFetcher> fetcher,
            bool read_only);

  Result<std::vector<vfs::RemoteEntry>> listDirectory(const std::string& dir) override;
  Result<vfs::RemoteEntry> stat(const std::string& path) override;
  Result<size_t> read(const vfs::RemoteEntry& file, uint64_t offset,
                      std::span<uint8_t> out) override;
  bool readOnly() const override { return read_only_; }
  Result<std::string> revision() override;

  // Conversion used for listings (exposed for tests).
  static vfs::RemoteEntry toRemoteEntry(const hub::TreeEntry& entry);

 private:
  Result<size_t> readPlain(const vfs::RemoteEntry& file, uint64_t offset, std::span<uint8_t> out);

  std::shared_ptr<const hub::HubClient> hub_;
  std::shared_ptr<cache::ChunkFetcher> fetcher_;
  bool read_only_;
};

}  // namespace hfm::mount
