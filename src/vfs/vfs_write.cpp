// The write path of Vfs: staged copies, streaming and advanced writes, the flush manager
// (committer thread), durable pending commits and their recovery. See docs/semantics.md
// (writes) and docs/threading.md (locks).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "hfm/util/log.h"
#include "hfm/vfs/staging.h"
#include "hfm/vfs/vfs.h"
#include "vfs_internal.h"

namespace hfm::vfs {

namespace {

constexpr size_t kUploadPiece = 4u << 20;    // bytes read from a staging file per upload write
constexpr size_t kDownloadPiece = 4u << 20;  // bytes per Remote::read when staging a file
constexpr size_t kMaxManifestBytes = 1u << 20;

Error osError(const std::string& what) {
  const int err = errno;
  return {err == ENOSPC || err == EDQUOT ? ENOSPC : EIO, what + ": " + std::strerror(err)};
}

// A path relative to the mount root whose every component is a plain name (no "..", no empty
// parts, none longer than 255 bytes).
bool validRelativePath(const std::string& path) {
  for (size_t at = 0;;) {
    const size_t slash = path.find('/', at);
    const std::string part =
        path.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
    if (part.empty() || part == "." || part == ".." || part.size() > 255) return false;
    if (slash == std::string::npos) return true;
    at = slash + 1;
  }
}

// Copies bytes [0, size) of `from` into the empty file `to`: a reflink where the filesystem
// shares extents (btrfs, xfs), else copy_file_range (in-kernel), else read/write.
Status copyFileBytes(int from, int to, uint64_t size) {
  if (size == 0) return okStatus();
  if (::ioctl(to, FICLONE, from) == 0) {
    if (::ftruncate(to, static_cast<off_t>(size)) != 0) return osError("truncating a snapshot");
    return okStatus();
  }
  uint64_t done = 0;
  while (done < size) {
    auto in = static_cast<loff_t>(done);
    auto out = static_cast<loff_t>(done);
    const ssize_t n = ::copy_file_range(from, &in, to, &out, static_cast<size_t>(size - done), 0);
    if (n > 0) {
      done += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
      break;  // not supported here (or the source ended early): copy by hand
    }
    return osError("copy_file_range");
  }
  std::vector<uint8_t> buf(kUploadPiece);
  while (done < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    HFM_ASSIGN_OR_RETURN(const size_t n,
                         staging::preadFull(from, done, std::span<uint8_t>(buf.data(), want)));
    if (n != want) return Error(EIO, "the staging file is shorter than " + std::to_string(size));
    HFM_TRY(staging::pwriteFull(to, done, std::span<const uint8_t>(buf.data(), n)));
    done += n;
  }
  return okStatus();
}

std::chrono::milliseconds backoff(const WriteConfig& c, int attempt) {
  const auto initial = std::max<int64_t>(c.retry_initial.count(), 1);
  const auto cap = std::max<int64_t>(c.retry_max.count(), initial);
  int64_t delay = initial;
  for (int i = 1; i < attempt && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  // ±20 % jitter so several mounts (or files) do not retry in lockstep.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> jitter(-delay / 5, delay / 5);
  return std::chrono::milliseconds(std::max<int64_t>(delay + jitter(rng), 1));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

void Vfs::initWritePath() {
  if (remote_->readOnly()) return;
  std::error_code ec;
  if (config_.writes.staging_dir.empty()) {
    auto base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string tmpl = (base / "hfm-staging-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      staging_error_ = osError("creating a staging directory in " + base.string());
    } else {
      staging_dir_ = tmpl;
      staging_private_ = true;
    }
  } else {
    staging_dir_ = config_.writes.staging_dir;
    std::filesystem::create_directories(staging_dir_, ec);
    if (ec) {
      staging_error_ =
          Error(EIO, "creating staging directory " + staging_dir_ + ": " + ec.message());
    } else {
      ::chmod(staging_dir_.c_str(), 0700);  // other users must not read unsaved bytes
    }
  }
  if (staging_error_) spdlog::error("writes disabled: {}", staging_error_->message());
  committer_ = std::thread([this] { committerLoop(); });
}

void Vfs::shutdownWritePath() {
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    stop_ = true;
  }
  commit_cv_.notify_all();
  done_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  // Pending and dirty copies stay on disk (with their manifests) for recoverPending().
  if (staging_private_) {
    std::error_code ec;
    std::filesystem::remove_all(staging_dir_, ec);
  }
}

// ---------------------------------------------------------------------------------------------
// Staged copies

Result<std::shared_ptr<Vfs::FileHandle>> Vfs::handleOf(uint64_t fh) const {
  std::lock_guard<std::mutex> lock(handles_mu_);
  auto it = files_.find(fh);
  if (it == files_.end()) return Error(EBADF, "unknown file handle");
  return it->second;
}

bool Vfs::stagedServesLocked(const Inode& node) const {
  const auto& s = node.staged;
  if (s == nullptr || s->discarded) return false;
  if (s->dirty() || node.writers > 0) return true;
  std::lock_guard<std::mutex> lock(s->mu);
  return !s->base_hash.empty() && s->base_hash == node.entry.xet_hash;
}

Result<std::shared_ptr<Vfs::Staged>> Vfs::newStaged(InodeId ino, bool streaming) {
  if (staging_error_) return *staging_error_;
  auto s = std::make_shared<Staged>();
  s->ino = ino;
  s->name = staging::uniqueName();
  s->data_path = staging_dir_ + "/" + s->name + ".data";
  s->manifest_path = staging_dir_ + "/" + s->name + ".manifest";
  s->streaming = streaming;
  s->fd = ::open(s->data_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (s->fd < 0) {
    Error e = osError("creating staging file " + s->data_path);
    spdlog::error("{}", e.message());
    return e;
  }
  s->mtime_ns = wallNowNs();
  return s;
}

Result<std::shared_ptr<Vfs::Staged>> Vfs::acquireStaged(InodeId ino, bool truncate) {
  RemoteEntry entry;
  std::shared_ptr<Staged> existing;
  std::string path;
  bool existing_usable = false;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || node->detached) return Error(ENOENT, "unknown inode");
    if (node->is_dir) return Error(EISDIR, node->path + " is a directory");
    entry = node->entry;
    path = node->path;
    existing = node->staged;
    existing_usable = existing != nullptr && stagedServesLocked(*node);
  }
  std::shared_ptr<Staged> s = existing_usable ? existing : nullptr;
  bool fresh_empty = false;
  if (s == nullptr) {
    HFM_ASSIGN_OR_RETURN(auto made, newStaged(ino, false));
    const bool remote_exists = !entry.xet_hash.empty() || !entry.etag.empty();
    made->remote_exists = remote_exists;
    made->mtime_ns = entry.mtime_ns != 0 ? entry.mtime_ns : wallNowNs();
    if (truncate || !remote_exists || entry.size == 0) {
      fresh_empty = true;
      if (!truncate && remote_exists) {  // an empty remote file: the copy is clean
        made->base_hash = entry.xet_hash;
        made->committed = 0;
      }
    } else {
      // Download the whole current version; the copy is clean (equal to it) afterwards.
      std::vector<uint8_t> buf(kDownloadPiece);
      uint64_t at = 0;
      while (at < entry.size) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), entry.size - at));
        auto got = remote_->read(entry, at, std::span<uint8_t>(buf.data(), want));
        if (!got.ok()) {
          ::unlink(made->data_path.c_str());
          spdlog::error("staging {} for writing: {}", path, got.error().message());
          return got.error().code() == ENOENT ? Error(EIO, got.error().message()) : got.error();
        }
        if (*got == 0) {
          ::unlink(made->data_path.c_str());
          return Error(EIO, path + ": remote version ended at " + std::to_string(at) + " of " +
                                std::to_string(entry.size) + " bytes");
        }
        Status w = staging::pwriteFull(made->fd, at, std::span<const uint8_t>(buf.data(), *got));
        if (!w.ok()) {
          ::unlink(made->data_path.c_str());
          spdlog::error("staging {} for writing: {}", path, w.error().message());
          return w.error();
        }
        at += *got;
      }
      made->size = entry.size;
      made->base_hash = entry.xet_hash;
      made->committed = 0;
      made->downloaded_from = entry;
      spdlog::debug("staged {} ({} bytes) for writing", path, entry.size);
    }
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || node->detached) {
      ::unlink(made->data_path.c_str());
      return Error(ENOENT, path + " was removed");
    }
    if (node->staged != nullptr && node->staged != existing && stagedServesLocked(*node)) {
      // Another opener staged it meanwhile: share theirs.
      ::unlink(made->data_path.c_str());
      s = node->staged;
      fresh_empty = false;
    } else {
      if (node->staged != nullptr) discardLocked(*node);  // a stale clean copy
      node->staged = made;
      staged_inodes_.insert(ino);
      s = made;
    }
  }
  if (truncate && !fresh_empty) {
    std::lock_guard<std::mutex> ulock(s->upload_mu);
    std::lock_guard<std::mutex> slock(s->mu);
    if (::ftruncate(s->fd, 0) != 0) return osError("truncating " + s->data_path);
    s->size = 0;
    s->changedLocked(0);
    s->mtime_ns = wallNowNs();
    s->upload.reset();
  }
  if (cancelQueuedDelete(path)) {
    std::lock_guard<std::mutex> slock(s->mu);
    s->remote_exists = true;
  }
  return s;
}

