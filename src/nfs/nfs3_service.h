// Nfs3Service: the NFSv3 and MOUNTv3 procedures over a vfs::Vfs (the worker-thread half of
// NfsServer; private to the nfs layer).
//
// Each call gets the XDR-encoded arguments of one procedure, decodes them with libnfs's
// generated zdr_* codecs, runs the filesystem work and returns the XDR-encoded result body
// (what follows the RPC reply header). The loop thread only copies those bytes out.
//
// Identity: handles carry a HandleTable id (stable across restarts); this class keeps a
// path → Vfs inode cache for the current process. NFS never forgets, so the service holds no
// Vfs lookup references: every Vfs::lookup it makes is paired with forget(ino, 1) at once.
// That is safe because the Vfs never reuses an inode number for another path, and a handle
// always re-resolves by path when its cached inode is gone: a file removed remotely is freed
// by the Vfs and its handles answer NFS3ERR_STALE, instead of being pinned for ever.
//
// Open files: NFS has no open/close, so READ and WRITE share a small LRU of Vfs file handles
// per inode (config.open_file_cache; entries in use are pinned and the pool grows past its
// size rather than closing them). WRITE never reuses a read-only handle: it opens a writable
// one (O_RDWR, the Vfs's advanced staging mode: any offset, reads see the staged bytes) and
// puts it in the pool only after the write succeeded, where it replaces the read-only one and
// serves the READs that follow (reference bugs #178/#185). CREATE keeps the handle the Vfs
// created the file with, so even an empty new file is committed. A writable handle is
// released once it has been idle for `write_idle` (a reaper thread), or when evicted: that
// release is what schedules the Vfs commit, since no close ever comes. A handle whose version
// was replaced remotely (Vfs::read → ESTALE), or that the poller invalidated
// (InvalidationSink), is dropped and the read reopens the new version (#161).
//
// Stability: WRITE with DATA_SYNC/FILE_SYNC and COMMIT call Vfs::fsync (staged bytes durable
// on local disk; the commit to the Hub follows asynchronously and survives a restart) and
// answer FILE_SYNC. UNSTABLE writes are fsync'd before their handle is released; if that
// fsync fails, the write verifier changes, so clients resend what they have not seen
// committed. The verifier is random per process, so a restart makes clients resend as well.
//
// Names: RENAME and REMOVE/RMDIR update the HandleTable (ids follow renamed objects, deleted
// ones turn stale) and this class's path → inode cache. Should the Vfs refuse a rename with
// EBUSY (uncommitted writes it cannot move), the client gets NFS3ERR_JUKEBOX and retries, and
// the idle writable handles are released so those commits start without waiting for
// write_idle.
//
// CREATE EXCLUSIVE keeps the client's verifier with the new file's id in the HandleTable
// (persistent): a retransmission with the same verifier answers OK with the same handle, also
// after a restart; another verifier answers NFS3ERR_EXIST.
//
// Symlinks and links: SYMLINK / READLINK map to the Vfs's in-memory symlinks (NF3LNK in every
// fattr3; they share the file kind in the HandleTable), LINK to its server-side copy (a new
// inode, so a new file id). READLINK of a non-symlink, and READ / WRITE / a size change of a
// symlink, answer NFS3ERR_INVAL.
//
// Errors: every errno goes through one table (nfsStatFor) to an nfsstat3.
//
// Thread-safety: call() runs concurrently on any number of workers; one reaper thread
// releases idle writable handles. Locks (never nested, and never held across a Vfs call):
// ino_mu_ (path → inode cache), pool_mu_ (open files), dir_mu_
// (directory snapshots), reaper_mu_ (the reaper's sleep).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hfm/nfs/handle_table.h"
#include "hfm/util/result.h"
#include "hfm/vfs/vfs.h"

struct createhow3;  // libnfs (libnfs-raw-nfs.h)

namespace hfm::nfs {

// The caller's AUTH_UNIX credential (nobody when the call used AUTH_NONE).
struct CallCredential {
  uint32_t uid = 65534;
  uint32_t gid = 65534;
};

// Private errno-like codes for NFS statuses that have no errno.
inline constexpr int kErrBadCookie = -10003;
inline constexpr int kErrTooSmall = -10005;
inline constexpr int kErrNotSync = -10002;

// The one errno → nfsstat3 table (values as in RFC 1813).
uint32_t nfsStatFor(int err);

inline constexpr size_t kFileHandleSize = 20;
inline constexpr uint32_t kMaxTransfer = 1u << 20;  // rtmax / wtmax

class Nfs3Service final : public vfs::InvalidationSink {
 public:
  Nfs3Service(vfs::Vfs& vfs, HandleTable& handles, size_t open_file_cache,
              std::chrono::milliseconds write_idle, std::function<void()> on_unmount);
  ~Nfs3Service() override;
  Nfs3Service(const Nfs3Service&) = delete;
  Nfs3Service& operator=(const Nfs3Service&) = delete;

