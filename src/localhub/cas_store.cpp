#include "hfm/localhub/cas_store.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "hfm/util/log.h"

namespace hfm::localhub {
namespace {

namespace fs = std::filesystem;
using xet::MerkleHash;

int64_t nowSecs() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Error sysError(const std::string& what) {
  int err = errno;
  return {EIO, what + ": " + std::strerror(err)};
}

Status fsyncPath(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return sysError("open " + path.string());
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return sysError("fsync " + path.string());
  return okStatus();
}

Status ensureDir(const fs::path& dir) {
  if (fs::is_directory(dir)) return okStatus();
  if (dir.has_parent_path() && dir.parent_path() != dir) HFM_TRY(ensureDir(dir.parent_path()));
  std::error_code ec;
  fs::create_directory(dir, ec);
  if (ec) return Error(EIO, "mkdir " + dir.string() + ": " + ec.message());
  // The new entry must survive a crash before anything inside it is relied upon.
  if (dir.has_parent_path()) HFM_TRY(fsyncPath(dir.parent_path(), O_RDONLY | O_DIRECTORY));
  return okStatus();
}

// --- SQLite helpers -------------------------------------------------------------------------

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Error error(const std::string& what) const {
    return {EIO, "sqlite " + what + ": " + sqlite3_errmsg(db_)};
  }
  void bindBlob(int i, const void* data, size_t n) {
    sqlite3_bind_blob64(stmt_, i, data, n, SQLITE_TRANSIENT);
  }
  void bindHash(int i, const MerkleHash& h) { bindBlob(i, h.raw().data(), MerkleHash::kSize); }
  void bindText(int i, const std::string& s) {
    sqlite3_bind_text64(stmt_, i, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  void bindNull(int i) { sqlite3_bind_null(stmt_, i); }
  void bindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  int step() { return sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t colInt(int i) { return sqlite3_column_int64(stmt_, i); }
  std::string_view colBlob(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    auto n = static_cast<size_t>(sqlite3_column_bytes(stmt_, i));
    return p ? std::string_view(static_cast<const char*>(p), n) : std::string_view();
  }
  std::string colText(int i) {
    const unsigned char* p = sqlite3_column_text(stmt_, i);
    auto n = static_cast<size_t>(sqlite3_column_bytes(stmt_, i));
    return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

template <typename T>
std::string packU32(const std::vector<T>& values) {
  std::string out(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    auto v = static_cast<uint32_t>(values[i]);
    std::memcpy(out.data() + 4 * i, &v, 4);  // little-endian hosts only (see merkle_hash.cpp)
  }
  return out;
}

std::vector<uint32_t> unpackU32(std::string_view blob) {
  std::vector<uint32_t> out(blob.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) std::memcpy(&out[i], blob.data() + 4 * i, 4);
  return out;
}

std::string packHashes(const std::vector<MerkleHash>& hashes) {
  std::string out;
  out.reserve(hashes.size() * MerkleHash::kSize);
  for (const auto& h : hashes) out.append(reinterpret_cast<const char*>(h.raw().data()), 32);
  return out;
}

MerkleHash hashAt(std::string_view blob, size_t offset) {
  return MerkleHash::fromRaw(
      std::span(reinterpret_cast<const uint8_t*>(blob.data()) + offset, MerkleHash::kSize));
}

// Terms are packed as 44-byte records: xorb hash, chunk start, chunk end, unpacked bytes.
constexpr size_t kTermRecord = 44;

std::string packTerms(const std::vector<CasTerm>& terms) {
  std::string out(terms.size() * kTermRecord, '\0');
  for (size_t i = 0; i < terms.size(); ++i) {
    char* p = out.data() + i * kTermRecord;
    std::memcpy(p, terms[i].xorb.raw().data(), 32);
    std::memcpy(p + 32, &terms[i].chunk_start, 4);
    std::memcpy(p + 36, &terms[i].chunk_end, 4);
    std::memcpy(p + 40, &terms[i].unpacked_bytes, 4);
  }
  return out;
}

std::vector<CasTerm> unpackTerms(std::string_view blob) {
  std::vector<CasTerm> out(blob.size() / kTermRecord);
  for (size_t i = 0; i < out.size(); ++i) {
    const char* p = blob.data() + i * kTermRecord;
    out[i].xorb = hashAt(blob, i * kTermRecord);
    std::memcpy(&out[i].chunk_start, p + 32, 4);
    std::memcpy(&out[i].chunk_end, p + 36, 4);
    std::memcpy(&out[i].unpacked_bytes, p + 40, 4);
  }
  return out;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS xorbs (
  hash BLOB PRIMARY KEY, serialized_size INTEGER NOT NULL, unpacked_size INTEGER NOT NULL,
  num_chunks INTEGER NOT NULL, chunk_ends BLOB NOT NULL, unpacked_ends BLOB NOT NULL,
  chunk_hashes BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
  hash BLOB PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT, terms BLOB NOT NULL,
  shard BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files(sha256) WHERE sha256 IS NOT NULL;
CREATE TABLE IF NOT EXISTS shards (
  id BLOB PRIMARY KEY, size INTEGER NOT NULL, num_files INTEGER NOT NULL,
  created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  hash BLOB PRIMARY KEY, xorb BLOB NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_xorbs (
  xorb BLOB PRIMARY KEY, shard BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_xorbs_by_shard ON dedup_xorbs(shard);
)sql";

constexpr size_t kXorbCacheEntries = 4096;

// Temp files of writes cut short by a crash ("<name>.tmp.<pid>.<n>"); never referenced.
void removeStaleTempFiles(const fs::path& cas_dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(cas_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) &&
        it->path().filename().string().find(".tmp.") != std::string::npos) {
      fs::remove(it->path(), ec);
    }
  }
}

}  // namespace

Status writeFileDurably(const fs::path& path, std::string_view data) {
  static std::atomic<uint64_t> counter{0};
  HFM_TRY(ensureDir(path.parent_path()));
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sysError("create " + tmp.string());
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto err = sysError("write " + tmp.string());
      ::close(fd);
      ::unlink(tmp.c_str());
      return err;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto err = sysError("fsync " + tmp.string());
    ::close(fd);
    ::unlink(tmp.c_str());
    return err;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = sysError("rename " + tmp.string());
    ::unlink(tmp.c_str());
    return err;
  }
  return fsyncPath(path.parent_path(), O_RDONLY | O_DIRECTORY);
}

CasStore::~CasStore() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<CasStore>> CasStore::open(const fs::path& cas_dir) {
  HFM_TRY(ensureDir(cas_dir));
  HFM_TRY(ensureDir(cas_dir / "xorbs"));
  HFM_TRY(ensureDir(cas_dir / "shards"));
  removeStaleTempFiles(cas_dir);
  sqlite3* db = nullptr;
  auto db_path = cas_dir / "index.sqlite";
  int rc =
      sqlite3_open_v2(db_path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Error(EIO, "open " + db_path.string() + ": " + msg);
  }
  std::unique_ptr<CasStore> store(new CasStore(cas_dir, db));
  sqlite3_busy_timeout(db, 10000);
  HFM_TRY(store->exec("PRAGMA journal_mode=WAL"));
  HFM_TRY(store->exec("PRAGMA synchronous=FULL"));
  HFM_TRY(store->exec(kSchema));
  return store;
}

Status CasStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Error(EIO, std::string("sqlite: ") + msg);
  }
  return okStatus();
}

fs::path CasStore::xorbPath(const MerkleHash& hash) const {
  std::string hex = hash.hex();
  return dir_ / "xorbs" / hex.substr(0, 2) / (hex + ".xorb");
}

Result<bool> CasStore::putXorb(const CasXorb& xorb, std::string_view stored) {
  {
    std::lock_guard lock(mu_);
    if (xorb_cache_.count(xorb.hash)) return false;
    Stmt q(db_, "SELECT 1 FROM xorbs WHERE hash = ?");
    if (!q.ok()) return q.error("prepare");
    q.bindHash(1, xorb.hash);
    if (q.step() == SQLITE_ROW) return false;
  }
  // The blob is complete on disk before its row exists; concurrent writers of the same xorb
  // rename identical content over each other.
  HFM_TRY(writeFileDurably(xorbPath(xorb.hash), stored));
  std::lock_guard lock(mu_);
  Stmt ins(db_,
           "INSERT OR IGNORE INTO xorbs (hash, serialized_size, unpacked_size, num_chunks, "
           "chunk_ends, unpacked_ends, chunk_hashes, created_at) VALUES (?,?,?,?,?,?,?,?)");
  if (!ins.ok()) return ins.error("prepare");
  std::string ends = packU32(xorb.chunk_ends);
  std::string unpacked = packU32(xorb.unpacked_ends);
  std::string hashes = packHashes(xorb.chunk_hashes);
  ins.bindHash(1, xorb.hash);
  ins.bindInt(2, static_cast<int64_t>(xorb.serializedSize()));
  ins.bindInt(3, static_cast<int64_t>(xorb.unpackedSize()));
  ins.bindInt(4, static_cast<int64_t>(xorb.numChunks()));
  ins.bindBlob(5, ends.data(), ends.size());
  ins.bindBlob(6, unpacked.data(), unpacked.size());
  ins.bindBlob(7, hashes.data(), hashes.size());
  ins.bindInt(8, nowSecs());
  if (ins.step() != SQLITE_DONE) return ins.error("insert xorb");
  return sqlite3_changes(db_) > 0;
}

Result<std::shared_ptr<const CasXorb>> CasStore::getXorb(const MerkleHash& hash) {
  std::lock_guard lock(mu_);
  if (auto it = xorb_cache_.find(hash); it != xorb_cache_.end()) return it->second;
  Stmt q(db_, "SELECT chunk_ends, unpacked_ends, chunk_hashes FROM xorbs WHERE hash = ?");
  if (!q.ok()) return q.error("prepare");
  q.bindHash(1, hash);
  int rc = q.step();
  if (rc == SQLITE_DONE) return std::shared_ptr<const CasXorb>();
  if (rc != SQLITE_ROW) return q.error("select xorb");
  auto xorb = std::make_shared<CasXorb>();
  xorb->hash = hash;
  xorb->chunk_ends = unpackU32(q.colBlob(0));
  xorb->unpacked_ends = unpackU32(q.colBlob(1));
  std::string_view hashes = q.colBlob(2);
  for (size_t off = 0; off + MerkleHash::kSize <= hashes.size(); off += MerkleHash::kSize) {
    xorb->chunk_hashes.push_back(hashAt(hashes, off));
  }
  if (xorb->chunk_hashes.size() != xorb->chunk_ends.size() ||
      xorb->unpacked_ends.size() != xorb->chunk_ends.size()) {
    return Error(EIO, "corrupt xorb row " + hash.hex());
  }
  if (xorb_cache_.size() >= kXorbCacheEntries) xorb_cache_.clear();
  xorb_cache_.emplace(hash, xorb);
  return std::shared_ptr<const CasXorb>(xorb);
}

Result<bool> CasStore::hasShard(const MerkleHash& shard_id) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT 1 FROM shards WHERE id = ?");
  if (!q.ok()) return q.error("prepare");
  q.bindHash(1, shard_id);
  return q.step() == SQLITE_ROW;
}

Result<bool> CasStore::commitShard(const CasShardCommit& commit) {
  auto shard_path = dir_ / "shards" / (commit.shard_id.hex() + ".shard");
  HFM_TRY(writeFileDurably(shard_path, commit.body));

  std::lock_guard lock(mu_);
  HFM_TRY(exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> Result<bool> {
    bool inserted = false;
    Stmt shard(db_,
               "INSERT OR IGNORE INTO shards (id, size, num_files, created_at) VALUES (?,?,?,?)");
    if (!shard.ok()) return shard.error("prepare");
    shard.bindHash(1, commit.shard_id);
    shard.bindInt(2, static_cast<int64_t>(commit.body.size()));
    shard.bindInt(3, static_cast<int64_t>(commit.files.size()));
    shard.bindInt(4, nowSecs());
    if (shard.step() != SQLITE_DONE) return shard.error("insert shard");
    inserted |= sqlite3_changes(db_) > 0;
    for (const auto& file : commit.files) {
      Stmt ins(db_,
               "INSERT OR IGNORE INTO files (hash, size, sha256, terms, shard) "
               "VALUES (?,?,?,?,?)");
      if (!ins.ok()) return ins.error("prepare");
      std::string terms = packTerms(file.terms);
      ins.bindHash(1, file.hash);
      ins.bindInt(2, static_cast<int64_t>(file.size));
      if (file.sha256_hex.empty()) {
        ins.bindNull(3);
      } else {
        ins.bindText(3, file.sha256_hex);
      }
      ins.bindBlob(4, terms.data(), terms.size());
      ins.bindHash(5, commit.shard_id);
      if (ins.step() != SQLITE_DONE) return ins.error("insert file");
      inserted |= sqlite3_changes(db_) > 0;
      // A file first registered without a SHA-256 (bucket upload) gains one from a later
      // shard that carries it (repo upload of the same bytes).
      if (!file.sha256_hex.empty()) {
        Stmt upd(db_, "UPDATE files SET sha256 = ? WHERE hash = ? AND sha256 IS NULL");
        if (!upd.ok()) return upd.error("prepare");
        upd.bindText(1, file.sha256_hex);
        upd.bindHash(2, file.hash);
        if (upd.step() != SQLITE_DONE) return upd.error("update file sha256");
      }
    }
    for (const auto& xorb_hash : commit.dedup_xorbs) {
      Stmt xq(db_, "SELECT chunk_hashes FROM xorbs WHERE hash = ?");
      if (!xq.ok()) return xq.error("prepare");
      xq.bindHash(1, xorb_hash);
      if (xq.step() != SQLITE_ROW) continue;
      std::string hashes(xq.colBlob(0));
      Stmt reg(db_, "INSERT OR IGNORE INTO dedup_xorbs (xorb, shard) VALUES (?,?)");
      if (!reg.ok()) return reg.error("prepare");
      reg.bindHash(1, xorb_hash);
      reg.bindHash(2, commit.shard_id);
      if (reg.step() != SQLITE_DONE) return reg.error("insert dedup xorb");
      Stmt ins(db_, "INSERT OR IGNORE INTO chunks (hash, xorb, idx) VALUES (?,?,?)");
      if (!ins.ok()) return ins.error("prepare");
      for (size_t i = 0; i * 32 < hashes.size(); ++i) {
        ins.bindBlob(1, hashes.data() + i * 32, 32);
        ins.bindHash(2, xorb_hash);
        ins.bindInt(3, static_cast<int64_t>(i));
        if (ins.step() != SQLITE_DONE) return ins.error("insert chunk");
        ins.reset();
      }
    }
    return inserted;
  }();
  if (!body) {
    (void)exec("ROLLBACK");
    return body.error();
  }
  HFM_TRY(exec("COMMIT"));
  return body.value();
}

Result<std::optional<CasFile>> CasStore::getFile(const MerkleHash& file_hash) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT size, sha256, terms FROM files WHERE hash = ?");
  if (!q.ok()) return q.error("prepare");
  q.bindHash(1, file_hash);
  int rc = q.step();
  if (rc == SQLITE_DONE) return std::optional<CasFile>();
  if (rc != SQLITE_ROW) return q.error("select file");
  CasFile file;
  file.hash = file_hash;
  file.size = static_cast<uint64_t>(q.colInt(0));
  file.sha256_hex = q.colText(1);
  file.terms = unpackTerms(q.colBlob(2));
  return std::optional<CasFile>(std::move(file));
}

Result<std::optional<MerkleHash>> CasStore::fileForSha256(const std::string& sha256_hex) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT hash FROM files WHERE sha256 = ? LIMIT 1");
  if (!q.ok()) return q.error("prepare");
  q.bindText(1, sha256_hex);
  if (q.step() != SQLITE_ROW) return std::optional<MerkleHash>();
  return std::optional<MerkleHash>(hashAt(q.colBlob(0), 0));
}

Result<std::optional<MerkleHash>> CasStore::xorbForChunk(const MerkleHash& chunk_hash) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT xorb FROM chunks WHERE hash = ?");
  if (!q.ok()) return q.error("prepare");
  q.bindHash(1, chunk_hash);
  if (q.step() != SQLITE_ROW) return std::optional<MerkleHash>();
  return std::optional<MerkleHash>(hashAt(q.colBlob(0), 0));
}