void Vfs::discardLocked(Inode& node) {
  std::shared_ptr<Staged> s = std::move(node.staged);
  node.staged = nullptr;
  staged_inodes_.erase(node.ino);
  if (s == nullptr) return;
  s->discarded = true;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->removeFilesLocked();  // open handles keep reading and writing the unlinked fd
  }
  std::lock_guard<std::mutex> lock(commit_mu_);
  signaled_.erase(s.get());
  retries_.erase(s.get());
}

void Vfs::loseStaged(const std::shared_ptr<Staged>& s, const Error& cause) {
  if (s->lost_errno.exchange(cause.code()) != 0) return;  // another handle got here first
  std::string path;
  bool hub_version = false;
  bool delete_again = false;  // the Hub still has a file the user deleted before re-creating it
  std::vector<std::function<void(InvalidationSink&)>> notes;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(s->ino);
    if (node != nullptr && node->staged == s) {  // else unlinked or replaced already
      path = node->path;
      hub_version = !node->entry.xet_hash.empty() || !node->entry.etag.empty();
      {
        std::lock_guard<std::mutex> slock(s->mu);
        delete_again = !hub_version && s->remote_exists;
      }
      discardLocked(*node);
      const InodeId ino = node->ino;
      Inode* dir = findLocked(node->parent);
      if (hub_version) {
        notes.emplace_back([ino](InvalidationSink& sink) { sink.invalidateInode(ino, false); });
      } else if (dir != nullptr && !node->detached) {
        ChangeSet changes;
        detachLocked(*dir, node->name, changes, notes);  // never committed: the name goes
      }
    }
  }
  {
    std::lock_guard<std::mutex> slock(s->mu);
    if (::ftruncate(s->fd, 0) != 0) {  // the unlinked file keeps its blocks while fds are open
      spdlog::warn("freeing {}: {}", s->data_path, std::strerror(errno));
    }
    s->size = 0;
  }
  dispatch(notes);
  if (path.empty()) {
    spdlog::error("a write to {} failed ({}); the file was already replaced or removed",
                  s->data_path, cause.message());
    return;
  }
  if (delete_again) queueDelete(path);
  if (!hub_version) addNegative(path);
  spdlog::error("{}: unsaved data LOST, a write failed ({}); nothing of it is committed and {}",
                path, cause.message(),
                hub_version ? "the file shows its last committed version again"
                            : "the file, never committed, is removed");
}

uint64_t Vfs::dropCleanCopies() {
  std::vector<std::shared_ptr<Staged>> dropped;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    std::vector<Inode*> clean;
    for (InodeId id : staged_inodes_) {
      Inode* node = findLocked(id);
      const auto& s = node != nullptr ? node->staged : nullptr;
      if (s != nullptr && !s->dirty() && s->handles == 0) clean.push_back(node);
    }
    for (Inode* node : clean) {
      dropped.push_back(node->staged);
      discardLocked(*node);
    }
  }
  // Unlinked and unused: the blocks are freed when `dropped` closes the last fds below.
  uint64_t freed = 0;
  for (const auto& s : dropped) freed += s->size.load();
  if (!dropped.empty()) {
    spdlog::info("staging area full: dropped {} cached clean copies ({} bytes) to make room",
                 dropped.size(), freed);
  }
  return freed;
}

void Vfs::releaseCleanLocked(Inode& node) {
  const auto s = node.staged;
  if (s == nullptr || s->dirty() || s->handles > 0) return;
  if (!config_.writes.advanced || s->streaming) {
    {
      std::lock_guard<std::mutex> lock(s->mu);
      s->removeFilesLocked();
    }
    node.staged = nullptr;
    staged_inodes_.erase(node.ino);
    return;
  }
  s->last_used = Clock::now();  // kept as a read/write cache of the committed version
  gcLocked();
}

void Vfs::gcLocked() {
  const uint64_t limit = config_.writes.max_staging_size;
  if (limit == 0) return;
  struct Clean {
    Clock::time_point used;
    InodeId ino;
    uint64_t size;
  };
  std::vector<Clean> clean;
  uint64_t total = 0;
  for (InodeId id : staged_inodes_) {
    Inode* node = findLocked(id);
    if (node == nullptr || node->staged == nullptr) continue;
    const auto& s = *node->staged;
    if (s.dirty() || s.handles > 0) continue;
    clean.push_back({s.last_used, id, s.size.load()});
    total += s.size.load();
  }
  if (total <= limit) return;
  std::sort(clean.begin(), clean.end(),
            [](const Clean& a, const Clean& b) { return a.used < b.used; });
  for (const auto& c : clean) {
    if (total <= limit) break;
    Inode* node = findLocked(c.ino);
    {
      std::lock_guard<std::mutex> lock(node->staged->mu);
      node->staged->removeFilesLocked();
    }
    node->staged = nullptr;
    staged_inodes_.erase(c.ino);
    total -= c.size;
    spdlog::debug("staging GC: dropped the clean copy of {} ({} bytes)", node->path, c.size);
  }
}

Status Vfs::persist(const std::shared_ptr<Staged>& s) {
  std::string path;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(s->ino);
    if (node == nullptr || node->staged != s) return okStatus();  // discarded: nothing to keep
    path = node->path;
  }
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->discarded) return okStatus();
  const uint64_t gen = s->generation;
  if (s->synced_gen != gen) {
    if (::fdatasync(s->fd) != 0) {
      Error e = osError("fdatasync " + s->data_path);
      spdlog::error("{} ({})", e.message(), path);
      return e;
    }
    s->synced_gen = gen;
  }
  staging::Manifest m;
  m.path = path;
  m.size = s->size;
  m.mtime_ns = s->mtime_ns;
  m.data = s->name + ".data";
  m.deletes = s->deletes;
  std::string text = staging::serializeManifest(m);
  if (s->has_manifest && text == s->manifest_text) return okStatus();
  Status st = staging::writeFileAtomic(staging_dir_, s->name + ".manifest", text);
  if (!st.ok()) {
    spdlog::error("writing the manifest of {}: {}", path, st.error().message());
    return st;
  }
  s->has_manifest = true;
  s->manifest_text = std::move(text);
  return okStatus();
}

// ---------------------------------------------------------------------------------------------
// Opening and writing

std::unique_ptr<RemoteUpload> Vfs::startLiveUpload() {
  auto upload = remote_->beginUpload();
  if (upload.ok()) return std::move(*upload);
  // Not fatal: the bytes are staged on local disk and the commit uploads them from there.
  spdlog::warn("cannot start an upload now ({}); the file is staged locally and uploaded at close",
               upload.error().message());
  return nullptr;
}

