// HandleTable: the stable NFS file identities of one mount source, kept across restarts.
//
// NFSv3 clients keep file handles for as long as they like (an open file, a cwd, the mount
// root) and expect them to keep naming the same file after the server restarts. Vfs inode
// numbers are per process, so the NFS layer gives every (path, kind) it hands out a stable id
// of its own, assigned from a counter and recorded in a small append-only file under the cache
// directory. After a restart the same file maps the id back to its path, which the server
// resolves again through Vfs::lookup from the root. The id is also the NFS fileid, so a file
// keeps its inode number across restarts as well.
//
// Contract:
//  - id 1 is the root directory (path ""). Ids are never reused, within a file's lifetime.
//  - A path that comes back as the other kind (file vs directory) gets a new id; the old id
//    keeps naming the old kind, so its handles turn stale instead of changing type.
//  - epoch() is a random 64-bit value chosen when the file is created; it goes into every
//    file handle, so handles from a deleted or replaced table (or another source) never
//    resolve to an unrelated file that happens to reuse an id.
//  - The file is locked (flock) by its process. If it is locked by another live mount of the
//    same source, or cannot be opened, the table works in memory only with a fresh epoch
//    (handles then last for this process only) and says so in the log.
//  - RENAME moves ids with their objects: rename() re-points the moved path (and, for a
//    directory, every recorded path below it) to the new name, so handles the client holds
//    keep working; the old name resolves to nothing until something new appears there (which
//    gets a new id). What the rename replaced, and what REMOVE / RMDIR deleted, is forgotten:
//    its handles answer NFS3ERR_STALE even if the name is later re-created.
//  - The file is a log: "<id> d|f <path>" assigns an id, "r d|f <old> <new>" renames,
//    "x d|f <path>" forgets, "v <id> <verifier>" records the CREATE EXCLUSIVE verifier of a
//    file, "n <id>" says the next id is at least <id>; loading replays it in order, so a
//    restart sees the same mapping.
//  - CREATE EXCLUSIVE: setCreateVerifier() keeps the client's verifier with the file's id (it
//    follows renames and is dropped with the id), so a retransmitted create finds it after a
//    restart as well (RFC 1813 §3.3.8).
//  - A torn last record (crash mid-append) is dropped on load. Records are not fsync'd: a
//    crash may lose the newest records, whose handles then answer NFS3ERR_STALE after restart
//    (or, for a lost rename, resolve to the old path, which no longer exists: also stale).
//  - Compaction: renames and deletions only add records, so when the log holds more than
//    twice the records a fresh copy of the live mapping would (and at least
//    options.compact_min_records), it is rewritten: the live records go to "<file>.compact"
//    (locked, fsync'd), which is renamed over the log, then the directory is fsync'd. The
//    rename is atomic, so a crash leaves the old log or the new one, both complete; a
//    leftover "<file>.compact" is deleted at open. Compaction runs at open and on the thread
//    whose append crossed the threshold; the mutex is held only to snapshot the mapping and
//    for the final rename, and records appended meanwhile go to both files.
//
// Thread-safety: every method may be called concurrently (one internal mutex; appends are
// one write(2) each while holding it; a compaction's file writes and fsyncs happen outside it,
// one compaction at a time).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::nfs {

inline constexpr uint64_t kRootHandleId = 1;

struct HandleRecord {
  uint64_t id = 0;
  bool is_dir = false;
  std::string path;                         // relative to the mount root, "" for the root
  std::optional<uint64_t> create_verifier;  // CREATE EXCLUSIVE verifier of a file, if any
};

struct HandleTableOptions {
  // A log shorter than this is never compacted (small logs are cheap to replay).
  size_t compact_min_records = 4096;
};

struct HandleTableStats {
  size_t log_records = 0;   // records in the log (not counting its header)
  size_t live_records = 0;  // records a compacted log would hold
  size_t compactions = 0;   // successful compactions by this process
};

