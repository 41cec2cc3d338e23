// The Xet CAS half of hf-local-hub: xorb and shard upload with full validation, file
// reconstruction (v1 and v2) with signed, Range-bound fetch URLs, the fetch endpoint those URLs
// point to, and global dedup. State lives under `<data>/cas/` (its own SQLite file and blob
// directories), written crash-safely, so a killed server loses nothing it answered 2xx for.
//
// The Hub half (server, routing, Hub API) owns authentication of Hub tokens and issues the
// Xet tokens this service checks; it forwards every request whose path starts with "/v1/" or
// "/v2/" to handle().
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "hfm/localhub/http_types.h"
#include "hfm/localhub/tokens.h"
#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::localhub {

// Tunables of the CAS service (defaults match the Hub's behaviour closely enough for clients).
struct CasOptions {
  int64_t fetch_url_ttl_secs = 3600;   // lifetime of signed fetch URLs (Hub: about 1 h)
  int64_t dedup_key_ttl_secs = 86400;  // shard_key_expiry of global-dedup answers
  // false: every global-dedup query answers 404 (tests that must see a client's own dedup).
  bool global_dedup = true;
};

class CasService {
 public:
  virtual ~CasService() = default;

  // Opens (creating if needed) the CAS state under `data_dir / "cas"`.
  static Result<std::unique_ptr<CasService>> open(const std::filesystem::path& data_dir,
                                                  const XetTokens* tokens);
  static Result<std::unique_ptr<CasService>> open(const std::filesystem::path& data_dir,
                                                  const XetTokens* tokens,
                                                  const CasOptions& options);

  // Answers a CAS request (paths /v1/..., /v2/...); nullopt if the path is not a CAS route.
  // Fetch URLs it hands out are built from the request's Host header.
  virtual std::optional<HttpResponse> handle(const HttpRequest& request) = 0;

  // Size in bytes of a file known to the CAS (registered by a shard), or nullopt.
  virtual std::optional<uint64_t> fileSize(const xet::MerkleHash& file_hash) = 0;

  // File hash registered with this SHA-256 (hex) in a shard's metadata extension, or nullopt.
  virtual std::optional<xet::MerkleHash> fileHashForSha256(const std::string& sha256_hex) = 0;

  // Reconstructs bytes [offset, offset + length) of a file (clamped to its size).
  virtual Result<std::string> readFileRange(const xet::MerkleHash& file_hash, uint64_t offset,
                                            uint64_t length) = 0;
};

}  // namespace hfm::localhub
