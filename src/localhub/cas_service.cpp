// CasService implementation: routing, token checks and the CAS endpoints (see cas_service.h,
// cas_store.h for storage, cas_http.h for signed fetch URLs, cas_reconstruction.h for planning).
#include "hfm/localhub/cas_service.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "hfm/localhub/cas_http.h"
#include "hfm/localhub/cas_reconstruction.h"
#include "hfm/localhub/cas_store.h"
#include "hfm/util/hex.h"
#include "hfm/util/log.h"
#include "hfm/xet/compression.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/shard.h"
#include "hfm/xet/xorb.h"

namespace hfm::localhub {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using xet::MerkleHash;

// 64 MiB of chunk data plus one 8-byte header per chunk: the most a client following
// xet-core's rule (64 MiB uncompressed, 8192 chunks) can send. huggingface.js caps the
// serialized size at 64 MiB instead, which this also admits; the parser bounds the chunks.
constexpr uint64_t kMaxXorbUploadBytes =
    xet::kMaxXorbBytes + uint64_t{xet::kMaxXorbChunks} * xet::kXorbChunkHeaderBytes;
constexpr uint64_t kMaxShardBytes = 64ull * 1024 * 1024;
// Ranges per signed V2 URL, so a URL stays under ~8 KiB like the Hub's.
constexpr size_t kMaxRangesPerUrl = 400;
// Bounds of one global-dedup answer (xorbs, chunk entries): at most a few MiB of shard.
constexpr size_t kMaxDedupAnswerXorbs = 64;
constexpr size_t kMaxDedupAnswerChunks = 65536;

int64_t nowSecs() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse jsonError(int status, const std::string& message) {
  return HttpResponse::json(status, json{{"error", message}}.dump());
}

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

std::span<const uint8_t> bytesOf(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string randomHex(size_t bytes) {
  std::vector<uint8_t> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    // Only used for multipart boundaries: uniqueness, not secrecy, matters.
    static std::atomic<uint64_t> counter{0};
    uint64_t v = counter.fetch_add(1) ^ static_cast<uint64_t>(nowSecs());
    std::memcpy(buf.data(), &v, std::min(bytes, sizeof v));
  }
  return util::toHex(buf);
}

Status preadExact(const fs::path& path, uint64_t offset, uint64_t length, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(EIO, "open " + path.string() + ": " + std::strerror(errno));
  out.resize(length);
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return Error(EIO, "short read of " + path.string());
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return okStatus();
}

class CasServiceImpl final : public CasService {
 public:
  CasServiceImpl(std::unique_ptr<CasStore> store, const XetTokens* tokens, CasOptions options,
                 const std::string& url_key, const std::string& dedup_key)
      : store_(std::move(store)),
        tokens_(tokens),
        options_(options),
        signer_(url_key),
        dedup_key_(MerkleHash::fromRaw(bytesOf(dedup_key))),
        lookup_([this](const MerkleHash& h) { return store_->getXorb(h); }) {}

  std::optional<HttpResponse> handle(const HttpRequest& request) override;
  std::optional<uint64_t> fileSize(const MerkleHash& file_hash) override;
  std::optional<MerkleHash> fileHashForSha256(const std::string& sha256_hex) override;
  Result<std::string> readFileRange(const MerkleHash& file_hash, uint64_t offset,
                                    uint64_t length) override;

 private:
  std::optional<HttpResponse> checkToken(const HttpRequest& request, bool write) const;
  Result<std::optional<CasFile>> findFile(const MerkleHash& hash);

  HttpResponse postXorb(const HttpRequest& request, const MerkleHash& hash);
  HttpResponse headXorb(const MerkleHash& hash);
  HttpResponse postShard(const HttpRequest& request, bool v2);
  HttpResponse getReconstruction(const HttpRequest& request, const MerkleHash& hash, bool v2);
  // GET /v1/reconstructions?file_id=…&file_id=… (xet-core's batch query).
  HttpResponse getBatchReconstruction(const HttpRequest& request);
  static nlohmann::json termsJson(const ReconstructionPlan& plan);
  // V2 "xorbs" map (signed multi-range URLs) or V1 "fetch_info" map (one URL per range).
  nlohmann::json fetchJson(const std::map<MerkleHash, std::vector<FetchRange>>& ranges,
                           const std::string& host, bool v2) const;
  HttpResponse getFetch(const HttpRequest& request, const std::string& xorb_hex);
  HttpResponse getDedupShard(const MerkleHash& chunk_hash);

