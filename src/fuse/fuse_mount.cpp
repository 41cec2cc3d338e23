#define FUSE_USE_VERSION 312
#include "hfm/fuse/fuse_mount.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "hfm/fuse/passthrough.h"
#include "hfm/util/log.h"

extern char** environ;

namespace hfm::fuse {

namespace {

constexpr unsigned kMaxIo = 1024 * 1024;

// Queues kernel-cache invalidations and sends them from its own thread: notify_inval_inode can
// block in the kernel on a page lock held by a reader that waits for one of our request threads,
// so it must never run on a request thread or while the Vfs holds a lock.
class Notifier : public vfs::InvalidationSink {
 public:
  explicit Notifier(fuse_session* se) : se_(se) {}
  ~Notifier() override { disarm(); }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  // Stops the thread and drops pending work; later calls are ignored. Idempotent.
  void disarm() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      armed_ = false;
      queue_.clear();
    }
    cv_.notify_all();
    // requestStop() (signal thread) and serve() (main thread) may both disarm.
    std::lock_guard<std::mutex> join_lock(join_mu_);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  void invalidateInode(vfs::InodeId ino, bool drop_pages) override {
    push(Item{false, ino, drop_pages, {}});
  }
  void invalidateEntry(vfs::InodeId parent, const std::string& name) override {
    push(Item{true, parent, false, name});
  }

  uint64_t sent() const { return sent_.load(); }

 private:
  struct Item {
    bool entry;
    vfs::InodeId ino;
    bool drop_pages;
    std::string name;
  };

  void push(Item item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!armed_) return;
      queue_.push_back(std::move(item));
    }
    cv_.notify_one();
  }

  void run() {
    for (;;) {
      Item item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !armed_ || !queue_.empty(); });
        if (!armed_) return;
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      int rc = 0;
      if (item.entry) {
        rc = fuse_lowlevel_notify_inval_entry(se_, item.ino, item.name.c_str(), item.name.size());
      } else if (item.drop_pages) {
        rc = fuse_lowlevel_notify_inval_inode(se_, item.ino, 0, 0);  // attributes and all pages
      } else {
        rc = fuse_lowlevel_notify_inval_inode(se_, item.ino, -1, 0);  // attributes only
      }
      sent_++;
      // ENOENT: the kernel does not hold that inode/name, which is fine.
      if (rc != 0 && rc != -ENOENT) {
        spdlog::debug("fuse notify ({} {}): {}", item.entry ? "entry" : "inode", item.ino,
                      std::strerror(-rc));
      }
    }
  }

  fuse_session* const se_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // Guarded by mu_.
  bool armed_ = true;       // Guarded by mu_.
  std::atomic<uint64_t> sent_{0};
  std::mutex join_mu_;  // serializes joining thread_
  std::thread thread_;
};

// The backing id the next reply written by this thread (an OPEN reply) must carry.
thread_local int32_t pending_backing_id = 0;

struct stat toStat(const vfs::Attr& a) {
  struct stat st {};
  st.st_ino = a.ino;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_blksize = static_cast<blksize_t>(a.blksize);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(a.mtime_ns / 1000000000);
  ts.tv_nsec = static_cast<long>(a.mtime_ns % 1000000000);
  st.st_mtim = ts;
  st.st_ctim = ts;
  st.st_atim = ts;
  return st;
}

}  // namespace

struct FuseMount::Impl {
  Impl(vfs::Vfs& v, FuseConfig c) : vfs(v), config(std::move(c)) {}
  ~Impl() {
    if (notifier) notifier->disarm();
    vfs.setInvalidationSink(nullptr);
    if (se != nullptr) {
      if (mounted) fuse_session_unmount(se);
      fuse_session_destroy(se);
    }
  }

  // Entry/attribute cache time for the kernel. --metadata-ttl-minimal means "ask on every
  // lookup", which only happens if the kernel caches nothing.
  double timeout() const {
    if (vfs.config().metadata_ttl_minimal) return 0.0;
    return static_cast<double>(config.entry_timeout.count()) / 1000.0;
  }