Result<OpenResult> Vfs::openWrite(InodeId ino, int flags, bool created) {
  if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
  const bool truncate = created || (flags & O_TRUNC) != 0;
  auto handle = std::make_shared<FileHandle>();
  handle->ino = ino;
  handle->writable = true;
  handle->append = (flags & O_APPEND) != 0;
  if (!config_.writes.advanced) {
    if (!truncate || (!created && handle->append)) {
      return Error(EPERM,
                   "streaming writes replace whole files: open with O_TRUNC (or mount with "
                   "--advanced-writes)");
    }
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      Inode* node = findLocked(ino);
      if (node == nullptr || node->detached) return Error(ENOENT, "unknown inode");
      if (node->is_dir) return Error(EISDIR, node->path + " is a directory");
    }
    HFM_ASSIGN_OR_RETURN(auto s, newStaged(ino, true));
    s->upload = startLiveUpload();
    std::string path;
    bool superseded = false;
    {
      std::unique_lock<std::shared_mutex> lock(mu_);
      Inode* node = findLocked(ino);
      if (node == nullptr || node->detached) {
        ::unlink(s->data_path.c_str());
        return Error(ENOENT, "unknown inode");
      }
      path = node->path;
      {
        std::lock_guard<std::mutex> slock(s->mu);
        s->remote_exists = !node->entry.xet_hash.empty() || !node->entry.etag.empty();
        if (const auto& old = node->staged) {
          std::lock_guard<std::mutex> olock(old->mu);
          s->deletes = old->deletes;  // renames of the replaced version still need their deletes
          s->remote_exists = s->remote_exists || old->remote_exists;
        }
      }
      if (node->staged != nullptr) {
        if (node->staged->writers > 0) {
          node->staged->superseded = true;  // its writer's later writes and close get EIO
          superseded = true;
        }
        discardLocked(*node);  // last writer wins: the older version is never committed
      }
      node->staged = s;
      staged_inodes_.insert(ino);
      node->writers++;
      node->open_handles++;
      node->last_open_version = std::string();
      s->handles++;
      s->writers++;
    }
    if (superseded) spdlog::info("{}: a new writer replaces the one still open (last wins)", path);
    if (cancelQueuedDelete(path)) {
      std::lock_guard<std::mutex> slock(s->mu);
      s->remote_exists = true;
    }
    handle->staged = std::move(s);
  } else {
    HFM_ASSIGN_OR_RETURN(auto s, acquireStaged(ino, truncate));
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || node->detached) return Error(ENOENT, "file was removed");
    node->writers++;
    node->open_handles++;
    node->last_open_version = std::string();
    s->handles++;
    s->writers++;
    s->last_used = Clock::now();
    handle->staged = std::move(s);
  }
  OpenResult result;
  result.direct_io = config_.direct_io;
  result.keep_cache = false;
  std::lock_guard<std::mutex> lock(handles_mu_);
  result.fh = next_fh_++;
  files_[result.fh] = std::move(handle);
  return result;
}

Result<CreateResult> Vfs::create(InodeId parent, std::string_view name_view, int flags) {
  HFM_TRY(checkMutation(name_view));
  const std::string name(name_view);
  auto existing = lookup(parent, name);
  if (existing.ok()) {
    if ((flags & O_EXCL) != 0 || existing->is_dir) {
      forget(existing->ino, 1);
      return Error(existing->is_dir ? EISDIR : EEXIST, name + " exists");
    }
    // Streaming mode can only replace; advanced mode honours the flags (no O_TRUNC: keep).
    const int open_flags = config_.writes.advanced ? flags : (flags | O_TRUNC);
    auto opened = openWrite(existing->ino, open_flags, !config_.writes.advanced);
    if (!opened.ok()) {
      forget(existing->ino, 1);
      return opened.error();
    }
    auto attr = getattr(existing->ino);
    return CreateResult{attr.ok() ? *attr : *existing, *opened};
  }
  if (existing.error().code() != ENOENT) return existing.error();
  // The staged copy exists before the name does, so no listing can drop the new file.
  std::unique_ptr<RemoteUpload> upload;
  if (!config_.writes.advanced) {
    upload = startLiveUpload();
  }
  HFM_ASSIGN_OR_RETURN(auto s, newStaged(0, !config_.writes.advanced));
  s->upload = std::move(upload);
  std::string path;
  InodeId id = 0;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    if (dir == nullptr || dir->detached || !dir->is_dir || dir->children.contains(name)) {
      ::unlink(s->data_path.c_str());
      if (dir == nullptr || dir->detached) return Error(ENOENT, "directory was removed");
      if (!dir->is_dir) return Error(ENOTDIR, dir->path + " is not a directory");
      return Error(EEXIST, name + " appeared meanwhile");
    }
    path = childPath(*dir, name);
    RemoteEntry e;
    e.path = path;
    e.mtime_ns = s->mtime_ns;
    ChangeSet changes;
    std::vector<std::function<void(InvalidationSink&)>> notes;  // the kernel made the call
    id = childLocked(*dir, name, e, changes, notes);
    Inode* node = findLocked(id);
    if (node->staged != nullptr) discardLocked(*node);  // a resurrected inode's old copy
    s->ino = id;
    node->staged = s;
    staged_inodes_.insert(id);
    node->nlookup++;
    node->writers++;
    node->open_handles++;
    node->last_open_version = std::string();
    s->handles++;
    s->writers++;
  }
  {
    std::lock_guard<std::mutex> lock(neg_mu_);
    negative_.erase(path);
  }
  if (cancelQueuedDelete(path)) {
    std::lock_guard<std::mutex> slock(s->mu);
    s->remote_exists = true;
  }
  auto handle = std::make_shared<FileHandle>();
  handle->ino = id;
  handle->writable = true;
  handle->append = (flags & O_APPEND) != 0;
  handle->staged = s;
  OpenResult opened;
  opened.direct_io = config_.direct_io;
  {
    std::lock_guard<std::mutex> lock(handles_mu_);
    opened.fh = next_fh_++;
    files_[opened.fh] = std::move(handle);
  }
  auto attr = getattr(id);
  if (!attr.ok()) return attr.error();
  return CreateResult{*attr, opened};
}

Result<size_t> Vfs::write(uint64_t fh, uint64_t offset, std::span<const uint8_t> data) {
  if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
  HFM_ASSIGN_OR_RETURN(auto handle, handleOf(fh));
  if (!handle->writable) return Error(EBADF, "write on a read-only handle");
  std::lock_guard<std::mutex> wlock(handle->write_mu);
  Staged& s = *handle->staged;
  if (const int lost = s.lost_errno.load(); lost != 0) return lostError(lost);
  if (s.superseded) return Error(EIO, "a later writer replaced this file (last writer wins)");
  if (!config_.writes.advanced && offset != handle->written) {
    return Error(EINVAL, "streaming writes must be sequential (offset " + std::to_string(offset) +
                             ", expected " + std::to_string(handle->written) +
                             "); see --advanced-writes");
  }
  if (data.empty()) return size_t{0};
  std::lock_guard<std::mutex> ulock(s.upload_mu);
  uint64_t at = offset;
  uint64_t gen = 0;
  auto store = [&]() -> Status {
    std::lock_guard<std::mutex> slock(s.mu);
    if (handle->append && config_.writes.advanced) at = s.size;
    Status st = staging::pwriteOrRollback(s.fd, at, data, s.size);
    if (st.ok() && at + data.size() > s.size) s.size = at + data.size();
    s.changedLocked(at);  // also on failure: bytes below the old size may be half overwritten
    gen = s.generation;
    s.mtime_ns = wallNowNs();
    return st;
  };
  Status stored = store();
  if (!stored.ok() && stored.error().code() == ENOSPC && dropCleanCopies() > 0) {
    stored = store();  // cached clean copies made room
  }
  if (!stored.ok()) {
    s.upload.reset();  // the live upload is abandoned: no byte of this version is committed
    loseStaged(handle->staged, stored.error());
    return stored.error();
  }
  if (s.upload != nullptr) {
    // Streaming: keep uploading while the file arrives, so close has little left to do.
    if (s.upload_pos == at && s.upload_gen + 1 == gen) {
      Status st = s.upload->write(data);
      if (st.ok()) {
        s.upload_pos += data.size();
        s.upload_gen = gen;
      } else {
        spdlog::warn(
            "upload of {} failed while writing ({}); the bytes stay on local disk and "
            "are uploaded again at close",
            s.data_path, st.error().message());
        s.upload.reset();
      }
    } else {
      s.upload.reset();  // not a continuation: the commit uploads from the staging file
    }
  }
  handle->written = at + data.size();
  handle->wrote = true;
  return data.size();
}

Status Vfs::flush(uint64_t fh) {
  HFM_ASSIGN_OR_RETURN(auto handle, handleOf(fh));
  if (!handle->writable) return okStatus();
  std::lock_guard<std::mutex> wlock(handle->write_mu);
  const auto s = handle->staged;
  if (const int lost = s->lost_errno.load(); lost != 0) return lostError(lost);
  if (s->superseded) return Error(EIO, "a later writer replaced this file (last writer wins)");
  if (s->discarded) return okStatus();  // unlinked: nothing to commit
  if (!config_.writes.advanced) {
    // A shell redirect closes a dup'd descriptor before writing: the commit waits for release.
    if (!handle->wrote) return okStatus();
    if (!s->dirty()) return okStatus();
    return closeCommit(s);
  }
  if (s->dirty()) {
    HFM_TRY(persist(s));
    signalFlush(s);
  }
  std::lock_guard<std::mutex> slock(s->mu);
  if (s->flush_error) {
    Error e(EIO, s->flush_error->message() + " (the file is kept locally and retried)");
    s->flush_error.reset();
    return e;
  }
  return okStatus();
}

