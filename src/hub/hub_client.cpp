#include "hfm/hub/hub_client.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "hfm/util/log.h"

namespace hfm::hub {
namespace {

using nlohmann::json;

constexpr std::size_t kBatchMaxOps = 1000;     // huggingface_hub's per-request chunk
constexpr std::size_t kPathsInfoBatch = 1000;  // _BUCKET_PATHS_INFO_BATCH_SIZE
constexpr std::size_t kMaxPages = 1000000;     // a runaway cursor is a server bug

std::string trimSlashes(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return std::string(path);
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t daysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool readInt(std::string_view text, std::size_t pos, std::size_t len, int64_t& out) {
  if (pos + len > text.size()) return false;
  const char* begin = text.data() + pos;
  const auto [ptr, ec] = std::from_chars(begin, begin + len, out);
  return ec == std::errc() && ptr == begin + len;
}

std::optional<uint64_t> jsonUint(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer() && it->get<int64_t>() >= 0)
    return static_cast<uint64_t>(it->get<int64_t>());
  return std::nullopt;
}

std::string jsonString(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<int64_t> jsonTimeMs(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_string()) return parseIsoTimeMs(it->get<std::string>());
  if (it->is_number_integer()) return it->get<int64_t>();
  return std::nullopt;
}

std::string stripEtag(std::string etag) {
  if (etag.starts_with("W/")) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  return etag;
}

std::string opTypeName(BatchOp::Type type) {
  switch (type) {
    case BatchOp::Type::kCopyFile:
      return "copyFile";
    case BatchOp::Type::kDeleteFile:
      return "deleteFile";
    case BatchOp::Type::kAddFile:
      break;
  }
  return "addFile";
}

// Adds context; when the Hub refused an anonymous request, says how to send a token (the Hub
// answers 401 for private, gated and missing repos alike when no token is sent).
Error requestError(const Error& error, const std::string& context, const Credentials& credentials) {
  Error out = error.withContext(context);
  if (error.code() == EACCES && !credentials.token()) {
    return {EACCES,
            out.message() + " (no Hub token was sent: use --hf-token, --token-file or HF_TOKEN)"};
  }
  return out;
}

}  // namespace

std::optional<int64_t> parseIsoTimeMs(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fff...][Z|±HH:MM]
  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (text.size() < 19 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (!readInt(text, 0, 4, year) || !readInt(text, 5, 2, month) || !readInt(text, 8, 2, day) ||
      !readInt(text, 11, 2, hour) || !readInt(text, 14, 2, minute) ||
      !readInt(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  int64_t millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int64_t scale = 100;
    const std::size_t digits_start = pos;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      millis += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == digits_start) return std::nullopt;
  }
  int64_t offset_minutes = 0;
  if (pos < text.size()) {
    if (text[pos] == 'Z' || text[pos] == 'z') {
      ++pos;
    } else if (text[pos] == '+' || text[pos] == '-') {
      int64_t oh = 0, om = 0;
      if (!readInt(text, pos + 1, 2, oh)) return std::nullopt;
      std::size_t after = pos + 3;
      if (after < text.size() && text[after] == ':') ++after;
      if (!readInt(text, after, 2, om)) return std::nullopt;
      offset_minutes = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
      pos = after + 2;
    }
  }
  if (pos != text.size()) return std::nullopt;
  const int64_t days = daysFromCivil(year, month, day);
  const int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return secs * 1000 + millis;
}

std::optional<int64_t> parseHttpDateMs(std::string_view text) {
  // IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT"
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (text.size() != 29 || text.substr(3, 2) != ", " || text.substr(25) != " GMT")
    return std::nullopt;
  int64_t day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!readInt(text, 5, 2, day) || !readInt(text, 12, 4, year) || !readInt(text, 17, 2, hour) ||
      !readInt(text, 20, 2, minute) || !readInt(text, 23, 2, second)) {
    return std::nullopt;
  }
  const auto month_it = std::find(kMonths.begin(), kMonths.end(), text.substr(8, 3));
  if (month_it == kMonths.end()) return std::nullopt;
  const int64_t month = (month_it - kMonths.begin()) + 1;
  return (daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second) * 1000;
}

bool isValidXetHash(std::string_view hash) {
  return hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c));
         });
}

BatchOp BatchOp::addFile(std::string path, std::string xet_hash, int64_t mtime_ms) {
  BatchOp op;
  op.type = Type::kAddFile;
  op.path = std::move(path);
  op.xet_hash = std::move(xet_hash);
  op.mtime_ms = mtime_ms;
  return op;
}