  // Validates a parsed upload shard against stored xorbs; the error message is the 400 text.
  Result<CasShardCommit> validateShard(const xet::Shard& shard);

  std::unique_ptr<CasStore> store_;
  const XetTokens* tokens_;
  CasOptions options_;
  FetchUrlSigner signer_;
  MerkleHash dedup_key_;  // HMAC key of global-dedup answers, stable across restarts
  XorbLookup lookup_;
};

std::optional<HttpResponse> CasServiceImpl::checkToken(const HttpRequest& request,
                                                       bool write) const {
  if (!tokens_) return std::nullopt;
  std::string auth = request.header("authorization");
  constexpr std::string_view kBearer = "bearer ";
  if (auth.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), auth.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return jsonError(401, "missing or malformed Authorization: Bearer <xet token>");
  }
  XetTokenClaims claims;
  switch (tokens_->verify(std::string_view(auth).substr(kBearer.size()), nowSecs(), &claims)) {
    case TokenCheck::kValid:
      break;
    case TokenCheck::kExpired:
      return jsonError(401, "xet token expired");
    case TokenCheck::kMalformed:
    case TokenCheck::kBadSignature:
      return jsonError(401, "invalid xet token");
  }
  if (write && !claims.write) return jsonError(403, "read-only xet token cannot upload");
  return std::nullopt;
}

std::optional<HttpResponse> CasServiceImpl::handle(const HttpRequest& request) {
  auto parts = splitPath(request.path);
  if (parts.size() < 2 || (parts[0] != "v1" && parts[0] != "v2")) return std::nullopt;
  const bool v2 = parts[0] == "v2";
  const std::string_view route = parts[1];
  const std::string& method = request.method;
  auto methodNotAllowed = [&] { return jsonError(405, "method " + method + " not allowed"); };
  auto parseHash = [](std::string_view hex) { return MerkleHash::fromHex(hex); };

  if (!v2 && route == "xorbs" && parts.size() == 4) {
    auto hash = parseHash(parts[3]);
    if (!hash) return jsonError(400, "invalid xorb hash \"" + std::string(parts[3]) + "\"");
    if (parts[2] != "default")
      return jsonError(400, "unknown xorb prefix \"" + std::string(parts[2]) + "\"");
    if (method == "POST") {
      if (auto denied = checkToken(request, true)) return denied;
      return postXorb(request, *hash);
    }
    if (method == "HEAD" || method == "GET") {
      if (auto denied = checkToken(request, false)) return denied;
      return headXorb(*hash);
    }
    return methodNotAllowed();
  }
  if (route == "shards" && parts.size() == 2) {
    if (method != "POST") return methodNotAllowed();
    if (auto denied = checkToken(request, true)) return denied;
    return postShard(request, v2);
  }
  if (!v2 && route == "reconstructions" && parts.size() == 2) {
    if (method != "GET" && method != "HEAD") return methodNotAllowed();
    if (auto denied = checkToken(request, false)) return denied;
    return getBatchReconstruction(request);
  }
  if (route == "reconstructions" && parts.size() == 3) {
    if (method != "GET" && method != "HEAD") return methodNotAllowed();
    auto hash = parseHash(parts[2]);
    if (!hash) return jsonError(400, "invalid file hash \"" + std::string(parts[2]) + "\"");
    if (auto denied = checkToken(request, false)) return denied;
    return getReconstruction(request, *hash, v2);
  }
  if (!v2 && route == "chunks" && parts.size() == 4) {
    if (method != "GET" && method != "HEAD") return methodNotAllowed();
    if (parts[2] != "default" && parts[2] != "default-merkledb") {
      return jsonError(404, "unknown chunk prefix \"" + std::string(parts[2]) + "\"");
    }
    auto hash = parseHash(parts[3]);
    if (!hash) return jsonError(400, "invalid chunk hash \"" + std::string(parts[3]) + "\"");
    if (auto denied = checkToken(request, false)) return denied;
    return getDedupShard(*hash);
  }
  if (!v2 && route == "fetch" && parts.size() == 3) {
    if (method != "GET" && method != "HEAD") return methodNotAllowed();
    if (!parseHash(parts[2])) return jsonError(400, "invalid xorb hash");
    return getFetch(request, std::string(parts[2]));
  }
  if (!v2 && route == "files" && parts.size() == 3) {
    // xet-core's local server answers HEAD /v1/files/{id} with the file size.
    if (method != "GET" && method != "HEAD") return methodNotAllowed();
    auto hash = parseHash(parts[2]);
    if (!hash) return jsonError(400, "invalid file hash \"" + std::string(parts[2]) + "\"");
    if (auto denied = checkToken(request, false)) return denied;
    auto size = fileSize(*hash);
    if (!size) return jsonError(404, "file " + hash->hex() + " not found");
    HttpResponse r = HttpResponse::json(200, json{{"size", *size}}.dump());
    if (method == "HEAD") {
      r.body.clear();
      r.headers["Content-Length"] = std::to_string(*size);
    }
    return r;
  }
  if (v2 && route == "file-chunk-hashes") {
    // Partial-edit support is optional: clients fall back to re-chunking on any non-2xx.
    return jsonError(501, "file-chunk-hashes is not implemented by hf-local-hub");
  }
  return std::nullopt;
}

