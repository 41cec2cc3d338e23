// Private state of hfm::vfs::Vfs shared by vfs.cpp (namespace, reads) and vfs_write.cpp (the
// write path). Not installed; include only from src/vfs.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hfm/vfs/vfs.h"

namespace hfm::vfs {

inline int64_t wallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What every later write, flush, fsync and link of a copy that lost its bytes returns.
inline Error lostError(int code) {
  return {code, "an earlier write to this file failed and its unsaved bytes were dropped"};
}

inline std::string versionOf(const RemoteEntry& e) {
  return e.xet_hash + "|" + e.etag + "|" + std::to_string(e.size);
}

// "Never committed": a created/truncated or renamed staged file is dirty whatever its
// generation.
inline constexpr uint64_t kNeverCommitted = std::numeric_limits<uint64_t>::max();

// The local copy of one file's bytes: <staging_dir>/<name>.data, plus <name>.manifest while the
// file is closed and uncommitted. Shared by the inode, its handles and the committer; a
// staged copy that is replaced (a second streaming writer) or unlinked is "discarded": its
// files are removed at once and it is never committed, while open handles keep its fd.
//
// Lock order (see docs/threading.md): FileHandle::write_mu → commit_mu → upload_mu → Vfs::mu_
// → mu → Vfs::commit_mu_.
struct Vfs::Staged {
  InodeId ino = 0;
  std::string name;  // file stem in the staging directory
  std::string data_path;
  std::string manifest_path;
  bool streaming = false;  // made by a streaming-mode writer (dropped once committed)

  std::mutex commit_mu;  // one upload + commit of this file at a time

  std::mutex upload_mu;                  // guards the live streaming upload below
  std::unique_ptr<RemoteUpload> upload;  // has consumed bytes [0, upload_pos) of upload_gen
  uint64_t upload_pos = 0;
  uint64_t upload_gen = 0;

  std::mutex mu;  // guards file I/O on fd and the fields below
  int fd = -1;
  std::atomic<uint64_t> size{0};
  std::atomic<int64_t> mtime_ns{0};
  std::atomic<uint64_t> generation{0};               // bumped by every change of the bytes
  std::atomic<uint64_t> committed{kNeverCommitted};  // generation the Hub has (at this path)
  std::atomic<bool> discarded{false};
  std::atomic<bool> superseded{false};  // a second streaming writer replaced this version
  // A write to the staging file failed (ENOSPC, EIO): the unsaved bytes are gone and this copy
  // is discarded; later writes, flushes and fsyncs through its handles fail with this errno.
  std::atomic<int> lost_errno{0};
  bool has_manifest = false;
  std::string manifest_text;              // what the manifest on disk says
  uint64_t synced_gen = kNeverCommitted;  // generation last fdatasync'd
  std::string base_hash;             // xet hash of the remote version these bytes equal when clean
  bool remote_exists = false;        // the path has a remote version (unlink must delete it)
  std::vector<std::string> deletes;  // old paths (renames) deleted in the next commit batch
  std::optional<Error> flush_error;  // last failed commit, reported by the next flush()
  uint64_t uploaded_gen = kNeverCommitted;  // generation uploaded as uploaded_hash, not committed
  std::string uploaded_hash;
  uint64_t uploaded_size = 0;
  int64_t uploaded_mtime_ns = 0;
  // While an upload reads the staging file in place: the lowest offset changed since it began
  // (kNoChange: none). Appends beyond the uploaded size leave the upload valid.
  uint64_t change_floor = kNoChange;
  // An in-place upload was spoiled by a change below its end: later uploads read a snapshot copy
  // (<name>.snap) made under mu, so a file that never stops changing still commits.
  bool prefer_snapshot = false;
  std::atomic<uint64_t> snapshot_bytes{0};  // size of the snapshot copy on disk right now
  // The remote version this copy was downloaded from (to edit it): uploads of the copy first
  // let the Remote learn its chunks (Remote::learnBase), so unchanged chunks are referenced.
  std::optional<RemoteEntry> downloaded_from;

