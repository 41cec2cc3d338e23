// Vfs: the backend-independent filesystem core. The FUSE adapter (and later the NFS server)
// translate kernel requests into these calls and only translate the results back; nothing here
// knows about libfuse or NFS.
//
// Model:
//  - Every path the mount has seen has an inode number, assigned from 2 upwards (1 is the root)
//    and never reused for another path: a path keeps its number for the whole mount, even if it
//    is deleted and re-created remotely (unless it comes back as a different kind, file vs dir,
//    which gets a fresh number). FUSE generation numbers are therefore always 0.
//  - Directories are listed lazily, one level at a time, on first use (opendir, or a lookup
//    miss), and a listing is trusted for metadata_ttl; after that the next opendir or lookup
//    miss lists again and applies the difference (additions, changes, deletions). A lookup in a
//    directory never listed first asks Remote::stat (one HEAD) so that opening one known file
//    in a huge directory does not list its siblings.
//  - A file found in the table is revalidated with Remote::stat when its metadata is older than
//    metadata_ttl (on every lookup with metadata_ttl_minimal); network errors keep serving the
//    cached metadata.
//  - Lookup misses are remembered in a negative cache (negative_ttl, bounded size) so repeated
//    probes (editors, Python imports, shells) cost no remote call; additions seen by a listing
//    or the poller drop the matching entries.
//  - Kernel lookup counts: lookup() adds one reference to the inode it returns, forget() drops
//    them. An inode removed remotely stays readable (nlink 0) while the kernel still references
//    it or a handle is open, and is freed when both are gone.
//  - Open handles read through their own Prefetcher over the exact version (xet hash) that was
//    current at open time; a remote change never mixes bytes of two versions in one handle.
//  - Read-only remotes (repos, --read-only) answer every mutation with EROFS (EACCES first for
//    OS junk names when the filter is on, as the reference does).
//  - Writable remotes (buckets): every write lands in a staged copy on local disk
//    (WriteConfig::staging_dir) until the Hub has committed it. Streaming mode (default):
//    create() or open(O_TRUNC|write) gives a write handle whose sequential bytes also stream
//    into a RemoteUpload; flush()/release() commit synchronously; a second writer supersedes
//    the first (EIO for it). Advanced mode (WriteConfig::advanced): open for write without
//    O_TRUNC stages the current content, random writes/append/truncate/reads hit the staged
//    copy, and flush/release/fsync queue a debounced, batched commit on the committer thread.
//    In both modes a closed file whose commit failed is NOT lost: a manifest keeps it pending
//    (close returns 0), the committer retries with backoff, and recoverPending() of the next
//    start commits what a killed run left. Uncommitted ("dirty") files win over listings and
//    revalidations. mkdir is in memory until a file lands below; rmdir removes an empty
//    directory locally; unlink deletes remotely (queued into the next batch in advanced mode);
//    rename is add(new, same hash) + delete(old) in one batch, or for an uncommitted file a
//    local move committed at the new path. Renaming a directory re-adds every file below by
//    hash in one batch. docs/semantics.md has the details.
//  - Invalidations (remote changes found by a listing, a revalidation or the poller) are handed
//    to an InvalidationSink after every Vfs lock has been released; the sink must not call back
//    into the kernel synchronously from a request thread (the FUSE adapter queues them to a
//    dedicated notifier thread).
//
// Thread-safety: every public method may be called concurrently from any thread. See
// docs/threading.md for the locks and their order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hfm/util/result.h"
#include "hfm/vfs/local_copies.h"
#include "hfm/vfs/prefetcher.h"
#include "hfm/vfs/remote.h"
#include "hfm/vfs/worker_pool.h"