class HandleTable {
 public:
  // Opens (or creates) the table for `key` (the mount source, e.g. "bucket ns/name") in
  // directory `dir`; the file is named after a hash of the key, and the key is stored in it
  // and checked. An empty `dir` gives an in-memory table.
  static std::unique_ptr<HandleTable> open(const std::filesystem::path& dir, const std::string& key,
                                           HandleTableOptions options = {});
  ~HandleTable();
  HandleTable(const HandleTable&) = delete;
  HandleTable& operator=(const HandleTable&) = delete;

  uint64_t epoch() const { return epoch_; }
  bool persistent() const { return fd_ >= 0; }
  const std::filesystem::path& file() const { return file_; }

  // The id of (path, kind), assigning and recording a new one when needed. If the record
  // cannot be appended the id still holds for this process (logged once).
  uint64_t idFor(const std::string& path, bool is_dir);
  std::optional<HandleRecord> find(uint64_t id) const;
  // The id of (path, kind) if it has one (never assigns).
  std::optional<uint64_t> idOf(const std::string& path, bool is_dir) const;
  size_t size() const;

  // Records the CREATE EXCLUSIVE verifier of file `id` (ignored for unknown ids).
  void setCreateVerifier(uint64_t id, uint64_t verifier);

  // `from` (of kind is_dir) was renamed to `to`: its id, and for a directory the ids of every
  // recorded path below it, now name the new paths. Ids recorded at or below `to` (what the
  // rename replaced) are forgotten first. Recorded in the log.
  void rename(const std::string& from, const std::string& to, bool is_dir);
  // `path` (of kind is_dir) was deleted: its id, and for a directory every id below it, stop
  // resolving. Recorded in the log.
  void forget(const std::string& path, bool is_dir);

  // Rewrites the log with the live records now, whatever its size (also done on its own, see
  // the contract). Fails when the table is in memory only or a compaction is running.
  Status compact();
  HandleTableStats stats() const;

  // The file name used for `key` inside the table directory.
  static std::string fileNameFor(const std::string& key);

 private:
  explicit HandleTable(HandleTableOptions options) : options_(options) {}
  void openFileLocked(const std::string& key);
  void loadLocked(const std::string& key);
  bool loadRecordLocked(const std::vector<std::string_view>& fields);
  void appendLocked(const HandleRecord& record);
  void appendLineLocked(const std::string& line);
  void renameLocked(const std::string& from, const std::string& to, bool is_dir);
  void forgetLocked(const std::string& path, bool is_dir);
  void eraseLocked(uint64_t id);
  bool setVerifierLocked(uint64_t id, uint64_t verifier);  // false for unknown ids, dirs
  std::string headerLocked() const;
  // The live mapping as a complete log; `records` receives its record count.
  std::string snapshotLocked(size_t* records) const;
  std::filesystem::path compactPath() const;  // "<file>.compact"
  size_t liveRecordsLocked() const;
  bool compactionDueLocked() const;
  // Compacts if the log has grown past the threshold (called after appends, without mu_).
  void compactIfDue();

  const HandleTableOptions options_;
  std::string key_;
  std::filesystem::path file_;
  int fd_ = -1;  // Replaced under mu_ by a compaction.
  uint64_t epoch_ = 0;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, HandleRecord> by_id_;    // Guarded by mu_.
  std::unordered_map<std::string, uint64_t> file_ids_;  // path → id of the file. mu_.
  std::unordered_map<std::string, uint64_t> dir_ids_;   // path → id of the dir. mu_.
  uint64_t next_id_ = kRootHandleId + 1;                // Guarded by mu_.
  bool append_failed_logged_ = false;                   // Guarded by mu_.
  size_t log_records_ = 0;                              // Guarded by mu_.
  size_t verifiers_ = 0;                                // records with a create_verifier. mu_.
  bool compacting_ = false;                             // Guarded by mu_.
  std::string compact_pending_;                         // records appended while compacting. mu_.
  size_t compact_pending_records_ = 0;                  // Guarded by mu_.
  size_t compactions_ = 0;                              // Guarded by mu_.
  size_t compact_retry_at_ = 0;  // log size before retrying a failed compaction. mu_.
};

}  // namespace hfm::nfs
