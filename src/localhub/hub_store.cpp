#include "hfm/localhub/hub_store.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <utility>

#include "hfm/util/hex.h"

namespace hfm::localhub {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS buckets(id TEXT PRIMARY KEY, private INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bucket_files(bucket TEXT NOT NULL, path TEXT NOT NULL,
  xet_hash TEXT NOT NULL, size INTEGER NOT NULL, mtime_ms INTEGER NOT NULL,
  uploaded_ms INTEGER NOT NULL, content_type TEXT NOT NULL,
  PRIMARY KEY(bucket, path)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bucket_files_hash ON bucket_files(bucket, xet_hash);
CREATE TABLE IF NOT EXISTS repos(rkey TEXT PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL,
  private INTEGER NOT NULL, created_ms INTEGER NOT NULL, sdk TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs(rkey TEXT NOT NULL, tag INTEGER NOT NULL, name TEXT NOT NULL,
  sha TEXT NOT NULL, PRIMARY KEY(rkey, tag, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits(sha TEXT PRIMARY KEY, rkey TEXT NOT NULL,
  parent TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL, author TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS commits_rkey ON commits(rkey);
CREATE TABLE IF NOT EXISTS repo_files(sha TEXT NOT NULL, path TEXT NOT NULL,
  size INTEGER NOT NULL, oid TEXT NOT NULL, blob_sha256 TEXT NOT NULL,
  lfs_sha256 TEXT NOT NULL, xet_hash TEXT NOT NULL, last_commit TEXT NOT NULL,
  PRIMARY KEY(sha, path)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_files_lfs ON repo_files(lfs_sha256);
CREATE INDEX IF NOT EXISTS repo_files_xet ON repo_files(xet_hash);
)sql";

// Minimal RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  std::string text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  Error error(const std::string& what) const {
    return Error::io(what + ": " + sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Runs a statement to completion (no rows expected).
Status run(Stmt& s, const std::string& what) {
  if (!s.ok()) return s.error(what);
  int rc = s.step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return s.error(what);
  return okStatus();
}

std::string sha256Hex(std::string_view data) {
  std::array<uint8_t, SHA256_DIGEST_LENGTH> d{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return util::toHex(d);
}

std::string sha1Hex(std::string_view data) {
  std::array<uint8_t, SHA_DIGEST_LENGTH> d{};
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return util::toHex(d);
}

BucketRecord readBucket(Stmt& s) {
  BucketRecord b;
  b.id = s.text(0);
  b.is_private = s.integer(1) != 0;
  b.created_ms = s.integer(2);
  b.updated_ms = s.integer(3);
  b.size = static_cast<uint64_t>(s.integer(4));
  b.total_files = static_cast<uint64_t>(s.integer(5));
  return b;
}

BucketFileRecord readBucketFile(Stmt& s) {
  BucketFileRecord f;
  f.path = s.text(0);
  f.xet_hash = s.text(1);
  f.size = static_cast<uint64_t>(s.integer(2));
  f.mtime_ms = s.integer(3);
  f.uploaded_ms = s.integer(4);
  f.content_type = s.text(5);
  return f;
}

RepoFileRecord readRepoFile(Stmt& s) {
  RepoFileRecord f;
  f.path = s.text(0);
  f.size = static_cast<uint64_t>(s.integer(1));
  f.oid = s.text(2);
  f.blob_sha256 = s.text(3);
  f.lfs_sha256 = s.text(4);
  f.xet_hash = s.text(5);
  f.last_commit = s.text(6);
  return f;
}

CommitRecord readCommit(Stmt& s) {
  CommitRecord c;
  c.sha = s.text(0);
  c.parent = s.text(1);
  c.title = s.text(2);
  c.description = s.text(3);
  c.author = s.text(4);
  c.created_ms = s.integer(5);
  return c;
}

constexpr const char* kBucketSelect =
    "SELECT b.id, b.private, b.created_ms, b.updated_ms,"
    " (SELECT COALESCE(SUM(size),0) FROM bucket_files f WHERE f.bucket=b.id),"
    " (SELECT COUNT(*) FROM bucket_files f WHERE f.bucket=b.id) FROM buckets b ";

Status fsyncPath(const std::filesystem::path& p, bool dir) {
  int fd = ::open(p.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Error(errno, "open " + p.string() + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Error(err, "fsync " + p.string() + ": " + std::strerror(err));
  return okStatus();
}

}  // namespace

std::string repoKey(const std::string& type, const std::string& id) { return type + ":" + id; }

HubStore::~HubStore() {
  if (db_ != nullptr) sqlite3_close(db_);
}

Status HubStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return Error::io(std::string("sqlite: ") + msg);
  }
  return okStatus();
}

Result<std::unique_ptr<HubStore>> HubStore::open(const std::filesystem::path& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir / "blobs", ec);
  if (ec)
    return Error(ec.value(),
                 "cannot create " + (data_dir / "blobs").string() + ": " + ec.message());
  std::unique_ptr<HubStore> store(new HubStore());
  store->dir_ = data_dir;
  auto db_path = (data_dir / "hub.db").string();
  if (sqlite3_open_v2(db_path.c_str(), &store->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    return Error::io("cannot open " + db_path + ": " +
                     (store->db_ != nullptr ? sqlite3_errmsg(store->db_) : "out of memory"));
  }
  sqlite3_busy_timeout(store->db_, 10000);
  HFM_TRY(store->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  HFM_TRY(store->exec(kSchema));

  Stmt get(store->db_, "SELECT value FROM meta WHERE key='token_secret'");
  if (!get.ok()) return get.error("read secret");
  if (get.step() == SQLITE_ROW) {
    store->secret_ = get.text(0);
  } else {
    std::array<unsigned char, 32> raw{};
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
      return Error::io("cannot generate the token secret");
    }
    store->secret_ = util::toHex(raw);
    Stmt put(store->db_, "INSERT INTO meta(key, value) VALUES('token_secret', ?)");
    put.bind(1, store->secret_);
    HFM_TRY(run(put, "store secret"));
  }
  return store;
}

// ---------------------------------------------------------------- buckets

Result<bool> HubStore::createBucket(const std::string& id, bool is_private, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT OR IGNORE INTO buckets(id, private, created_ms, updated_ms) "
         "VALUES(?,?,?,?)");
  s.bind(1, id).bind(2, int64_t{is_private}).bind(3, now_ms).bind(4, now_ms);
  HFM_TRY(run(s, "create bucket"));
  return sqlite3_changes(db_) > 0;
}

Result<std::optional<BucketRecord>> HubStore::bucket(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string(kBucketSelect) + "WHERE b.id=?").c_str());
  if (!s.ok()) return s.error("bucket");
  s.bind(1, id);
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<BucketRecord>(readBucket(s));
  if (rc != SQLITE_DONE) return s.error("bucket");
  return std::optional<BucketRecord>();
}

Result<std::vector<BucketRecord>> HubStore::listBuckets(const std::string& ns) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string(kBucketSelect) + "WHERE b.id >= ? AND b.id < ? ORDER BY b.id").c_str());
  if (!s.ok()) return s.error("list buckets");
  s.bind(1, ns + "/").bind(2, ns + "0");
  std::vector<BucketRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(readBucket(s));
  if (rc != SQLITE_DONE) return s.error("list buckets");
  return out;
}

Result<bool> HubStore::deleteBucket(const std::string& id) {
  std::lock_guard lock(mu_);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  Stmt files(db_, "DELETE FROM bucket_files WHERE bucket=?");
  files.bind(1, id);
  Stmt b(db_, "DELETE FROM buckets WHERE id=?");
  b.bind(1, id);
  if (auto st = run(files, "delete bucket files"); !st) {
    (void)exec("ROLLBACK");
    return st.error();
  }
  if (auto st = run(b, "delete bucket"); !st) {
    (void)exec("ROLLBACK");
    return st.error();
  }
  bool existed = sqlite3_changes(db_) > 0;
  HFM_TRY(exec("COMMIT"));
  return existed;
}

Result<std::optional<BucketFileRecord>> HubStore::bucketFile(const std::string& id,
                                                             const std::string& path) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT path, xet_hash, size, mtime_ms, uploaded_ms, content_type "
         "FROM bucket_files WHERE bucket=? AND path=?");
  if (!s.ok()) return s.error("bucket file");
  s.bind(1, id).bind(2, path);
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<BucketFileRecord>(readBucketFile(s));
  if (rc != SQLITE_DONE) return s.error("bucket file");
  return std::optional<BucketFileRecord>();
}