BatchOp BatchOp::deleteFile(std::string path) {
  BatchOp op;
  op.type = Type::kDeleteFile;
  op.path = std::move(path);
  return op;
}

BatchOp BatchOp::copyFile(std::string path, std::string xet_hash, std::string source_repo_type,
                          std::string source_repo_id) {
  BatchOp op;
  op.type = Type::kCopyFile;
  op.path = std::move(path);
  op.xet_hash = std::move(xet_hash);
  op.source_repo_type = std::move(source_repo_type);
  op.source_repo_id = std::move(source_repo_id);
  return op;
}

HubClient::HubClient(HubOptions options, SourceId source,
                     std::shared_ptr<const Credentials> credentials,
                     std::shared_ptr<http::HttpClient> http)
    : options_(std::move(options)),
      endpoint_(options_.endpoint),
      source_(std::move(source)),
      credentials_(std::move(credentials)),
      http_(std::move(http)) {
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  if (!credentials_) credentials_ = std::make_shared<const Credentials>(Credentials::anonymous());
}

HubClient HubClient::atRevision(std::string commit) const {
  HubClient pinned = *this;
  pinned.source_.revision = std::move(commit);
  return pinned;
}

http::Request HubClient::request(std::string method, std::string url) const {
  http::Request req;
  req.method = std::move(method);
  req.url = std::move(url);
  if (auto token = credentials_->token()) req.headers["Authorization"] = "Bearer " + *token;
  return req;
}

std::string HubClient::apiBase() const {
  if (source_.isBucket()) return endpoint_ + "/api/buckets/" + source_.id;
  return endpoint_ + "/api/" + std::string(repoTypeApiSegment(source_.repo_type)) + "/" +
         source_.id;
}

std::string HubClient::remotePath(std::string_view path) const {
  std::string relative = trimSlashes(path);
  if (source_.subdir.empty()) return relative;
  if (relative.empty()) return source_.subdir;
  return source_.subdir + "/" + relative;
}

std::string HubClient::resolveUrl(std::string_view path) const {
  const std::string encoded = http::percentEncode(remotePath(path));
  if (source_.isBucket()) return endpoint_ + "/buckets/" + source_.id + "/resolve/" + encoded;
  return endpoint_ + "/" + std::string(repoTypeUrlPrefix(source_.repo_type)) + source_.id +
         "/resolve/" + http::percentEncode(source_.revision, true) + "/" + encoded;
}

std::string HubClient::xetTokenUrl(XetAccess access) const {
  const char* kind = access == XetAccess::kWrite ? "xet-write-token" : "xet-read-token";
  if (source_.isBucket()) return apiBase() + "/" + kind;
  return apiBase() + "/" + kind + "/" + http::percentEncode(source_.revision, true);
}

