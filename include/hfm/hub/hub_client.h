// HubClient: the Hub API calls a mount makes for one source (a bucket, or a repo at a
// revision), over the shared http::HttpClient (which retries 408/429/5xx and maps statuses to
// errno: 404 → ENOENT, 401/403 → EACCES, 429 → EAGAIN, ...; messages carry the Hub's
// X-Error-Code / X-Error-Message).
//
// Paths: every path a caller passes or receives is relative to the mount root. When the
// source has a subfolder, it is prepended to outgoing paths and stripped from returned
// entries, so the layers above never see it. Listings keep only entries strictly below the
// listed directory (the Hub matches raw key prefixes: listing "logs" also returns "logs_old").
//
// Repos are addressed with the literal revision of the SourceId (percent-encoded, '/'
// included, so "refs/pr/1" stays one segment). To pin a branch to a commit, call info() and
// build a new HubClient whose revision is SourceInfo::sha.
//
// Every request carries "Authorization: Bearer <token>" from Credentials::token() (re-read per
// request) when there is one. Thread-safe: no mutable state besides the shared HttpClient.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hfm/http/http_client.h"
#include "hfm/http/xet_credentials.h"
#include "hfm/hub/credentials.h"
#include "hfm/hub/ids.h"
#include "hfm/util/result.h"

namespace hfm::hub {

// The public Hub: the default endpoint, and the host whose absolute refresh links are
// rewritten to a configured endpoint.
inline constexpr std::string_view kPublicHubEndpoint = "https://huggingface.co";

struct HubOptions {
  std::string endpoint{kPublicHubEndpoint};  // HF_ENDPOINT / --hub-endpoint
  int bucket_tree_limit = 5000;              // page size asked of bucket tree listings
  int repo_tree_limit = 1000;                // and of repo tree listings
};

struct SourceInfo {
  std::string id;                           // canonical id (aliases resolved by the Hub)
  std::optional<std::string> sha;           // repos: commit of the revision
  std::optional<int64_t> last_modified_ms;  // repo lastModified / bucket updatedAt
  bool is_private = false;
  std::optional<uint64_t> size;         // buckets: total bytes
  std::optional<uint64_t> total_files;  // buckets
};

struct TreeEntry {
  bool is_directory = false;
  std::string path;                       // relative to the mount root
  uint64_t size = 0;                      // files; for LFS/Xet repo files, lfs.size
  std::string xet_hash;                   // 64 lowercase hex, or empty (none, or masked by the Hub)
  std::string oid;                        // repos: git blob/tree sha1
  std::string lfs_sha256;                 // repos: lfs.oid
  std::optional<int64_t> mtime_ms;        // buckets: client-supplied mtime
  std::optional<int64_t> uploaded_at_ms;  // buckets: server upload time
  std::optional<int64_t> last_commit_ms;  // repos, when the Hub sends lastCommit.date
};

// What HEAD on a resolve URL says about one file.
struct FileMetadata {
  long status = 0;               // 200, or a 3xx (LFS/Xet redirect; not followed)
  std::string xet_hash;          // X-Xet-Hash (validated), or empty
  std::optional<uint64_t> size;  // X-Linked-Size, else Content-Length of a non-redirect
  std::string etag;              // X-Linked-Etag, else ETag; quotes and W/ removed
  std::optional<int64_t> last_modified_ms;
  std::string commit;           // X-Repo-Commit
  std::string xet_refresh_url;  // Link rel="xet-auth" or X-Xet-Refresh-Route
};

struct BatchOp {
  enum class Type { kAddFile, kCopyFile, kDeleteFile };

  Type type = Type::kAddFile;
  std::string path;                         // relative to the mount root
  std::string xet_hash;                     // add, copy
  std::optional<int64_t> mtime_ms;          // add (ms since the epoch)
  std::optional<std::string> content_type;  // add
  std::string source_repo_type;             // copy: "bucket", "model", "dataset" or "space"
  std::string source_repo_id;               // copy: "ns/name"

  static BatchOp addFile(std::string path, std::string xet_hash, int64_t mtime_ms);
  static BatchOp deleteFile(std::string path);
  static BatchOp copyFile(std::string path, std::string xet_hash, std::string source_repo_type,
                          std::string source_repo_id);
};

struct WhoAmI {
  std::string name;
  std::string type;  // "user", "org", ...
  std::vector<std::string> orgs;
};

enum class XetAccess { kRead, kWrite };

class HubClient {
 public:
  // Called with each page of a listing as it arrives; an error stops the listing.
  using PageCallback = std::function<Status(std::vector<TreeEntry>&& page)>;