Result<std::optional<BucketFileRecord>> HubStore::bucketFileByHash(const std::string& id,
                                                                   const std::string& xet_hash) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT path, xet_hash, size, mtime_ms, uploaded_ms, content_type "
         "FROM bucket_files WHERE bucket=? AND xet_hash=? LIMIT 1");
  if (!s.ok()) return s.error("bucket file by hash");
  s.bind(1, id).bind(2, xet_hash);
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<BucketFileRecord>(readBucketFile(s));
  if (rc != SQLITE_DONE) return s.error("bucket file by hash");
  return std::optional<BucketFileRecord>();
}

Result<std::vector<BucketFileRecord>> HubStore::scanBucket(const std::string& id,
                                                           const ScanFrom& from,
                                                           const std::string& upper, size_t limit) {
  std::lock_guard lock(mu_);
  std::string sql =
      "SELECT path, xet_hash, size, mtime_ms, uploaded_ms, content_type FROM bucket_files "
      "WHERE bucket=? AND path ";
  sql += from.inclusive ? ">= ?" : "> ?";
  if (!upper.empty()) sql += " AND path < ?";
  sql += " ORDER BY path LIMIT ?";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return s.error("scan bucket");
  int i = 3;
  s.bind(1, id).bind(2, from.key);
  if (!upper.empty()) s.bind(i++, upper);
  s.bind(i, static_cast<int64_t>(limit));
  std::vector<BucketFileRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(readBucketFile(s));
  if (rc != SQLITE_DONE) return s.error("scan bucket");
  return out;
}