namespace hfm::vfs {

using InodeId = uint64_t;
inline constexpr InodeId kRootInode = 1;

using Clock = std::chrono::steady_clock;

// How a writable remote (bucket) takes writes. See docs/semantics.md.
struct WriteConfig {
  // --advanced-writes (the NFS backend always sets it): files are staged in a local file that
  // takes random writes, overwrite, append, truncate and reads; commits are debounced and
  // batched (flush_debounce, at most flush_max_batch_window after the first signal).
  bool advanced = false;
  // Where written bytes live until the Hub has committed them: one directory per mounted
  // source (<cache-dir>/pending/<source key>), kept across runs. Every closed file stays here
  // until its commit succeeded; recoverPending() commits what an earlier run left behind.
  // Empty: a private temporary directory removed on destruction (unit tests).
  std::string staging_dir;
  std::chrono::milliseconds flush_debounce{2000};           // --flush-debounce-ms
  std::chrono::milliseconds flush_max_batch_window{30000};  // --flush-max-batch-window-ms
  uint64_t max_staging_size = 0;  // --max-staging-size: clean staged copies kept (0: no GC)
  // A failed commit is retried after retry_initial, doubling up to retry_max (±20 % jitter).
  std::chrono::milliseconds retry_initial{1000};
  std::chrono::milliseconds retry_max{60000};
};

// FUSE SETATTR / NFS SETATTR: the fields to change (unset = unchanged).
struct SetAttrRequest {
  std::optional<uint64_t> size;  // truncate / extend
  std::optional<uint32_t> mode;  // permission bits only
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<int64_t> mtime_ns;
};

// What the write path holds right now, for `hf-mount status` and logs.
struct WriteStats {
  size_t dirty_files = 0;        // open for writing or written and not committed yet
  size_t pending_commits = 0;    // closed files waiting for (or retrying) their commit
  uint64_t pending_bytes = 0;    // bytes of those files on local disk
  uint64_t committed_files = 0;  // since start
  uint64_t failed_attempts = 0;  // commit attempts that failed (each is retried)
  uint64_t snapshot_bytes = 0;   // staging disk held by copies being uploaded right now
};

struct VfsConfig {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::chrono::milliseconds metadata_ttl{10000};  // --metadata-ttl-ms
  bool metadata_ttl_minimal = false;              // --metadata-ttl-minimal: HEAD on every lookup
  bool filter_os_files = true;                    // false with --no-filter-os-files
  std::chrono::milliseconds negative_ttl{30000};
  size_t negative_cache_max = 1000;
  bool direct_io = false;                       // --direct-io: no page cache for file data
  size_t worker_threads = 8;                    // background fetch pool
  uint64_t prefetch_memory_limit = 1ull << 30;  // read-ahead bytes across all handles
  size_t poll_listing_concurrency = 4;          // --poll-listing-concurrency
  int64_t root_mtime_ns = 0;                    // repo lastModified / bucket updatedAt
  PrefetchConfig prefetch;
  WriteConfig writes;
  // --cache-mode file: whole local copies serve clean remote files once made (nullptr = off).
  std::shared_ptr<LocalCopyStore> local_copies;
  // Time source for TTLs (tests inject a fake clock). Default: steady_clock::now.
  std::function<Clock::time_point()> now;
};

struct Attr {
  InodeId ino = 0;
  bool is_dir = false;
  bool is_symlink = false;  // in-memory symlink (mode has S_IFLNK); size = target length
  uint32_t mode = 0;        // includes S_IFREG / S_IFDIR / S_IFLNK
  uint32_t nlink = 1;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte blocks
  uint32_t blksize = 512;
  int64_t mtime_ns = 0;
};

struct DirEntry {
  std::string name;
  InodeId ino = 0;
  bool is_dir = false;
  uint64_t next_offset = 0;  // pass back to readdir to continue after this entry
  bool is_symlink = false;
};

struct OpenResult {
  uint64_t fh = 0;
  bool keep_cache = false;  // the kernel may keep cached pages: same version as the last open
  bool direct_io = false;
  // A local copy holding exactly this handle's bytes (a file-cache hit on a read-only open),
  // readable until release(fh): a FUSE backend may let the kernel read it directly
  // (passthrough). -1 when there is none.
  int local_fd = -1;
  std::string version;  // the remote version a handle reads (empty for local written bytes)
};

struct CreateResult {
  Attr attr;  // the new file; counts as one kernel lookup reference
  OpenResult open;
};

struct StatFs {
  uint64_t block_size = 512;
  uint64_t blocks = 0;
  uint64_t blocks_free = 0;
  uint64_t blocks_available = 0;
  uint64_t files = 0;
  uint64_t files_free = 0;
  uint32_t name_max = 255;
};

// What a listing / poll changed, for logs, tests and invalidation.
struct ChangeSet {
  std::vector<std::string> added;
  std::vector<std::string> changed;
  std::vector<std::string> deleted;
  bool empty() const { return added.empty() && changed.empty() && deleted.empty(); }
};

// Implemented by the kernel adapter. Calls arrive on any thread, never with a Vfs lock held.
class InvalidationSink {
 public:
  virtual ~InvalidationSink() = default;
  // The inode's attributes (and, if drop_pages, its cached data) are stale. drop_pages is false
  // while handles are open: dropping pages under a reader can deadlock the kernel (#195).
  virtual void invalidateInode(InodeId ino, bool drop_pages) = 0;
  // The name `name` in directory `parent` changed meaning (added, deleted, replaced).
  virtual void invalidateEntry(InodeId parent, const std::string& name) = 0;
};

// True for names macOS/Windows litter on filesystems (.DS_Store, ._*, Thumbs.db, ...).
bool isOsJunkName(std::string_view name);

class Vfs {
 public:
  Vfs(std::shared_ptr<Remote> remote, VfsConfig config);
  ~Vfs();
  Vfs(const Vfs&) = delete;
  Vfs& operator=(const Vfs&) = delete;