HttpResponse CasServiceImpl::postXorb(const HttpRequest& request, const MerkleHash& hash) {
  if (request.body.size() > kMaxXorbUploadBytes) {
    return jsonError(413, "xorb of " + std::to_string(request.body.size()) +
                              " bytes exceeds the 64 MiB (+ chunk headers) limit");
  }
  if (request.body.empty()) return jsonError(400, "empty xorb body");
  auto parsed = xet::verifyXorb(bytesOf(request.body), hash);
  if (!parsed)
    return jsonError(400, "invalid xorb " + hash.hex() + ": " + parsed.error().message());
  CasXorb xorb;
  xorb.hash = hash;
  xorb.chunk_ends = parsed->chunk_boundary_offsets;
  xorb.unpacked_ends = parsed->unpacked_chunk_offsets;
  for (const auto& c : parsed->chunks) xorb.chunk_hashes.push_back(c.hash);
  // Stored form: the uploaded chunks (a client-sent footer dropped) and a rebuilt V1 footer.
  std::vector<uint8_t> stored(request.body.begin(),
                              request.body.begin() + static_cast<ptrdiff_t>(xorb.serializedSize()));
  xet::appendXorbFooter(hash, xorb.chunk_hashes, xorb.chunk_ends, xorb.unpacked_ends, 0, stored);
  auto inserted = store_->putXorb(
      xorb, std::string_view(reinterpret_cast<const char*>(stored.data()), stored.size()));
  if (!inserted) {
    spdlog::error("storing xorb {}: {}", hash.hex(), inserted.error().message());
    return jsonError(500, "storing xorb failed: " + inserted.error().message());
  }
  spdlog::debug("xorb {} ({} chunks, {} bytes) inserted={}", hash.hex(), xorb.numChunks(),
                xorb.serializedSize(), *inserted);
  return HttpResponse::json(200, json{{"was_inserted", *inserted}}.dump());
}

HttpResponse CasServiceImpl::headXorb(const MerkleHash& hash) {
  auto xorb = store_->getXorb(hash);
  if (!xorb) return jsonError(500, xorb.error().message());
  if (!*xorb) return jsonError(404, "xorb not found");
  HttpResponse r = HttpResponse::json(200, "{}");
  r.headers["X-Xorb-Serialized-Size"] = std::to_string((*xorb)->serializedSize());
  return r;
}