Status Vfs::fsync(uint64_t fh) {
  HFM_ASSIGN_OR_RETURN(auto handle, handleOf(fh));
  if (!handle->writable) return okStatus();
  const auto s = handle->staged;
  if (const int lost = s->lost_errno.load(); lost != 0) return lostError(lost);
  if (s->superseded) return Error(EIO, "a later writer replaced this file (last writer wins)");
  if (s->discarded || !s->dirty()) return okStatus();
  // Safe on local disk is what fsync promises here; the Hub commit follows in the background.
  HFM_TRY(persist(s));
  if (config_.writes.advanced) signalFlush(s);
  return okStatus();
}

void Vfs::release(uint64_t fh) {
  std::shared_ptr<FileHandle> handle;
  {
    std::lock_guard<std::mutex> lock(handles_mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) return;
    handle = std::move(it->second);
    files_.erase(it);
  }
  if (handle->staged == nullptr) {
    if (handle->prefetcher != nullptr && spdlog::should_log(spdlog::level::debug)) {
      const auto s = handle->prefetcher->stats();
      spdlog::debug(
          "release fh {}: {} sequential / {} random reads, {} streams, {} batches, "
          "{} bytes prefetched, {} bytes direct",
          fh, s.sequential_reads, s.random_reads, s.stream_starts, s.batches.size(),
          s.bytes_prefetched, s.bytes_direct);
    }
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(handle->ino);
    if (node != nullptr && node->open_handles > 0) {
      node->open_handles--;
      maybeFreeLocked(handle->ino);
    }
    return;
  }
  const auto s = handle->staged;
  if (handle->writable) {
    std::lock_guard<std::mutex> wlock(handle->write_mu);
    if (!s->superseded && !s->discarded && s->dirty()) {
      Status st = okStatus();
      if (!config_.writes.advanced) {
        st = closeCommit(s);
      } else {
        st = persist(s);
        signalFlush(s);
      }
      if (!st.ok()) spdlog::error("release fh {}: {}", fh, st.error().message());
    }
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (s->handles > 0) s->handles--;
  if (handle->writable && s->writers > 0) s->writers--;
  Inode* node = findLocked(handle->ino);
  if (node != nullptr) {
    if (handle->writable && node->writers > 0) node->writers--;
    if (node->open_handles > 0) node->open_handles--;
    if (node->staged == s) releaseCleanLocked(*node);
    maybeFreeLocked(handle->ino);
  }
}

Result<Attr> Vfs::setattr(InodeId ino, const SetAttrRequest& changes) {
  const bool any = changes.size || changes.mode || changes.uid || changes.gid || changes.mtime_ns;
  if (remote_->readOnly()) {
    if (any) return Error(EROFS, "read-only filesystem");
    return getattr(ino);
  }
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr) return Error(ENOENT, "unknown inode " + std::to_string(ino));
    if (changes.size && node->is_dir) return Error(EISDIR, node->path + " is a directory");
  }
  // Streaming mode ignores size changes as the reference does (O_TRUNC opens truncate).
  if (changes.size && config_.writes.advanced) {
    const uint64_t want = *changes.size;
    HFM_ASSIGN_OR_RETURN(auto s, acquireStaged(ino, want == 0));
    {
      std::lock_guard<std::mutex> ulock(s->upload_mu);
      std::lock_guard<std::mutex> slock(s->mu);
      if (s->size != want) {
        if (::ftruncate(s->fd, static_cast<off_t>(want)) != 0) {
          return osError("truncating " + s->data_path);
        }
        s->changedLocked(std::min<uint64_t>(s->size, want));
        s->size = want;
        s->mtime_ns = wallNowNs();
        s->upload.reset();
      }
    }
    if (s->dirty()) {
      HFM_TRY(persist(s));  // a handle-less truncate has no close to wait for
      signalFlush(s);
    }
  }
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr) return Error(ENOENT, "unknown inode " + std::to_string(ino));
    if (changes.mode) node->mode_override = *changes.mode & 07777;
    if (changes.uid) node->uid_override = *changes.uid;
    if (changes.gid) node->gid_override = *changes.gid;
    if (changes.mtime_ns) {
      if (node->staged != nullptr && (node->dirty() || node->writers > 0)) {
        node->staged->mtime_ns = *changes.mtime_ns;  // committed with the file
      } else {
        node->mtime_override = *changes.mtime_ns;
      }
    }
  }
  return getattr(ino);
}

// ---------------------------------------------------------------------------------------------
// Committing

Vfs::Staged::Snapshot::~Snapshot() {
  if (fd >= 0) ::close(fd);
  if (!path.empty()) ::unlink(path.c_str());
  if (owner != nullptr) owner->snapshot_bytes = 0;
}

Result<UploadedContent> Vfs::Staged::uploadInPlace(Remote& remote) {
  uint64_t gen = 0;
  uint64_t total = 0;
  int64_t mtime = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    gen = generation;
    total = size;
    mtime = mtime_ns;
    change_floor = kNoChange;
  }
  HFM_ASSIGN_OR_RETURN(auto session, remote.beginUpload());
  std::vector<uint8_t> buf(kUploadPiece);
  for (uint64_t at = 0; at < total;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), total - at));
    {
      // Bytes [0, total) are still those of generation `gen` as long as nothing below `total`
      // changed, so every piece read here belongs to that one version.
      std::lock_guard<std::mutex> lock(mu);
      if (change_floor < total) {
        return Error(EAGAIN, "changed at offset " + std::to_string(change_floor) +
                                 " while uploading " + std::to_string(total) + " bytes");
      }
      HFM_ASSIGN_OR_RETURN(const size_t n,
                           staging::preadFull(fd, at, std::span<uint8_t>(buf.data(), want)));
      if (n != want) {
        return Error(EIO,
                     data_path + " is shorter than its recorded size " + std::to_string(total));
      }
    }
    HFM_TRY(session->write(std::span<const uint8_t>(buf.data(), want)));
    at += want;
  }
  HFM_ASSIGN_OR_RETURN(auto done, session->finish());
  std::lock_guard<std::mutex> lock(mu);
  uploaded_gen = gen;
  uploaded_hash = done.xet_hash;
  uploaded_size = done.size;
  uploaded_mtime_ns = mtime;
  return done;
}

Result<std::unique_ptr<Vfs::Staged::Snapshot>> Vfs::Staged::takeSnapshot(
    const std::string& staging_dir) {
  auto snap = std::make_unique<Snapshot>();
  const std::string path = staging_dir + "/" + name + ".snap";
  snap->fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (snap->fd < 0) return osError("creating snapshot " + path);
  snap->path = path;
  snap->owner = this;
  std::lock_guard<std::mutex> lock(mu);
  snap->gen = generation;
  snap->size = size;
  snap->mtime_ns = mtime_ns;
  Status copied = copyFileBytes(fd, snap->fd, snap->size);
  if (!copied.ok()) return copied.error().withContext("snapshot of " + data_path);
  snapshot_bytes = snap->size;
  return snap;
}

Result<UploadedContent> Vfs::Staged::uploadSnapshot(Remote& remote, const Snapshot& snap) {
  HFM_ASSIGN_OR_RETURN(auto session, remote.beginUpload());
  std::vector<uint8_t> buf(kUploadPiece);
  for (uint64_t at = 0; at < snap.size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), snap.size - at));
    HFM_ASSIGN_OR_RETURN(const size_t n,
                         staging::preadFull(snap.fd, at, std::span<uint8_t>(buf.data(), want)));
    if (n != want) return Error(EIO, snap.path + " is shorter than " + std::to_string(snap.size));
    HFM_TRY(session->write(std::span<const uint8_t>(buf.data(), want)));
    at += want;
  }
  HFM_ASSIGN_OR_RETURN(auto done, session->finish());
  std::lock_guard<std::mutex> lock(mu);
  uploaded_gen = snap.gen;
  uploaded_hash = done.xet_hash;
  uploaded_size = done.size;
  uploaded_mtime_ns = snap.mtime_ns;
  return done;
}