  vfs::Vfs& vfs;
  const FuseConfig config;
  fuse_session* se = nullptr;
  bool mounted = false;  // owned by the thread calling mount()/serve()/destructor
  std::unique_ptr<Notifier> notifier;
  std::atomic<bool> stop_requested{false};
  mutable std::mutex mu;
  std::optional<std::string> device;  // Guarded by mu.
  // Passthrough (config.passthrough): the INIT request seen by ioRead, and whether the reply
  // turned it on.
  static constexpr uint64_t kNoInit = ~0ull;  // no request has this id (notifications use 0)
  std::atomic<bool> init_answered{false};
  std::atomic<uint64_t> init_unique{kNoInit};
  std::atomic<bool> init_offers_passthrough{false};
  std::atomic<bool> passthrough_on{false};
  std::unique_ptr<DeviceBackingFiles> backing;
  std::unique_ptr<PassthroughTable> table;
};

namespace {

FuseMount::Impl* implOf(fuse_req_t req) {
  return static_cast<FuseMount::Impl*>(fuse_req_userdata(req));
}

void replyStatus(fuse_req_t req, const Status& st) {
  fuse_reply_err(req, st.ok() ? 0 : st.error().code());
}

void opInit(void* userdata, fuse_conn_info* conn) {
  auto* impl = static_cast<FuseMount::Impl*>(userdata);
  if ((conn->capable & FUSE_CAP_AUTO_INVAL_DATA) != 0) {
    conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  } else {
    spdlog::error("kernel lacks FUSE_AUTO_INVAL_DATA (needs >= 3.15): stale pages possible");
  }
  if ((conn->capable & FUSE_CAP_ASYNC_READ) != 0) conn->want |= FUSE_CAP_ASYNC_READ;
  if ((conn->capable & FUSE_CAP_PARALLEL_DIROPS) != 0) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // READDIRPLUS when the kernel thinks it pays (first listing, or after lookups of entries).
  if ((conn->capable & FUSE_CAP_READDIRPLUS) != 0) conn->want |= FUSE_CAP_READDIRPLUS;
  if ((conn->capable & FUSE_CAP_READDIRPLUS_AUTO) != 0) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
  conn->want &=
      ~static_cast<unsigned>(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  conn->max_write = kMaxIo;
  conn->max_read = kMaxIo;
  conn->max_readahead = 16u * 1024 * 1024;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->time_gran = 1;
  spdlog::debug("fuse init: proto {}.{}, capable 0x{:x}, want 0x{:x}", conn->proto_major,
                conn->proto_minor, conn->capable, conn->want);
  (void)impl;
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto* impl = implOf(req);
  auto r = impl->vfs.lookup(parent, name);
  fuse_entry_param e{};
  e.entry_timeout = impl->timeout();
  e.attr_timeout = impl->timeout();
  if (!r.ok()) {
    if (r.error().code() == ENOENT) {
      e.ino = 0;  // negative entry, cached by the kernel for entry_timeout
      fuse_reply_entry(req, &e);
    } else {
      fuse_reply_err(req, r.error().code());
    }
    return;
  }
  e.ino = r->ino;
  e.generation = 0;
  e.attr = toStat(*r);
  if (fuse_reply_entry(req, &e) != 0) {
    impl->vfs.forget(r->ino, 1);  // the kernel never saw it: undo the reference
  }
}

void opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  implOf(req)->vfs.forget(ino, nlookup);
  fuse_reply_none(req);
}

void opForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  std::vector<std::pair<vfs::InodeId, uint64_t>> items;
  items.reserve(count);
  for (size_t i = 0; i < count; ++i) items.emplace_back(forgets[i].ino, forgets[i].nlookup);
  implOf(req)->vfs.forgetMulti(items);
  fuse_reply_none(req);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  auto* impl = implOf(req);
  auto r = impl->vfs.getattr(ino);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  auto st = toStat(*r);
  fuse_reply_attr(req, &st, impl->timeout());
}

void opSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  auto* impl = implOf(req);
  if (impl->vfs.readOnly() && to_set != 0) {
    fuse_reply_err(req, EROFS);  // even atime-only changes (touch -a)
    return;
  }
  vfs::SetAttrRequest changes;
  if ((to_set & FUSE_SET_ATTR_SIZE) != 0 && attr->st_size >= 0) {
    changes.size = static_cast<uint64_t>(attr->st_size);
  }
  if ((to_set & FUSE_SET_ATTR_MODE) != 0) changes.mode = attr->st_mode & 07777;
  if ((to_set & FUSE_SET_ATTR_UID) != 0) changes.uid = attr->st_uid;
  if ((to_set & FUSE_SET_ATTR_GID) != 0) changes.gid = attr->st_gid;
  if ((to_set & FUSE_SET_ATTR_MTIME_NOW) != 0) {
    changes.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  } else if ((to_set & FUSE_SET_ATTR_MTIME) != 0) {
    changes.mtime_ns =
        static_cast<int64_t>(attr->st_mtim.tv_sec) * 1'000'000'000 + attr->st_mtim.tv_nsec;
  }
  auto r = impl->vfs.setattr(ino, changes);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  auto st = toStat(*r);
  fuse_reply_attr(req, &st, impl->timeout());
}

// Replies an entry that counts as one kernel lookup (undone if the reply cannot be sent).
void replyNewEntry(fuse_req_t req, const Result<vfs::Attr>& r) {
  auto* impl = implOf(req);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  fuse_entry_param e{};
  e.entry_timeout = impl->timeout();
  e.attr_timeout = impl->timeout();
  e.ino = r->ino;
  e.attr = toStat(*r);
  if (fuse_reply_entry(req, &e) != 0) impl->vfs.forget(r->ino, 1);
}

void opReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = implOf(req)->vfs.readlink(ino);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  fuse_reply_readlink(req, r->c_str());
}

void opMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, dev_t) {
  replyStatus(req, implOf(req)->vfs.mknod(parent, name));
}

void opMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t) {
  auto* impl = implOf(req);
  Status st = impl->vfs.mkdir(parent, name);
  if (!st.ok()) {
    fuse_reply_err(req, st.error().code());
    return;
  }
  replyNewEntry(req, impl->vfs.lookup(parent, name));
}

void opUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  replyStatus(req, implOf(req)->vfs.unlink(parent, name));
}

void opRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  replyStatus(req, implOf(req)->vfs.rmdir(parent, name));
}

void opSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  replyNewEntry(req, implOf(req)->vfs.symlink(parent, name, target));
}

void opRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int) {
  replyStatus(req, implOf(req)->vfs.rename(parent, name, newparent, newname));
}

void opLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  replyNewEntry(req, implOf(req)->vfs.link(ino, newparent, newname));
}

void opCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, fuse_file_info* fi) {
  auto* impl = implOf(req);
  auto r = impl->vfs.create(parent, name, fi->flags);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  fuse_entry_param e{};
  e.entry_timeout = impl->timeout();
  e.attr_timeout = impl->timeout();
  e.ino = r->attr.ino;
  e.attr = toStat(r->attr);
  fi->fh = r->open.fh;
  fi->keep_cache = 0;
  fi->direct_io = r->open.direct_io ? 1 : 0;
  if (fuse_reply_create(req, &e, fi) != 0) {
    impl->vfs.release(r->open.fh);
    impl->vfs.forget(r->attr.ino, 1);
  }
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto* impl = implOf(req);
  auto r = impl->vfs.open(ino, fi->flags);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  fi->fh = r->fh;
  fi->keep_cache = r->keep_cache ? 1 : 0;
  fi->direct_io = r->direct_io ? 1 : 0;
  // Read handles have nothing to flush on close; write handles commit on flush.
  fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY ? 1 : 0;
  const bool tracked = impl->passthrough_on.load();
  if (tracked) {
    auto mode = impl->table->open(ino, r->fh, r->version, r->local_fd);
    if (!mode.ok()) {
      spdlog::warn("open of inode {} refused: {} (close the handles opened before the change)", ino,
                   mode.error().message());
      impl->vfs.release(r->fh);
      fuse_reply_err(req, mode.error().code());
      return;
    }
    if (mode->passthrough) {
      spdlog::debug("open fh {} of inode {}: passthrough (backing {})", r->fh, ino,
                    mode->backing_id);
      pending_backing_id = mode->backing_id;  // written into the reply by ioWritev
    }
  }
  const int sent = fuse_reply_open(req, fi);
  pending_backing_id = 0;
  if (sent != 0) {
    if (tracked) impl->table->release(r->fh);
    impl->vfs.release(r->fh);
  }
}

void opRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  // Left uninitialised: most replies point into prefetch parts and never touch it, so its
  // pages are never faulted in (zero-filling it cost a fault per page in every new thread).
  thread_local std::unique_ptr<uint8_t[]> buf;
  thread_local size_t buf_size = 0;
  if (buf_size < size) {
    buf_size = std::max<size_t>(size, kMaxIo);
    buf = std::make_unique_for_overwrite<uint8_t[]>(buf_size);
  }
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  // Prefetched bytes come back as views into their parts and go to the kernel from there.
  thread_local std::vector<vfs::ReadView> views;
  views.clear();
  auto r = implOf(req)->vfs.read(fi->fh, static_cast<uint64_t>(off),
                                 std::span<uint8_t>(buf.get(), size), &views);
  if (!r.ok()) {
    spdlog::warn("read fh {} @{}+{}: {}", fi->fh, off, size, r.error().message());
    fuse_reply_err(req, r.error().code());
    return;
  }
  if (views.empty()) {
    fuse_reply_buf(req, reinterpret_cast<const char*>(buf.get()), *r);
    return;
  }
  thread_local std::vector<iovec> iov;
  iov.clear();
  for (const auto& v : views) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): the kernel only reads the reply
    iov.push_back({const_cast<uint8_t*>(v.bytes.data()), v.bytes.size()});
  }
  fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
  views.clear();  // releases the parts
}

void opWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  auto r =
      implOf(req)->vfs.write(fi->fh, static_cast<uint64_t>(off),
                             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf), size));
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  fuse_reply_write(req, *r);
}

void opFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  replyStatus(req, implOf(req)->vfs.flush(fi->fh));
}

void opFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  replyStatus(req, implOf(req)->vfs.fsync(fi->fh));
}

void opRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // The kernel ignores release errors; Vfs::release logs them.
  auto* impl = implOf(req);
  if (impl->table) impl->table->release(fi->fh);
  impl->vfs.release(fi->fh);
  fuse_reply_err(req, 0);
}

void opOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = implOf(req)->vfs.opendir(ino);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  fi->fh = *r;
  if (fuse_reply_open(req, fi) != 0) implOf(req)->vfs.releasedir(*r);
}

void opReaddir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  // Each entry takes at least 32 bytes in the reply buffer.
  auto r = implOf(req)->vfs.readdir(fi->fh, static_cast<uint64_t>(off), size / 32 + 1);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  std::vector<char> buf(size);
  size_t pos = 0;
  for (const auto& e : *r) {
    struct stat st {};
    st.st_ino = e.ino;
    st.st_mode = e.is_dir ? S_IFDIR : (e.is_symlink ? S_IFLNK : S_IFREG);  // d_type
    const size_t need = fuse_add_direntry(req, buf.data() + pos, size - pos, e.name.c_str(), &st,
                                          static_cast<off_t>(e.next_offset));
    if (need > size - pos) break;
    pos += need;
  }
  fuse_reply_buf(req, buf.data(), pos);
}