  HubClient(HubOptions options, SourceId source, std::shared_ptr<const Credentials> credentials,
            std::shared_ptr<http::HttpClient> http);

  const SourceId& source() const { return source_; }
  // The same client addressing `commit` instead of the branch or tag it was given (repos), so
  // every later listing, HEAD and read sees one consistent snapshot.
  HubClient atRevision(std::string commit) const;
  const std::string& endpoint() const { return endpoint_; }

  // GET /api/whoami-v2.
  Result<WhoAmI> whoami() const;

  // Buckets: GET /api/buckets/{id}. Repos: GET /api/{type}s/{id}/revision/{rev}, whose sha is
  // the commit the revision points at. A bucket id that is really a repo gets an ENOENT whose
  // message says which kind of repo it is.
  Result<SourceInfo> info() const;

  // One directory level ("" = the mount root), every page followed.
  Result<std::vector<TreeEntry>> listDirectory(std::string_view dir) const;
  // Every file below `dir` (buckets return files only; repos return files and directories).
  Result<std::vector<TreeEntry>> listRecursive(std::string_view dir) const;
  // The paged form of both: follows `Link: <...>; rel="next"` until there is none.
  Status listTree(std::string_view dir, bool recursive, const PageCallback& on_page) const;

  // Entries for the given paths (missing paths are simply absent). Batched 1000 per call.
  Result<std::vector<TreeEntry>> pathsInfo(std::span<const std::string> paths) const;

  // HEAD on the resolve URL, redirects not followed. 404 → ENOENT.
  Result<FileMetadata> head(std::string_view path) const;

  // GET on the resolve URL (redirects followed; Authorization is not forwarded to another
  // host), optionally a byte range, body streamed to `on_body`. For files without a xet hash.
  // When the Hub redirected (LFS files), the Hub's own headers (X-Linked-Etag, X-Repo-Commit)
  // are in Response::redirect_headers; Response::headers are the storage host's.
  Result<http::Response> download(std::string_view path, std::optional<http::ByteRange> range,
                                  const http::BodyCallback& on_body) const;

  // Buckets only (EROFS for repos): POST /api/buckets/{id}/batch, NDJSON, at most 1000
  // operations per request. Copies and adds are sent before deletes (a Hub requirement),
  // keeping their relative order otherwise, so a rename is [add new, delete old].
  Status batch(std::span<const BatchOp> ops) const;

  // GET .../xet-read-token or .../xet-write-token (buckets: no revision; repos: read only,
  // at the revision). Prefer XetTokenCache, which caches and refreshes these.
  Result<http::XetCredentials> fetchXetToken(XetAccess access) const;

  // URLs (exposed for callers that log or hand them on).
  std::string resolveUrl(std::string_view path) const;
  std::string xetTokenUrl(XetAccess access) const;

 private:
  http::Request request(std::string method, std::string url) const;
  std::string apiBase() const;  // {endpoint}/api/buckets/{id} or {endpoint}/api/{type}s/{id}
  std::string remotePath(std::string_view path) const;  // subdir + "/" + path
  // Entries strictly below `remote_dir` (a full remote path), with the subfolder stripped.
  Result<std::vector<TreeEntry>> parseEntries(const std::string& body,
                                              std::string_view remote_dir) const;

  HubOptions options_;
  std::string endpoint_;
  SourceId source_;
  std::shared_ptr<const Credentials> credentials_;
  std::shared_ptr<http::HttpClient> http_;
};

// Helpers shared with tests.
// "2024-05-06T07:08:09.123Z" / "+02:00" offsets → ms since the epoch; nullopt if malformed.
std::optional<int64_t> parseIsoTimeMs(std::string_view text);
// "Wed, 21 Oct 2015 07:28:00 GMT" → ms since the epoch.
std::optional<int64_t> parseHttpDateMs(std::string_view text);
// 64 hex digits (the Hub masks hashes it will not reveal as 64 '*').
bool isValidXetHash(std::string_view hash);

}  // namespace hfm::hub
