#include "hfm/localhub/hub_service.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "hfm/localhub/base64.h"
#include "hfm/localhub/cas_http.h"
#include "hfm/localhub/http_server.h"
#include "hfm/util/hex.h"
#include "hfm/util/log.h"

namespace hfm::localhub {

using nlohmann::json;

struct HubService::Ctx {
  const HttpRequest& req;
  std::vector<std::string> segs;      // decoded path segments
  std::vector<std::string> raw_segs;  // as sent
  std::optional<std::string> user;
  std::string base;  // "http://host:port"
};

namespace {

constexpr size_t kMaxPathBytes = 1024;
constexpr size_t kMaxSegmentBytes = 255;
constexpr size_t kMaxTreeLimit = 10000;
constexpr size_t kMaxPathsPerCall = 1000;
constexpr uint64_t kLfsThreshold = uint64_t{10} * 1024 * 1024;
const std::string kZeroHash(64, '0');

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string isoTime(int64_t ms) {
  auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string httpDate(int64_t ms) {
  auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// Invalid UTF-8 (from a client's path) is replaced, never thrown from a response.
std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse hubError(int status, const std::string& code, const std::string& message) {
  auto r = HttpResponse::json(status, dumpJson(json{{"error", message}}));
  if (!code.empty()) r.headers["X-Error-Code"] = code;
  r.headers["X-Error-Message"] = message;
  return r;
}

HttpResponse badRequest(const std::string& message) { return hubError(400, "", message); }

HttpResponse okJson(const json& j, int status = 200) {
  return HttpResponse::json(status, dumpJson(j));
}

HttpResponse storageError(const Error& e) {
  spdlog::error("hub: storage error: {}", e.message());
  return hubError(500, "", "Internal storage error");
}

std::string sha1Hex(std::string_view data) {
  std::array<uint8_t, SHA_DIGEST_LENGTH> d{};
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return util::toHex(d);
}

std::string gitBlobOid(std::string_view content) {
  std::string data = "blob " + std::to_string(content.size());
  data.push_back('\0');
  data.append(content);
  return sha1Hex(data);
}

std::string lfsPointer(const std::string& sha256, uint64_t size) {
  return "version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256 + "\nsize " +
         std::to_string(size) + "\n";
}

bool isHex(const std::string& s, size_t len) {
  return s.size() == len && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string typePlural(const std::string& type) { return type + "s"; }
// URL prefix of a repo's web/resolve routes: none for models.
std::string webPrefix(const std::string& type) { return type == "model" ? "" : type + "s/"; }

std::optional<json> parseJsonObject(const std::string& body) {
  if (body.empty()) return json::object();
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::string strField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool boolParam(const HttpRequest& req, const std::string& key, bool fallback) {
  auto v = req.queryParam(key, fallback ? "true" : "false");
  return v == "true" || v == "1" || v == "True";
}

// Rebuilds the request URL with `cursor` set (for a Link rel="next").
std::string nextLink(const HubService::Ctx& ctx, const std::string& key, const std::string& value) {
  std::string url = ctx.base + ctx.req.raw_path + "?";
  bool first = true;
  for (const auto& [k, v] : ctx.req.query) {
    if (k == key) continue;
    if (!first) url += "&";
    url += urlEncode(k) + "=" + urlEncode(v);
    first = false;
  }
  if (!first) url += "&";
  return url + urlEncode(key) + "=" + urlEncode(value);
}

std::string encodeCursor(const ScanFrom& from) {
  return base64UrlEncode(dumpJson(json{{"k", from.key}, {"i", from.inclusive}}));
}

std::optional<ScanFrom> decodeCursor(const std::string& cursor) {
  auto text = base64UrlDecode(cursor);
  if (!text) return std::nullopt;
  auto j = json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("k") || !j["k"].is_string() || !j.contains("i") ||
      !j["i"].is_boolean()) {
    return std::nullopt;
  }
  return ScanFrom{j["k"].get<std::string>(), j["i"].get<bool>()};
}

struct TreeRow {
  std::string path;
  json entry;
};
using Scanner =
    std::function<Result<std::vector<TreeRow>>(const ScanFrom&, const std::string&, size_t)>;
using DirMaker = std::function<Result<json>(const std::string&)>;

struct TreePage {
  json entries = json::array();
  std::optional<ScanFrom> next;
};

// Walks the files under `prefix` in path order from `start`, synthesising directories: one
// level (directories skipped over in one jump) unless `recursive`, where directories are
// emitted before their first file only if `dirs_when_recursive` (repos; buckets list files).
Result<TreePage> walkTree(const std::string& prefix, bool recursive, bool dirs_when_recursive,
                          ScanFrom pos, size_t limit, const Scanner& scan,
                          const DirMaker& dir_entry) {
  TreePage page;
  std::string base = prefix.empty() ? "" : prefix + "/";
  std::string upper = prefix.empty() ? "" : prefix + "0";  // '0' sorts right after '/'
  // A cursor is client input: never scan before the prefix.
  if (pos.key < base) pos = ScanFrom{base, true};
  std::string prev = pos.inclusive ? "" : pos.key;
  size_t emitted = 0;
  while (emitted < limit) {
    size_t want = std::min<size_t>(limit - emitted, 1000);
    HFM_ASSIGN_OR_RETURN(auto rows, scan(pos, upper, want));
    if (rows.empty()) return page;
    bool jumped = false;
    for (auto& row : rows) {
      std::string rel = row.path.substr(base.size());
      auto slash = rel.find('/');
      if (!recursive && slash != std::string::npos) {
        std::string dir = base + rel.substr(0, slash);
        HFM_ASSIGN_OR_RETURN(auto d, dir_entry(dir));
        page.entries.push_back(std::move(d));
        ++emitted;
        pos = ScanFrom{dir + "0", true};
        jumped = true;
        break;
      }
      if (recursive && dirs_when_recursive) {
        for (size_t k = rel.find('/'); k != std::string::npos; k = rel.find('/', k + 1)) {
          std::string dir = base + rel.substr(0, k);
          if (!prev.starts_with(dir + "/")) {
            HFM_ASSIGN_OR_RETURN(auto d, dir_entry(dir));
            page.entries.push_back(std::move(d));
            ++emitted;
          }
        }
      }
      page.entries.push_back(std::move(row.entry));
      ++emitted;
      prev = row.path;
      pos = ScanFrom{row.path, false};
      if (emitted >= limit) break;
    }
    if (!jumped && rows.size() < want && emitted < limit) return page;
  }
  HFM_ASSIGN_OR_RETURN(auto more, scan(pos, upper, 1));
  if (!more.empty()) page.next = pos;
  return page;
}

json bucketJson(const BucketRecord& b) {
  return json{{"id", b.id},
              {"private", b.is_private},
              {"createdAt", isoTime(b.created_ms)},
              {"updatedAt", isoTime(b.updated_ms)},
              {"size", b.size},
              {"totalFiles", b.total_files}};
}

json bucketFileJson(const BucketFileRecord& f) {
  json j{{"type", "file"},
         {"path", f.path},
         {"size", f.size},
         {"xetHash", f.xet_hash},
         {"mtime", isoTime(f.mtime_ms)},
         {"uploadedAt", isoTime(f.uploaded_ms)}};
  if (!f.content_type.empty()) j["contentType"] = f.content_type;
  return j;
}

json repoFileJson(const RepoFileRecord& f) {
  json j{{"type", "file"}, {"oid", f.oid}, {"size", f.size}, {"path", f.path}};
  if (!f.lfs_sha256.empty()) {
    j["lfs"] = {{"oid", f.lfs_sha256},
                {"size", f.size},
                {"pointerSize", lfsPointer(f.lfs_sha256, f.size).size()}};
    if (!f.xet_hash.empty()) j["xetHash"] = f.xet_hash;
  }
  return j;
}

bool validRefName(const std::string& name) {
  if (name.empty() || name.size() > 255 || isHex(name, 40) ||
      name.find("..") != std::string::npos || name.starts_with("/") || name.ends_with("/") ||
      name.starts_with("refs/")) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' ||
           c == '/';
  });
}

// Single byte range of a `total`-byte resource requested by `req`, or nullopt for the whole
// resource; `unsatisfiable` set when the range starts past the end.
std::optional<ByteRange> requestedRange(const HttpRequest& req, uint64_t total,
                                        bool* unsatisfiable) {
  *unsatisfiable = false;
  std::string header = req.header("range");
  if (header.empty()) return std::nullopt;
  auto specs = parseRangeHeader(header);
  if (!specs || specs->size() != 1) return std::nullopt;  // ignored: whole resource
  const auto& s = specs->front();
  if (s.suffix) {
    if (*s.suffix == 0 || total == 0) {
      *unsatisfiable = true;
      return std::nullopt;
    }
    uint64_t n = std::min(*s.suffix, total);
    return ByteRange{total - n, total - 1};
  }
  if (s.first >= total) {
    *unsatisfiable = true;
    return std::nullopt;
  }
  uint64_t last = s.last ? std::min(*s.last, total - 1) : total - 1;
  return ByteRange{s.first, last};
}

using BodyReader = std::function<Result<std::vector<BodyPiece>>(uint64_t off, uint64_t len)>;

// 200 / 206 / 416 answer for a byte resource; HEAD reads nothing.
HttpResponse serveBytes(const HttpRequest& req, uint64_t total, Headers headers,
                        const BodyReader& read) {
  bool unsatisfiable = false;
  auto range = requestedRange(req, total, &unsatisfiable);
  if (unsatisfiable) {
    auto r = hubError(416, "", "Requested range not satisfiable");
    r.headers["Content-Range"] = "bytes */" + std::to_string(total);
    return r;
  }
  HttpResponse r;
  r.headers = std::move(headers);
  r.headers["Accept-Ranges"] = "bytes";
  if (r.headers.find("content-type") == r.headers.end()) {
    r.headers["Content-Type"] = "application/octet-stream";
  }
  uint64_t off = 0;
  uint64_t len = total;
  if (range) {
    r.status = 206;
    off = range->first;
    len = range->length();
    r.headers["Content-Range"] = "bytes " + std::to_string(range->first) + "-" +
                                 std::to_string(range->last) + "/" + std::to_string(total);
  }
  if (req.method == "HEAD") {
    r.headers["Content-Length"] = std::to_string(len);
    return r;
  }
  if (len > 0) {
    auto body = read(off, len);
    if (!body) return storageError(body.error());
    r.body = std::move(*body);
  }
  return r;
}

bool etagMatches(const HttpRequest& req, const std::string& etag) {
  std::string inm = req.header("if-none-match");
  if (inm.empty()) return false;
  if (inm == "*") return true;
  auto strip = [](std::string v) {
    if (v.starts_with("W/")) v = v.substr(2);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return v;
  };
  size_t start = 0;
  while (start <= inm.size()) {
    auto comma = inm.find(',', start);
    std::string item =
        inm.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (strip(item) == strip(etag)) return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

// Binary content or a well-known large-file extension goes through LFS/Xet.
bool wantsLfs(const std::string& path, uint64_t size, const std::string& sample) {
  if (size >= kLfsThreshold) return true;
  if (sample.find('\0') != std::string::npos) return true;
  static const std::set<std::string> kExt = {
      ".bin",   ".safetensors", ".pt",      ".pth",    ".ckpt", ".h5",  ".onnx", ".parquet",
      ".arrow", ".gguf",        ".npy",     ".npz",    ".zip",  ".gz",  ".tar",  ".msgpack",
      ".pkl",   ".pickle",      ".model",   ".tflite", ".ot",   ".zst", ".7z",   ".bz2",
      ".xz",    ".joblib",      ".mlmodel", ".wasm",   ".tgz"};
  auto dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return false;
  return kExt.count(lower(path.substr(dot))) > 0;
}

const char* kGitAttributes =
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.gguf filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n";

// Structural UTF-8 check (lead bytes and continuation bytes).
bool validUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    if (c < 0x80) {
      n = 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
    } else {
      return false;
    }
    if (n > s.size() - i - 1) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

std::optional<std::string> invalidRepoName(const std::string& part) {
  if (part.empty() || part.size() > 96) return "must be 1 to 96 characters long";
  for (char c : part) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.')) {
      return "may only contain letters, digits, '-', '_' and '.'";
    }
  }
  if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.') {
    return "must not start or end with '-' or '.'";
  }
  if (part.find("--") != std::string::npos || part.find("..") != std::string::npos) {
    return "must not contain '--' or '..'";
  }
  return std::nullopt;
}

std::optional<std::string> invalidFilePath(const std::string& path) {
  if (path.empty()) return "path is empty";
  if (path.size() > kMaxPathBytes) {
    return "path is longer than " + std::to_string(kMaxPathBytes) + " bytes";
  }
  if (path.find('\0') != std::string::npos) return "path contains a NUL byte";
  if (!validUtf8(path)) return "path is not valid UTF-8";
  if (path.find('\\') != std::string::npos) return "path contains a backslash";
  if (path.front() == '/') return "path must be relative (it starts with '/')";
  if (path.back() == '/') return "path must not end with '/'";
  size_t start = 0;
  while (true) {
    auto slash = path.find('/', start);
    std::string seg =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty()) return "path contains an empty segment ('//')";
    if (seg == "." || seg == "..") return "path contains a '" + seg + "' segment";
    if (seg.size() > kMaxSegmentBytes) {
      return "a path segment is longer than " + std::to_string(kMaxSegmentBytes) + " bytes";
    }
    for (char c : seg) {
      if (static_cast<unsigned char>(c) < 0x20) return "path contains a control character";
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return std::nullopt;
}

HubService::HubService(HubStore* store, CasService* cas, const XetTokens* tokens,
                       HubOptions options)
    : store_(store), cas_(cas), tokens_(tokens), options_(std::move(options)) {}

HttpResponse HubService::handle(const HttpRequest& request) {
  if (request.path.starts_with("/v1/") || request.path.starts_with("/v2/")) {
    if (cas_ != nullptr) {
      if (auto r = cas_->handle(request)) return std::move(*r);
    }
    return hubError(404, "", "Not found");
  }
  Ctx ctx{request, {}, {}, std::nullopt, {}};
  std::string host = request.header("host");
  ctx.base = host.empty() ? options_.fallback_base_url : "http://" + host;
  std::string_view raw = request.raw_path;
  size_t start = raw.starts_with("/") ? 1 : 0;
  while (start <= raw.size()) {
    auto slash = raw.find('/', start);
    std::string_view seg =
        raw.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    auto decoded = percentDecode(seg, false);
    if (!decoded) return badRequest("Malformed percent-encoding in URL");
    ctx.raw_segs.emplace_back(seg);
    ctx.segs.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  std::string auth = request.header("authorization");
  if (!auth.empty()) {
    static const std::string kBearer = "Bearer ";
    std::string token = auth.size() > kBearer.size() &&
                                strncasecmp(auth.c_str(), kBearer.c_str(), kBearer.size()) == 0
                            ? auth.substr(kBearer.size())
                            : std::string();
    auto it = options_.users_by_token.find(token);
    if (it == options_.users_by_token.end()) {
      spdlog::debug("hub: rejected credentials {} on {}", util::redactToken(token),
                    request.raw_path);
      return hubError(401, "", "Invalid credentials in Authorization header");
    }
    ctx.user = it->second;
  }
  return route(ctx);
}

HttpResponse HubService::route(Ctx& ctx) {
  const auto& s = ctx.segs;
  if (s.empty()) return hubError(404, "", "Not found");
  if (s[0] == "api" && s.size() >= 2) {
    if (s[1] == "whoami-v2" && s.size() == 2) return whoami(ctx);
    if (s[1] == "buckets") return bucketsApi(ctx, 2);
    if (s[1] == "repos") return reposApi(ctx);
    if (s[1] == "models" || s[1] == "datasets" || s[1] == "spaces") {
      return repoApi(ctx, s[1].substr(0, s[1].size() - 1), 2);
    }
    return hubError(404, "", "Not found");
  }
  if (s[0] == "buckets" && s.size() >= 5 && s[3] == "resolve") return bucketResolve(ctx);
  std::string type = "model";
  size_t at = 0;
  if (s[0] == "datasets" || s[0] == "spaces") {
    type = s[0].substr(0, s[0].size() - 1);
    at = 1;
  }
  if (s.size() == at + 6 && s[at + 1].ends_with(".git") && s[at + 2] == "info" &&
      s[at + 3] == "lfs" && s[at + 4] == "objects" && s[at + 5] == "batch") {
    return lfsBatch(ctx, type, at);
  }
  if (s.size() >= at + 5 && (s[at + 2] == "resolve" || s[at + 2] == "raw")) {
    return repoResolve(ctx, type, at);
  }
  return hubError(404, "", "Not found");
}

HttpResponse HubService::whoami(Ctx& ctx) {
  if (!ctx.user) return hubError(401, "", "Invalid credentials in Authorization header");
  const std::string& u = *ctx.user;
  return okJson({{"type", "user"},
                 {"id", u},
                 {"name", u},
                 {"fullname", u},
                 {"email", nullptr},
                 {"emailVerified", false},
                 {"canPay", false},
                 {"isPro", false},
                 {"periodEnd", nullptr},
                 {"avatarUrl", ""},
                 {"orgs", json::array()},
                 {"auth",
                  {{"type", "access_token"},
                   {"accessToken", {{"displayName", "hf-local-hub"}, {"role", "write"}}}}}});
}

namespace {

// Access decision for a resource owned by namespace `ns`. nullopt: allowed.
std::optional<HttpResponse> checkAccess(const std::optional<std::string>& user,
                                        const std::string& ns, bool is_private, bool write,
                                        const std::string& not_found_message) {
  bool owner = user && *user == ns;
  if (is_private && !owner) {
    if (!user) return hubError(401, "RepoNotFound", not_found_message);
    return hubError(404, "RepoNotFound", not_found_message);
  }
  if (write && !owner) {
    if (!user) return hubError(401, "", "You must be authenticated to write");
    return hubError(403, "", "You don't have write access to " + ns);
  }
  return std::nullopt;
}

HttpResponse tokenResponse(const XetTokens* tokens, const std::string& base,
                           const std::optional<std::string>& user, const std::string& resource,
                           bool write) {
  int64_t now = nowMs() / 1000;
  std::string token = tokens->issue(user.value_or("anonymous"), resource, write, now);
  int64_t exp = now + tokens->ttlSecs();
  auto r = okJson({{"accessToken", token}, {"exp", exp}, {"casUrl", base}});
  r.headers["X-Xet-Access-Token"] = token;
  r.headers["X-Xet-Token-Expiration"] = std::to_string(exp);
  r.headers["X-Xet-Cas-Url"] = base;
  return r;
}

}  // namespace

// ------------------------------------------------------------------------------ buckets

HttpResponse HubService::bucketsApi(Ctx& ctx, size_t at) {
  const auto& s = ctx.segs;
  const std::string& method = ctx.req.method;
  if (s.size() <= at) return hubError(404, "", "Not found");
  std::string ns = s[at];
  if (ns == "me") {
    if (!ctx.user) return hubError(401, "", "You must be authenticated");
    ns = *ctx.user;
  }
  if (auto bad = invalidRepoName(ns)) return badRequest("Invalid namespace '" + ns + "': " + *bad);
  if (s.size() == at + 1) {
    if (method != "GET") return hubError(405, "", "Method not allowed");
    auto list = store_->listBuckets(ns);
    if (!list) return storageError(list.error());
    std::string search = ctx.req.queryParam("search");
    json out = json::array();
    for (const auto& b : *list) {
      bool owner = ctx.user && *ctx.user == ns;
      if (b.is_private && !owner) continue;
      if (!search.empty() && b.id.find(search) == std::string::npos) continue;
      out.push_back(bucketJson(b));
    }
    return okJson(out);
  }
  const std::string& name = s[at + 1];
  if (auto bad = invalidRepoName(name))
    return badRequest("Invalid bucket name '" + name + "': " + *bad);
  std::string id = ns + "/" + name;
  std::string not_found = "Bucket " + id + " not found";

  if (s.size() == at + 2 && method == "POST") {
    if (!ctx.user) return hubError(401, "", "You must be authenticated to create a bucket");
    if (*ctx.user != ns) return hubError(403, "", "You don't have write access to " + ns);
    auto body = parseJsonObject(ctx.req.body);
    if (!body) return badRequest("Request body must be a JSON object");
    bool priv = false;
    if (auto it = body->find("private"); it != body->end()) {
      if (!it->is_boolean()) return badRequest("'private' must be a boolean");
      priv = it->get<bool>();
    }
    if (auto it = body->find("visibility"); it != body->end()) {
      if (!it->is_string() || (*it != "private" && *it != "public")) {
        return badRequest(R"('visibility' must be "public" or "private")");
      }
      priv = *it == "private";
    }
    auto created = store_->createBucket(id, priv, nowMs());
    if (!created) return storageError(created.error());
    std::string url = ctx.base + "/buckets/" + id;
    if (!*created) {
      auto r = hubError(409, "", "You already created this bucket");
      r.body = {dumpJson(json{{"error", "You already created this bucket"}, {"url", url}})};
      return r;
    }
    return okJson({{"url", url}, {"id", id}, {"name", id}});
  }

  auto rec = store_->bucket(id);
  if (!rec) return storageError(rec.error());
  if (!*rec) {
    if (!ctx.user) return hubError(401, "RepoNotFound", not_found);
    return hubError(404, "RepoNotFound", not_found);
  }
  const BucketRecord& bucket = **rec;
  bool write =
      method != "GET" && method != "HEAD" && !(s.size() == at + 3 && s[at + 2] == "paths-info");
  if (s.size() == at + 3 && s[at + 2] == "xet-write-token") write = true;
  if (auto denied = checkAccess(ctx.user, ns, bucket.is_private, write, not_found)) {
    return std::move(*denied);
  }

  if (s.size() == at + 2) {
    if (method == "GET") return okJson(bucketJson(bucket));
    if (method == "DELETE") {
      auto del = store_->deleteBucket(id);
      if (!del) return storageError(del.error());
      return okJson(json::object());
    }
    return hubError(405, "", "Method not allowed");
  }
  const std::string& op = s[at + 2];
  if ((op == "xet-read-token" || op == "xet-write-token") && s.size() == at + 3) {
    if (method != "GET") return hubError(405, "", "Method not allowed");
    return tokenResponse(tokens_, ctx.base, ctx.user, "bucket:" + id, op == "xet-write-token");
  }
  if (op == "tree" && method == "GET") {
    std::string prefix;
    for (size_t i = at + 3; i < s.size(); ++i) prefix += (prefix.empty() ? "" : "/") + s[i];
    // A client may send the prefix percent-encoded as one segment ("a%2Fb").
    if (!prefix.empty()) {
      while (prefix.ends_with("/")) prefix.pop_back();
      if (auto bad = invalidFilePath(prefix)) return badRequest("Invalid path: " + *bad);
    }
    bool recursive = boolParam(ctx.req, "recursive", true);
    size_t limit = 1000;
    if (auto l = ctx.req.queryParam("limit"); !l.empty()) {
      char* end = nullptr;
      unsigned long long v = std::strtoull(l.c_str(), &end, 10);
      if (end == l.c_str() || *end != '\0' || v == 0) return badRequest("Invalid 'limit'");
      limit = static_cast<size_t>(std::min<unsigned long long>(v, kMaxTreeLimit));
    }
    ScanFrom from{prefix.empty() ? "" : prefix + "/", true};
    json head = json::array();
    if (auto c = ctx.req.queryParam("cursor"); !c.empty()) {
      auto decoded = decodeCursor(c);
      if (!decoded) return badRequest("Invalid 'cursor'");
      from = *decoded;
    } else if (!prefix.empty()) {
      auto exact = store_->bucketFile(id, prefix);
      if (!exact) return storageError(exact.error());
      if (*exact) head.push_back(bucketFileJson(**exact));
    }
    Scanner scan = [&](const ScanFrom& f, const std::string& upper,
                       size_t n) -> Result<std::vector<TreeRow>> {
      HFM_ASSIGN_OR_RETURN(auto rows, store_->scanBucket(id, f, upper, n));
      std::vector<TreeRow> out;
      out.reserve(rows.size());
      for (auto& r : rows) out.push_back({r.path, bucketFileJson(r)});
      return out;
    };
    DirMaker dir = [](const std::string& d) -> Result<json> {
      return json{{"type", "directory"}, {"path", d}};
    };
    auto page = walkTree(prefix, recursive, false, from, limit, scan, dir);
    if (!page) return storageError(page.error());
    for (auto& e : page->entries) head.push_back(std::move(e));
    auto r = okJson(head);
    if (page->next) {
      r.headers["Link"] =
          "<" + nextLink(ctx, "cursor", encodeCursor(*page->next)) + ">; rel=\"next\"";
    }
    return r;
  }
  if (op == "paths-info" && s.size() == at + 3 && method == "POST") {
    auto body = json::parse(ctx.req.body, nullptr, false);
    if (!body.is_object() || !body.contains("paths") || !body["paths"].is_array()) {
      return badRequest("Body must be a JSON object with a 'paths' array");
    }
    if (body["paths"].size() > kMaxPathsPerCall) {
      return badRequest("At most " + std::to_string(kMaxPathsPerCall) + " paths per call");
    }
    json out = json::array();
    for (const auto& p : body["paths"]) {
      if (!p.is_string()) return badRequest("'paths' must only contain strings");
      auto path = p.get<std::string>();
      if (auto bad = invalidFilePath(path))
        return badRequest("Invalid path '" + path + "': " + *bad);
      auto f = store_->bucketFile(id, path);
      if (!f) return storageError(f.error());
      if (*f) out.push_back(bucketFileJson(**f));
    }
    return okJson(out);
  }
  if (op == "batch" && s.size() == at + 3 && method == "POST") {
    std::vector<BucketOp> ops;
    json failed = json::array();
    size_t processed = 0;
    int64_t now = nowMs();
    std::string_view body = ctx.req.body;
    size_t line_no = 0;
    bool saw_delete = false;
    while (!body.empty()) {
      auto nl = body.find('\n');
      std::string_view line = body.substr(0, nl);
      body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
      ++line_no;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      if (line.empty()) continue;
      std::string where = "line " + std::to_string(line_no) + ": ";
      auto j = json::parse(line, nullptr, false);
      if (!j.is_object()) return badRequest(where + "not a JSON object");
      std::string type = strField(j, "type");
      std::string path = strField(j, "path");
      if (!j.contains("path") || !j["path"].is_string()) {
        return badRequest(where + "missing string 'path'");
      }
      if (auto bad = invalidFilePath(path))
        return badRequest(where + "invalid path '" + path + "': " + *bad);
      ++processed;
      if (type == "deleteFile") {
        ops.push_back({BucketOp::Kind::kDelete, BucketFileRecord{path, "", 0, 0, 0, ""}});
        saw_delete = true;
        continue;
      }
      if (type != "addFile" && type != "copyFile") {
        return badRequest(where + "unknown operation type '" + type + "'");
      }
      if (saw_delete) {
        return badRequest(where + "addFile and copyFile operations must come before deleteFile");
      }
      std::string hash = lower(strField(j, "xetHash"));
      if (!isHex(hash, 64)) return badRequest(where + "'xetHash' must be 64 hex characters");
      BucketFileRecord f{path, hash, 0, now, now, ""};
      if (type == "addFile") {
        if (j.contains("mtime")) {
          if (!j["mtime"].is_number_integer() || j["mtime"].get<int64_t>() < 0) {
            return badRequest(where + "'mtime' must be a non-negative integer (ms)");
          }
          f.mtime_ms = j["mtime"].get<int64_t>();
        }
        if (j.contains("contentType")) {
          if (!j["contentType"].is_string())
            return badRequest(where + "'contentType' must be a string");
          f.content_type = j["contentType"].get<std::string>();
        }
        if (hash == kZeroHash) {
          f.size = 0;
        } else {
          auto mh = xet::MerkleHash::fromHex(hash);
          auto size = (cas_ != nullptr && mh) ? cas_->fileSize(*mh) : std::nullopt;
          if (!size) {
            failed.push_back(
                {{"path", path},
                 {"error", "Unknown xet hash " + hash + ": upload its shard to the CAS first"}});
            continue;
          }
          f.size = *size;
        }
        ops.push_back({BucketOp::Kind::kAdd, f});
        continue;
      }
      // copyFile: the source must be readable and hold a file with that hash.
      std::string src_type = strField(j, "sourceRepoType");
      std::string src_id = strField(j, "sourceRepoId");
      auto slash = src_id.find('/');
      if (slash == std::string::npos || invalidRepoName(src_id.substr(0, slash)) ||
          invalidRepoName(src_id.substr(slash + 1))) {
        return badRequest(where + "invalid 'sourceRepoId'");
      }
      std::string src_ns = src_id.substr(0, slash);
      std::optional<std::string> problem;
      if (src_type == "bucket") {
        auto src = store_->bucket(src_id);
        if (!src) return storageError(src.error());
        auto file = *src ? store_->bucketFileByHash(src_id, hash)
                         : Result<std::optional<BucketFileRecord>>(std::nullopt);
        if (!file) return storageError(file.error());
        if (!*src || ((*src)->is_private && ctx.user != src_ns)) {
          problem = "Source bucket " + src_id + " not found";
        } else if (!*file) {
          problem = "No file with xet hash " + hash + " in bucket " + src_id;
        } else {
          f.size = (*file)->size;
        }
      } else if (src_type == "model" || src_type == "dataset" || src_type == "space") {
        auto src = store_->repo(src_type, src_id);
        if (!src) return storageError(src.error());
        if (!*src || ((*src)->is_private && ctx.user != src_ns)) {
          problem = "Source repo " + src_id + " not found";
        } else {
          auto has = store_->repoHasXetHash(src_type, src_id, hash);
          if (!has) return storageError(has.error());
          auto mh = xet::MerkleHash::fromHex(hash);
          auto size = (cas_ != nullptr && mh) ? cas_->fileSize(*mh) : std::nullopt;
          if (!*has || !size) {
            problem = "No xet file with hash " + hash + " in " + src_type + " " + src_id;
          } else {
            f.size = *size;
          }
        }
      } else {
        return badRequest(where + "'sourceRepoType' must be bucket, model, dataset or space");
      }
      if (problem) {
        failed.push_back({{"path", path}, {"error", *problem}});
        continue;
      }
      ops.push_back({BucketOp::Kind::kAdd, f});
    }
    if (processed == 0) return badRequest("Empty batch: expected NDJSON operations");
    if (!ops.empty()) {
      if (auto st = store_->applyBucketOps(id, ops, now); !st) return storageError(st.error());
    }
    json out{{"success", failed.empty()},
             {"processed", processed},
             {"succeeded", processed - failed.size()},
             {"failed", failed}};
    return okJson(out, failed.empty() ? 200 : 422);
  }
  return hubError(404, "", "Not found");
}

HttpResponse HubService::bucketResolve(Ctx& ctx) {
  const auto& s = ctx.segs;
  const std::string& method = ctx.req.method;
  if (method != "GET" && method != "HEAD") return hubError(405, "", "Method not allowed");
  std::string ns = s[1];
  std::string name = s[2];
  if (invalidRepoName(ns) || invalidRepoName(name)) return badRequest("Invalid bucket id");
  std::string id = ns + "/" + name;
  std::string raw_rest;
  for (size_t i = 4; i < ctx.raw_segs.size(); ++i) {
    raw_rest += (i > 4 ? "/" : "") + ctx.raw_segs[i];
  }
  auto path = percentDecode(raw_rest, false);
  if (!path) return badRequest("Malformed percent-encoding in URL");
  if (auto bad = invalidFilePath(*path)) return badRequest("Invalid path: " + *bad);
  std::string not_found = "Bucket " + id + " not found";
  auto rec = store_->bucket(id);
  if (!rec) return storageError(rec.error());
  if (!*rec) return hubError(ctx.user ? 404 : 401, "RepoNotFound", not_found);
  if (auto denied = checkAccess(ctx.user, ns, (*rec)->is_private, false, not_found)) {
    return std::move(*denied);
  }
  auto file = store_->bucketFile(id, *path);
  if (!file) return storageError(file.error());
  if (!*file) return hubError(404, "EntryNotFound", "Entry not found: " + *path);
  const auto& f = **file;
  std::string etag = "\"" + f.xet_hash + "\"";
  Headers h;
  h["ETag"] = etag;
  h["X-Linked-Etag"] = etag;
  h["X-Linked-Size"] = std::to_string(f.size);
  h["X-Xet-Hash"] = f.xet_hash;
  h["Last-Modified"] = httpDate(f.mtime_ms);
  std::string refresh = ctx.base + "/api/buckets/" + id + "/xet-read-token";
  h["X-Xet-Refresh-Route"] = "/api/buckets/" + id + "/xet-read-token";
  h["Link"] = "<" + refresh + ">; rel=\"xet-auth\", <" + ctx.base + "/v1/reconstructions/" +
              f.xet_hash + ">; rel=\"xet-reconstruction-info\"";
  if (!f.content_type.empty()) h["Content-Type"] = f.content_type;
  if (etagMatches(ctx.req, etag)) {
    HttpResponse r;
    r.status = 304;
    r.headers = std::move(h);
    return r;
  }
  if (ctx.req.header("accept").find("application/vnd.xet-fileinfo+json") != std::string::npos) {
    auto r = okJson({{"hash", f.xet_hash},
                     {"etag", f.xet_hash},
                     {"size", f.size},
                     {"refreshUrl", refresh},
                     {"reconstructionUrl", ctx.base + "/v1/reconstructions/" + f.xet_hash}});
    for (auto& [k, v] : h) r.headers[k] = v;
    r.headers["Content-Type"] = "application/vnd.xet-fileinfo+json";
    return r;
  }
  std::string hash = f.xet_hash;
  return serveBytes(ctx.req, f.size, std::move(h),
                    [this, hash](uint64_t off, uint64_t len) -> Result<std::vector<BodyPiece>> {
                      auto mh = xet::MerkleHash::fromHex(hash);
                      if (cas_ == nullptr || !mh) return Error::io("no CAS to read " + hash);
                      HFM_ASSIGN_OR_RETURN(auto bytes, cas_->readFileRange(*mh, off, len));
                      return std::vector<BodyPiece>{std::move(bytes)};
                    });
}

// ------------------------------------------------------------------------------ repos

namespace {

// Builds the regular-file op for `content` (stored as a blob first).
Result<RepoOp> regularFileOp(HubStore* store, const std::string& path, const std::string& content) {
  HFM_ASSIGN_OR_RETURN(auto blob, store->putBlob(content));
  RepoOp op;
  op.kind = RepoOp::Kind::kPut;
  op.file.path = path;
  op.file.size = content.size();
  op.file.oid = gitBlobOid(content);
  op.file.blob_sha256 = blob;
  return op;
}

json commitJson(const CommitRecord& c) {
  return json{{"id", c.sha},
              {"title", c.title},
              {"message", c.description.empty() ? c.title : c.title + "\n\n" + c.description},
              {"authors", json::array({json{{"user", c.author}}})},
              {"date", isoTime(c.created_ms)}};
}

}  // namespace

HttpResponse HubService::reposApi(Ctx& ctx) {
  const auto& s = ctx.segs;
  if (s.size() != 3) return hubError(404, "", "Not found");
  if (s[2] == "move" && ctx.req.method == "POST") return moveRepo(ctx);
  bool create = s[2] == "create" && ctx.req.method == "POST";
  bool remove = s[2] == "delete" && ctx.req.method == "DELETE";
  if (!create && !remove) return hubError(404, "", "Not found");
  if (!ctx.user) return hubError(401, "", "You must be authenticated");
  auto body = json::parse(ctx.req.body, nullptr, false);
  if (!body.is_object()) return badRequest("Request body must be a JSON object");
  std::string name = strField(body, "name");
  std::string ns = strField(body, "organization");
  if (name.find('/') != std::string::npos && ns.empty()) {
    ns = name.substr(0, name.find('/'));
    name = name.substr(name.find('/') + 1);
  }
  if (ns.empty()) ns = *ctx.user;
  std::string type =
      body.contains("type") && body["type"].is_string() ? body["type"].get<std::string>() : "model";
  if (type != "model" && type != "dataset" && type != "space") {
    return badRequest("'type' must be model, dataset or space");
  }
  if (auto bad = invalidRepoName(ns)) return badRequest("Invalid namespace '" + ns + "': " + *bad);
  if (auto bad = invalidRepoName(name))
    return badRequest("Invalid repo name '" + name + "': " + *bad);
  if (ns != *ctx.user) return hubError(403, "", "You don't have write access to " + ns);
  std::string id = ns + "/" + name;
  std::string url = ctx.base + "/" + webPrefix(type) + id;
  if (remove) {
    auto del = store_->deleteRepo(type, id);
    if (!del) return storageError(del.error());
    if (!*del) return hubError(404, "RepoNotFound", "Repository " + id + " not found");
    return okJson(json::object());
  }
  RepoRecord repo;
  repo.type = type;
  repo.id = id;
  if (body.contains("private")) {
    if (!body["private"].is_boolean()) return badRequest("'private' must be a boolean");
    repo.is_private = body["private"].get<bool>();
  }
  if (strField(body, "visibility") == "private") repo.is_private = true;
  repo.sdk = strField(body, "sdk");
  std::vector<RepoOp> files;
  auto attrs = regularFileOp(store_, ".gitattributes", kGitAttributes);
  if (!attrs) return storageError(attrs.error());
  files.push_back(*attrs);
  if (body.contains("files")) {
    if (!body["files"].is_array()) return badRequest("'files' must be an array");
    for (const auto& f : body["files"]) {
      std::string path = f.is_object() ? strField(f, "path") : "";
      if (auto bad = invalidFilePath(path))
        return badRequest("Invalid path '" + path + "': " + *bad);
      std::string enc = strField(f, "encoding");
      std::string content = strField(f, "content");
      std::optional<std::string> bytes = content;
      if (enc == "base64") {
        bytes = base64Decode(content);
      } else if (!enc.empty() && enc != "utf-8") {
        return badRequest("Unsupported encoding '" + enc + "'");
      }
      if (!bytes) return badRequest("Invalid base64 content for '" + path + "'");
      auto op = regularFileOp(store_, path, *bytes);
      if (!op) return storageError(op.error());
      files.push_back(*op);
    }
  }
  auto created = store_->createRepo(repo, files, *ctx.user, nowMs());
  if (!created) return storageError(created.error());
  if (!*created) {
    auto r = hubError(409, "", "You already created this " + type + " repo");
    r.body = {
        dumpJson(json{{"error", "You already created this " + type + " repo"}, {"url", url}})};
    return r;
  }
  return okJson({{"url", url}, {"name", id}, {"id", id}});
}

HttpResponse HubService::moveRepo(Ctx& ctx) {
  if (!ctx.user) return hubError(401, "", "You must be authenticated");
  auto body = json::parse(ctx.req.body, nullptr, false);
  if (!body.is_object()) return badRequest("Request body must be a JSON object");
  std::string from = strField(body, "fromRepo");
  std::string to = strField(body, "toRepo");
  std::string type = body.contains("type") ? strField(body, "type") : "model";
  if (type != "model" && type != "dataset" && type != "space" && type != "bucket") {
    return badRequest("'type' must be model, dataset, space or bucket");
  }
  auto split = [](const std::string& id) -> std::optional<std::pair<std::string, std::string>> {
    auto slash = id.find('/');
    if (slash == std::string::npos) return std::nullopt;
    std::string ns = id.substr(0, slash);
    std::string name = id.substr(slash + 1);
    if (invalidRepoName(ns) || invalidRepoName(name)) return std::nullopt;
    return std::make_pair(ns, name);
  };
  auto f = split(from);
  auto t = split(to);
  if (!f || !t) return badRequest("'fromRepo' and 'toRepo' must be valid namespace/name ids");
  // Only the owner may move, and only into a namespace it writes to.
  if (f->first != *ctx.user || t->first != *ctx.user) {
    return hubError(403, "", "You don't have write access to both namespaces");
  }
  Status st = type == "bucket" ? store_->moveBucket(from, to) : store_->moveRepo(type, from, to);
  if (!st) {
    if (st.error().code() == ENOENT) return hubError(404, "RepoNotFound", st.error().message());
    if (st.error().code() == EEXIST) return hubError(409, "", st.error().message());
    return storageError(st.error());
  }
  return okJson({{"url", ctx.base + "/" +
                             (type == "bucket" ? std::string("buckets/") : webPrefix(type)) + to}});
}

HttpResponse HubService::repoApi(Ctx& ctx, const std::string& type, size_t at) {
  const auto& s = ctx.segs;
  const std::string& method = ctx.req.method;
  if (s.size() < at + 2) return hubError(404, "", "Not found");
  const std::string& ns = s[at];
  const std::string& name = s[at + 1];
  if (auto bad = invalidRepoName(ns)) return badRequest("Invalid namespace '" + ns + "': " + *bad);
  if (auto bad = invalidRepoName(name))
    return badRequest("Invalid repo name '" + name + "': " + *bad);
  std::string id = ns + "/" + name;
  std::string not_found = "Repository " + id + " not found";
  auto rec = store_->repo(type, id);
  if (!rec) return storageError(rec.error());
  if (!*rec) return hubError(ctx.user ? 404 : 401, "RepoNotFound", not_found);
  const RepoRecord& repo = **rec;
  std::string op = s.size() > at + 2 ? s[at + 2] : "";
  bool write = op == "preupload" || op == "commit" || op == "xet-write-token" || op == "branch" ||
               op == "tag";
  if (auto denied = checkAccess(ctx.user, ns, repo.is_private, write, not_found)) {
    return std::move(*denied);
  }
  auto resolve = [&](const std::string& rev) -> std::variant<std::string, HttpResponse> {
    auto sha = store_->resolveRevision(type, id, rev == "HEAD" ? "main" : rev);
    if (!sha) return storageError(sha.error());
    if (!*sha) return hubError(404, "RevisionNotFound", "Invalid rev id: " + rev);
    return **sha;
  };
  std::string rev = s.size() > at + 3 ? s[at + 3] : "main";

  if (op.empty() || (op == "revision" && s.size() == at + 4)) {
    if (method != "GET") return hubError(405, "", "Method not allowed");
    auto r = resolve(op.empty() ? "main" : rev);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    const std::string& sha = std::get<std::string>(r);
    auto commit = store_->commitInfo(sha);
    if (!commit || !*commit) return storageError(Error::io("commit " + sha + " missing"));
    bool blobs = boolParam(ctx.req, "blobs", false);
    json siblings = json::array();
    uint64_t used = 0;
    ScanFrom from{"", true};
    while (true) {
      auto rows = store_->scanRepo(sha, from, "", 1000);
      if (!rows) return storageError(rows.error());
      for (const auto& f : *rows) {
        json sib{{"rfilename", f.path}};
        if (blobs) {
          sib["size"] = f.size;
          sib["blobId"] = f.oid;
          if (!f.lfs_sha256.empty()) {
            sib["lfs"] = {{"size", f.size},
                          {"sha256", f.lfs_sha256},
                          {"pointerSize", lfsPointer(f.lfs_sha256, f.size).size()}};
          }
        }
        used += f.size;
        siblings.push_back(std::move(sib));
      }
      if (rows->size() < 1000) break;
      from = ScanFrom{rows->back().path, false};
    }
    json info{{"_id", sha1Hex(type + ":" + id).substr(0, 24)},
              {"id", id},
              {"author", ns},
              {"sha", sha},
              {"lastModified", isoTime((*commit)->created_ms)},
              {"createdAt", isoTime(repo.created_ms)},
              {"private", repo.is_private},
              {"gated", false},
              {"disabled", false},
              {"downloads", 0},
              {"likes", 0},
              {"tags", json::array()},
              {"siblings", siblings},
              {"usedStorage", used}};
    if (type == "model") info["modelId"] = id;
    if (type == "space") info["sdk"] = repo.sdk.empty() ? "static" : repo.sdk;
    return okJson(info);
  }

  if ((op == "xet-read-token" || op == "xet-write-token") && s.size() == at + 4) {
    if (method != "GET") return hubError(405, "", "Method not allowed");
    auto r = resolve(rev);
    // A write token may name a branch about to be created by the commit.
    if (auto* e = std::get_if<HttpResponse>(&r); e != nullptr && op == "xet-read-token") {
      return std::move(*e);
    }
    std::string sha = std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : rev;
    return tokenResponse(tokens_, ctx.base, ctx.user, type + ":" + id + "@" + sha,
                         op == "xet-write-token");
  }

  if (op == "tree" && s.size() >= at + 4 && method == "GET") {
    auto r = resolve(rev);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    std::string sha = std::get<std::string>(r);
    std::string prefix;
    for (size_t i = at + 4; i < s.size(); ++i) prefix += (prefix.empty() ? "" : "/") + s[i];
    while (prefix.ends_with("/")) prefix.pop_back();
    if (!prefix.empty()) {
      if (auto bad = invalidFilePath(prefix)) return badRequest("Invalid path: " + *bad);
    }
    bool recursive = boolParam(ctx.req, "recursive", false);
    bool expand = boolParam(ctx.req, "expand", false);
    size_t limit = expand ? 50 : 1000;
    if (auto l = ctx.req.queryParam("limit"); !l.empty()) {
      char* end = nullptr;
      unsigned long long v = std::strtoull(l.c_str(), &end, 10);
      if (end == l.c_str() || *end != '\0' || v == 0) return badRequest("Invalid 'limit'");
      limit = static_cast<size_t>(std::min<unsigned long long>(v, kMaxTreeLimit));
    }
    std::unordered_map<std::string, json> commit_cache;
    auto lastCommit = [&](const std::string& csha) -> json {
      if (auto it = commit_cache.find(csha); it != commit_cache.end()) return it->second;
      auto c = store_->commitInfo(csha);
      json j = (c && *c)
                   ? json{{"id", csha}, {"title", (*c)->title}, {"date", isoTime((*c)->created_ms)}}
                   : json(nullptr);
      commit_cache[csha] = j;
      return j;
    };
    Scanner scan = [&](const ScanFrom& f, const std::string& upper,
                       size_t n) -> Result<std::vector<TreeRow>> {
      HFM_ASSIGN_OR_RETURN(auto rows, store_->scanRepo(sha, f, upper, n));
      std::vector<TreeRow> out;
      for (auto& row : rows) {
        json e = repoFileJson(row);
        if (expand) e["lastCommit"] = lastCommit(row.last_commit);
        out.push_back({row.path, std::move(e)});
      }
      return out;
    };
    // Directory oid: a hash of every (path, oid) below it, so it changes when they do.
    DirMaker dir = [&](const std::string& d) -> Result<json> {
      std::string material;
      std::string newest;
      int64_t newest_ms = -1;
      ScanFrom f{d + "/", true};
      while (true) {
        HFM_ASSIGN_OR_RETURN(auto rows, store_->scanRepo(sha, f, d + "0", 1000));
        for (const auto& row : rows) {
          material += row.path + '\0' + row.oid + '\n';
          if (expand && row.last_commit != newest) {
            auto c = store_->commitInfo(row.last_commit);
            if (c && *c && (*c)->created_ms > newest_ms) {
              newest_ms = (*c)->created_ms;
              newest = row.last_commit;
            }
          }
        }
        if (rows.size() < 1000) break;
        f = ScanFrom{rows.back().path, false};
      }
      json e{{"type", "directory"}, {"oid", sha1Hex("tree\n" + material)}, {"path", d}};
      if (expand && !newest.empty()) e["lastCommit"] = lastCommit(newest);
      return e;
    };
    ScanFrom from{prefix.empty() ? "" : prefix + "/", true};
    bool first_page = true;
    if (auto c = ctx.req.queryParam("cursor"); !c.empty()) {
      auto decoded = decodeCursor(c);
      if (!decoded) return badRequest("Invalid 'cursor'");
      from = *decoded;
      first_page = false;
    }
    auto page = walkTree(prefix, recursive, true, from, limit, scan, dir);
    if (!page) return storageError(page.error());
    if (first_page && !prefix.empty() && page->entries.empty()) {
      auto exact = store_->repoFile(sha, prefix);
      if (!exact) return storageError(exact.error());
      if (!*exact) {
        auto e = hubError(404, "EntryNotFound", "Entry not found: " + prefix);
        e.headers["X-Repo-Commit"] = sha;
        return e;
      }
      page->entries.push_back(repoFileJson(**exact));
    }
    auto resp = okJson(page->entries);
    if (page->next) {
      resp.headers["Link"] =
          "<" + nextLink(ctx, "cursor", encodeCursor(*page->next)) + ">; rel=\"next\"";
    }
    return resp;
  }

  if (op == "paths-info" && s.size() == at + 4 && method == "POST") {
    auto r = resolve(rev);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    std::string sha = std::get<std::string>(r);
    std::vector<std::string> paths;
    bool expand = false;
    if (ctx.req.header("content-type").starts_with("application/x-www-form-urlencoded")) {
      std::string_view q = ctx.req.body;
      while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view part = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        auto eq = part.find('=');
        auto k = percentDecode(part.substr(0, eq), true);
        auto v = percentDecode(eq == std::string_view::npos ? "" : part.substr(eq + 1), true);
        if (!k || !v) return badRequest("Malformed form body");
        if (*k == "paths") paths.push_back(*v);
        if (*k == "expand") expand = *v == "true" || *v == "1";
      }
    } else {
      auto body = json::parse(ctx.req.body, nullptr, false);
      if (!body.is_object() || !body.contains("paths") || !body["paths"].is_array()) {
        return badRequest("Body must be a JSON object with a 'paths' array");
      }
      for (const auto& p : body["paths"]) {
        if (!p.is_string()) return badRequest("'paths' must only contain strings");
        paths.push_back(p.get<std::string>());
      }
      if (body.contains("expand") && body["expand"].is_boolean())
        expand = body["expand"].get<bool>();
    }
    if (paths.size() > kMaxPathsPerCall) {
      return badRequest("At most " + std::to_string(kMaxPathsPerCall) + " paths per call");
    }
    json out = json::array();
    for (const auto& path : paths) {
      if (auto bad = invalidFilePath(path))
        return badRequest("Invalid path '" + path + "': " + *bad);
      auto f = store_->repoFile(sha, path);
      if (!f) return storageError(f.error());
      if (*f) {
        json e = repoFileJson(**f);
        if (expand) {
          auto c = store_->commitInfo((*f)->last_commit);
          if (c && *c) {
            e["lastCommit"] = {
                {"id", (*c)->sha}, {"title", (*c)->title}, {"date", isoTime((*c)->created_ms)}};
          }
        }
        out.push_back(std::move(e));
        continue;
      }
      auto under = store_->scanRepo(sha, ScanFrom{path + "/", true}, path + "0", 1);
      if (!under) return storageError(under.error());
      if (!under->empty())
        out.push_back(
            {{"type", "directory"}, {"path", path}, {"oid", sha1Hex("tree\n" + sha + path)}});
    }
    return okJson(out);
  }

  if (op == "preupload" && s.size() == at + 4 && method == "POST") {
    if (!ctx.req.queryParam("create_pr").empty()) {
      return badRequest("Pull requests are not supported by hf-local-hub");
    }
    auto r = resolve(rev);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    auto body = json::parse(ctx.req.body, nullptr, false);
    if (!body.is_object() || !body.contains("files") || !body["files"].is_array()) {
      return badRequest("Body must be a JSON object with a 'files' array");
    }
    json out = json::array();
    for (const auto& f : body["files"]) {
      if (!f.is_object()) return badRequest("'files' entries must be objects");
      std::string path = strField(f, "path");
      if (auto bad = invalidFilePath(path))
        return badRequest("Invalid path '" + path + "': " + *bad);
      if (!f.contains("size") || !f["size"].is_number_unsigned()) {
        return badRequest("'size' of '" + path + "' must be a non-negative integer");
      }
      auto sample = base64Decode(strField(f, "sample"));
      if (!sample) return badRequest("'sample' of '" + path + "' is not base64");
      bool lfs = wantsLfs(path, f["size"].get<uint64_t>(), *sample);
      out.push_back(
          {{"path", path}, {"uploadMode", lfs ? "lfs" : "regular"}, {"shouldIgnore", false}});
    }
    return okJson({{"files", out}, {"commitOid", std::get<std::string>(r)}});
  }

  if (op == "commit" && s.size() == at + 4 && method == "POST") {
    if (!ctx.req.queryParam("create_pr").empty()) {
      return badRequest("Pull requests are not supported by hf-local-hub");
    }
    auto head = store_->resolveRevision(type, id, rev);
    if (!head) return storageError(head.error());
    auto branches = store_->branches(type, id);
    if (!branches) return storageError(branches.error());
    bool is_branch = std::any_of(branches->begin(), branches->end(),
                                 [&](const RefRecord& b) { return b.name == rev; });
    if (!is_branch) return hubError(404, "RevisionNotFound", "Invalid rev id: " + rev);
    std::string title = "Upload files";
    std::string description;
    std::string parent;
    std::vector<RepoOp> ops;
    std::string_view body = ctx.req.body;
    size_t line_no = 0;
    bool saw_header = false;
    while (!body.empty()) {
      auto nl = body.find('\n');
      std::string_view line = body.substr(0, nl);
      body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
      ++line_no;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      if (line.empty()) continue;
      std::string where = "line " + std::to_string(line_no) + ": ";
      auto j = json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("value") ||
          !j["value"].is_object()) {
        return badRequest(where + R"(expected {"key": ..., "value": {...}})");
      }
      std::string key = j["key"].get<std::string>();
      const json& v = j["value"];
      if (key == "header") {
        saw_header = true;
        if (auto t = strField(v, "summary"); !t.empty()) title = t;
        description = strField(v, "description");
        parent = strField(v, "parentCommit");
        continue;
      }
      std::string path = strField(v, "path");
      if (auto bad = invalidFilePath(path))
        return badRequest(where + "invalid path '" + path + "': " + *bad);
      if (key == "file") {
        std::string enc = strField(v, "encoding");
        std::optional<std::string> bytes = strField(v, "content");
        if (enc == "base64") {
          bytes = base64Decode(*bytes);
        } else if (!enc.empty() && enc != "utf-8") {
          return badRequest(where + "unsupported encoding '" + enc + "'");
        }
        if (!bytes) return badRequest(where + "invalid base64 content");
        auto op_r = regularFileOp(store_, path, *bytes);
        if (!op_r) return storageError(op_r.error());
        ops.push_back(*op_r);
      } else if (key == "lfsFile") {
        std::string oid = lower(strField(v, "oid"));
        if (!isHex(oid, 64)) return badRequest(where + "'oid' must be a sha256 (64 hex)");
        if (!v.contains("size") || !v["size"].is_number_unsigned()) {
          return badRequest(where + "'size' must be a non-negative integer");
        }
        uint64_t size = v["size"].get<uint64_t>();
        std::string xet_hash;
        if (size == 0) {
          xet_hash = kZeroHash;
        } else if (auto fh = cas_ != nullptr ? cas_->fileHashForSha256(oid) : std::nullopt) {
          auto known = cas_->fileSize(*fh);
          if (known && *known != size) {
            return hubError(422, "",
                            where + "size " + std::to_string(size) +
                                " does not match the uploaded object (" + std::to_string(*known) +
                                " bytes)");
          }
          xet_hash = fh->hex();
        }
        if (xet_hash.empty()) {
          return hubError(
              422, "",
              where + "LFS object " + oid + " was not uploaded (no shard registers this sha256)");
        }
        RepoOp op_r;
        op_r.file.path = path;
        op_r.file.size = size;
        op_r.file.lfs_sha256 = oid;
        op_r.file.xet_hash = xet_hash;
        op_r.file.oid = gitBlobOid(lfsPointer(oid, size));
        ops.push_back(op_r);
      } else if (key == "deletedFile" || key == "deletedFolder") {
        RepoOp op_r;
        op_r.kind = key == "deletedFile" ? RepoOp::Kind::kDelete : RepoOp::Kind::kDeleteFolder;
        op_r.file.path = path;
        ops.push_back(op_r);
      } else {
        return badRequest(where + "unknown key '" + key + "'");
      }
    }
    if (!saw_header) return badRequest("Commit must start with a 'header' line");
    auto sha = store_->commit(type, id, rev, parent, title, description, *ctx.user, ops, nowMs());
    if (!sha) {
      if (sha.error().code() == EAGAIN) return hubError(412, "", sha.error().message());
      if (sha.error().code() == EEXIST) return badRequest(sha.error().message());
      return storageError(sha.error());
    }
    return okJson({{"success", true},
                   {"commitOid", *sha},
                   {"commitUrl", ctx.base + "/" + webPrefix(type) + id + "/commit/" + *sha},
                   {"hookOutput", ""},
                   {"pullRequestUrl", nullptr}});
  }

  if (op == "refs" && s.size() == at + 3 && method == "GET") {
    auto b = store_->branches(type, id);
    auto t = store_->tags(type, id);
    if (!b) return storageError(b.error());
    if (!t) return storageError(t.error());
    json branches = json::array();
    json tags = json::array();
    for (const auto& r : *b) {
      branches.push_back(
          {{"name", r.name}, {"ref", "refs/heads/" + r.name}, {"targetCommit", r.sha}});
    }
    for (const auto& r : *t) {
      tags.push_back({{"name", r.name}, {"ref", "refs/tags/" + r.name}, {"targetCommit", r.sha}});
    }
    return okJson({{"branches", branches}, {"tags", tags}, {"converts", json::array()}});
  }

  if (op == "branch" && s.size() >= at + 4) {
    std::string branch;
    for (size_t i = at + 3; i < s.size(); ++i) branch += (branch.empty() ? "" : "/") + s[i];
    if (!validRefName(branch)) return badRequest("Invalid branch name '" + branch + "'");
    if (method == "DELETE") {
      if (branch == "main") return hubError(403, "", "Cannot delete the default branch");
      auto del = store_->deleteRef(type, id, false, branch);
      if (!del) return storageError(del.error());
      if (!*del) return hubError(404, "RevisionNotFound", "Invalid rev id: " + branch);
      return okJson(json::object());
    }
    if (method != "POST") return hubError(405, "", "Method not allowed");
    auto body = parseJsonObject(ctx.req.body);
    if (!body) return badRequest("Request body must be a JSON object");
    if (body->contains("emptyBranch") && (*body)["emptyBranch"] == true) {
      return badRequest("emptyBranch is not supported by hf-local-hub");
    }
    std::string start = strField(*body, "startingPoint");
    bool overwrite = body->contains("overwrite") && (*body)["overwrite"] == true;
    if (overwrite && start.empty()) {  // documented no-op when the branch already exists
      auto existing = store_->resolveRevision(type, id, "refs/heads/" + branch);
      if (!existing) return storageError(existing.error());
      if (*existing) return okJson(json::object());
    }
    auto r = resolve(start.empty() ? "main" : start);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    auto set = store_->setRef(type, id, false, branch, std::get<std::string>(r), overwrite);
    if (!set) return storageError(set.error());
    if (!*set) return hubError(409, "", "Branch " + branch + " already exists");
    return okJson(json::object());
  }

  if (op == "tag" && s.size() >= at + 4) {
    std::string arg;
    for (size_t i = at + 3; i < s.size(); ++i) arg += (arg.empty() ? "" : "/") + s[i];
    if (method == "DELETE") {
      auto del = store_->deleteRef(type, id, true, arg);
      if (!del) return storageError(del.error());
      if (!*del) return hubError(404, "RevisionNotFound", "Invalid rev id: " + arg);
      return okJson(json::object());
    }
    if (method != "POST") return hubError(405, "", "Method not allowed");
    auto body = parseJsonObject(ctx.req.body);
    if (!body) return badRequest("Request body must be a JSON object");
    std::string tag = strField(*body, "tag");
    if (!validRefName(tag)) return badRequest("Invalid tag name '" + tag + "'");
    auto r = resolve(arg);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    auto set = store_->setRef(type, id, true, tag, std::get<std::string>(r), false);
    if (!set) return storageError(set.error());
    if (!*set) return hubError(409, "", "Tag " + tag + " already exists");
    return okJson(json::object());
  }

  if (op == "commits" && s.size() == at + 4 && method == "GET") {
    auto r = resolve(rev);
    if (auto* e = std::get_if<HttpResponse>(&r)) return std::move(*e);
    size_t limit = 50;
    size_t page_no = 0;
    if (auto l = ctx.req.queryParam("limit"); !l.empty()) {
      limit = std::clamp<size_t>(std::strtoull(l.c_str(), nullptr, 10), 1, 1000);
    }
    if (auto p = ctx.req.queryParam("p"); !p.empty())
      page_no = std::strtoull(p.c_str(), nullptr, 10);
    auto list = store_->history(std::get<std::string>(r), page_no * limit, limit + 1);
    if (!list) return storageError(list.error());
    json out = json::array();
    for (size_t i = 0; i < list->size() && i < limit; ++i) out.push_back(commitJson((*list)[i]));
    auto all = store_->history(std::get<std::string>(r), 0, SIZE_MAX);
    if (!all) return storageError(all.error());
    auto resp = okJson(out);
    resp.headers["X-Total-Count"] = std::to_string(all->size());
    if (list->size() > limit) {
      resp.headers["Link"] =
          "<" + nextLink(ctx, "p", std::to_string(page_no + 1)) + ">; rel=\"next\"";
    }
    return resp;
  }
  return hubError(404, "", "Not found");
}

HttpResponse HubService::lfsBatch(Ctx& ctx, const std::string& type, size_t at) {
  const auto& s = ctx.segs;
  if (ctx.req.method != "POST") return hubError(405, "", "Method not allowed");
  std::string ns = s[at];
  std::string name = s[at + 1].substr(0, s[at + 1].size() - 4);
  if (invalidRepoName(ns) || invalidRepoName(name)) return badRequest("Invalid repo id");
  std::string id = ns + "/" + name;
  std::string not_found = "Repository " + id + " not found";
  auto rec = store_->repo(type, id);
  if (!rec) return storageError(rec.error());
  if (!*rec) return hubError(ctx.user ? 404 : 401, "RepoNotFound", not_found);
  auto body = json::parse(ctx.req.body, nullptr, false);
  if (!body.is_object() || !body.contains("objects") || !body["objects"].is_array()) {
    return badRequest("Body must be a git-lfs batch request with an 'objects' array");
  }
  std::string operation = strField(body, "operation");
  if (operation != "upload" && operation != "download") {
    return badRequest("'operation' must be upload or download");
  }
  bool upload = operation == "upload";
  if (auto denied = checkAccess(ctx.user, ns, (*rec)->is_private, upload, not_found)) {
    return std::move(*denied);
  }
  std::string rev = "main";
  if (body.contains("ref") && body["ref"].is_object()) {
    if (auto n = strField(body["ref"], "name"); !n.empty()) rev = n;
  }
  if (rev.starts_with("refs/heads/")) rev = rev.substr(11);
  int64_t now = nowMs() / 1000;
  std::string token =
      tokens_->issue(ctx.user.value_or("anonymous"), type + ":" + id + "@" + rev, upload, now);
  std::string href = ctx.base + "/api/" + typePlural(type) + "/" + id + "/xet-" +
                     (upload ? "write" : "read") + "-token/" + urlEncode(rev);
  std::string session = ctx.req.header("x-xet-session-id");
  json objects = json::array();
  for (const auto& o : body["objects"]) {
    if (!o.is_object()) return badRequest("'objects' entries must be objects");
    std::string oid = lower(strField(o, "oid"));
    if (!isHex(oid, 64) || !o.contains("size") || !o["size"].is_number_unsigned()) {
      return badRequest("each object needs a sha256 'oid' and a non-negative 'size'");
    }
    uint64_t size = o["size"].get<uint64_t>();
    json out{{"oid", oid}, {"size", size}};
    bool known = size == 0 || (cas_ != nullptr && cas_->fileHashForSha256(oid).has_value());
    if (!known || !upload) {
      json header{{"X-Xet-Cas-Url", ctx.base},
                  {"X-Xet-Access-Token", token},
                  {"X-Xet-Token-Expiration", std::to_string(now + tokens_->ttlSecs())}};
      if (!session.empty()) header["X-Xet-Session-Id"] = session;
      out["actions"] = {{upload ? "upload" : "download", {{"href", href}, {"header", header}}}};
    }
    objects.push_back(std::move(out));
  }
  auto r = okJson({{"transfer", "xet"}, {"objects", objects}, {"hash_algo", "sha_256"}});
  r.headers["Content-Type"] = "application/vnd.git-lfs+json";
  return r;
}

HttpResponse HubService::repoResolve(Ctx& ctx, const std::string& type, size_t at) {
  const auto& s = ctx.segs;
  const std::string& method = ctx.req.method;
  if (method != "GET" && method != "HEAD") return hubError(405, "", "Method not allowed");
  const std::string& ns = s[at];
  const std::string& name = s[at + 1];
  if (invalidRepoName(ns) || invalidRepoName(name)) return hubError(404, "", "Not found");
  bool raw = s[at + 2] == "raw";
  std::string id = ns + "/" + name;
  std::string not_found = "Repository " + id + " not found";
  std::string raw_rest;
  for (size_t i = at + 4; i < ctx.raw_segs.size(); ++i) {
    raw_rest += (i > at + 4 ? "/" : "") + ctx.raw_segs[i];
  }
  auto path = percentDecode(raw_rest, false);
  if (!path) return badRequest("Malformed percent-encoding in URL");
  if (auto bad = invalidFilePath(*path)) return badRequest("Invalid path: " + *bad);
  auto rec = store_->repo(type, id);
  if (!rec) return storageError(rec.error());
  if (!*rec) return hubError(ctx.user ? 404 : 401, "RepoNotFound", not_found);
  if (auto denied = checkAccess(ctx.user, ns, (*rec)->is_private, false, not_found)) {
    return std::move(*denied);
  }
  const std::string& rev = s[at + 3];
  auto sha_r = store_->resolveRevision(type, id, rev);
  if (!sha_r) return storageError(sha_r.error());
  if (!*sha_r) return hubError(404, "RevisionNotFound", "Invalid rev id: " + rev);
  std::string sha = **sha_r;
  auto file = store_->repoFile(sha, *path);
  if (!file) return storageError(file.error());
  if (!*file) {
    auto e = hubError(404, "EntryNotFound", "Entry not found: " + *path);
    e.headers["X-Repo-Commit"] = sha;
    return e;
  }
  const auto& f = **file;
  Headers h;
  h["X-Repo-Commit"] = sha;
  bool xet = !f.lfs_sha256.empty();
  if (!xet || raw) {
    std::string content_path;
    uint64_t size = f.size;
    std::string pointer;
    if (xet) {
      pointer = lfsPointer(f.lfs_sha256, f.size);
      size = pointer.size();
    } else {
      content_path = store_->blobPath(f.blob_sha256).string();
    }
    std::string etag = "\"" + f.oid + "\"";
    h["ETag"] = etag;
    if (etagMatches(ctx.req, etag)) {
      HttpResponse r;
      r.status = 304;
      r.headers = std::move(h);
      return r;
    }
    return serveBytes(
        ctx.req, size, std::move(h),
        [content_path, pointer](uint64_t off, uint64_t len) -> Result<std::vector<BodyPiece>> {
          if (content_path.empty()) {
            return std::vector<BodyPiece>{pointer.substr(off, len)};
          }
          return std::vector<BodyPiece>{FileSlice{content_path, off, len}};
        });
  }
  std::string etag = "\"" + f.lfs_sha256 + "\"";
  h["ETag"] = etag;
  h["X-Linked-Etag"] = etag;
  h["X-Linked-Size"] = std::to_string(f.size);
  h["X-Xet-Hash"] = f.xet_hash;
  std::string refresh = ctx.base + "/api/" + typePlural(type) + "/" + id + "/xet-read-token/" + sha;
  h["X-Xet-Refresh-Route"] = "/api/" + typePlural(type) + "/" + id + "/xet-read-token/" + sha;
  h["Link"] = "<" + refresh + ">; rel=\"xet-auth\", <" + ctx.base + "/v1/reconstructions/" +
              f.xet_hash + ">; rel=\"xet-reconstruction-info\"";
  if (etagMatches(ctx.req, etag)) {
    HttpResponse r;
    r.status = 304;
    r.headers = std::move(h);
    return r;
  }
  if (ctx.req.header("accept").find("application/vnd.xet-fileinfo+json") != std::string::npos) {
    auto r = okJson({{"hash", f.xet_hash},
                     {"etag", f.lfs_sha256},
                     {"size", f.size},
                     {"refreshUrl", refresh},
                     {"reconstructionUrl", ctx.base + "/v1/reconstructions/" + f.xet_hash}});
    for (auto& [k, v] : h) r.headers[k] = v;
    r.headers["Content-Type"] = "application/vnd.xet-fileinfo+json";
    return r;
  }
  std::string hash = f.xet_hash;
  return serveBytes(ctx.req, f.size, std::move(h),
                    [this, hash](uint64_t off, uint64_t len) -> Result<std::vector<BodyPiece>> {
                      auto mh = xet::MerkleHash::fromHex(hash);
                      if (cas_ == nullptr || !mh) return Error::io("no CAS to read " + hash);
                      HFM_ASSIGN_OR_RETURN(auto bytes, cas_->readFileRange(*mh, off, len));
                      return std::vector<BodyPiece>{std::move(bytes)};
                    });
}

}  // namespace hfm::localhub