Status HubStore::applyBucketOps(const std::string& id, const std::vector<BucketOp>& ops,
                                int64_t now_ms) {
  std::lock_guard lock(mu_);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  auto fail = [&](Error e) {
    (void)exec("ROLLBACK");
    return e;
  };
  for (const auto& op : ops) {
    if (op.kind == BucketOp::Kind::kAdd) {
      Stmt s(db_,
             "INSERT OR REPLACE INTO bucket_files(bucket, path, xet_hash, size, mtime_ms, "
             "uploaded_ms, content_type) VALUES(?,?,?,?,?,?,?)");
      s.bind(1, id)
          .bind(2, op.file.path)
          .bind(3, op.file.xet_hash)
          .bind(4, static_cast<int64_t>(op.file.size))
          .bind(5, op.file.mtime_ms)
          .bind(6, op.file.uploaded_ms)
          .bind(7, op.file.content_type);
      if (auto st = run(s, "add bucket file"); !st) return fail(st.error());
    } else {
      Stmt s(db_, "DELETE FROM bucket_files WHERE bucket=? AND path=?");
      s.bind(1, id).bind(2, op.file.path);
      if (auto st = run(s, "delete bucket file"); !st) return fail(st.error());
    }
  }
  Stmt u(db_, "UPDATE buckets SET updated_ms=? WHERE id=?");
  u.bind(1, now_ms).bind(2, id);
  if (auto st = run(u, "touch bucket"); !st) return fail(st.error());
  HFM_TRY(exec("COMMIT"));
  return okStatus();
}

Status HubStore::moveBucket(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  auto fail = [&](Error e) {
    (void)exec("ROLLBACK");
    return e;
  };
  Stmt exists(db_,
              "SELECT (SELECT COUNT(*) FROM buckets WHERE id=?1),"
              " (SELECT COUNT(*) FROM buckets WHERE id=?2)");
  exists.bind(1, from).bind(2, to);
  if (exists.step() != SQLITE_ROW) return fail(exists.error("move bucket"));
  if (exists.integer(0) == 0) return fail(Error(ENOENT, "Bucket " + from + " not found"));
  if (exists.integer(1) != 0) return fail(Error(EEXIST, "Bucket " + to + " already exists"));
  for (const char* sql : {"UPDATE buckets SET id=?2 WHERE id=?1",
                          "UPDATE bucket_files SET bucket=?2 WHERE bucket=?1"}) {
    Stmt s(db_, sql);
    s.bind(1, from).bind(2, to);
    if (auto st = run(s, "move bucket"); !st) return fail(st.error());
  }
  HFM_TRY(exec("COMMIT"));
  return okStatus();
}

// ---------------------------------------------------------------- repos