Result<WhoAmI> HubClient::whoami() const {
  HFM_ASSIGN_OR_RETURN(auto response, http_->send(request("GET", endpoint_ + "/api/whoami-v2")));
  const auto body = json::parse(response.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return Error::io("whoami: malformed JSON response");
  WhoAmI who;
  who.name = jsonString(body, "name");
  who.type = jsonString(body, "type");
  if (auto orgs = body.find("orgs"); orgs != body.end() && orgs->is_array()) {
    for (const auto& org : *orgs) {
      if (org.is_object()) who.orgs.push_back(jsonString(org, "name"));
    }
  }
  return who;
}

Result<SourceInfo> HubClient::info() const {
  std::string url = apiBase();
  if (!source_.isBucket()) url += "/revision/" + http::percentEncode(source_.revision, true);
  auto response = http_->send(request("GET", url));
  if (!response) {
    Error error = requestError(response.error(), source_.display(), *credentials_);
    if (source_.isBucket() && (error.code() == ENOENT || error.code() == EACCES)) {
      // A common mistake is mounting a repo as a bucket: say so instead of "not found".
      for (const RepoType type : {RepoType::kModel, RepoType::kDataset, RepoType::kSpace}) {
        http::Request probe = request(
            "GET", endpoint_ + "/api/" + std::string(repoTypeApiSegment(type)) + "/" + source_.id);
        probe.retry = http::RetryPolicy{.max_attempts = 1};
        auto found = http_->exchange(probe);
        if (found && found->ok()) {
          const std::string repo = std::string(repoTypeUrlPrefix(type)) + source_.id;
          return Error(ENOENT, source_.id + " is not a bucket, but it exists as a " +
                                   std::string(repoTypeName(type)) + ": use `repo " + repo + "`");
        }
      }
    }
    return error;
  }
  const auto body = json::parse(response->body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return Error::io(source_.display() + ": malformed JSON from GET " + http::urlForLog(url));
  }
  SourceInfo info;
  info.id = jsonString(body, "id");
  if (info.id.empty()) info.id = source_.id;
  if (auto sha = jsonString(body, "sha"); !sha.empty()) info.sha = sha;
  info.last_modified_ms = jsonTimeMs(body, source_.isBucket() ? "updatedAt" : "lastModified");
  if (!info.last_modified_ms && source_.isBucket())
    info.last_modified_ms = jsonTimeMs(body, "createdAt");
  if (auto it = body.find("private"); it != body.end() && it->is_boolean())
    info.is_private = it->get<bool>();
  info.size = jsonUint(body, "size");
  info.total_files = jsonUint(body, "totalFiles");
  if (!source_.isBucket() && !info.sha) {
    return Error::io(source_.display() + ": the Hub did not return a commit sha for the revision");
  }
  return info;
}

Result<std::vector<TreeEntry>> HubClient::parseEntries(const std::string& body,
                                                       std::string_view remote_dir) const {
  const auto array = json::parse(body, nullptr, false);
  if (array.is_discarded() || !array.is_array()) return Error::io("malformed JSON listing");
  const std::string under = remote_dir.empty() ? std::string() : std::string(remote_dir) + "/";
  const std::size_t strip = source_.subdir.empty() ? 0 : source_.subdir.size() + 1;
  std::vector<TreeEntry> entries;
  entries.reserve(array.size());
  for (const auto& item : array) {
    if (!item.is_object()) return Error::io("malformed listing entry: " + item.dump());
    std::string path = jsonString(item, "path");
    // Raw key-prefix matching on the server: keep only what is strictly below the directory.
    if (path.empty() || path.size() <= under.size() || !path.starts_with(under)) continue;
    TreeEntry entry;
    entry.is_directory = jsonString(item, "type") == "directory";
    entry.path = path.substr(strip);
    entry.size = jsonUint(item, "size").value_or(0);
    entry.oid = jsonString(item, "oid");
    if (auto lfs = item.find("lfs"); lfs != item.end() && lfs->is_object()) {
      // hf-mount trusts lfs.size for LFS/Xet files.
      if (auto lfs_size = jsonUint(*lfs, "size")) entry.size = *lfs_size;
      entry.lfs_sha256 = jsonString(*lfs, "oid");
    }
    if (std::string hash = jsonString(item, "xetHash"); isValidXetHash(hash)) {
      entry.xet_hash = lowercase(std::move(hash));
    }
    entry.mtime_ms = jsonTimeMs(item, "mtime");
    entry.uploaded_at_ms = jsonTimeMs(item, "uploadedAt");
    if (auto commit = item.find("lastCommit"); commit != item.end() && commit->is_object()) {
      entry.last_commit_ms = jsonTimeMs(*commit, "date");
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

Status HubClient::listTree(std::string_view dir, bool recursive,
                           const PageCallback& on_page) const {
  const std::string remote_dir = remotePath(dir);
  std::string url = apiBase() + "/tree";
  if (!source_.isBucket()) url += "/" + http::percentEncode(source_.revision, true);
  if (!remote_dir.empty()) url += "/" + http::percentEncode(remote_dir);
  const int limit = source_.isBucket() ? options_.bucket_tree_limit : options_.repo_tree_limit;
  url += std::string("?recursive=") + (recursive ? "true" : "false") +
         "&limit=" + std::to_string(limit);
  const std::string context = source_.display() + ": list '" + std::string(dir) + "'";

  for (std::size_t page = 0; page < kMaxPages; ++page) {
    auto response = http_->send(request("GET", url));
    if (!response) return requestError(response.error(), context, *credentials_);
    auto entries = parseEntries(response->body, remote_dir);
    if (!entries)
      return entries.error().withContext(context + " (GET " + http::urlForLog(url) + ")");
    HFM_TRY(on_page(std::move(entries).value()));
    auto next = http::nextLink(response->header("Link"));
    if (!next) return okStatus();
    if (next->starts_with("/")) *next = endpoint_ + *next;
    if (*next == url) return Error::io(context + ": the Hub returned the same page cursor twice");
    url = std::move(*next);
  }
  return Error::io(context + ": more than " + std::to_string(kMaxPages) + " pages");
}

Result<std::vector<TreeEntry>> HubClient::listDirectory(std::string_view dir) const {
  std::vector<TreeEntry> all;
  HFM_TRY(listTree(dir, false, [&](std::vector<TreeEntry>&& page) {
    std::move(page.begin(), page.end(), std::back_inserter(all));
    return okStatus();
  }));
  return all;
}

Result<std::vector<TreeEntry>> HubClient::listRecursive(std::string_view dir) const {
  std::vector<TreeEntry> all;
  HFM_TRY(listTree(dir, true, [&](std::vector<TreeEntry>&& page) {
    std::move(page.begin(), page.end(), std::back_inserter(all));
    return okStatus();
  }));
  return all;
}

Result<std::vector<TreeEntry>> HubClient::pathsInfo(std::span<const std::string> paths) const {
  std::vector<TreeEntry> all;
  for (std::size_t first = 0; first < paths.size(); first += kPathsInfoBatch) {
    const auto batch = paths.subspan(first, std::min(kPathsInfoBatch, paths.size() - first));
    http::Request req;
    if (source_.isBucket()) {
      json names = json::array();
      for (const auto& path : batch) names.push_back(remotePath(path));
      req = request("POST", apiBase() + "/paths-info");
      req.headers["Content-Type"] = "application/json";
      req.body = json{{"paths", names}}.dump();
    } else {
      // The repo variant is form-encoded, with one "paths" field per path.
      req =
          request("POST", apiBase() + "/paths-info/" + http::percentEncode(source_.revision, true));
      req.headers["Content-Type"] = "application/x-www-form-urlencoded";
      for (const auto& path : batch)
        req.body += "paths=" + http::percentEncode(remotePath(path), true) + "&";
      req.body += "expand=false";
    }
    auto response = http_->send(req);
    if (!response)
      return requestError(response.error(), source_.display() + ": paths-info", *credentials_);
    auto entries = parseEntries(response->body, source_.subdir);
    if (!entries) return entries.error().withContext(source_.display() + ": paths-info");
    std::move(entries->begin(), entries->end(), std::back_inserter(all));
  }
  return all;
}

Result<FileMetadata> HubClient::head(std::string_view path) const {
  http::Request req = request("HEAD", resolveUrl(path));
  req.follow_redirects = false;
  req.headers["Accept-Encoding"] = "identity";
  auto response = http_->send(req);
  if (!response)
    return requestError(response.error(), source_.display() + ": HEAD '" + std::string(path) + "'",
                        *credentials_);
  FileMetadata meta;
  meta.status = response->status;
  if (std::string hash = response->header("X-Xet-Hash"); isValidXetHash(hash))
    meta.xet_hash = lowercase(hash);
  const bool redirect = response->status >= 300 && response->status < 400;
  std::string size_text = response->header("X-Linked-Size");
  // A redirect's Content-Length is that of its own (empty) body, not the file's.
  if (size_text.empty() && !redirect) size_text = response->header("Content-Length");
  if (!size_text.empty()) {
    uint64_t size = 0;
    const auto [ptr, ec] =
        std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
    if (ec == std::errc() && ptr == size_text.data() + size_text.size()) meta.size = size;
  }
  meta.etag = stripEtag(response->header("X-Linked-Etag", response->header("ETag")));
  meta.last_modified_ms = parseHttpDateMs(response->header("Last-Modified"));
  meta.commit = response->header("X-Repo-Commit");
  std::string refresh = http::linkWithRel(response->header("Link"), "xet-auth")
                            .value_or(response->header("X-Xet-Refresh-Route"));
  if (refresh.starts_with("/")) {
    refresh = endpoint_ + refresh;
  } else if (refresh.starts_with(std::string(kPublicHubEndpoint) + "/") &&
             endpoint_ != kPublicHubEndpoint) {
    refresh = endpoint_ + refresh.substr(kPublicHubEndpoint.size());
  }
  meta.xet_refresh_url = std::move(refresh);
  return meta;
}

Result<http::Response> HubClient::download(std::string_view path,
                                           std::optional<http::ByteRange> range,
                                           const http::BodyCallback& on_body) const {
  http::Request req = request("GET", resolveUrl(path));
  req.range = range;
  auto response = http_->sendStreaming(req, on_body);
  if (!response)
    return requestError(response.error(), source_.display() + ": GET '" + std::string(path) + "'",
                        *credentials_);
  return response;
}

Status HubClient::batch(std::span<const BatchOp> ops) const {
  if (!source_.isBucket()) {
    return Error(EROFS, source_.display() + ": repos are read-only (batch is for buckets)");
  }
  std::vector<const BatchOp*> ordered;
  ordered.reserve(ops.size());
  for (const auto& op : ops) {
    if (trimSlashes(op.path).empty())
      return Error::invalid(source_.display() + ": batch op with an empty path");
    if (op.type != BatchOp::Type::kDeleteFile && !isValidXetHash(op.xet_hash)) {
      return Error::invalid(source_.display() + ": " + opTypeName(op.type) + " '" + op.path +
                            "' needs a 64-hex xet hash");
    }
    if (op.type == BatchOp::Type::kCopyFile &&
        (op.source_repo_type.empty() || op.source_repo_id.empty())) {
      return Error::invalid(source_.display() + ": copyFile '" + op.path +
                            "' needs its source repo");
    }
    ordered.push_back(&op);
  }
  std::stable_partition(ordered.begin(), ordered.end(),
                        [](const BatchOp* op) { return op->type != BatchOp::Type::kDeleteFile; });

  for (std::size_t first = 0; first < ordered.size(); first += kBatchMaxOps) {
    const std::size_t last = std::min(ordered.size(), first + kBatchMaxOps);
    http::Request req = request("POST", apiBase() + "/batch");
    req.headers["Content-Type"] = "application/x-ndjson";
    for (std::size_t i = first; i < last; ++i) {
      const BatchOp& op = *ordered[i];
      json line = {{"type", opTypeName(op.type)}, {"path", remotePath(op.path)}};
      if (op.type != BatchOp::Type::kDeleteFile) line["xetHash"] = lowercase(op.xet_hash);
      if (op.type == BatchOp::Type::kAddFile) {
        if (op.mtime_ms) line["mtime"] = *op.mtime_ms;
        if (op.content_type) line["contentType"] = *op.content_type;
      }
      if (op.type == BatchOp::Type::kCopyFile) {
        line["sourceRepoType"] = op.source_repo_type;
        line["sourceRepoId"] = op.source_repo_id;
      }
      req.body += line.dump();
      req.body += '\n';
    }
    auto response = http_->send(req);
    if (!response) {
      return requestError(
          response.error(),
          source_.display() + ": batch of " + std::to_string(last - first) + " operation(s)",
          *credentials_);
    }
  }
  return okStatus();
}

Result<http::XetCredentials> HubClient::fetchXetToken(XetAccess access) const {
  if (access == XetAccess::kWrite && !source_.isBucket()) {
    return Error(EROFS, source_.display() + ": repos are mounted read-only (no xet write token)");
  }
  const std::string url = xetTokenUrl(access);
  auto response = http_->send(request("GET", url));
  if (!response)
    return requestError(response.error(), source_.display() + ": xet token", *credentials_);
  http::XetCredentials credentials;
  const auto body = json::parse(response->body, nullptr, false);
  if (!body.is_discarded() && body.is_object()) {
    credentials.access_token = jsonString(body, "accessToken");
    credentials.cas_url = jsonString(body, "casUrl");
    if (auto exp = body.find("exp"); exp != body.end() && exp->is_number()) {
      credentials.expires_at = exp->get<int64_t>();
    }
  }
  // Older servers only send the headers.
  if (credentials.access_token.empty())
    credentials.access_token = response->header("X-Xet-Access-Token");
  if (credentials.cas_url.empty()) credentials.cas_url = response->header("X-Xet-Cas-Url");
  if (credentials.expires_at == 0) {
    const std::string exp = response->header("X-Xet-Token-Expiration");
    std::from_chars(exp.data(), exp.data() + exp.size(), credentials.expires_at);
  }
  while (!credentials.cas_url.empty() && credentials.cas_url.back() == '/')
    credentials.cas_url.pop_back();
  if (credentials.access_token.empty() || credentials.cas_url.empty() ||
      credentials.expires_at <= 0) {
    return Error::io(source_.display() + ": xet token response from GET " + http::urlForLog(url) +
                     " lacks accessToken, casUrl or exp");
  }
  spdlog::debug("hub: {} xet {} token for {}, expires at {}", source_.display(),
                access == XetAccess::kWrite ? "write" : "read", credentials.cas_url,
                credentials.expires_at);
  return credentials;
}

}  // namespace hfm::hub