Result<UploadedContent> Vfs::uploadStaged(Staged& s) {
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.uploaded_gen == s.generation && !s.uploaded_hash.empty()) {
      return UploadedContent{s.uploaded_hash, s.uploaded_size};  // uploaded, commit had failed
    }
  }
  {
    std::lock_guard<std::mutex> ulock(s.upload_mu);
    if (s.upload != nullptr) {
      uint64_t gen = 0;
      bool live = false;
      int64_t mtime = 0;
      {
        std::lock_guard<std::mutex> lock(s.mu);
        gen = s.generation;
        live = s.upload_gen == gen && s.upload_pos == s.size;
        mtime = s.mtime_ns;
      }
      auto upload = std::move(s.upload);
      if (live) {
        // upload_mu is held: no write can change the bytes before finish() returns.
        auto done = upload->finish();
        if (done.ok()) {
          std::lock_guard<std::mutex> lock(s.mu);
          s.uploaded_gen = gen;
          s.uploaded_hash = done->xet_hash;
          s.uploaded_size = done->size;
          s.uploaded_mtime_ns = mtime;
        }
        return done;
      }
    }
  }
  bool snapshot_first = false;
  std::optional<RemoteEntry> base;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    snapshot_first = s.prefer_snapshot;
    base = s.downloaded_from;
  }
  if (base) remote_->learnBase(*base);
  if (!snapshot_first) {
    auto done = s.uploadInPlace(*remote_);
    if (done.ok() || done.error().code() != EAGAIN) return done;
    spdlog::info("{} {}; uploading a snapshot copy instead", s.data_path, done.error().message());
    std::lock_guard<std::mutex> lock(s.mu);
    s.prefer_snapshot = true;  // it is being rewritten: later commits copy first
  }
  auto snap = s.takeSnapshot(staging_dir_);
  if (!snap.ok()) {
    // No room for a copy: the in-place upload can still succeed if the writer pauses.
    spdlog::warn("{}; uploading in place", snap.error().message());
    return s.uploadInPlace(*remote_);
  }
  return s.uploadSnapshot(*remote_, **snap);
}

Status Vfs::commitStaged(const std::vector<std::shared_ptr<Staged>>& items,
                         const std::vector<std::string>& deletes, std::vector<Status>& results) {
  results.assign(items.size(), okStatus());
  struct Prep {
    size_t index;
    std::shared_ptr<Staged> s;
    std::unique_lock<std::mutex> commit_lock;
    std::string path;
    uint64_t gen;
    UploadedContent content;
    int64_t mtime_ms;
    std::vector<std::string> deletes;
    bool add;
  };
  std::vector<Prep> preps;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& s = items[i];
    std::unique_lock<std::mutex> commit_lock(s->commit_mu);
    std::string path;
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      Inode* node = findLocked(s->ino);
      if (node == nullptr || node->staged != s || s->discarded) continue;
      path = node->path;
    }
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (!s->dirty()) continue;
    }
    auto content = uploadStaged(*s);
    if (!content.ok()) {
      results[i] = content.error().withContext("uploading " + path);
      continue;
    }
    bool add = true;
    uint64_t gen = 0;  // the generation uploaded (the file may have changed since)
    int64_t mtime_ns = 0;
    std::vector<std::string> dels;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      gen = s->uploaded_gen;
      mtime_ns = s->uploaded_mtime_ns;
      dels = s->deletes;
      // Same bytes as the committed version at the same path: nothing to send.
      add = !(dels.empty() && s->committed != kNeverCommitted && !s->base_hash.empty() &&
              content->xet_hash == s->base_hash);
    }
    preps.push_back(Prep{i, s, std::move(commit_lock), path, gen, *content, mtime_ns / 1'000'000,
                         std::move(dels), add});
  }
  std::vector<RemoteAdd> adds;
  std::set<std::string> add_paths;
  for (const auto& p : preps) {
    if (!p.add) continue;
    adds.push_back({p.path, p.content.xet_hash, p.mtime_ms});
    add_paths.insert(p.path);
  }
  std::set<std::string> delete_set;
  for (const auto& p : preps) {
    for (const auto& d : p.deletes) {
      if (!add_paths.contains(d)) delete_set.insert(d);
    }
  }
  for (const auto& d : deletes) {
    if (!add_paths.contains(d)) delete_set.insert(d);
  }
  const std::vector<std::string> all_deletes(delete_set.begin(), delete_set.end());
  if (!add_paths.empty() && std::this_thread::get_id() != committer_.get_id()) {
    // A close committing a path whose delete the committer is sending right now waits for that
    // batch: the add must land after the delete, or the new file would be deleted.
    std::unique_lock<std::mutex> lock(commit_mu_);
    done_cv_.wait(lock, [&] {
      return stop_ || std::none_of(add_paths.begin(), add_paths.end(), [&](const auto& path) {
               return inflight_deletes_.contains(path);
             });
    });
  }
  if (!adds.empty() || !all_deletes.empty()) {
    Status st = remote_->commitFiles(adds, all_deletes);
    if (!st.ok()) {
      for (const auto& p : preps) results[p.index] = st.error().withContext("committing " + p.path);
      return st;
    }
    committed_files_ += adds.size();  // before anyone can see the files clean
  }
  for (auto& p : preps) {
    const auto& s = p.s;
    bool clean = false;
    bool newer = false;  // changed after the upload began: the next batch takes the new bytes
    bool record_delete = false;  // queued in memory under mu_; its record is written after
    int attempts = 0;
    {
      std::lock_guard<std::mutex> lock(commit_mu_);
      attempts = s->attempts;
    }
    {
      std::unique_lock<std::shared_mutex> lock(mu_);
      Inode* node = findLocked(s->ino);
      bool queue_delete = false;
      {
        std::lock_guard<std::mutex> slock(s->mu);
        auto& pending = s->deletes;
        std::erase_if(pending, [&](const std::string& d) {
          return std::find(p.deletes.begin(), p.deletes.end(), d) != p.deletes.end();
        });
        if (s->discarded || node == nullptr || node->staged != s) {
          // Unlinked while committing: the path now names bytes the user deleted (unless a
          // newer version of it is on its way, which overwrites it anyway).
          queue_delete = p.add && !s->superseded && s->lost_errno == 0;
        } else if (node->path != p.path) {
          if (p.add) s->deletes.push_back(p.path);  // renamed while committing
          s->committed = kNeverCommitted;
        } else {
          s->remote_exists = true;
          s->base_hash = p.content.xet_hash;
          s->uploaded_gen = kNeverCommitted;
          s->uploaded_hash.clear();
          s->committed = p.gen;  // still dirty if it changed after the upload began
          s->flush_error.reset();
          node->entry.xet_hash = p.content.xet_hash;
          node->entry.etag = p.content.xet_hash;
          node->entry.size = p.content.size;
          node->entry.mtime_ns = p.mtime_ms * 1'000'000;
          node->revalidated_at = now();
          node->last_open_version = std::string();  // kernel pages may predate the commit
          clean = !s->dirty();
          newer = !clean;
          if (clean && s->has_manifest) {
            ::unlink(s->manifest_path.c_str());
            s->has_manifest = false;
            s->manifest_text.clear();
          }
        }
      }
      if (queue_delete) {
        auto owner = path_ino_.find(p.path);
        Inode* other = owner == path_ino_.end() ? nullptr : findLocked(owner->second);
        if (other == nullptr || other->detached || !other->dirty()) {
          // Queued in memory while mu_ still orders it before any re-create of the path (whose
          // cancelQueuedDelete runs after it took mu_); the record's write + fsync run below,
          // without the big lock.
          std::lock_guard<std::mutex> clock(commit_mu_);
          record_delete = true;
          if (!stop_) {
            queued_deletes_.insert(p.path);
            const auto t = Clock::now();
            if (!first_signal_) first_signal_ = t;
            last_signal_ = t;
            commit_cv_.notify_all();
          }
        }
      }
      if (node != nullptr && node->staged == s) releaseCleanLocked(*node);
    }
    if (p.add) {
      if (attempts > 0) {
        spdlog::info("committed {} ({} bytes, xet {}) after {} failed attempt(s)", p.path,
                     p.content.size, p.content.xet_hash, attempts);
      } else {
        spdlog::info("committed {} ({} bytes, xet {})", p.path, p.content.size, p.content.xet_hash);
      }
    }
    if (clean) {
      std::lock_guard<std::mutex> lock(commit_mu_);
      s->attempts = 0;
      retries_.erase(s.get());
    }
    if (record_delete) recordQueuedDelete(p.path);
    if (newer && config_.writes.advanced) signalFlush(s);
  }
  return okStatus();
}