Result<bool> HubStore::createRepo(const RepoRecord& repo, const std::vector<RepoOp>& initial_files,
                                  const std::string& author, int64_t now_ms) {
  std::lock_guard lock(mu_);
  std::string rkey = repoKey(repo.type, repo.id);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  auto fail = [&](Error e) {
    (void)exec("ROLLBACK");
    return e;
  };
  Stmt s(db_,
         "INSERT OR IGNORE INTO repos(rkey, type, id, private, created_ms, sdk) "
         "VALUES(?,?,?,?,?,?)");
  s.bind(1, rkey)
      .bind(2, repo.type)
      .bind(3, repo.id)
      .bind(4, int64_t{repo.is_private})
      .bind(5, now_ms)
      .bind(6, repo.sdk);
  if (auto st = run(s, "create repo"); !st) return fail(st.error());
  if (sqlite3_changes(db_) == 0) {
    (void)exec("ROLLBACK");
    return false;
  }
  auto sha = commitLocked(rkey, "", "initial commit", "", author, initial_files, now_ms);
  if (!sha) return fail(sha.error());
  Stmt ref(db_, "INSERT INTO refs(rkey, tag, name, sha) VALUES(?,0,'main',?)");
  ref.bind(1, rkey).bind(2, *sha);
  if (auto st = run(ref, "create main"); !st) return fail(st.error());
  HFM_TRY(exec("COMMIT"));
  return true;
}

Result<std::optional<RepoRecord>> HubStore::repo(const std::string& type, const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT type, id, private, created_ms, sdk FROM repos WHERE rkey=?");
  if (!s.ok()) return s.error("repo");
  s.bind(1, repoKey(type, id));
  int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<RepoRecord>();
  if (rc != SQLITE_ROW) return s.error("repo");
  RepoRecord r;
  r.type = s.text(0);
  r.id = s.text(1);
  r.is_private = s.integer(2) != 0;
  r.created_ms = s.integer(3);
  r.sdk = s.text(4);
  return std::optional<RepoRecord>(r);
}

Result<bool> HubStore::deleteRepo(const std::string& type, const std::string& id) {
  std::lock_guard lock(mu_);
  std::string rkey = repoKey(type, id);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  const char* sqls[] = {
      "DELETE FROM repo_files WHERE sha IN (SELECT sha FROM commits WHERE rkey=?1)",
      "DELETE FROM commits WHERE rkey=?1", "DELETE FROM refs WHERE rkey=?1",
      "DELETE FROM repos WHERE rkey=?1"};
  for (const char* sql : sqls) {
    Stmt s(db_, sql);
    s.bind(1, rkey);
    if (auto st = run(s, "delete repo"); !st) {
      (void)exec("ROLLBACK");
      return st.error();
    }
  }
  bool existed = sqlite3_changes(db_) > 0;
  HFM_TRY(exec("COMMIT"));
  return existed;
}

Status HubStore::moveRepo(const std::string& type, const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  std::string fk = repoKey(type, from);
  std::string tk = repoKey(type, to);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  auto fail = [&](Error e) {
    (void)exec("ROLLBACK");
    return e;
  };
  Stmt exists(db_,
              "SELECT (SELECT COUNT(*) FROM repos WHERE rkey=?1),"
              " (SELECT COUNT(*) FROM repos WHERE rkey=?2)");
  exists.bind(1, fk).bind(2, tk);
  if (exists.step() != SQLITE_ROW) return fail(exists.error("move repo"));
  if (exists.integer(0) == 0) return fail(Error(ENOENT, "Repository " + from + " not found"));
  if (exists.integer(1) != 0) return fail(Error(EEXIST, "Repository " + to + " already exists"));
  for (const char* sql :
       {"UPDATE repos SET rkey=?2, id=?3 WHERE rkey=?1", "UPDATE refs SET rkey=?2 WHERE rkey=?1",
        "UPDATE commits SET rkey=?2 WHERE rkey=?1"}) {
    Stmt s(db_, sql);
    s.bind(1, fk).bind(2, tk);
    if (std::string_view(sql).find("?3") != std::string_view::npos) s.bind(3, to);
    if (auto st = run(s, "move repo"); !st) return fail(st.error());
  }
  HFM_TRY(exec("COMMIT"));
  return okStatus();
}