Result<CasShardCommit> CasServiceImpl::validateShard(const xet::Shard& shard) {
  CasShardCommit commit;
  for (const auto& sx : shard.xorbs) {
    HFM_ASSIGN_OR_RETURN(auto xorb, store_->getXorb(sx.hash));
    if (!xorb) {
      return Error::invalid("shard lists xorb " + sx.hash.hex() + " which was not uploaded");
    }
    if (sx.chunks.size() != xorb->numChunks()) {
      return Error::invalid("shard lists " + std::to_string(sx.chunks.size()) +
                            " chunks for xorb " + sx.hash.hex() + ", which has " +
                            std::to_string(xorb->numChunks()));
    }
    for (size_t k = 0; k < sx.chunks.size(); ++k) {
      const auto& c = sx.chunks[k];
      if (c.hash != xorb->chunk_hashes[k] || c.offset != xorb->chunkUnpackedStart(k) ||
          c.size != xorb->unpackedBytes(k, k + 1)) {
        return Error::invalid("chunk " + std::to_string(k) + " of xorb " + sx.hash.hex() +
                              " in the shard does not match the uploaded xorb");
      }
    }
    commit.dedup_xorbs.push_back(sx.hash);
  }
  for (const auto& file : shard.files) {
    const std::string fname = "file " + file.file_hash.hex();
    if (file.verification.size() != file.terms.size()) {
      return Error::invalid(fname + " lacks verification entries");
    }
    CasFile out;
    out.hash = file.file_hash;
    std::vector<xet::ChunkInfo> leaves;
    for (size_t t = 0; t < file.terms.size(); ++t) {
      const auto& term = file.terms[t];
      const std::string tname = fname + " term " + std::to_string(t);
      HFM_ASSIGN_OR_RETURN(auto xorb, store_->getXorb(term.xorb_hash));
      if (!xorb) {
        return Error::invalid(tname + " references xorb " + term.xorb_hash.hex() +
                              " which was not uploaded");
      }
      if (term.chunk_start >= term.chunk_end || term.chunk_end > xorb->numChunks()) {
        return Error::invalid(tname + " has chunk range [" + std::to_string(term.chunk_start) +
                              ", " + std::to_string(term.chunk_end) + ") outside xorb " +
                              term.xorb_hash.hex() + " of " + std::to_string(xorb->numChunks()) +
                              " chunks");
      }
      uint64_t unpacked = xorb->unpackedBytes(term.chunk_start, term.chunk_end);
      if (unpacked != term.unpacked_bytes) {
        return Error::invalid(tname + " claims " + std::to_string(term.unpacked_bytes) +
                              " unpacked bytes, the xorb chunks hold " + std::to_string(unpacked));
      }
      std::span<const MerkleHash> hashes(xorb->chunk_hashes.data() + term.chunk_start,
                                         term.chunk_end - term.chunk_start);
      if (xet::verificationHash(hashes) != file.verification[t]) {
        return Error::invalid(tname + " has a verification hash that does not match xorb " +
                              term.xorb_hash.hex());
      }
      for (uint32_t k = term.chunk_start; k < term.chunk_end; ++k) {
        leaves.push_back({xorb->chunk_hashes[k], xorb->unpackedBytes(k, k + 1)});
      }
      out.terms.push_back({term.xorb_hash, term.chunk_start, term.chunk_end, term.unpacked_bytes});
      out.size += term.unpacked_bytes;
    }
    if (xet::fileHash(leaves) != file.file_hash) {
      return Error::invalid(fname + " does not match the hash of its chunks (" +
                            xet::fileHash(leaves).hex() + ")");
    }
    if (file.sha256) out.sha256_hex = file.sha256->hex();
    commit.files.push_back(std::move(out));
  }
  return commit;
}

HttpResponse CasServiceImpl::postShard(const HttpRequest& request, bool v2) {
  auto ndjson = [](const std::vector<json>& frames) {
    std::string body;
    for (const auto& f : frames) body += f.dump() + "\n";
    return HttpResponse::text(200, std::move(body), "application/x-ndjson");
  };
  auto fail = [&](int status, const std::string& message) {
    spdlog::info("shard rejected: {}", message);
    if (!v2) return jsonError(status, message);
    return ndjson({json{{"type", "error"}, {"message", message}, {"retryable", status >= 500}}});
  };
  if (request.body.size() > kMaxShardBytes) return fail(413, "shard exceeds the 64 MiB limit");
  auto shard = xet::parseShard(bytesOf(request.body));
  if (!shard) return fail(400, "invalid shard: " + shard.error().message());
  auto commit = validateShard(*shard);
  if (!commit) {
    int status = commit.error().code() == EINVAL ? 400 : 500;
    return fail(status, "shard verification failed: " + commit.error().message());
  }
  commit->shard_id = xet::chunkHash(bytesOf(request.body));
  commit->body = request.body;
  auto inserted = store_->commitShard(*commit);
  if (!inserted) return fail(500, "storing shard failed: " + inserted.error().message());
  int result = *inserted ? 1 : 0;
  spdlog::debug("shard {} ({} files, {} xorbs) result={}", commit->shard_id.hex(),
                commit->files.size(), commit->dedup_xorbs.size(), result);
  if (!v2) return HttpResponse::json(200, json{{"result", result}}.dump());
  auto total = shard->files.size();
  return ndjson({json{{"type", "validating"}, {"verified", 0}, {"total", total}},
                 json{{"type", "validating"}, {"verified", total}, {"total", total}},
                 json{{"type", "committing"}, {"stage", "uploading"}},
                 json{{"type", "committing"}, {"stage", "syncing"}}, json{{"type", "result"}}});
}

