// The write side of the Xet CAS protocol (spec §6, §9): xorb upload, shard upload (v2 NDJSON
// with v1 fallback) and the global-dedup query.
//
// CasWriter is the seam the upload session depends on (tests use an in-memory fake);
// CasWriteClient implements it over HTTP with a write token:
//  * uploadXorb(): POST {cas}/v1/xorbs/default/{hash} with the upload-form body. Idempotent:
//    an already stored xorb is success (returns false).
//  * uploadShard(): POST {cas}/v2/shards and reads the NDJSON frames until a terminal
//    "result" (success) or "error" frame; 404/501 falls back to POST /v1/shards. The server
//    validates every referenced xorb and verification hash, so call it only after the xorbs.
//  * queryDedup(): GET {cas}/v1/chunks/default/{chunk hash} → the stored-form shard (with an
//    HMAC key) describing xorbs that hold this chunk, or nullopt on 404. 429 is not retried
//    (dedup is an optimisation; the caller simply uploads).
// 401 refreshes the write token once and retries. Transient errors are retried by HttpClient.
#pragma once

#include <optional>
#include <span>

#include "hfm/http/http_client.h"
#include "hfm/http/xet_credentials.h"
#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"
#include "hfm/xet/shard.h"

namespace hfm::xet {

class CasWriter {
 public:
  virtual ~CasWriter() = default;
  // True if the xorb was stored now, false if the CAS already had it.
  virtual Result<bool> uploadXorb(const MerkleHash& hash, std::span<const uint8_t> body) = 0;
  virtual Status uploadShard(std::span<const uint8_t> shard) = 0;
  virtual Result<std::optional<Shard>> queryDedup(const MerkleHash& chunk_hash) = 0;
};

class CasWriteClient final : public CasWriter {
 public:
  // Both must outlive the client; `tokens` must give write credentials.
  CasWriteClient(http::HttpClient& http, http::XetTokenProvider& tokens);

  Result<bool> uploadXorb(const MerkleHash& hash, std::span<const uint8_t> body) override;
  Status uploadShard(std::span<const uint8_t> shard) override;
  Result<std::optional<Shard>> queryDedup(const MerkleHash& chunk_hash) override;

 private:
  // Sends `request` with fresh credentials; on 401 refreshes once and resends.
  Result<http::Response> sendAuthorized(http::Request request, const std::string& path);

  http::HttpClient& http_;
  http::XetTokenProvider& tokens_;
};

// Interprets a /v2/shards NDJSON body: OK on a "result" frame, the error frame's message
// (EIO, or EAGAIN when retryable) otherwise; unknown frame types are ignored.
Status parseShardUploadFrames(std::string_view ndjson);

}  // namespace hfm::xet