// READDIRPLUS: entries with attributes, so `ls -l` and `find` need no LOOKUP per entry. Every
// entry except "." and ".." hands the kernel one reference (as LOOKUP does); an entry that
// does not fit in the reply buffer gives it back.
void opReaddirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  auto* impl = implOf(req);
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  auto r = impl->vfs.readdir(fi->fh, static_cast<uint64_t>(off), size / 80 + 1);
  if (!r.ok()) {
    fuse_reply_err(req, r.error().code());
    return;
  }
  std::vector<char> buf(size);
  size_t pos = 0;
  for (const auto& e : *r) {
    const bool dot = e.name == "." || e.name == "..";
    fuse_entry_param param{};
    if (dot) {
      param.attr.st_ino = e.ino;
      param.attr.st_mode = S_IFDIR;
    } else {
      auto attr = impl->vfs.retain(e.ino);
      if (!attr.ok()) continue;  // vanished since opendir
      param.ino = e.ino;
      param.attr = toStat(*attr);
      param.entry_timeout = impl->timeout();
      param.attr_timeout = impl->timeout();
    }
    const size_t need = fuse_add_direntry_plus(req, buf.data() + pos, size - pos, e.name.c_str(),
                                               &param, static_cast<off_t>(e.next_offset));
    if (need > size - pos) {
      if (!dot) impl->vfs.forget(e.ino, 1);
      break;
    }
    pos += need;
  }
  fuse_reply_buf(req, buf.data(), pos);
}

void opReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  implOf(req)->vfs.releasedir(fi->fh);
  fuse_reply_err(req, 0);
}

void opStatfs(fuse_req_t req, fuse_ino_t) {
  const auto s = implOf(req)->vfs.statfs();
  struct statvfs out {};
  out.f_bsize = s.block_size;
  out.f_frsize = s.block_size;
  out.f_blocks = s.blocks;
  out.f_bfree = s.blocks_free;
  out.f_bavail = s.blocks_available;
  out.f_files = s.files;
  out.f_ffree = s.files_free;
  out.f_favail = s.files_free;
  out.f_namemax = s.name_max;
  fuse_reply_statfs(req, &out);
}

fuse_lowlevel_ops makeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = opInit;
  ops.lookup = opLookup;
  ops.forget = opForget;
  ops.forget_multi = opForgetMulti;
  ops.getattr = opGetattr;
  ops.setattr = opSetattr;
  ops.readlink = opReadlink;
  ops.mknod = opMknod;
  ops.mkdir = opMkdir;
  ops.unlink = opUnlink;
  ops.rmdir = opRmdir;
  ops.symlink = opSymlink;
  ops.rename = opRename;
  ops.link = opLink;
  ops.create = opCreate;
  ops.open = opOpen;
  ops.read = opRead;
  ops.write = opWrite;
  ops.release = opRelease;
  ops.flush = opFlush;
  ops.fsync = opFsync;
  ops.opendir = opOpendir;
  ops.readdir = opReaddir;
  ops.readdirplus = opReaddirplus;
  ops.releasedir = opReleasedir;
  ops.statfs = opStatfs;
  // flush, fsync, getxattr, access ... are left out on purpose: the kernel remembers ENOSYS and
  // stops asking (default_permissions does the access checks).
  return ops;
}

// libfuse custom I/O (passthrough): reads and writes /dev/fuse as libfuse would, noting the
// kernel's FUSE_INIT offer and patching the INIT and passthrough OPEN replies (passthrough.h).
ssize_t ioRead(int fd, void* buf, size_t len, void* userdata) {
  const ssize_t n = ::read(fd, buf, len);
  auto* impl = static_cast<FuseMount::Impl*>(userdata);
  if (n > 0 && !impl->init_answered.load(std::memory_order_relaxed)) {
    if (auto init = passthrough_abi::parseInitRequest(
            std::span<const uint8_t>(static_cast<const uint8_t*>(buf), static_cast<size_t>(n)))) {
      impl->init_offers_passthrough = init->offers_passthrough;
      impl->init_unique = init->unique;
    }
  }
  return n;
}