  // Lists the root directory (the reference does this before mounting so a bad source fails
  // at start-up). Returns the listing error.
  Status preloadRoot();

  void setInvalidationSink(InvalidationSink* sink);  // nullptr disarms; safe at any time

  bool readOnly() const { return remote_->readOnly(); }
  const VfsConfig& config() const { return config_; }

  // --- namespace (FUSE lookup counts) ---

  // FUSE LOOKUP: resolves `name` in directory `parent`. On success the returned inode's
  // lookup count is incremented by one (the kernel will send a matching forget). ENOENT when
  // absent, ENOTDIR if parent is a file, ENAMETOOLONG above 255 bytes.
  Result<Attr> lookup(InodeId parent, std::string_view name);

  // FUSE FORGET / BATCH_FORGET: the kernel dropped `nlookup` references. Never fails; unknown
  // inodes are ignored.
  void forget(InodeId ino, uint64_t nlookup);
  void forgetMulti(std::span<const std::pair<InodeId, uint64_t>> items);

  // FUSE READDIRPLUS: each entry handed to the kernel with attributes counts as a lookup.
  // Adds one reference to `ino` (as lookup() does) and returns its attributes, without any
  // remote call. ENOENT if the inode is gone. Never call it for "." and "..".
  Result<Attr> retain(InodeId ino);

  // FUSE GETATTR. ENOENT for unknown inodes. Does not contact the remote.
  Result<Attr> getattr(InodeId ino);

  // --- directories ---

  // FUSE OPENDIR: lists the directory if needed (first use, or listing older than the TTL) and
  // snapshots its entries, so offsets stay stable while the handle is open. ENOTDIR for files.
  // If a refresh fails but an older listing exists, the older listing is served.
  Result<uint64_t> opendir(InodeId ino);
  // FUSE READDIR: up to max_entries entries starting after `offset` (0 = start); "." and ".."
  // come first. An empty vector means end of directory. EBADF for unknown handles.
  Result<std::vector<DirEntry>> readdir(uint64_t dir_handle, uint64_t offset, size_t max_entries);
  // FUSE RELEASEDIR.
  void releasedir(uint64_t dir_handle);

  // --- files ---

  // FUSE OPEN: EISDIR for directories. Write access (O_WRONLY, O_RDWR, O_TRUNC, O_APPEND):
  // EROFS on read-only remotes; streaming mode: EPERM without O_TRUNC or with O_APPEND, else a
  // write handle that replaces the content (superseding an open writer); advanced mode: a write
  // handle on the staged copy (the current content is downloaded first unless O_TRUNC, new,
  // empty, or already staged). Read handles of a file with local changes read the staged copy
  // (keep_cache false); otherwise keep_cache is true when the version is the one the previous
  // open saw, so the kernel keeps the pages it has.
  Result<OpenResult> open(InodeId ino, int flags);
  // FUSE READ: exactly min(size, file size - offset) bytes (never short before EOF), 0 at EOF.
  // EBADF for unknown handles; remote errors pass through (EIO on timeouts).
  // `views` as in Prefetcher::read: remote bytes already prefetched may come back as views
  // instead of being copied into `out`.
  Result<size_t> read(uint64_t fh, uint64_t offset, std::span<uint8_t> out,
                      std::vector<ReadView>* views = nullptr);
  // FUSE RELEASE: frees the handle. A write handle with uncommitted bytes is committed now
  // (streaming) or persisted and queued (advanced); failures keep the file pending and are
  // logged (the kernel ignores release errors).
  void release(uint64_t fh);
  // FUSE WRITE into the staged copy. Streaming mode: `offset` must equal the bytes written so
  // far through the handle (EINVAL otherwise). Advanced mode: any offset (O_APPEND handles
  // write at the end). EBADF for read handles, EIO for a superseded writer, ENOSPC/EIO when
  // the staging disk fails. Returns data.size().
  Result<size_t> write(uint64_t fh, uint64_t offset, std::span<const uint8_t> data);
  // FUSE FLUSH (every close(2)). Streaming: commits a handle that wrote (not an empty one: a
  // shell redirect closes a dup'd descriptor before writing, the commit waits for release); a
  // failed commit keeps the file pending on disk and still returns OK. Advanced: persists the
  // staged copy (fdatasync + manifest), queues the commit, and returns EIO once if the last
  // commit of the file failed. No-op for read handles.
  Status flush(uint64_t fh);
  // FUSE FSYNC / NFS COMMIT: fdatasync of the staged copy and its manifest; returns once the
  // bytes are safe on local disk, never waits for the Hub. EIO for a superseded writer.
  Status fsync(uint64_t fh);