Status Vfs::closeCommit(const std::shared_ptr<Staged>& s) {
  std::vector<Status> results;
  (void)commitStaged({s}, {}, results);
  if (results[0].ok()) return okStatus();
  const Error& failure = results[0].error();
  Status kept = persist(s);
  if (!kept.ok()) {
    spdlog::error("DATA LOSS RISK: {} and the bytes could not be kept on local disk: {}",
                  failure.message(), kept.error().message());
    return Error(kept.error().code() == ENOSPC ? ENOSPC : EIO, failure.message());
  }
  scheduleRetry(s, failure);
  return okStatus();
}

void Vfs::signalFlush(const std::shared_ptr<Staged>& s) {
  std::lock_guard<std::mutex> lock(commit_mu_);
  if (stop_) return;
  const auto t = Clock::now();
  signaled_[s.get()] = s;
  if (!first_signal_) first_signal_ = t;
  last_signal_ = t;
  commit_cv_.notify_all();
}

void Vfs::scheduleRetry(const std::shared_ptr<Staged>& s, const Error& error) {
  std::string path;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(s->ino);
    if (node == nullptr || node->staged != s) return;  // discarded meanwhile
    path = node->path;
  }
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->flush_error = error;
  }
  failed_attempts_++;
  int attempt = 0;
  std::chrono::milliseconds delay{0};
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    if (stop_ || s->discarded) return;
    attempt = ++s->attempts;
    delay = backoff(config_.writes, attempt);
    retries_[s.get()] = {s, Clock::now() + delay};
    commit_cv_.notify_all();
  }
  spdlog::warn("commit of {} failed (attempt {}): {}; the file is kept in {} and retried in {} ms",
               path, attempt, error.message(), staging_dir_, delay.count());
}

bool Vfs::cancelQueuedDelete(const std::string& path) {
  std::string record;
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    if (inflight_deletes_.contains(path)) {
      cancelled_deletes_.insert(path);  // not re-queued if the batch fails; record dropped then
      return true;
    }
    if (queued_deletes_.erase(path) == 0) return false;
    if (auto rec = delete_files_.find(path); rec != delete_files_.end()) {
      record = std::move(rec->second);
      delete_files_.erase(rec);
    }
  }
  if (!record.empty()) ::unlink(record.c_str());
  return true;
}

std::string Vfs::persistDelete(const std::string& path) {
  if (staging_error_) return {};
  const std::string name = staging::uniqueName() + ".delete";
  Status st = staging::writeFileAtomic(
      staging_dir_, name, staging::serializeDelete(staging::DeleteRecord{path, wallNowNs()}));
  if (!st.ok()) {
    // Still queued in memory; only a kill before the batch would forget it.
    spdlog::error("recording the queued delete of {}: {}; a restart before it is sent forgets it",
                  path, st.error().message());
    return {};
  }
  return staging_dir_ + "/" + name;
}

void Vfs::recordQueuedDelete(const std::string& path) {
  const std::string record = persistDelete(path);
  if (record.empty()) return;
  std::lock_guard<std::mutex> lock(commit_mu_);
  if (stop_) return;  // the record stays for the next start
  if (!queued_deletes_.contains(path) && !inflight_deletes_.contains(path)) {
    ::unlink(record.c_str());  // cancelled by a re-create, or already sent and cleaned up
    return;
  }
  auto [it, inserted] = delete_files_.emplace(path, record);
  if (!inserted) ::unlink(record.c_str());  // an earlier record of this path still stands
}

void Vfs::queueDelete(const std::string& path) {
  // On disk first: a kill before the batch is sent must not bring the file back.
  const std::string record = persistDelete(path);
  std::lock_guard<std::mutex> lock(commit_mu_);
  if (stop_) return;  // the record stays for the next start
  if (!record.empty()) {
    auto [it, inserted] = delete_files_.emplace(path, record);
    if (!inserted) ::unlink(record.c_str());  // an earlier record of this path still stands
  }
  queued_deletes_.insert(path);
  const auto t = Clock::now();
  if (!first_signal_) first_signal_ = t;
  last_signal_ = t;
  commit_cv_.notify_all();
}

bool Vfs::deletePending(const std::string& path) {
  std::lock_guard<std::mutex> lock(commit_mu_);
  return queued_deletes_.contains(path) || inflight_deletes_.contains(path);
}

void Vfs::committerLoop() {
  std::unique_lock<std::mutex> lock(commit_mu_);
  while (!stop_) {
    const auto t = Clock::now();
    auto wake = Clock::time_point::max();
    bool batch = false;
    if (!signaled_.empty() || !queued_deletes_.empty()) {
      if (!first_signal_) first_signal_ = t;
      if (!last_signal_) last_signal_ = t;
      // Debounce: wait while signals keep arriving, but never longer than the batch window.
      const auto due = std::min(*last_signal_ + config_.writes.flush_debounce,
                                *first_signal_ + config_.writes.flush_max_batch_window);
      if (flush_now_ || due <= t) {
        batch = true;
      } else {
        wake = due;
      }
    }
    std::vector<std::shared_ptr<Staged>> work;
    std::set<Staged*> taken;
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (flush_now_ || it->second.second <= t) {
        if (taken.insert(it->first).second) work.push_back(it->second.first);
        it = retries_.erase(it);
      } else {
        wake = std::min(wake, it->second.second);
        ++it;
      }
    }
    std::vector<std::string> dels;
    if (batch) {
      for (auto& [key, s] : signaled_) {
        if (taken.insert(key).second) work.push_back(s);
      }
      signaled_.clear();
      dels.assign(queued_deletes_.begin(), queued_deletes_.end());
      inflight_deletes_ = std::move(queued_deletes_);
      queued_deletes_.clear();
      first_signal_.reset();
      last_signal_.reset();
    }
    flush_now_ = false;
    if (work.empty() && dels.empty()) {
      committer_rounds_++;
      done_cv_.notify_all();
      if (wake == Clock::time_point::max()) {
        commit_cv_.wait(lock);
      } else {
        commit_cv_.wait_until(lock, wake);
      }
      continue;
    }
    committer_busy_ = true;
    lock.unlock();
    std::vector<Status> results;
    Status batch_status = commitStaged(work, dels, results);
    if (!batch_status.ok() && !dels.empty()) {
      spdlog::warn("deleting {} path(s) failed: {}; retried with the next batch", dels.size(),
                   batch_status.error().message());
    }
    for (size_t i = 0; i < work.size(); ++i) {
      if (results[i].ok()) continue;
      if (results[i].error().code() == EAGAIN) {
        signalFlush(work[i]);  // written while uploading: the next batch takes the new bytes
      } else {
        scheduleRetry(work[i], results[i].error());
      }
    }
    lock.lock();
    if (!batch_status.ok()) {
      // Put the deletes back, except for paths written again meanwhile: the new version's add
      // replaces the old file, and a delete sent after it would remove the new version.
      for (const auto& d : inflight_deletes_) {
        if (!cancelled_deletes_.contains(d)) queued_deletes_.insert(d);
      }
      if (!queued_deletes_.empty() && signaled_.empty()) {
        const auto later = Clock::now() + config_.writes.retry_initial;
        first_signal_ = later;  // not before retry_initial
        last_signal_ = later;
      }
    }
    // Sent (or cancelled): their records go, unless the path was queued again meanwhile.
    for (const auto& d : inflight_deletes_) {
      if (queued_deletes_.contains(d)) continue;
      if (auto rec = delete_files_.find(d); rec != delete_files_.end()) {
        ::unlink(rec->second.c_str());
        delete_files_.erase(rec);
      }
    }
    cancelled_deletes_.clear();
    inflight_deletes_.clear();
    committer_busy_ = false;
    committer_rounds_++;
    done_cv_.notify_all();
  }
}

// ---------------------------------------------------------------------------------------------
// Namespace mutations of written files

Status Vfs::unlink(InodeId parent, std::string_view name_view) {
  if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
  const std::string name(name_view);
  std::string path;
  std::vector<std::string> deletes;
  std::shared_ptr<Staged> staged;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    if (dir == nullptr || dir->detached) return Error(ENOENT, "directory was removed");
    auto it = dir->children.find(name);
    Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
    if (node == nullptr) return Error(ENOENT, name + " does not exist");
    if (node->is_dir) return Error(EISDIR, node->path + " is a directory");
    path = node->path;
    staged = node->staged;
    bool remote_exists = !node->entry.xet_hash.empty() || !node->entry.etag.empty();
    if (staged != nullptr) {
      std::lock_guard<std::mutex> slock(staged->mu);
      remote_exists = staged->remote_exists || (!staged->dirty() && remote_exists);
      deletes = staged->deletes;  // old names of a renamed, uncommitted file
    }
    if (remote_exists) deletes.push_back(path);
  }
  if (!deletes.empty()) {
    if (config_.writes.advanced) {
      for (const auto& d : deletes) queueDelete(d);  // sent with the next batch
    } else {
      Status st = remote_->commitFiles({}, deletes);
      if (!st.ok()) {
        spdlog::error("unlink {}: {}", path, st.error().message());
        return Error(EIO, st.error().message());
      }
    }
  }
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    if (Inode* dir = findLocked(parent)) {
      auto it = dir->children.find(name);
      if (it != dir->children.end()) {
        if (Inode* node = findLocked(it->second)) discardLocked(*node);
      }
      ChangeSet changes;
      std::vector<std::function<void(InvalidationSink&)>> notes;  // the kernel made the call
      detachLocked(*dir, name, changes, notes);
    }
  }
  addNegative(path);
  return okStatus();
}

