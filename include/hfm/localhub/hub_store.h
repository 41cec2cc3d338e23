// Durable Hub-side state of hf-local-hub: buckets and their files, repos (model, dataset,
// space) with git-like commits, branches and tags, and the blobs of regular (non-xet) repo
// files. Xorbs and shards belong to the CAS half (under `<data>/cas/`), not here.
//
// Layout: `<data>/hub.db` (SQLite, WAL, synchronous=FULL: whatever a caller was told succeeded
// survives kill -9) and `<data>/blobs/<2 hex>/<sha256>` written crash-safely (temp file, fsync,
// rename, fsync of the directory) before the row naming them is committed. Each commit is a
// full snapshot (one row per file), so reading a tree at any revision is a range scan.
//
// Thread-safe: one SQLite connection serialised by a mutex. Paths and ids are validated by the
// caller (hub_service); this layer stores what it is given.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hfm/util/result.h"

struct sqlite3;

namespace hfm::localhub {

struct BucketRecord {
  std::string id;  // "ns/name"
  bool is_private = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  uint64_t size = 0;
  uint64_t total_files = 0;
};

struct BucketFileRecord {
  std::string path;
  std::string xet_hash;
  uint64_t size = 0;
  int64_t mtime_ms = 0;
  int64_t uploaded_ms = 0;
  std::string content_type;
};

// One operation of a bucket batch, already validated.
struct BucketOp {
  enum class Kind { kAdd, kDelete };
  Kind kind = Kind::kAdd;
  BucketFileRecord file;  // kAdd: everything; kDelete: path only
};

struct RepoRecord {
  std::string type;  // "model", "dataset", "space"
  std::string id;    // "ns/name"
  bool is_private = false;
  int64_t created_ms = 0;
  std::string sdk;  // spaces only
};

struct CommitRecord {
  std::string sha;
  std::string parent;  // empty for the first commit
  std::string title;
  std::string description;
  std::string author;
  int64_t created_ms = 0;
};

struct RefRecord {
  std::string name;
  std::string sha;
};

// A file of a repo snapshot. Regular files have `blob_sha256` (their content on disk); xet
// (LFS) files have `lfs_sha256` and `xet_hash`.
struct RepoFileRecord {
  std::string path;
  uint64_t size = 0;
  std::string oid;          // git blob sha1 (of the content, or of the LFS pointer)
  std::string blob_sha256;  // regular files
  std::string lfs_sha256;   // xet/LFS files
  std::string xet_hash;
  std::string last_commit;  // sha of the commit that last changed this path
};

struct RepoOp {
  enum class Kind { kPut, kDelete, kDeleteFolder };
  Kind kind = Kind::kPut;
  RepoFileRecord file;  // kPut: all but last_commit; deletes: path only
};

// Lower bound of a scan: paths > key, or >= key when `inclusive`.
struct ScanFrom {
  std::string key;
  bool inclusive = true;
};

class HubStore {
 public:
  ~HubStore();
  HubStore(const HubStore&) = delete;
  HubStore& operator=(const HubStore&) = delete;

  static Result<std::unique_ptr<HubStore>> open(const std::filesystem::path& data_dir);

  // 32 random bytes created on first open and kept in the database (signs Xet tokens).
  const std::string& secret() const { return secret_; }

  // --- buckets
  // false if the bucket already exists.
  Result<bool> createBucket(const std::string& id, bool is_private, int64_t now_ms);
  Result<std::optional<BucketRecord>> bucket(const std::string& id);
  Result<std::vector<BucketRecord>> listBuckets(const std::string& ns);
  // false if it did not exist. Removes its files.
  Result<bool> deleteBucket(const std::string& id);
  Result<std::optional<BucketFileRecord>> bucketFile(const std::string& id,
                                                     const std::string& path);
  // Files with from <= path < upper (upper empty: no bound), ordered by path, at most `limit`.
  Result<std::vector<BucketFileRecord>> scanBucket(const std::string& id, const ScanFrom& from,
                                                   const std::string& upper, size_t limit);
  // First file of the bucket carrying this xet hash, if any (copyFile source check).
  Result<std::optional<BucketFileRecord>> bucketFileByHash(const std::string& id,
                                                           const std::string& xet_hash);
  // Applies all ops in one transaction, in order.
  Status applyBucketOps(const std::string& id, const std::vector<BucketOp>& ops, int64_t now_ms);