Result<std::optional<std::string>> HubStore::resolveRevision(const std::string& type,
                                                             const std::string& id,
                                                             const std::string& revision) {
  std::lock_guard lock(mu_);
  std::string rkey = repoKey(type, id);
  std::string name = revision;
  int kind = -1;  // -1: branch then tag
  if (name.starts_with("refs/heads/")) {
    name = name.substr(11);
    kind = 0;
  } else if (name.starts_with("refs/tags/")) {
    name = name.substr(10);
    kind = 1;
  }
  for (int tag = 0; tag <= 1; ++tag) {
    if (kind >= 0 && kind != tag) continue;
    Stmt s(db_, "SELECT sha FROM refs WHERE rkey=? AND tag=? AND name=?");
    if (!s.ok()) return s.error("resolve revision");
    s.bind(1, rkey).bind(2, int64_t{tag}).bind(3, name);
    if (s.step() == SQLITE_ROW) return std::optional<std::string>(s.text(0));
  }
  if (revision.size() == 40) {
    Stmt s(db_, "SELECT sha FROM commits WHERE sha=? AND rkey=?");
    if (!s.ok()) return s.error("resolve revision");
    std::string lower = revision;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    s.bind(1, lower).bind(2, rkey);
    if (s.step() == SQLITE_ROW) return std::optional<std::string>(s.text(0));
  }
  return std::optional<std::string>();
}

Result<std::optional<CommitRecord>> HubStore::commitInfo(const std::string& sha) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT sha, parent, title, description, author, created_ms FROM commits "
         "WHERE sha=?");
  if (!s.ok()) return s.error("commit");
  s.bind(1, sha);
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<CommitRecord>(readCommit(s));
  if (rc != SQLITE_DONE) return s.error("commit");
  return std::optional<CommitRecord>();
}

Result<std::vector<CommitRecord>> HubStore::history(const std::string& sha, size_t skip,
                                                    size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<CommitRecord> out;
  std::string cur = sha;
  size_t index = 0;
  while (!cur.empty() && out.size() < limit) {
    Stmt s(db_,
           "SELECT sha, parent, title, description, author, created_ms FROM commits "
           "WHERE sha=?");
    if (!s.ok()) return s.error("history");
    s.bind(1, cur);
    if (s.step() != SQLITE_ROW) break;
    CommitRecord c = readCommit(s);
    cur = c.parent;
    if (index++ >= skip) out.push_back(std::move(c));
  }
  return out;
}

static Result<std::vector<RefRecord>> listRefs(sqlite3* db, const std::string& rkey, int tag) {
  Stmt s(db, "SELECT name, sha FROM refs WHERE rkey=? AND tag=? ORDER BY name");
  if (!s.ok()) return s.error("refs");
  s.bind(1, rkey).bind(2, int64_t{tag});
  std::vector<RefRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.text(0), s.text(1)});
  if (rc != SQLITE_DONE) return s.error("refs");
  return out;
}

Result<std::vector<RefRecord>> HubStore::branches(const std::string& type, const std::string& id) {
  std::lock_guard lock(mu_);
  return listRefs(db_, repoKey(type, id), 0);
}

Result<std::vector<RefRecord>> HubStore::tags(const std::string& type, const std::string& id) {
  std::lock_guard lock(mu_);
  return listRefs(db_, repoKey(type, id), 1);
}

Result<bool> HubStore::setRef(const std::string& type, const std::string& id, bool tag,
                              const std::string& name, const std::string& sha, bool overwrite) {
  std::lock_guard lock(mu_);
  Stmt s(db_, overwrite ? "INSERT OR REPLACE INTO refs(rkey, tag, name, sha) VALUES(?,?,?,?)"
                        : "INSERT OR IGNORE INTO refs(rkey, tag, name, sha) VALUES(?,?,?,?)");
  s.bind(1, repoKey(type, id)).bind(2, int64_t{tag}).bind(3, name).bind(4, sha);
  HFM_TRY(run(s, "set ref"));
  return sqlite3_changes(db_) > 0;
}

Result<bool> HubStore::deleteRef(const std::string& type, const std::string& id, bool tag,
                                 const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM refs WHERE rkey=? AND tag=? AND name=?");
  s.bind(1, repoKey(type, id)).bind(2, int64_t{tag}).bind(3, name);
  HFM_TRY(run(s, "delete ref"));
  return sqlite3_changes(db_) > 0;
}