ssize_t ioWritev(int fd, iovec* iov, int count, void* userdata) {
  auto* impl = static_cast<FuseMount::Impl*>(userdata);
  if (pending_backing_id != 0) {
    passthrough_abi::setInOpenReply(iov, count, pending_backing_id);
    pending_backing_id = 0;
  } else if (!impl->init_answered.load(std::memory_order_relaxed) &&
             passthrough_abi::replyUnique(iov, count) == impl->init_unique.load()) {
    impl->init_answered = true;
    if (!impl->init_offers_passthrough) {
      spdlog::info("FUSE passthrough: not offered by this kernel; files are read through hf-mount");
    } else if (passthrough_abi::enableInInitReply(iov, count)) {
      impl->passthrough_on = true;
      spdlog::info("FUSE passthrough on: files with a local copy are read by the kernel directly");
    }
  }
  return ::writev(fd, iov, count);
}

// Runs a program and waits for it; returns its exit status (or -1).
int runProgram(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

Status unmountLazy(const std::string& mountpoint) {
  if (geteuid() == 0 && ::umount2(mountpoint.c_str(), MNT_DETACH) == 0) return okStatus();
  const int err = errno;
  if (runProgram({"fusermount3", "-u", "-z", mountpoint}) == 0) return okStatus();
  return Error(err != 0 ? err : EIO, "unmounting " + mountpoint + " failed");
}

FuseMount::FuseMount(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FuseMount::~FuseMount() = default;

Result<std::unique_ptr<FuseMount>> FuseMount::mount(vfs::Vfs& vfs, FuseConfig config) {
  auto impl = std::make_unique<Impl>(vfs, std::move(config));
  const FuseConfig& c = impl->config;
  std::string opts = "fsname=" + c.fsname +
                     ",subtype=hf-mount,default_permissions,max_read=" + std::to_string(kMaxIo);
  if (vfs.readOnly()) opts += ",ro";
  if (c.allow_other) opts += ",allow_other";
  std::vector<std::string> argv_storage = {"hf-mount", "-o", opts};
  if (c.debug) argv_storage.emplace_back("-d");
  std::vector<char*> argv;
  argv.reserve(argv_storage.size());
  for (auto& a : argv_storage) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  static const fuse_lowlevel_ops kOps = makeOps();
  impl->se = fuse_session_new(&args, &kOps, sizeof(kOps), impl.get());
  fuse_opt_free_args(&args);
  if (impl->se == nullptr) return Error(EINVAL, "fuse_session_new failed (options: " + opts + ")");
  if (fuse_session_mount(impl->se, c.mountpoint.c_str()) != 0) {
    return Error(EIO, "mounting FUSE at " + c.mountpoint + " failed (is /dev/fuse available?)");
  }
  impl->mounted = true;
  if (c.passthrough && !vfs.config().direct_io) {
    static const fuse_custom_io kIo = [] {
      fuse_custom_io io{};
      io.read = ioRead;
      io.writev = ioWritev;
      return io;
    }();
    const int fd = fuse_session_fd(impl->se);
    if (const int rc = fuse_session_custom_io(impl->se, &kIo, fd); rc == 0) {
      impl->backing = std::make_unique<DeviceBackingFiles>(fd);
      impl->table = std::make_unique<PassthroughTable>(*impl->backing);
    } else {
      spdlog::warn("FUSE passthrough off: libfuse refused custom I/O ({})", std::strerror(-rc));
    }
  }
  impl->notifier = std::make_unique<Notifier>(impl->se);
  impl->notifier->start();
  vfs.setInvalidationSink(impl->notifier.get());
  spdlog::info("mounted at {} ({}, max_threads={})", c.mountpoint,
               vfs.readOnly() ? "read-only" : "read-write", c.max_threads);
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(impl)));
}