Result<std::optional<CasFile>> CasServiceImpl::findFile(const MerkleHash& hash) {
  // The empty file needs no shard: its hash is all zeros by definition (§3.4).
  if (hash.isZero()) {
    CasFile empty;
    return std::optional<CasFile>(empty);
  }
  return store_->getFile(hash);
}

json CasServiceImpl::termsJson(const ReconstructionPlan& plan) {
  json terms = json::array();
  for (const auto& t : plan.terms) {
    terms.push_back({{"hash", t.xorb.hex()},
                     {"unpacked_length", t.unpacked_bytes},
                     {"range", {{"start", t.chunk_start}, {"end", t.chunk_end}}}});
  }
  return terms;
}

json CasServiceImpl::fetchJson(const std::map<MerkleHash, std::vector<FetchRange>>& ranges,
                               const std::string& host, bool v2) const {
  const std::string base = "http://" + host + "/v1/fetch/";
  const int64_t expires = nowSecs() + options_.fetch_url_ttl_secs;
  json fetch = json::object();
  for (const auto& [xorb, list] : ranges) {
    const std::string hex = xorb.hex();
    json entries = json::array();
    if (v2) {
      for (size_t i = 0; i < list.size(); i += kMaxRangesPerUrl) {
        std::vector<ByteRange> signed_ranges;
        json descs = json::array();
        for (size_t j = i; j < std::min(list.size(), i + kMaxRangesPerUrl); ++j) {
          signed_ranges.push_back({list[j].byte_start, list[j].byte_last});
          descs.push_back({{"chunks", {{"start", list[j].chunk_start}, {"end", list[j].chunk_end}}},
                           {"bytes", {{"start", list[j].byte_start}, {"end", list[j].byte_last}}}});
        }
        entries.push_back(
            {{"url", base + hex + "?" + signer_.signQuery(hex, signed_ranges, expires)},
             {"ranges", std::move(descs)}});
      }
    } else {
      for (const auto& fr : list) {
        std::vector<ByteRange> one{{fr.byte_start, fr.byte_last}};
        entries.push_back({{"range", {{"start", fr.chunk_start}, {"end", fr.chunk_end}}},
                           {"url", base + hex + "?" + signer_.signQuery(hex, one, expires)},
                           {"url_range", {{"start", fr.byte_start}, {"end", fr.byte_last}}}});
      }
    }
    fetch[hex] = std::move(entries);
  }
  return fetch;
}

HttpResponse CasServiceImpl::getBatchReconstruction(const HttpRequest& request) {
  std::string host = request.header("host");
  if (host.empty()) return jsonError(400, "Host header required to build fetch URLs");
  auto [first, last] = request.query.equal_range("file_id");
  if (first == last) return jsonError(400, "file_id query parameter required");
  json files = json::object();
  ReconstructionPlan all;  // every file's terms, for one merged fetch_info
  for (auto it = first; it != last; ++it) {
    auto hash = MerkleHash::fromHex(it->second);
    if (!hash) return jsonError(400, "invalid file hash \"" + it->second + "\"");
    auto found = findFile(*hash);
    if (!found) return jsonError(500, found.error().message());
    if (!*found) return jsonError(404, "file " + hash->hex() + " not found");
    const CasFile& file = **found;
    auto plan = planReconstruction(file, 0, file.size == 0 ? 0 : file.size - 1, lookup_);
    if (!plan) return jsonError(500, plan.error().message());
    files[hash->hex()] = termsJson(*plan);
    all.terms.insert(all.terms.end(), plan->terms.begin(), plan->terms.end());
  }
  auto ranges = fetchRanges(all, lookup_);
  if (!ranges) return jsonError(500, ranges.error().message());
  json body = {{"files", std::move(files)}, {"fetch_info", fetchJson(*ranges, host, false)}};
  return HttpResponse::json(200, body.dump());
}