  // Guarded by Vfs::mu_.
  uint32_t handles = 0;  // open handles (read or write) on this copy
  uint32_t writers = 0;
  Clock::time_point last_used{};

  // Guarded by Vfs::commit_mu_.
  int attempts = 0;

  static constexpr uint64_t kNoChange = std::numeric_limits<uint64_t>::max();

  bool dirty() const { return generation.load() != committed.load(); }

  // Bytes at and above `offset` changed (a write, or a truncate to or from `offset`). Requires
  // mu.
  void changedLocked(uint64_t offset) {
    generation++;
    change_floor = std::min(change_floor, offset);
  }

  // A consistent copy of the staged bytes (one generation), removed with the object.
  struct Snapshot {
    std::string path;
    int fd = -1;
    uint64_t gen = 0;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    Staged* owner = nullptr;
    Snapshot() = default;
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;
    ~Snapshot();
  };

  // Uploads the current generation reading the staging file in place: EAGAIN if a change below
  // its end happened before every byte was read (appends do not count). On success the
  // uploaded_* fields name what was uploaded.
  Result<UploadedContent> uploadInPlace(Remote& remote);
  // Copies the current generation to <name>.snap (reflink, copy_file_range, or read/write)
  // under mu: writers wait for the copy, the upload then runs without blocking them.
  Result<std::unique_ptr<Snapshot>> takeSnapshot(const std::string& staging_dir);
  // Uploads a snapshot; on success the uploaded_* fields name it.
  Result<UploadedContent> uploadSnapshot(Remote& remote, const Snapshot& snap);

  // Removes the data file and the manifest (the fd stays usable). Requires mu.
  void removeFilesLocked() {
    ::unlink(data_path.c_str());
    if (has_manifest || !manifest_text.empty()) ::unlink(manifest_path.c_str());
    has_manifest = false;
    manifest_text.clear();
  }

  ~Staged() {
    if (fd >= 0) ::close(fd);
  }
};

struct Vfs::Inode {
  InodeId ino = 0;
  InodeId parent = kRootInode;
  std::string name;
  std::string path;
  bool is_dir = false;
  RemoteEntry entry;     // current remote metadata (files)
  uint64_t nlookup = 0;  // kernel references
  uint32_t open_handles = 0;
  bool detached = false;                         // no longer in the namespace (removed remotely)
  std::map<std::string, InodeId> children;       // directories; sorted → stable readdir order
  std::optional<Clock::time_point> listed_at;    // directories: last complete listing
  uint64_t list_generation = 0;                  // directories: bumped by every applied listing
  Clock::time_point revalidated_at{};            // files: metadata last confirmed
  std::optional<std::string> last_open_version;  // files: version the last open saw
  uint32_t writers = 0;                          // files: open write handles
  bool local_dir = false;          // directories: made by mkdir, not known to the remote
  std::shared_ptr<Staged> staged;  // files: local copy (dirty, pending, or a clean cache)
  // setattr: kept in memory (a bucket stores none of these).
  std::optional<uint32_t> mode_override;
  std::optional<uint32_t> uid_override;
  std::optional<uint32_t> gid_override;
  std::optional<int64_t> mtime_override;

  // Local content the remote does not have yet: listings and revalidations keep it.
  bool dirty() const { return staged != nullptr && staged->dirty(); }
};

struct Vfs::FileHandle {
  InodeId ino = 0;
  std::string version;
  std::unique_ptr<Prefetcher> prefetcher;  // handles reading a remote version over the network
  std::optional<LocalCopy> local;          // handles reading a remote version from a local copy
  std::shared_ptr<Staged> staged;          // handles on a staged copy (every write handle)
  bool writable = false;
  bool append = false;
  std::mutex write_mu;   // serializes this handle's writes and flushes
  uint64_t written = 0;  // streaming: the next sequential offset. Guarded by write_mu.
  bool wrote = false;    // streaming: bytes were written through this handle. write_mu.
};

struct Vfs::DirHandle {
  std::vector<DirEntry> entries;  // ".", "..", then children by name
};

}  // namespace hfm::vfs