Status FuseMount::serve() {
  Impl* impl = impl_.get();
  // Once FUSE_INIT has been answered, the mount point's stat() succeeds: raise the bdi
  // read-ahead (the INIT reply can only lower it) and report readiness.
  std::thread ready([impl] {
    struct stat st {};
    if (::stat(impl->config.mountpoint.c_str(), &st) != 0) return;
    const std::string dev =
        std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
    {
      std::lock_guard<std::mutex> lock(impl->mu);
      impl->device = dev;
    }
    if (impl->config.read_ahead_kb > 0) {
      const std::string path = "/sys/class/bdi/" + dev + "/read_ahead_kb";
      if (FILE* f = std::fopen(path.c_str(), "w")) {
        std::fprintf(f, "%u\n", impl->config.read_ahead_kb);
        if (std::fclose(f) != 0)
          spdlog::debug("setting {} failed", path);
        else
          spdlog::debug("{} = {}", path, impl->config.read_ahead_kb);
      } else {
        spdlog::debug("cannot raise {}: {}", path, std::strerror(errno));
      }
    }
    if (impl->config.on_ready) impl->config.on_ready();
  });

  int rc = 0;
  if (impl->config.max_threads <= 1) {
    rc = fuse_session_loop(impl->se);
  } else {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, impl->config.max_threads);
    fuse_loop_cfg_set_idle_threads(cfg, std::min(impl->config.max_threads, 10u));
    fuse_loop_cfg_set_clone_fd(cfg, impl->config.clone_fd ? 1 : 0);
    rc = fuse_session_loop_mt(impl->se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  impl->notifier->disarm();
  impl->vfs.setInvalidationSink(nullptr);
  if (impl->mounted) {
    fuse_session_unmount(impl->se);  // no-op if already detached; unblocks the ready thread
    impl->mounted = false;
  }
  ready.join();
  spdlog::info("unmounted {}", impl->config.mountpoint);
  if (rc < 0) return Error(-rc, "FUSE session loop failed");
  return okStatus();
}

void FuseMount::requestStop() {
  bool expected = false;
  if (!impl_->stop_requested.compare_exchange_strong(expected, true)) return;
  spdlog::info("stopping: unmounting {}", impl_->config.mountpoint);
  // No invalidation may reach a kernel connection that is going away (#192).
  impl_->notifier->disarm();
  impl_->vfs.setInvalidationSink(nullptr);
  fuse_session_exit(impl_->se);
  Status st = unmountLazy(impl_->config.mountpoint);
  if (!st.ok()) spdlog::warn("{}", st.error().message());
}

const std::string& FuseMount::mountpoint() const { return impl_->config.mountpoint; }

std::optional<std::string> FuseMount::deviceId() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->device;
}

// ---------------------------------------------------------------------------------------------

struct SignalWatcher::State {
  sigset_t set{};
  pthread_t thread{};
  std::atomic<bool> quitting{false};
};

SignalWatcher::SignalWatcher(std::function<void(int)> on_signal)
    : state_(std::make_unique<State>()) {
  sigemptyset(&state_->set);
  sigaddset(&state_->set, SIGINT);
  sigaddset(&state_->set, SIGTERM);
  sigaddset(&state_->set, SIGHUP);
  sigaddset(&state_->set, SIGUSR2);  // internal: wakes the watcher for shutdown
  pthread_sigmask(SIG_BLOCK, &state_->set, nullptr);
  struct Args {
    State* state;
    std::function<void(int)> fn;
  };
  auto* args = new Args{state_.get(), std::move(on_signal)};
  pthread_create(
      &state_->thread, nullptr,
      [](void* p) -> void* {
        std::unique_ptr<Args> a(static_cast<Args*>(p));
        for (;;) {
          int sig = 0;
          if (sigwait(&a->state->set, &sig) != 0) continue;
          if (a->state->quitting.load()) return nullptr;
          if (sig == SIGUSR2) continue;
          spdlog::info("received signal {}", sig);
          a->fn(sig);
        }
      },
      args);
}

SignalWatcher::~SignalWatcher() {
  state_->quitting = true;
  pthread_kill(state_->thread, SIGUSR2);
  pthread_join(state_->thread, nullptr);
}

}  // namespace hfm::fuse