Result<std::vector<MerkleHash>> CasStore::dedupXorbsForChunk(const MerkleHash& chunk_hash,
                                                             size_t max_xorbs) {
  std::vector<MerkleHash> out;
  if (max_xorbs == 0) return out;
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT xorb FROM chunks WHERE hash = ?");
  if (!q.ok()) return q.error("prepare");
  q.bindHash(1, chunk_hash);
  if (q.step() != SQLITE_ROW) return out;
  const MerkleHash first = hashAt(q.colBlob(0), 0);
  out.push_back(first);
  // The other xorbs the same shard registered, in a stable order. Xorbs registered before this
  // table existed have no row: the answer is then their own xorb only.
  Stmt others(db_,
              "SELECT xorb FROM dedup_xorbs WHERE shard = "
              "(SELECT shard FROM dedup_xorbs WHERE xorb = ?) ORDER BY xorb LIMIT ?");
  if (!others.ok()) return others.error("prepare");
  others.bindHash(1, first);
  others.bindInt(2, static_cast<int64_t>(max_xorbs));
  for (int rc = others.step(); rc == SQLITE_ROW && out.size() < max_xorbs; rc = others.step()) {
    const MerkleHash x = hashAt(others.colBlob(0), 0);
    if (x != first) out.push_back(x);
  }
  return out;
}

Result<std::string> CasStore::secret(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT value FROM meta WHERE name = ?");
  if (!q.ok()) return q.error("prepare");
  q.bindText(1, name);
  if (q.step() == SQLITE_ROW && q.colBlob(0).size() == 32) return std::string(q.colBlob(0));
  std::string value(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(value.data()), 32) != 1) {
    return Error(EIO, "RAND_bytes failed");
  }
  Stmt ins(db_, "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)");
  if (!ins.ok()) return ins.error("prepare");
  ins.bindText(1, name);
  ins.bindBlob(2, value.data(), value.size());
  if (ins.step() != SQLITE_DONE) return ins.error("insert secret");
  return value;
}

}  // namespace hfm::localhub
