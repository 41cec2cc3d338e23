// The read side of the Xet CAS protocol (spec §6, §6.1, §6.3, §8): reconstruction plans and
// the presigned fetches they point to. Protocol only: no cache, no files; the chunk fetcher in
// the cache layer (hfm/cache/chunk_fetcher.h) combines this with the chunk cache.
//
// CasReader is the seam the fetcher depends on, so tests can inject faults without a server.
// CasClient implements it over HTTP:
//  * getReconstruction(): GET {cas}/v2/reconstructions/{hash} with "Authorization: Bearer" and
//    an optional "Range: bytes=S-E"; 404/501 from V2 retries once with V1 (and V1 is used from
//    then on if it answered); 401 forces a credential refresh and retries once; 416 (range
//    start ≥ file size) is an empty plan, i.e. end of file. The answer is parsed and validated
//    (reconstruction.h); anything inconsistent is EIO.
//  * fetch(): GET the presigned URL with exactly the signed Range header and NO Authorization;
//    parses a multipart/byteranges answer or a single-range 206 (or a 200 whole object) and
//    returns the bytes of each signed range in order, as views into one pooled receive buffer
//    (no copy after the socket read; see util::BufferPool for why pooled). A 403 (URL expired) is
//    reported as kFetchUrlExpired so the caller re-plans; other failures are mapped by
//    http::statusError.
// Transient failures (connect, timeouts, 408/429/5xx, truncated bodies) are retried inside
// HttpClient with backoff. Thread-safe: any number of threads may call concurrently.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hfm/http/http_client.h"
#include "hfm/http/xet_credentials.h"
#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"
#include "hfm/xet/reconstruction.h"

namespace hfm::xet {

// errno of a fetch whose presigned URL was refused (403): get a new plan and retry.
inline constexpr int kFetchUrlExpired = EACCES;

// The bytes of each range of a FetchEntry, in the entry's order. The views stay valid while
// `owner` (or a copy of it) lives: keep it to use the bytes without copying them.
struct FetchedRanges {
  std::shared_ptr<const void> owner;
  std::vector<std::string_view> ranges;

  size_t size() const { return ranges.size(); }
  std::string_view operator[](size_t i) const { return ranges[i]; }

  // Owning `parts` (readers that build the bytes themselves, e.g. test fakes).
  static FetchedRanges own(std::vector<std::string> parts) {
    auto owned = std::make_shared<std::vector<std::string>>(std::move(parts));
    FetchedRanges out{owned, {}};
    for (const auto& p : *owned) out.ranges.emplace_back(p);
    return out;
  }
};

class CasReader {
 public:
  virtual ~CasReader() = default;

  // Plan for file bytes `range` (inclusive; nullopt = whole file). A range that starts at or
  // past the end of the file yields a plan without terms.
  virtual Result<ReconstructionPlan> getReconstruction(const MerkleHash& file_hash,
                                                       std::optional<InclusiveByteRange> range) = 0;

  // Serialized bytes of each range of `entry`, in the entry's order.
  virtual Result<FetchedRanges> fetch(const FetchEntry& entry) = 0;
};

class CasClient final : public CasReader {
 public:
  // Both must outlive the client.
  CasClient(http::HttpClient& http, http::XetTokenProvider& tokens);

  Result<ReconstructionPlan> getReconstruction(const MerkleHash& file_hash,
                                               std::optional<InclusiveByteRange> range) override;
  Result<FetchedRanges> fetch(const FetchEntry& entry) override;

 private:
  http::HttpClient& http_;
  http::XetTokenProvider& tokens_;
  std::atomic<bool> use_v1_{false};  // set once the server showed it has no V2 endpoint
};

// Splits a fetch answer (status and headers of `response`, body bytes `body`) into views of
// the bytes of each range of `entry`, pointing into `body`.
Result<std::vector<std::string_view>> splitFetchResponse(const http::Response& response,
                                                         std::string_view body,
                                                         const FetchEntry& entry);

}  // namespace hfm::xet
