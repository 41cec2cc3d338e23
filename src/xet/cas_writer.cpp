#include "hfm/xet/cas_writer.h"

#include <nlohmann/json.hpp>

namespace hfm::xet {

CasWriteClient::CasWriteClient(http::HttpClient& http, http::XetTokenProvider& tokens)
    : http_(http), tokens_(tokens) {}

Result<http::Response> CasWriteClient::sendAuthorized(http::Request request,
                                                      const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    HFM_ASSIGN_OR_RETURN(auto creds, tokens_.get(/*force_refresh=*/attempt > 0));
    request.url = creds.cas_url + path;
    request.headers["Authorization"] = "Bearer " + creds.access_token;
    HFM_ASSIGN_OR_RETURN(auto response, http_.exchange(request));
    if (response.status == 401 && attempt == 0) continue;  // token expired early: refresh
    return response;
  }
  return Error(EACCES, request.method + " " + path + ": CAS refused a freshly issued token");
}

Result<bool> CasWriteClient::uploadXorb(const MerkleHash& hash, std::span<const uint8_t> body) {
  http::Request request;
  request.method = "POST";
  request.headers["Content-Type"] = "application/octet-stream";
  request.body.assign(reinterpret_cast<const char*>(body.data()), body.size());
  const std::string path = "/v1/xorbs/default/" + hash.hex();
  HFM_ASSIGN_OR_RETURN(auto response, sendAuthorized(std::move(request), path));
  if (!response.ok()) return http::statusError(response, "POST " + path);
  try {
    const auto json = nlohmann::json::parse(response.body);
    return json.value("was_inserted", false);
  } catch (const nlohmann::json::exception& e) {
    return Error::io("POST " + path + ": unreadable answer: " + e.what());
  }
}

Status parseShardUploadFrames(std::string_view ndjson) {
  std::optional<Error> failure;
  bool done = false;
  while (!ndjson.empty()) {
    const size_t eol = ndjson.find('\n');
    const std::string_view line = ndjson.substr(0, eol);
    ndjson = eol == std::string_view::npos ? std::string_view{} : ndjson.substr(eol + 1);
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
    nlohmann::json frame;
    try {
      frame = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      return Error::io("shard upload: malformed progress frame");
    }
    const std::string type = frame.value("type", "");
    if (type == "result") {
      done = true;
    } else if (type == "error") {
      const bool retryable = frame.value("retryable", false);
      failure =
          Error(retryable ? EAGAIN : EIO,
                "shard upload rejected: " + frame.value("message", std::string("(no message)")));
    }
  }
  if (failure) return *failure;
  if (!done) return Error::io("shard upload: the stream ended without a result");
  return okStatus();
}

Status CasWriteClient::uploadShard(std::span<const uint8_t> shard) {
  http::Request request;
  request.method = "POST";
  request.headers["Content-Type"] = "application/octet-stream";
  request.body.assign(reinterpret_cast<const char*>(shard.data()), shard.size());
  HFM_ASSIGN_OR_RETURN(auto v2, sendAuthorized(request, "/v2/shards"));
  if (v2.ok()) return parseShardUploadFrames(v2.body);
  if (v2.status != 404 && v2.status != 501) return http::statusError(v2, "POST /v2/shards");
  HFM_ASSIGN_OR_RETURN(auto v1, sendAuthorized(std::move(request), "/v1/shards"));
  if (!v1.ok()) return http::statusError(v1, "POST /v1/shards");
  return okStatus();
}

Result<std::optional<Shard>> CasWriteClient::queryDedup(const MerkleHash& chunk_hash) {
  http::Request request;
  http::RetryPolicy no_429 = http_.options().retry;
  no_429.max_attempts = 1;  // dedup is optional: never wait on rate limits for it
  request.retry = no_429;
  const std::string path = "/v1/chunks/default/" + chunk_hash.hex();
  HFM_ASSIGN_OR_RETURN(auto response, sendAuthorized(std::move(request), path));
  if (response.status == 404) return std::optional<Shard>();
  if (!response.ok()) return http::statusError(response, "GET " + path);
  auto bytes =
      std::span(reinterpret_cast<const uint8_t*>(response.body.data()), response.body.size());
  auto shard = parseShard(bytes);
  if (!shard) return shard.error().withContext("GET " + path);
  return std::optional<Shard>(std::move(shard).value());
}

}  // namespace hfm::xet