HttpResponse CasServiceImpl::getReconstruction(const HttpRequest& request, const MerkleHash& hash,
                                               bool v2) {
  auto found = findFile(hash);
  if (!found) return jsonError(500, found.error().message());
  if (!*found) return jsonError(404, "file " + hash.hex() + " not found");
  const CasFile& file = **found;
  uint64_t first = 0;
  uint64_t last = file.size == 0 ? 0 : file.size - 1;
  std::string range_header = request.header("range");
  if (!range_header.empty()) {
    auto specs = parseRangeHeader(range_header);
    if (!specs) return jsonError(400, specs.error().message());
    if (specs->size() != 1) return jsonError(400, "reconstruction takes a single range");
    const auto& spec = specs->front();
    if (spec.suffix) {
      first = file.size - std::min(*spec.suffix, file.size);
    } else {
      first = spec.first;
      if (spec.last) last = std::min(last, *spec.last);
    }
    if (first >= file.size) {
      HttpResponse r =
          jsonError(416, "range start " + std::to_string(first) + " is not below the file size " +
                             std::to_string(file.size));
      r.headers["Content-Range"] = "bytes */" + std::to_string(file.size);
      return r;
    }
  }
  auto plan = planReconstruction(file, first, file.size == 0 ? 0 : last, lookup_);
  if (!plan) return jsonError(500, plan.error().message());
  auto ranges = fetchRanges(*plan, lookup_);
  if (!ranges) return jsonError(500, ranges.error().message());

  std::string host = request.header("host");
  if (host.empty()) return jsonError(400, "Host header required to build fetch URLs");
  json fetch = fetchJson(*ranges, host, v2);
  json terms = termsJson(*plan);
  json body = {{"offset_into_first_range", plan->offset_into_first_range},
               {"terms", std::move(terms)}};
  body[v2 ? "xorbs" : "fetch_info"] = std::move(fetch);
  return HttpResponse::json(200, body.dump());
}

HttpResponse CasServiceImpl::getFetch(const HttpRequest& request, const std::string& xorb_hex) {
  auto verdict = signer_.authorize(request, xorb_hex, nowSecs());
  if (const auto* denied = std::get_if<FetchUrlSigner::Denied>(&verdict)) {
    return jsonError(denied->status, denied->message);
  }
  const auto& ranges = std::get<std::vector<ByteRange>>(verdict);
  auto hash = MerkleHash::fromHex(xorb_hex);
  fs::path path = store_->xorbPath(*hash);
  std::error_code ec;
  uint64_t total = fs::file_size(path, ec);
  if (ec) return jsonError(404, "xorb not found");
  for (const auto& r : ranges) {
    if (r.last >= total) return jsonError(416, "range beyond the stored xorb");
  }
  // Only multipart answers need a boundary; single ranges skip the RNG on the hot path.
  return rangeResponse(path.string(), total, ranges,
                       ranges.size() > 1 ? "hfm-" + randomHex(12) : std::string());
}