Result<std::optional<RepoFileRecord>> HubStore::repoFile(const std::string& sha,
                                                         const std::string& path) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT path, size, oid, blob_sha256, lfs_sha256, xet_hash, last_commit "
         "FROM repo_files WHERE sha=? AND path=?");
  if (!s.ok()) return s.error("repo file");
  s.bind(1, sha).bind(2, path);
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<RepoFileRecord>(readRepoFile(s));
  if (rc != SQLITE_DONE) return s.error("repo file");
  return std::optional<RepoFileRecord>();
}

Result<std::vector<RepoFileRecord>> HubStore::scanRepo(const std::string& sha, const ScanFrom& from,
                                                       const std::string& upper, size_t limit) {
  std::lock_guard lock(mu_);
  std::string sql =
      "SELECT path, size, oid, blob_sha256, lfs_sha256, xet_hash, last_commit FROM repo_files "
      "WHERE sha=? AND path ";
  sql += from.inclusive ? ">= ?" : "> ?";
  if (!upper.empty()) sql += " AND path < ?";
  sql += " ORDER BY path LIMIT ?";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return s.error("scan repo");
  int i = 3;
  s.bind(1, sha).bind(2, from.key);
  if (!upper.empty()) s.bind(i++, upper);
  s.bind(i, static_cast<int64_t>(limit));
  std::vector<RepoFileRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(readRepoFile(s));
  if (rc != SQLITE_DONE) return s.error("scan repo");
  return out;
}

Result<bool> HubStore::repoHasXetHash(const std::string& type, const std::string& id,
                                      const std::string& xet_hash) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT 1 FROM repo_files f JOIN commits c ON f.sha=c.sha "
         "WHERE f.xet_hash=? AND c.rkey=? LIMIT 1");
  if (!s.ok()) return s.error("repo hash");
  s.bind(1, xet_hash).bind(2, repoKey(type, id));
  return s.step() == SQLITE_ROW;
}

Result<bool> HubStore::knownLfsObject(const std::string& sha256) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT 1 FROM repo_files WHERE lfs_sha256=? LIMIT 1");
  if (!s.ok()) return s.error("lfs object");
  s.bind(1, sha256);
  return s.step() == SQLITE_ROW;
}

Result<std::string> HubStore::commitLocked(const std::string& rkey, const std::string& parent,
                                           const std::string& title, const std::string& description,
                                           const std::string& author,
                                           const std::vector<RepoOp>& ops, int64_t now_ms) {
  std::array<unsigned char, 16> nonce{};
  RAND_bytes(nonce.data(), static_cast<int>(nonce.size()));
  std::string material = rkey + "\n" + parent + "\n" + title + "\n" + description + "\n" + author +
                         "\n" + std::to_string(now_ms) + "\n" + util::toHex(nonce);
  for (const auto& op : ops) material += "\n" + op.file.path + " " + op.file.oid;
  std::string sha = sha1Hex(material);

  if (!parent.empty()) {
    Stmt copy(db_,
              "INSERT INTO repo_files SELECT ?, path, size, oid, blob_sha256, lfs_sha256, "
              "xet_hash, last_commit FROM repo_files WHERE sha=?");
    copy.bind(1, sha).bind(2, parent);
    HFM_TRY(run(copy, "copy tree"));
  }
  for (const auto& op : ops) {
    if (op.kind == RepoOp::Kind::kPut) {
      // Git trees cannot hold a file and a folder of the same name.
      const std::string& p = op.file.path;
      for (auto slash = p.find('/'); slash != std::string::npos; slash = p.find('/', slash + 1)) {
        Stmt parent_file(db_, "SELECT 1 FROM repo_files WHERE sha=? AND path=?");
        parent_file.bind(1, sha).bind(2, p.substr(0, slash));
        if (parent_file.step() == SQLITE_ROW) {
          return Error(EEXIST, "cannot add " + p + ": " + p.substr(0, slash) + " is a file");
        }
      }
      Stmt children(db_, "SELECT 1 FROM repo_files WHERE sha=? AND path>=? AND path<? LIMIT 1");
      children.bind(1, sha).bind(2, p + "/").bind(3, p + "0");
      if (children.step() == SQLITE_ROW) {
        return Error(EEXIST, "cannot add " + p + ": it is a folder");
      }
      Stmt s(db_,
             "INSERT OR REPLACE INTO repo_files(sha, path, size, oid, blob_sha256, "
             "lfs_sha256, xet_hash, last_commit) VALUES(?,?,?,?,?,?,?,?)");
      s.bind(1, sha)
          .bind(2, op.file.path)
          .bind(3, static_cast<int64_t>(op.file.size))
          .bind(4, op.file.oid)
          .bind(5, op.file.blob_sha256)
          .bind(6, op.file.lfs_sha256)
          .bind(7, op.file.xet_hash)
          .bind(8, sha);
      HFM_TRY(run(s, "put file"));
    } else if (op.kind == RepoOp::Kind::kDelete) {
      Stmt s(db_, "DELETE FROM repo_files WHERE sha=? AND path=?");
      s.bind(1, sha).bind(2, op.file.path);
      HFM_TRY(run(s, "delete file"));
    } else {
      Stmt s(db_, "DELETE FROM repo_files WHERE sha=? AND path>=? AND path<?");
      s.bind(1, sha).bind(2, op.file.path + "/").bind(3, op.file.path + "0");
      HFM_TRY(run(s, "delete folder"));
    }
  }
  Stmt c(db_,
         "INSERT INTO commits(sha, rkey, parent, title, description, author, created_ms) "
         "VALUES(?,?,?,?,?,?,?)");
  c.bind(1, sha)
      .bind(2, rkey)
      .bind(3, parent)
      .bind(4, title)
      .bind(5, description)
      .bind(6, author)
      .bind(7, now_ms);
  HFM_TRY(run(c, "insert commit"));
  return sha;
}

