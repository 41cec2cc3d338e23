// CAS read client over HTTP (see cas_client.h).
#include "hfm/xet/cas_client.h"

#include "hfm/util/log.h"

namespace hfm::xet {

CasClient::CasClient(http::HttpClient& http, http::XetTokenProvider& tokens)
    : http_(http), tokens_(tokens) {}

Result<ReconstructionPlan> CasClient::getReconstruction(const MerkleHash& file_hash,
                                                        std::optional<InclusiveByteRange> range) {
  int version = use_v1_.load() ? 1 : 2;
  bool force_refresh = false;
  bool fell_back = false;
  // At most: one 401 refresh and one V2 → V1 fallback, in either order.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto creds = tokens_.get(force_refresh);
    if (!creds) return creds.error().withContext("xet credentials");
    http::Request request;
    request.url =
        creds->cas_url + "/v" + std::to_string(version) + "/reconstructions/" + file_hash.hex();
    request.headers["Authorization"] = "Bearer " + creds->access_token;
    if (range) request.range = http::ByteRange{range->start, range->end};
    const std::string context = "GET " + http::urlForLog(request.url);
    auto response = http_.exchange(request);
    if (!response) return response.error();
    const long status = response->status;
    if (status == 401 && !force_refresh) {
      spdlog::debug("{}: 401, refreshing xet credentials", context);
      force_refresh = true;
      continue;
    }
    if (version == 2 && (status == 404 || status == 501)) {
      version = 1;
      fell_back = true;
      continue;
    }
    if (status == 416) {  // range starts at or past EOF
      ReconstructionPlan empty;
      empty.version = version;
      return empty;
    }
    if (!response->ok()) return http::statusError(*response, context);
    if (fell_back && !use_v1_.exchange(true)) {
      spdlog::info("CAS has no V2 reconstruction endpoint; using V1");
    }
    auto plan = parseReconstruction(response->body);
    if (!plan) return plan.error().withContext(context);
    return plan;
  }
  return Error::io("GET reconstruction " + file_hash.hex() + ": still unauthorized after refresh");
}

Result<std::vector<std::string>> splitFetchResponse(const http::Response& response,
                                                    const FetchEntry& entry) {
  std::vector<BodyPart> parts;
  const std::string_view body = response.body;
  if (response.status == 200) {  // server ignored Range: the whole object
    if (!body.empty()) parts.push_back({{0, body.size() - 1}, body});
  } else if (response.status == 206) {
    if (auto boundary = multipartBoundary(response.header("Content-Type"))) {
      auto parsed = parseMultipartByteRanges(body, *boundary);
      if (!parsed) return parsed.error();
      parts = std::move(parsed).value();
    } else {
      auto range = parseContentRange(response.header("Content-Range"));
      if (!range) return Error::io("206 without a valid Content-Range");
      if (range->size() != body.size()) {
        return Error::io("206 body has " + std::to_string(body.size()) +
                         " bytes, Content-Range says " + std::to_string(range->size()));
      }
      parts.push_back({*range, body});
    }
  } else {
    return Error::io("unexpected status " + std::to_string(response.status));
  }
  std::vector<std::string> out;
  out.reserve(entry.ranges.size());
  for (const auto& r : entry.ranges) {
    auto slice = sliceParts(parts, r.bytes);
    if (!slice) return slice.error();
    out.emplace_back(*slice);
  }
  return out;
}

Result<std::vector<std::string>> CasClient::fetch(const FetchEntry& entry) {
  http::Request request;
  request.url = entry.url;
  request.headers["Range"] = entry.rangeHeader();  // exactly the signed ranges; no auth
  const std::string context = "GET " + http::urlForLog(entry.url);
  auto response = http_.exchange(request);
  if (!response) return response.error();
  if (response->status == 403) {
    return Error(kFetchUrlExpired, context + ": 403, presigned URL expired or refused");
  }
  if (!response->ok()) return http::statusError(*response, context);
  // Common case: one range answered with exactly its bytes; hand the body over without a copy.
  if (response->status == 206 && entry.ranges.size() == 1 &&
      !multipartBoundary(response->header("Content-Type"))) {
    auto range = parseContentRange(response->header("Content-Range"));
    if (range && *range == entry.ranges[0].bytes && range->size() == response->body.size()) {
      std::vector<std::string> out;
      out.push_back(std::move(response->body));
      return out;
    }
  }
  auto parts = splitFetchResponse(*response, entry);
  if (!parts) return parts.error().withContext(context);
  return parts;
}

}  // namespace hfm::xet