  // FUSE STATFS: a fixed, very large free space (as the reference: 42 PB), no inode limit.
  StatFs statfs() const;

  // --- mutations: ENAMETOOLONG, then EACCES for OS junk names (if filtering), then EROFS on
  // read-only remotes ---
  Status mknod(InodeId parent, std::string_view name);  // EPERM on writable remotes
  // In memory until a file lands below it. EEXIST if the name exists. No lookup reference
  // (the FUSE adapter looks the new directory up to reply).
  Status mkdir(InodeId parent, std::string_view name);
  // New empty file with a write handle (see the streaming rules above); flags as open().
  // An existing name is truncated (EEXIST with O_EXCL). +1 lookup reference.
  Result<CreateResult> create(InodeId parent, std::string_view name, int flags);
  // In memory only, as the reference (buckets cannot store symlinks): the link lives until
  // unmount or until it is unlinked. Re-listings and polls keep it (like a mkdir'd directory,
  // and its directory with it); a remote file appearing under the same name stays hidden
  // behind it (local wins, as for uncommitted files). unlink and rename are local only.
  // EEXIST if the name exists, ENAMETOOLONG for a target of PATH_MAX bytes or more, ENOENT for
  // an empty target. +1 lookup reference.
  Result<Attr> symlink(InodeId parent, std::string_view name, std::string_view target);
  // The target of an in-memory symlink; EINVAL for files and directories, ENOENT if unknown.
  Result<std::string> readlink(InodeId ino);
  // Hard link = server-side copy: one batch addFile(new path, the source's xet hash); the new
  // entry is a separate inode (own st_ino, nlink 1). A source with an open streaming writer is
  // committed first; any other uncommitted or hash-less source gives ENOTSUP (callers fall back
  // to copying); directories EPERM; EEXIST if the name exists. Linking a symlink makes a second
  // in-memory symlink with the same target. +1 lookup reference.
  Result<Attr> link(InodeId ino, InodeId new_parent, std::string_view new_name);
  // Deletes the file: a synchronous remote delete (streaming) or one queued into the next
  // batch (advanced); an uncommitted staged copy is dropped. EISDIR for directories.
  Status unlink(InodeId parent, std::string_view name);
  // ENOTEMPTY unless the directory (listed first) has no entry; removes it locally.
  Status rmdir(InodeId parent, std::string_view name);
  // Files: one remote batch (add new with the same hash, delete old; a replaced target is
  // overwritten); an uncommitted file moves locally and is committed at the new path. Directories:
  // every file below (listed level by level) is re-added under the new path and deleted under the
  // old one in one batch, then the subtree moves in memory; files below with uncommitted writes
  // move locally (manifests rewritten) and are committed at their new paths, their old remote
  // paths deleted in that commit.
  // EISDIR/ENOTDIR/ENOTEMPTY on kind conflicts, EINVAL for a move into itself.
  Status rename(InodeId parent, std::string_view name, InodeId new_parent,
                std::string_view new_name);
  // chmod/chown/utimens/truncate: accepted and ignored on writable remotes (streaming mode,
  // as the reference); returns the current attributes.
  Result<Attr> setattr(InodeId ino);
  // Applies `changes`: size truncates or extends the staged copy (advanced mode; ignored in
  // streaming mode as the reference does), mode/uid/gid/mtime are kept in memory. EROFS on
  // read-only remotes when anything would change.
  Result<Attr> setattr(InodeId ino, const SetAttrRequest& changes);