Result<std::string> HubStore::commit(const std::string& type, const std::string& id,
                                     const std::string& branch, const std::string& expected_parent,
                                     const std::string& title, const std::string& description,
                                     const std::string& author, const std::vector<RepoOp>& ops,
                                     int64_t now_ms) {
  std::lock_guard lock(mu_);
  std::string rkey = repoKey(type, id);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  auto fail = [&](Error e) {
    (void)exec("ROLLBACK");
    return e;
  };
  Stmt head(db_, "SELECT sha FROM refs WHERE rkey=? AND tag=0 AND name=?");
  head.bind(1, rkey).bind(2, branch);
  if (head.step() != SQLITE_ROW) {
    return fail(Error(ENOENT, "Invalid rev id: " + branch));
  }
  std::string parent = head.text(0);
  if (!expected_parent.empty() && expected_parent != parent) {
    return fail(Error(EAGAIN, "A commit has happened since " + expected_parent +
                                  ". Please refresh and try again."));
  }
  auto sha = commitLocked(rkey, parent, title, description, author, ops, now_ms);
  if (!sha) return fail(sha.error());
  Stmt up(db_, "UPDATE refs SET sha=? WHERE rkey=? AND tag=0 AND name=?");
  up.bind(1, *sha).bind(2, rkey).bind(3, branch);
  if (auto st = run(up, "move branch"); !st) return fail(st.error());
  HFM_TRY(exec("COMMIT"));
  return *sha;
}

std::filesystem::path HubStore::blobPath(const std::string& sha256_hex) const {
  return dir_ / "blobs" / sha256_hex.substr(0, 2) / sha256_hex;
}

Result<std::string> HubStore::putBlob(const std::string& content) {
  std::string hex = sha256Hex(content);
  auto path = blobPath(hex);
  std::error_code ec;
  if (std::filesystem::file_size(path, ec) == content.size() && !ec) return hex;
  auto dir = path.parent_path();
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ec.value(), "create " + dir.string() + ": " + ec.message());
  std::array<unsigned char, 8> rnd{};
  RAND_bytes(rnd.data(), static_cast<int>(rnd.size()));
  auto tmp = dir / (".tmp-" + hex + "-" + util::toHex(rnd));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Error(errno, "create " + tmp.string() + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error(err, "write " + tmp.string() + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error(err, "fsync " + tmp.string() + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error(err, "rename " + tmp.string() + ": " + std::strerror(err));
  }
  HFM_TRY(fsyncPath(dir, true));
  return hex;
}

}  // namespace hfm::localhub