  // Renames a bucket with its files. ENOENT if `from` is missing, EEXIST if `to` exists.
  Status moveBucket(const std::string& from, const std::string& to);

  // --- repos
  // Creates the repo with an initial commit holding `initial_files` on branch "main";
  // false if it already exists.
  Result<bool> createRepo(const RepoRecord& repo, const std::vector<RepoOp>& initial_files,
                          const std::string& author, int64_t now_ms);
  Result<std::optional<RepoRecord>> repo(const std::string& type, const std::string& id);
  Result<bool> deleteRepo(const std::string& type, const std::string& id);
  // Renames a repo with its history and refs. ENOENT if `from` is missing, EEXIST if `to` exists.
  Status moveRepo(const std::string& type, const std::string& from, const std::string& to);
  // Branch, tag, "refs/heads/x", "refs/tags/x" or a full 40-hex commit sha of this repo.
  Result<std::optional<std::string>> resolveRevision(const std::string& type, const std::string& id,
                                                     const std::string& revision);
  Result<std::optional<CommitRecord>> commitInfo(const std::string& sha);
  // Commits reachable from `sha` (newest first), skipping `skip`, at most `limit`.
  Result<std::vector<CommitRecord>> history(const std::string& sha, size_t skip, size_t limit);
  Result<std::vector<RefRecord>> branches(const std::string& type, const std::string& id);
  Result<std::vector<RefRecord>> tags(const std::string& type, const std::string& id);
  // Creates (or with `overwrite` moves) a ref; false if it exists and !overwrite.
  Result<bool> setRef(const std::string& type, const std::string& id, bool tag,
                      const std::string& name, const std::string& sha, bool overwrite);
  Result<bool> deleteRef(const std::string& type, const std::string& id, bool tag,
                         const std::string& name);

  Result<std::optional<RepoFileRecord>> repoFile(const std::string& sha, const std::string& path);
  Result<std::vector<RepoFileRecord>> scanRepo(const std::string& sha, const ScanFrom& from,
                                               const std::string& upper, size_t limit);
  // True if any commit of the repo holds a file with this xet hash.
  Result<bool> repoHasXetHash(const std::string& type, const std::string& id,
                              const std::string& xet_hash);
  // True if some repo file already holds an LFS object with this sha256 (LFS batch: uploaded).
  Result<bool> knownLfsObject(const std::string& sha256);

  // Appends a commit on `branch` whose parent is the branch head, applying `ops`. If
  // `expected_parent` is non-empty and differs from the head, fails with EAGAIN.
  Result<std::string> commit(const std::string& type, const std::string& id,
                             const std::string& branch, const std::string& expected_parent,
                             const std::string& title, const std::string& description,
                             const std::string& author, const std::vector<RepoOp>& ops,
                             int64_t now_ms);

  // Stores a regular file's bytes under blobs/ (idempotent); returns its sha256 hex.
  Result<std::string> putBlob(const std::string& content);
  std::filesystem::path blobPath(const std::string& sha256_hex) const;

 private:
  HubStore() = default;
  Status exec(const char* sql);
  Result<std::string> commitLocked(const std::string& rkey, const std::string& parent,
                                   const std::string& title, const std::string& description,
                                   const std::string& author, const std::vector<RepoOp>& ops,
                                   int64_t now_ms);

  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::filesystem::path dir_;
  std::string secret_;
};

// "model:ns/name": the key under which a repo's rows are stored.
std::string repoKey(const std::string& type, const std::string& id);

}  // namespace hfm::localhub
