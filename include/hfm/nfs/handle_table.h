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
//    "x d|f <path>" forgets; loading replays it in order, so a restart sees the same mapping.
//  - A torn last record (crash mid-append) is dropped on load. Records are not fsync'd: a
//    crash may lose the newest records, whose handles then answer NFS3ERR_STALE after restart
//    (or, for a lost rename, resolve to the old path, which no longer exists: also stale).
//
// Thread-safety: every method may be called concurrently (one internal mutex; appends are
// one write(2) each while holding it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::nfs {

inline constexpr uint64_t kRootHandleId = 1;

struct HandleRecord {
  uint64_t id = 0;
  bool is_dir = false;
  std::string path;  // relative to the mount root, "" for the root
};

class HandleTable {
 public:
  // Opens (or creates) the table for `key` (the mount source, e.g. "bucket ns/name") in
  // directory `dir`; the file is named after a hash of the key, and the key is stored in it
  // and checked. An empty `dir` gives an in-memory table.
  static std::unique_ptr<HandleTable> open(const std::filesystem::path& dir,
                                           const std::string& key);
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
  size_t size() const;

  // `from` (of kind is_dir) was renamed to `to`: its id, and for a directory the ids of every
  // recorded path below it, now name the new paths. Ids recorded at or below `to` (what the
  // rename replaced) are forgotten first. Recorded in the log.
  void rename(const std::string& from, const std::string& to, bool is_dir);
  // `path` (of kind is_dir) was deleted: its id, and for a directory every id below it, stop
  // resolving. Recorded in the log.
  void forget(const std::string& path, bool is_dir);

  // The file name used for `key` inside the table directory.
  static std::string fileNameFor(const std::string& key);

 private:
  HandleTable() = default;
  void loadLocked(const std::string& key);
  void appendLocked(const HandleRecord& record);
  void appendLineLocked(const std::string& line);
  void renameLocked(const std::string& from, const std::string& to, bool is_dir);
  void forgetLocked(const std::string& path, bool is_dir);

  std::filesystem::path file_;
  int fd_ = -1;
  uint64_t epoch_ = 0;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, HandleRecord> by_id_;    // Guarded by mu_.
  std::unordered_map<std::string, uint64_t> file_ids_;  // path → id of the file. mu_.
  std::unordered_map<std::string, uint64_t> dir_ids_;   // path → id of the dir. mu_.
  uint64_t next_id_ = kRootHandleId + 1;                // Guarded by mu_.
  bool append_failed_logged_ = false;                   // Guarded by mu_.
};

}  // namespace hfm::nfs