  // --- write durability (writable remotes) ---

  // Commits files an earlier run left in config.writes.staging_dir (killed, or the hub was
  // down): each valid manifest puts its file back in the namespace as pending and queues its
  // commit (background, with retries). Corrupt/truncated manifests are logged and skipped
  // (renamed *.manifest.bad); staging files without a manifest (never closed) are deleted.
  // Call once after preloadRoot(), before serving requests. OK on read-only remotes.
  Status recoverPending();
  // Shutdown and `hf-mount stop`: commits every dirty and pending file now, waiting at most
  // `timeout`. Returns an error naming what is still uncommitted (it stays on local disk and is
  // committed by the next start).
  Status flushAll(std::chrono::milliseconds timeout);
  WriteStats writeStats() const;

  // --- remote sync ---

  // Re-lists every directory that has been listed, parents before children (at most
  // poll_listing_concurrency listings at a time, on short-lived threads of the calling
  // thread), and applies the differences (the poller's round). Deleted files with open
  // handles stay readable; changed files get their kernel cache invalidated. A directory whose
  // listing fails is left alone unless its parent's listing shows it gone.
  ChangeSet refreshLoaded();

  // --- introspection for tests and logs ---
  uint64_t lookupCount(InodeId ino) const;  // 0 if unknown
  size_t inodeCount() const;
  size_t openHandleCount() const;
  std::optional<InodeId> inodeForPath(const std::string& path) const;  // in the namespace now
  std::optional<PrefetchStats> prefetchStats(uint64_t fh) const;

 private:
  struct Inode;
  struct FileHandle;
  struct DirHandle;