HttpResponse CasServiceImpl::getDedupShard(const MerkleHash& chunk_hash) {
  if (!options_.global_dedup) return jsonError(404, "chunk not found (global dedup is off)");
  // Like the CAS: the shard that registered the chunk, so one hit covers every xorb of that
  // upload. Bounded: the chunk's own xorb always, the others while the answer stays small.
  auto xorb_hashes = store_->dedupXorbsForChunk(chunk_hash, kMaxDedupAnswerXorbs);
  if (!xorb_hashes) return jsonError(500, xorb_hashes.error().message());
  if (xorb_hashes->empty()) return jsonError(404, "chunk not found");
  xet::Shard shard;
  size_t num_chunks = 0;
  for (const auto& xorb_hash : *xorb_hashes) {
    auto xorb = store_->getXorb(xorb_hash);
    if (!xorb || !*xorb) return jsonError(500, "dedup index names a missing xorb");
    const CasXorb& x = **xorb;
    if (!shard.xorbs.empty() && num_chunks + x.numChunks() > kMaxDedupAnswerChunks) break;
    num_chunks += x.numChunks();
    xet::ShardXorb sx;
    sx.hash = x.hash;
    for (size_t k = 0; k < x.numChunks(); ++k) {
      sx.chunks.push_back({x.chunk_hashes[k], static_cast<uint32_t>(x.chunkUnpackedStart(k)),
                           static_cast<uint32_t>(x.unpackedBytes(k, k + 1)), 0});
    }
    sx.num_bytes_in_xorb = static_cast<uint32_t>(x.unpackedSize());
    sx.num_bytes_on_disk = static_cast<uint32_t>(x.serializedSize());
    shard.xorbs.push_back(std::move(sx));
  }
  xet::StoredShardOptions opts;
  opts.hmac_key = dedup_key_;
  const int64_t now = nowSecs();
  opts.creation_timestamp = static_cast<uint64_t>(now);
  opts.key_expiry = static_cast<uint64_t>(now + options_.dedup_key_ttl_secs);
  auto bytes = xet::serializeStoredShard(shard, opts);
  if (!bytes) return jsonError(500, bytes.error().message());
  return HttpResponse::text(
      200, std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size()),
      "application/octet-stream");
}

std::optional<uint64_t> CasServiceImpl::fileSize(const MerkleHash& file_hash) {
  auto found = findFile(file_hash);
  if (!found || !*found) return std::nullopt;
  return (*found)->size;
}

std::optional<MerkleHash> CasServiceImpl::fileHashForSha256(const std::string& sha256_hex) {
  std::string lower = sha256_hex;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto found = store_->fileForSha256(lower);
  if (!found) return std::nullopt;
  return *found;
}

Result<std::string> CasServiceImpl::readFileRange(const MerkleHash& file_hash, uint64_t offset,
                                                  uint64_t length) {
  HFM_ASSIGN_OR_RETURN(auto found, findFile(file_hash));
  if (!found) return Error::notFound("file " + file_hash.hex() + " not found");
  const CasFile& file = *found;
  if (offset >= file.size || length == 0) return std::string();
  uint64_t last = offset + std::min(length, file.size - offset) - 1;
  HFM_ASSIGN_OR_RETURN(auto plan, planReconstruction(file, offset, last, lookup_));
  std::vector<uint8_t> data;
  std::string raw;
  for (const auto& term : plan.terms) {
    HFM_ASSIGN_OR_RETURN(auto xorb, store_->getXorb(term.xorb));
    if (!xorb) return Error(EIO, "missing xorb " + term.xorb.hex());
    uint64_t begin = xorb->chunkByteStart(term.chunk_start);
    uint64_t end = xorb->chunk_ends[term.chunk_end - 1];
    HFM_TRY(preadExact(store_->xorbPath(term.xorb), begin, end - begin, raw));
    size_t before = data.size();
    HFM_ASSIGN_OR_RETURN(auto sizes, xet::decodeChunks(bytesOf(raw), data));
    if (sizes.size() != term.chunk_end - term.chunk_start ||
        data.size() - before != term.unpacked_bytes) {
      return Error(EIO, "stored xorb " + term.xorb.hex() + " does not decode as recorded");
    }
  }
  uint64_t skip = plan.offset_into_first_range;
  uint64_t n = last - offset + 1;
  if (skip + n > data.size())
    return Error(EIO, "reconstruction of " + file_hash.hex() + " too short");
  return std::string(reinterpret_cast<const char*>(data.data()) + skip, n);
}

}  // namespace

Result<std::unique_ptr<CasService>> CasService::open(const fs::path& data_dir,
                                                     const XetTokens* tokens) {
  return open(data_dir, tokens, CasOptions{});
}

Result<std::unique_ptr<CasService>> CasService::open(const fs::path& data_dir,
                                                     const XetTokens* tokens,
                                                     const CasOptions& options) {
  HFM_ASSIGN_OR_RETURN(auto store, CasStore::open(data_dir / "cas"));
  HFM_ASSIGN_OR_RETURN(auto url_key, store->secret("fetch-url-key"));
  HFM_ASSIGN_OR_RETURN(auto dedup_key, store->secret("dedup-hmac-key"));
  return std::unique_ptr<CasService>(
      new CasServiceImpl(std::move(store), tokens, options, url_key, dedup_key));
}

}  // namespace hfm::localhub