Status Vfs::renameStaged(InodeId parent, const std::string& name, InodeId new_parent,
                         const std::string& new_name) {
  std::shared_ptr<Staged> s;
  std::string old_path;
  std::string new_path;
  bool open_writer = false;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || dir->detached || new_dir == nullptr || new_dir->detached) {
      return Error(ENOENT, "directory was removed");
    }
    auto it = dir->children.find(name);
    Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
    if (node == nullptr || node->staged == nullptr) return Error(ENOENT, name + " does not exist");
    s = node->staged;
    old_path = node->path;
    new_path = childPath(*new_dir, new_name);
    auto target_it = new_dir->children.find(new_name);
    Inode* target = target_it == new_dir->children.end() ? nullptr : findLocked(target_it->second);
    if (target != nullptr && target->is_dir) return Error(EISDIR, new_path + " is a directory");
    std::vector<std::string> carried;
    if (target != nullptr && target->staged != nullptr) {
      std::lock_guard<std::mutex> tlock(target->staged->mu);
      carried = target->staged->deletes;  // the replaced file's own old names
    }
    {
      std::lock_guard<std::mutex> slock(s->mu);
      if (s->remote_exists) s->deletes.push_back(old_path);
      s->remote_exists = false;
      for (auto& c : carried) s->deletes.push_back(std::move(c));
      std::erase(s->deletes, new_path);  // the add at the new path replaces it
      s->committed = kNeverCommitted;    // the Hub has nothing at the new path yet
    }
    open_writer = s->writers > 0;
    moveNodeLocked(*dir, name, *new_dir, new_name);
  }
  if (cancelQueuedDelete(new_path)) {
    std::lock_guard<std::mutex> slock(s->mu);
    s->remote_exists = true;
  }
  addNegative(old_path);
  {
    std::lock_guard<std::mutex> lock(neg_mu_);
    negative_.erase(new_path);
  }
  bool had_manifest = false;
  {
    std::lock_guard<std::mutex> slock(s->mu);
    had_manifest = s->has_manifest;
  }
  if (had_manifest) {
    Status st = persist(s);  // the manifest must name the new path
    if (!st.ok()) spdlog::error("rename {} → {}: {}", old_path, new_path, st.error().message());
  }
  if (config_.writes.advanced) {
    signalFlush(s);
  } else if (!open_writer) {
    std::lock_guard<std::mutex> lock(commit_mu_);  // a pending file: commit it at its new name
    retries_[s.get()] = {s, Clock::now()};
    commit_cv_.notify_all();
  }
  return okStatus();
}

// ---------------------------------------------------------------------------------------------
// Durability: recovery, flushAll, stats

Status Vfs::recoverOne(const std::string& manifest_file,
                       std::map<std::string, int64_t>& deleted_at) {
  auto markBad = [&](const std::string& why) {
    spdlog::error("pending file manifest {}: {}; NOT committed (kept as {}.bad for inspection)",
                  manifest_file, why, manifest_file);
    ::rename(manifest_file.c_str(), (manifest_file + ".bad").c_str());
    return Error(EINVAL, why);
  };
  auto text = staging::readSmallFile(manifest_file, kMaxManifestBytes);
  if (!text.ok()) return markBad(text.error().message());
  auto m = staging::parseManifest(*text);
  if (!m.ok()) return markBad("corrupt: " + m.error().message());
  const std::string stem = std::filesystem::path(manifest_file).stem().string();
  if (m->data != stem + ".data") return markBad("names a foreign data file " + m->data);
  // Every component must be a plain name (no "..", no empty parts).
  std::vector<std::string> parts;
  for (size_t at = 0;;) {
    const size_t slash = m->path.find('/', at);
    parts.push_back(
        m->path.substr(at, slash == std::string::npos ? std::string::npos : slash - at));
    if (slash == std::string::npos) break;
    at = slash + 1;
  }
  for (const auto& p : parts) {
    if (p.empty() || p == "." || p == ".." || p.size() > 255) {
      return markBad("invalid path '" + m->path + "'");
    }
  }
  const std::string data_path = staging_dir_ + "/" + m->data;
  struct stat st {};
  if (::stat(data_path.c_str(), &st) != 0) return markBad("its data file is missing");
  const auto actual = static_cast<uint64_t>(st.st_size);
  if (actual < m->size) {
    return markBad("data file has " + std::to_string(actual) + " bytes, the manifest says " +
                   std::to_string(m->size) + " (truncated)");
  }
  if (auto del = deleted_at.find(m->path); del != deleted_at.end()) {
    struct stat mst {};
    const int64_t written_ns =
        ::stat(manifest_file.c_str(), &mst) == 0
            ? static_cast<int64_t>(mst.st_mtim.tv_sec) * 1'000'000'000 + mst.st_mtim.tv_nsec
            : 0;
    if (del->second > written_ns) {
      // Unlinked after its last close (killed before the unlink removed these files): the
      // delete wins, and the old names of a renamed file go with it.
      spdlog::info("pending {}: deleted after it was written; dropping {} (the delete is sent)",
                   m->path, manifest_file);
      for (const auto& d : m->deletes) queueDelete(d);
      ::unlink(manifest_file.c_str());
      ::unlink(data_path.c_str());
      return Error(ECANCELED, m->path + " was deleted");
    }
    // Written again after the delete was queued: the delete is cancelled (as it would have
    // been in the earlier run), before the commit below can race with it.
    spdlog::info(
        "queued delete of {} from an earlier run: the file was written again after it; "
        "cancelled",
        m->path);
    deleted_at.erase(del);
  }
  if (actual > m->size) {
    // Writes that returned after the last sync (the process was killed, the kernel kept them).
    spdlog::warn("pending {}: {} bytes on disk, {} at the last sync; committing what is on disk",
                 m->path, actual, m->size);
  }
  auto s = std::make_shared<Staged>();
  s->name = stem;
  s->data_path = data_path;
  s->manifest_path = manifest_file;
  s->streaming = !config_.writes.advanced;
  s->fd = ::open(data_path.c_str(), O_RDWR | O_CLOEXEC);
  if (s->fd < 0) return markBad(osError("opening " + data_path).message());
  s->size = actual;
  s->mtime_ns = m->mtime_ns != 0 ? m->mtime_ns : wallNowNs();
  s->has_manifest = true;
  s->manifest_text = *text;
  s->synced_gen = 0;
  s->deletes = m->deletes;
  auto remote = remote_->stat(m->path);
  s->remote_exists = remote.ok() && !remote->is_dir;

  std::vector<std::function<void(InvalidationSink&)>> notes;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(kRootInode);
    std::string at;
    ChangeSet changes;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      at = at.empty() ? parts[i] : at + "/" + parts[i];
      auto it = dir->children.find(parts[i]);
      Inode* child = it == dir->children.end() ? nullptr : findLocked(it->second);
      if (child != nullptr && !child->is_dir) {
        lock.unlock();
        return markBad(at + " is a file now, cannot restore " + m->path);
      }
      if (child == nullptr) {
        RemoteEntry e;
        e.path = at;
        e.is_dir = true;
        e.mtime_ns = s->mtime_ns;
        child = findLocked(childLocked(*dir, parts[i], e, changes, notes));
        child->local_dir = true;  // kept by listings until the file lands
      }
      dir = child;
    }
    const std::string& leaf = parts.back();
    auto it = dir->children.find(leaf);
    Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
    if (node != nullptr && (node->is_dir || node->dirty())) {
      lock.unlock();
      spdlog::error("pending {}: the path is {} now; recovery skipped (files kept in {})", m->path,
                    node->is_dir ? "a directory" : "being written", staging_dir_);
      return Error(EEXIST, m->path + " is busy");
    }
    if (node == nullptr) {
      RemoteEntry e;
      e.path = m->path;
      e.size = actual;
      e.mtime_ns = s->mtime_ns;
      node = findLocked(childLocked(*dir, leaf, e, changes, notes));
    } else if (node->staged != nullptr) {
      discardLocked(*node);
    }
    s->ino = node->ino;
    node->staged = s;
    staged_inodes_.insert(node->ino);
  }
  dispatch(notes);
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    retries_[s.get()] = {s, Clock::now()};
    commit_cv_.notify_all();
  }
  spdlog::info("recovered pending {} ({} bytes) from {}: committing it in the background", m->path,
               actual, staging_dir_);
  return okStatus();
}