  Clock::time_point now() const;
  Attr attrLocked(const Inode& node) const;
  Inode* findLocked(InodeId ino) const;
  // Ensures `dir` has a listing younger than the TTL (a new one if `force`), appending what
  // the listing changed to `out` when given.
  Status ensureListed(InodeId dir, bool force, ChangeSet* out = nullptr);
  // Applies a listing of `dir`; returns what changed. Requires mu_ exclusively.
  void applyListingLocked(Inode& dir, const std::vector<RemoteEntry>& entries, ChangeSet& changes,
                          std::vector<std::function<void(InvalidationSink&)>>& notes);
  InodeId childLocked(Inode& dir, const std::string& name, const RemoteEntry& entry,
                      ChangeSet& changes,
                      std::vector<std::function<void(InvalidationSink&)>>& notes);
  void detachLocked(Inode& dir, const std::string& name, ChangeSet& changes,
                    std::vector<std::function<void(InvalidationSink&)>>& notes);
  void maybeFreeLocked(InodeId ino);
  void updateFileLocked(Inode& node, const RemoteEntry& entry, ChangeSet& changes,
                        std::vector<std::function<void(InvalidationSink&)>>& notes);
  void dispatch(std::vector<std::function<void(InvalidationSink&)>>& notes);
  bool negativeHitLocked(const std::string& path);
  void addNegative(const std::string& path);
  void dropNegativeUnder(const std::string& dir_path);
  Status checkMutation(std::string_view name) const;
  // A new entry named `name` may go in `parent`: EEXIST if a lookup finds it (remotely too, in a
  // directory not listed yet); other lookup failures pass through. Takes no lock on entry.
  Status requireFreeName(InodeId parent, const std::string& name);
  // `parent` as a live directory with no child `name` (checked again under mu_: the lookup in
  // requireFreeName ran unlocked). ENOENT, ENOTDIR or EEXIST otherwise. Requires mu_.
  Result<Inode*> freeNameParentLocked(InodeId parent, const std::string& name) const;
  // --- write path (vfs_write.cpp) ---
  struct Staged;
  Result<std::shared_ptr<FileHandle>> handleOf(uint64_t fh) const;
  Result<OpenResult> openWrite(InodeId ino, int flags, bool created);
  // Streaming mode: an upload fed while the file is written (nullptr if it cannot start now).
  std::unique_ptr<RemoteUpload> startLiveUpload();
  // A fresh, empty staging file (not yet attached to an inode).
  Result<std::shared_ptr<Staged>> newStaged(InodeId ino, bool streaming);
  // Advanced mode: the inode's staged copy, made (downloaded unless `truncate`) if there is
  // none or it is stale, and attached to the inode.
  Result<std::shared_ptr<Staged>> acquireStaged(InodeId ino, bool truncate);
  // Makes a dirty staged copy durable: fdatasync of its bytes, then its manifest.
  Status persist(const std::shared_ptr<Staged>& s);
  void signalFlush(const std::shared_ptr<Staged>& s);
  void scheduleRetry(const std::shared_ptr<Staged>& s, const Error& error);
  // Streaming close: commits now; on failure persists and schedules retries (returns OK once
  // the bytes are safe on local disk).
  Status closeCommit(const std::shared_ptr<Staged>& s);
  // Uploads and commits `items` (dirty staged copies) plus `deletes` in one batch. Per-item
  // results in `results` (same order); the batch error, if the commit itself failed.
  Status commitStaged(const std::vector<std::shared_ptr<Staged>>& items,
                      const std::vector<std::string>& deletes, std::vector<Status>& results);
  // Uploads the current generation of `s` (its uploaded_* fields name what was uploaded).
  Result<UploadedContent> uploadStaged(Staged& s);
  // A write to the staging file of `s` failed with `cause`: `s` is marked lost and discarded,
  // its blocks are freed, and the path shows the Hub's version again (or goes away if the Hub
  // has none). Logs one line naming the file.
  void loseStaged(const std::shared_ptr<Staged>& s, const Error& cause);
  // The staging filesystem is full: drops every clean copy no handle uses (advanced mode's
  // cache of committed versions). Returns the bytes freed. Takes mu_.
  uint64_t dropCleanCopies();
  // Drops the inode's staged copy: never committed, files removed (open handles keep the fd).
  void discardLocked(Inode& node);  // requires mu_ exclusively
  // Drops a clean, unused staged copy (streaming) or keeps it as a cache (advanced, GC).
  void releaseCleanLocked(Inode& node);  // requires mu_ exclusively
  void gcLocked();                       // requires mu_ exclusively
  // Returns true if a queued delete of `path` was cancelled (the path is written again).
  bool cancelQueuedDelete(const std::string& path);
  // Queues a delete for the next batch, recorded on disk first (recoverPending re-queues it).
  void queueDelete(const std::string& path);
  // Writes the durable record of a queued delete; its full path, or empty (logged) on failure.
  std::string persistDelete(const std::string& path);
  // Writes the record of a delete already queued in memory (no lock held); drops it if the
  // delete was cancelled or sent meanwhile.
  void recordQueuedDelete(const std::string& path);
  void committerLoop();
  // True when reads of the inode must come from its staged copy (dirty, being written, or a
  // clean copy of the current remote version). Requires mu_.
  bool stagedServesLocked(const Inode& node) const;
  void initWritePath();      // constructor: staging directory, committer thread
  void shutdownWritePath();  // destructor: stops the committer; pending files stay on disk
  // rename of a directory; `dirty`: the staged copies with uncommitted writes below it.
  Status renameDirectory(InodeId parent, const std::string& name, InodeId new_parent,
                         const std::string& new_name, std::vector<std::shared_ptr<Staged>> dirty);
  Status renameStaged(InodeId parent, const std::string& name, InodeId new_parent,
                      const std::string& new_name);
  // `deleted_at`: paths with a queued-delete record from the earlier run → when it was queued.
  // A delete newer than the manifest drops the file; an older one is erased (cancelled).
  Status recoverOne(const std::string& manifest_file, std::map<std::string, int64_t>& deleted_at);
  // Moves dir/name to new_dir/new_name in memory (a replaced target is detached and its
  // staged copy discarded); the subtree follows. Requires mu_ exclusively.
  void moveNodeLocked(Inode& dir, const std::string& name, Inode& new_dir,
                      const std::string& new_name);
  Status renameFile(InodeId parent, const std::string& name, InodeId new_parent,
                    const std::string& new_name);
  // A delete of `path` is queued or in flight: listings and lookups must not bring it back.
  bool deletePending(const std::string& path);
  std::string childPath(const Inode& dir, std::string_view name) const;
  std::shared_ptr<std::mutex> listingMutex(InodeId dir);
  // --- in-memory symlinks and hard links (vfs_links.cpp) ---
  bool isSymlinkLocked(InodeId ino) const;  // requires mu_
  // True when the subtree below `node` (itself included) holds something the remote does not
  // know: an uncommitted file, a mkdir'd directory, a symlink. Listings keep it. Requires mu_.
  bool holdsLocalStateLocked(const Inode& node) const;
  // A link copies the committed version (by hash): uncommitted bytes of `ino` are committed
  // now. EIO (kept locally, retried) when that commit fails.
  Status commitForLink(InodeId ino);
  // One batch binding `path` to `entry`'s content (same hash, same mtime) plus `deletes`; no byte
  // is uploaded. A queued delete of `path` is cancelled (re-queued if the batch fails), one in
  // flight is waited for. Remote failures are logged (prefixed with `what`) and become EIO.
  Status commitByHash(const std::string& path, const RemoteEntry& entry,
                      std::span<const std::string> deletes, const std::string& what);
  // rename of an in-memory symlink: local only (a replaced target is unlinked first).
  Status renameSymlink(InodeId parent, const std::string& name, InodeId new_parent,
                       const std::string& new_name);