  // Runs procedure `proc` of `program` (NFS_PROGRAM v3 or MOUNT_PROGRAM v3) on the XDR bytes
  // [args, args + len). Returns the encoded result, or nullopt if the arguments do not decode
  // (the loop already checked them, so this is a bug guard) or the result cannot be encoded.
  std::optional<std::vector<char>> call(uint32_t program, uint32_t proc, char* args, size_t len,
                                        const CallCredential& cred);

  // vfs::InvalidationSink
  void invalidateInode(vfs::InodeId ino, bool drop_pages) override;
  void invalidateEntry(vfs::InodeId parent, const std::string& name) override;

  size_t pooledFileCount() const;
  size_t pooledWritableCount() const;
  // The verifier WRITE and COMMIT currently answer (exposed for tests).
  uint64_t writeVerifier() const { return write_verifier_.load(); }

  struct Resolved {
    uint64_t id = 0;
    std::string path;
    vfs::Attr attr;
  };

  // The file handle bytes for a stable id (exposed for tests).
  std::vector<char> fileHandle(uint64_t id) const;

 private:
  struct PooledFile;
  using FileRef = std::shared_ptr<PooledFile>;
  struct DirSnapshot;

  // Resolves a handle; ESTALE for unknown/foreign/removed ones. `revalidate` asks the Vfs
  // to revalidate the metadata (TTL-gated) as a FUSE lookup would.
  Result<Resolved> resolve(const char* data, size_t len, bool revalidate);
  Result<vfs::Attr> attrForPath(const std::string& path, bool is_dir, bool revalidate);
  // LOOKUP of `name` in directory `dir`: the child's id and attributes.
  Result<Resolved> lookupChild(const Resolved& dir, const std::string& name);
  void remember(const std::string& path, vfs::InodeId ino);

  Result<FileRef> acquireFile(vfs::InodeId ino);  // any pooled handle, else a read-only one
  FileRef pooledWritable(vfs::InodeId ino);       // the pooled handle if writable, else null
  // The pooled writable handle, else a new one (not pooled yet: see WRITE).
  Result<FileRef> writableFile(vfs::InodeId ino);
  FileRef makeRef(vfs::InodeId ino, uint64_t fh, bool writable);
  void putFile(vfs::InodeId ino, FileRef ref);
  void dropFile(vfs::InodeId ino);
  void dropReadOnly(vfs::InodeId ino);  // keeps a writable handle (it serves staged bytes)
  // fsync of a writable handle covering every write completed so far.
  Status syncFile(PooledFile& file);
  void reaperLoop();
  // Releases pooled writable handles nobody is using: those idle for write_idle, or all.
  void releaseIdle(bool all = false);
  // Forgets cached inodes of `path` and everything below it (after RENAME / REMOVE / RMDIR).
  void forgetPaths(const std::string& path);
  // Looks `name` up in `dir` without keeping a Vfs lookup reference.
  Result<vfs::Attr> peek(vfs::InodeId dir, const std::string& name);

  // CREATE of `name` in `dir` (UNCHECKED / GUARDED / EXCLUSIVE); returns an errno (0 = made
  // or, for UNCHECKED and a retransmitted EXCLUSIVE, already there).
  int createFile(const Resolved& dir, const std::string& name, const ::createhow3& how);

  Result<std::shared_ptr<DirSnapshot>> snapshot(const Resolved& dir, uint64_t cookie,
                                                const char* verifier);

  std::optional<std::vector<char>> nfs3(uint32_t proc, char* args, size_t len,
                                        const CallCredential& cred);
  std::optional<std::vector<char>> mount3(uint32_t proc, char* args, size_t len);

  vfs::Vfs& vfs_;
  HandleTable& handles_;
  const size_t open_file_cache_;
  const std::chrono::milliseconds write_idle_;
  const std::function<void()> on_unmount_;
  std::atomic<uint64_t> write_verifier_;
  // The fsid in every fattr3: the handle table's epoch, so two mounts on one machine never
  // look like the same filesystem to the kernel client.
  const uint64_t fsid_;

  mutable std::mutex ino_mu_;
  std::unordered_map<std::string, vfs::InodeId> inos_;  // path → inode. Guarded by ino_mu_.

  mutable std::mutex pool_mu_;
  std::list<vfs::InodeId> pool_lru_;  // most recent first. Guarded by pool_mu_.
  std::unordered_map<vfs::InodeId, std::pair<FileRef, std::list<vfs::InodeId>::iterator>>
      pool_;  // Guarded by pool_mu_.

  mutable std::mutex dir_mu_;
  std::list<std::shared_ptr<DirSnapshot>> dirs_;  // most recent first. Guarded by dir_mu_.

  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;  // Guarded by reaper_mu_.
  std::thread reaper_;        // started last in the constructor
};

}  // namespace hfm::nfs