Status Vfs::recoverPending() {
  if (remote_->readOnly()) return okStatus();
  if (staging_error_) return *staging_error_;
  std::error_code ec;
  std::vector<std::string> manifests;
  std::vector<std::string> datas;
  std::vector<std::string> delete_records;
  for (const auto& entry : std::filesystem::directory_iterator(staging_dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.ends_with(".manifest.tmp") || file.ends_with(".delete.tmp") ||
        file.ends_with(".snap")) {
      ::unlink(entry.path().c_str());  // a write or an upload snapshot interrupted by the kill
    } else if (file.ends_with(".delete")) {
      delete_records.push_back(entry.path().string());
    } else if (file.ends_with(".manifest")) {
      manifests.push_back(entry.path().string());
    } else if (file.ends_with(".data")) {
      datas.push_back(file.substr(0, file.size() - 5));
    }
  }
  if (ec) return Error(EIO, "scanning " + staging_dir_ + ": " + ec.message());
  std::sort(manifests.begin(), manifests.end());
  std::sort(delete_records.begin(), delete_records.end());
  // Queued deletes the earlier run had not sent: path → (latest queue time, record files).
  std::map<std::string, std::pair<int64_t, std::vector<std::string>>> deletes;
  for (const auto& file : delete_records) {
    auto text = staging::readSmallFile(file, kMaxManifestBytes);
    auto d = text.ok() ? staging::parseDelete(*text) : Result<staging::DeleteRecord>(text.error());
    if (d.ok() && !validRelativePath(d->path)) d = Error(EINVAL, "invalid path '" + d->path + "'");
    if (!d.ok()) {
      spdlog::error("queued delete record {}: {}; NOT sent (kept as {}.bad for inspection)", file,
                    d.error().message(), file);
      ::rename(file.c_str(), (file + ".bad").c_str());
      continue;
    }
    auto& slot = deletes[d->path];
    slot.first = std::max(slot.first, d->time_ns);
    slot.second.push_back(file);
  }
  std::map<std::string, int64_t> deleted_at;
  for (const auto& [path, info] : deletes) deleted_at[path] = info.first;
  size_t recovered = 0;
  for (const auto& m : manifests) {
    if (recoverOne(m, deleted_at).ok()) recovered++;
  }
  size_t requeued = 0;
  for (const auto& [path, info] : deletes) {
    if (!deleted_at.contains(path)) {  // cancelled by a newer pending file at that path
      for (const auto& f : info.second) ::unlink(f.c_str());
      continue;
    }
    std::vector<std::function<void(InvalidationSink&)>> notes;
    {
      std::unique_lock<std::shared_mutex> lock(mu_);
      auto it = path_ino_.find(path);
      Inode* node = it == path_ino_.end() ? nullptr : findLocked(it->second);
      if (node != nullptr && !node->detached && !node->is_dir && !node->dirty()) {
        // Listed before the recovery: gone again, as it was when the earlier run stopped.
        if (Inode* dir = findLocked(node->parent)) {
          if (node->staged != nullptr) discardLocked(*node);  // a clean cache of it
          ChangeSet changes;
          detachLocked(*dir, node->name, changes, notes);
        }
      }
    }
    dispatch(notes);
    {
      std::lock_guard<std::mutex> lock(commit_mu_);
      auto [rec, inserted] = delete_files_.emplace(path, info.second.front());
      for (size_t i = inserted ? 1 : 0; i < info.second.size(); ++i) {
        ::unlink(info.second[i].c_str());  // one record per path is enough
      }
      queued_deletes_.insert(path);
      const auto t = Clock::now();
      if (!first_signal_) first_signal_ = t;
      last_signal_ = t;
      commit_cv_.notify_all();
    }
    addNegative(path);
    requeued++;
  }
  if (requeued > 0) {
    spdlog::info("{} delete(s) queued by an earlier run re-queued for the next batch", requeued);
  }
  std::set<std::string> live;  // copies of this Vfs (recovered ones included)
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (InodeId id : staged_inodes_) {
      if (Inode* node = findLocked(id); node != nullptr && node->staged != nullptr) {
        live.insert(node->staged->name);
      }
    }
  }
  for (const auto& stem : datas) {
    if (!staging::isStagingName(stem) || live.contains(stem)) continue;
    const std::string base = staging_dir_ + "/" + stem;
    struct stat st {};
    if (::stat((base + ".manifest").c_str(), &st) == 0 ||
        ::stat((base + ".manifest.bad").c_str(), &st) == 0) {
      continue;
    }
    // Never closed (the writer was killed mid-write): close() never promised these bytes.
    spdlog::info("removing {}.data: left by an earlier run that never closed the file", base);
    ::unlink((base + ".data").c_str());
  }
  if (!manifests.empty()) {
    spdlog::info("{} of {} pending file(s) from an earlier run queued for commit", recovered,
                 manifests.size());
  }
  return okStatus();
}

Status Vfs::flushAll(std::chrono::milliseconds timeout) {
  if (remote_->readOnly()) return okStatus();
  const auto deadline = Clock::now() + timeout;
  std::vector<std::shared_ptr<Staged>> targets;
  std::vector<std::string> busy;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (InodeId id : staged_inodes_) {
      Inode* node = findLocked(id);
      if (node == nullptr || node->staged == nullptr || !node->staged->dirty()) continue;
      if (node->staged->streaming && node->staged->writers > 0) {
        busy.push_back(node->path);  // mid-write: its close commits it
        continue;
      }
      targets.push_back(node->staged);
    }
  }
  {
    std::unique_lock<std::mutex> lock(commit_mu_);
    const auto t = Clock::now();
    for (const auto& s : targets) retries_[s.get()] = {s, t};
    flush_now_ = true;
    const uint64_t start = committer_rounds_;
    commit_cv_.notify_all();
    done_cv_.wait_until(lock, deadline, [&] {
      if (stop_) return true;
      const bool all_clean = std::all_of(targets.begin(), targets.end(),
                                         [](const auto& s) { return s->discarded || !s->dirty(); });
      const bool deletes_done = queued_deletes_.empty() && inflight_deletes_.empty();
      if (all_clean && deletes_done) return true;
      // One full round after the request: what failed now waits for its backoff.
      return committer_rounds_ > start && !flush_now_ && !committer_busy_;
    });
  }
  std::vector<std::string> remaining = busy;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (const auto& s : targets) {
      if (s->discarded || !s->dirty()) continue;
      Inode* node = findLocked(s->ino);
      remaining.push_back(node != nullptr ? node->path : s->data_path);
    }
  }
  size_t deletes_left = 0;
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    deletes_left = queued_deletes_.size() + inflight_deletes_.size();
  }
  if (remaining.empty() && deletes_left == 0) return okStatus();
  std::string list;
  for (size_t i = 0; i < remaining.size() && i < 20; ++i) {
    list += (i == 0 ? "" : ", ") + remaining[i];
  }
  if (remaining.size() > 20) list += ", ...";
  std::string msg = std::to_string(remaining.size()) + " file(s) not committed";
  if (!list.empty()) msg += " (" + list + ")";
  if (deletes_left > 0) msg += ", " + std::to_string(deletes_left) + " delete(s) not sent";
  msg += "; kept in " + staging_dir_ + " and committed by the next start";
  return Error(EIO, msg);
}

WriteStats Vfs::writeStats() const {
  WriteStats out;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (InodeId id : staged_inodes_) {
      Inode* node = findLocked(id);
      if (node == nullptr || node->staged == nullptr) continue;
      out.snapshot_bytes += node->staged->snapshot_bytes.load();
      if (!node->staged->dirty()) continue;
      out.dirty_files++;
      if (node->staged->writers == 0) {
        out.pending_commits++;
        out.pending_bytes += node->staged->size.load();
      }
    }
  }
  out.committed_files = committed_files_.load();
  out.failed_attempts = failed_attempts_.load();
  return out;
}

}  // namespace hfm::vfs