  const std::shared_ptr<Remote> remote_;
  const VfsConfig config_;
  MemoryBudget budget_;  // before pool_: parts held by queued tasks release into it
  WorkerPool pool_;

  // Lock order: a directory's listing mutex, then mu_, then neg_mu_, then handles_mu_.
  // No Remote call and no InvalidationSink call is made while holding mu_ or handles_mu_.
  mutable std::shared_mutex mu_;
  std::unordered_map<InodeId, std::unique_ptr<Inode>> inodes_;  // Guarded by mu_.
  std::unordered_map<std::string, InodeId> path_ino_;  // every path ever seen. Guarded by mu_.
  std::unordered_map<InodeId, std::shared_ptr<std::mutex>> listing_mu_;  // Guarded by mu_.
  InodeId next_ino_ = kRootInode + 1;                                    // Guarded by mu_.
  // In-memory symlinks: inode → target, until the inode is freed. Guarded by mu_.
  std::unordered_map<InodeId, std::string> symlinks_;

  mutable std::mutex neg_mu_;
  std::unordered_map<std::string, Clock::time_point> negative_;  // path → expiry. neg_mu_.

  mutable std::mutex handles_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<FileHandle>> files_;  // Guarded by handles_mu_.
  std::unordered_map<uint64_t, std::shared_ptr<DirHandle>> dirs_;    // Guarded by handles_mu_.
  uint64_t next_fh_ = 1;                                             // Guarded by handles_mu_.

  std::mutex sink_mu_;                // serializes sink swaps against dispatch
  InvalidationSink* sink_ = nullptr;  // Guarded by sink_mu_.

  // Write path. staging_dir_ is fixed after construction.
  std::string staging_dir_;
  bool staging_private_ = false;        // a temporary directory removed by the destructor
  std::optional<Error> staging_error_;  // the directory could not be made: writes fail
  std::set<InodeId> staged_inodes_;     // inodes with a staged copy. Guarded by mu_.
  std::atomic<uint64_t> committed_files_{0};
  std::atomic<uint64_t> failed_attempts_{0};

  // The flush manager (committer_ thread). Everything below is guarded by commit_mu_, a leaf
  // lock. Times are real steady_clock times (not config_.now).
  std::mutex commit_mu_;
  std::condition_variable commit_cv_;  // work arrived, or stop
  std::condition_variable done_cv_;    // a round finished (flushAll waits on it)
  std::unordered_map<Staged*, std::shared_ptr<Staged>> signaled_;  // debounced batch
  std::optional<Clock::time_point> first_signal_;
  std::optional<Clock::time_point> last_signal_;
  std::unordered_map<Staged*, std::pair<std::shared_ptr<Staged>, Clock::time_point>> retries_;
  std::set<std::string> queued_deletes_;     // advanced-mode unlinks, sent with the next batch
  std::set<std::string> inflight_deletes_;   // deletes of the batch being committed
  std::set<std::string> cancelled_deletes_;  // in-flight deletes of paths written again
  // Queued or in-flight delete → its record file (<staging>/<name>.delete), removed once a
  // batch carrying it succeeded or it was cancelled.
  std::map<std::string, std::string> delete_files_;
  bool flush_now_ = false;  // flushAll: the next batch goes without debounce
  bool committer_busy_ = false;
  uint64_t committer_rounds_ = 0;
  bool stop_ = false;
  std::thread committer_;
};

}  // namespace hfm::vfs
