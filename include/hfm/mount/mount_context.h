// MountContext: everything one mount needs, built from the shared command line
// (app::MountOptions + app::MountSource) in dependency order:
//   credentials → HttpClient → HubClient (source info: fails fast on a missing repo, a bad
//   token or an unreachable hub) → XetTokenCache (first token fetched now, so a mount without
//   Xet access fails at start, not at the first read) → CasClient → chunk cache → ChunkFetcher
//   → HubRemote → VfsConfig.
// Both backends (hf-mount-fuse, hf-mount-nfs) call open() and then serve `remote` through a
// vfs::Vfs built with `vfs_config`. Writable mounts get vfs_config.writes filled from the
// write options, with the staging directory <cache-dir>/pending/<stagingKey> created 0700. Errors
// carry one line a user understands.
#pragma once

#include <memory>
#include <string>

#include "hfm/app/mount_options.h"
#include "hfm/cache/chunk_cache.h"
#include "hfm/cache/chunk_fetcher.h"
#include "hfm/cache/file_cache.h"
#include "hfm/http/http_client.h"
#include "hfm/hub/credentials.h"
#include "hfm/hub/hub_client.h"
#include "hfm/hub/xet_token_cache.h"
#include "hfm/mount/hub_remote.h"
#include "hfm/util/result.h"
#include "hfm/vfs/vfs.h"
#include "hfm/xet/cas_client.h"

namespace hfm::mount {

struct MountContext {
  hub::SourceId source;
  hub::SourceInfo info;
  bool read_only = true;
  std::shared_ptr<const hub::Credentials> credentials;
  std::shared_ptr<http::HttpClient> http;
  std::shared_ptr<hub::HubClient> hub;
  std::shared_ptr<hub::XetTokenCache> xet_tokens;
  std::unique_ptr<xet::CasClient> cas;
  std::shared_ptr<cache::ChunkCache> chunk_cache;
  std::shared_ptr<cache::ChunkFetcher> fetcher;
  std::shared_ptr<HubRemote> remote;
  std::shared_ptr<cache::FileCache> file_cache;  // --cache-mode file; after `remote`: its
                                                 // downloads read through it
  vfs::VfsConfig vfs_config;

  // Builds the context. `token_override` (from the supervisor's token pipe) wins over
  // --hf-token / HF_TOKEN but not over --token-file, which is re-read for rotation.
  static Result<std::unique_ptr<MountContext>> open(const app::MountOptions& options,
                                                    const app::MountSource& source,
                                                    std::optional<std::string> token_override);

  // The directory name (under <cache-dir>/pending) holding the written files of `source` on
  // `endpoint` until they are committed: filesystem-safe, distinct per hub, source and
  // subfolder, stable across runs (so the next start finds what a killed run left).
  static std::string stagingKey(const std::string& endpoint, const app::MountSource& source);

  // "Mounting bucket ns/b at /mnt (read-write, backend=fuse)".
  std::string describe(const std::string& mountpoint, const std::string& backend) const;
};

}  // namespace hfm::mount
