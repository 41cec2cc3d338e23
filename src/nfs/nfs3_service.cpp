#include "nfs3_service.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <span>

#include "hfm/util/log.h"
#include "libnfs_shim.h"

namespace hfm::nfs {
namespace {

constexpr char kFhMagic[4] = {'H', 'F', 'M', '1'};
constexpr size_t kMaxDirSnapshots = 32;
constexpr uint32_t kAccessRead = 0x0001;
constexpr uint32_t kAccessLookup = 0x0002;
constexpr uint32_t kAccessModify = 0x0004;
constexpr uint32_t kAccessExtend = 0x0008;
constexpr uint32_t kAccessDelete = 0x0010;
constexpr uint32_t kAccessExecute = 0x0020;
constexpr uint32_t kFsfHomogeneous = 0x0008;
constexpr uint32_t kFsfCanSetTime = 0x0010;

void putU64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

uint64_t getU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t pad4(size_t n) { return static_cast<uint32_t>((n + 3) & ~size_t{3}); }

nfstime3 toTime(int64_t ns) {
  nfstime3 t{};
  if (ns < 0) ns = 0;
  t.seconds = static_cast<u_int>(ns / 1'000'000'000);
  t.nseconds = static_cast<u_int>(ns % 1'000'000'000);
  return t;
}

fattr3 toFattr(uint64_t fsid, const vfs::Attr& a, uint64_t fileid) {
  fattr3 f{};
  f.type = a.is_dir ? NF3DIR : a.is_symlink ? NF3LNK : NF3REG;
  f.mode = a.mode & 07777;
  f.nlink = a.nlink;
  f.uid = a.uid;
  f.gid = a.gid;
  f.size = a.size;
  f.used = a.blocks * 512;
  f.fsid = fsid;
  f.fileid = fileid;
  f.atime = toTime(a.mtime_ns);
  f.mtime = toTime(a.mtime_ns);
  f.ctime = toTime(a.mtime_ns);
  return f;
}

post_op_attr postOp(uint64_t fsid, const std::optional<vfs::Attr>& a, uint64_t id) {
  post_op_attr p{};
  if (a) {
    p.attributes_follow = 1;
    p.post_op_attr_u.attributes = toFattr(fsid, *a, id);
  }
  return p;
}

pre_op_attr preOp(const std::optional<vfs::Attr>& a) {
  pre_op_attr p{};
  if (a) {
    p.attributes_follow = 1;
    p.pre_op_attr_u.attributes.size = a->size;
    p.pre_op_attr_u.attributes.mtime = toTime(a->mtime_ns);
    p.pre_op_attr_u.attributes.ctime = toTime(a->mtime_ns);
  }
  return p;
}

std::string parentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string joinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// A name a client may create or look up: not empty, no '/', at most 255 bytes.
Status checkName(const char* name) {
  if (name == nullptr || name[0] == '\0') return Error(EINVAL, "empty name");
  const size_t len = std::strlen(name);
  if (len > 255) return Error(ENAMETOOLONG, "name too long");
  if (std::strchr(name, '/') != nullptr) return Error(EINVAL, "name contains '/'");
  return okStatus();
}

// Decodes one argument struct with libnfs's generated codec; the ZDR owns what it allocates
// until the decoder is destroyed.
class ArgDecoder {
 public:
  ArgDecoder(char* data, size_t len) {
    zdrmem_create(&zdr_, data, static_cast<uint32_t>(len), ZDR_DECODE);
  }
  ~ArgDecoder() { zdr_destroy(&zdr_); }
  ArgDecoder(const ArgDecoder&) = delete;
  ArgDecoder& operator=(const ArgDecoder&) = delete;

  template <typename T>
  bool decode(uint32_t (*fn)(ZDR*, T*), T* out) {
    std::memset(static_cast<void*>(out), 0, sizeof(T));
    return fn(&zdr_, out) != 0;
  }

 private:
  ZDR zdr_{};
};

template <typename T>
std::optional<std::vector<char>> encode(uint32_t (*fn)(ZDR*, T*), T* res, size_t hint) {
  size_t size = hint + 4096;
  for (int attempt = 0; attempt < 6; ++attempt) {
    std::vector<char> buf(size);
    ZDR zdr{};
    zdrmem_create(&zdr, buf.data(), static_cast<uint32_t>(size), ZDR_ENCODE);
    const bool ok = fn(&zdr, res) != 0;
    const uint32_t pos = zdr_getpos(&zdr);
    zdr_destroy(&zdr);
    if (ok) {
      buf.resize(pos);
      return buf;
    }
    size *= 2;
  }
  spdlog::error("nfs: encoding a reply failed");
  return std::nullopt;
}

// The sattr3 fields a client asked to set (atime has no place in the Vfs and is ignored).
vfs::SetAttrRequest toRequest(const sattr3& in) {
  vfs::SetAttrRequest req;
  if (in.mode.set_it != 0) req.mode = in.mode.set_mode3_u.mode & 07777;
  if (in.uid.set_it != 0) req.uid = in.uid.set_uid3_u.uid;
  if (in.gid.set_it != 0) req.gid = in.gid.set_gid3_u.gid;
  if (in.size.set_it != 0) req.size = in.size.set_size3_u.size;
  if (in.mtime.set_it == SET_TO_SERVER_TIME) {
    req.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  } else if (in.mtime.set_it == SET_TO_CLIENT_TIME) {
    req.mtime_ns = static_cast<int64_t>(in.mtime.set_mtime_u.mtime.seconds) * 1'000'000'000 +
                   in.mtime.set_mtime_u.mtime.nseconds;
  }
  return req;
}

bool anySet(const vfs::SetAttrRequest& r) {
  return r.size || r.mode || r.uid || r.gid || r.mtime_ns;
}

uint64_t randomNonZero() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return v;
}

}  // namespace

uint32_t nfsStatFor(int err) {
  switch (err) {
    case 0:
      return NFS3_OK;
    case EPERM:
      return NFS3ERR_PERM;
    case ENOENT:
      return NFS3ERR_NOENT;
    case ENXIO:
      return NFS3ERR_NXIO;
    case EACCES:
      return NFS3ERR_ACCES;
    case EEXIST:
      return NFS3ERR_EXIST;
    case EXDEV:
      return NFS3ERR_XDEV;
    case ENODEV:
      return NFS3ERR_NODEV;
    case ENOTDIR:
      return NFS3ERR_NOTDIR;
    case EISDIR:
      return NFS3ERR_ISDIR;
    case EINVAL:
      return NFS3ERR_INVAL;
    case EFBIG:
      return NFS3ERR_FBIG;
    case ENOSPC:
      return NFS3ERR_NOSPC;
    case EROFS:
      return NFS3ERR_ROFS;
    case EMLINK:
      return NFS3ERR_MLINK;
    case ENAMETOOLONG:
      return NFS3ERR_NAMETOOLONG;
    case ENOTEMPTY:
      return NFS3ERR_NOTEMPTY;
    case EDQUOT:
      return NFS3ERR_DQUOT;
    case ESTALE:
    case EBADF:  // a Vfs handle vanished under us
      return NFS3ERR_STALE;
    case ENOTSUP:
      return NFS3ERR_NOTSUPP;
    case EAGAIN:
    case EBUSY:
      return NFS3ERR_JUKEBOX;  // the client retries later
    case kErrBadCookie:
      return NFS3ERR_BAD_COOKIE;
    case kErrTooSmall:
      return NFS3ERR_TOOSMALL;
    case kErrNotSync:
      return NFS3ERR_NOT_SYNC;
    default:
      return NFS3ERR_IO;  // EIO, ETIMEDOUT, ECONNRESET, ...
  }
}

// One Vfs file handle shared by the NFS calls on an inode. Destroyed (never under pool_mu_)
// when the last user drops it after it left the pool: a writable one is fsync'd first if
// UNSTABLE writes happened since its last fsync, then released, which schedules the commit.
struct Nfs3Service::PooledFile {
  vfs::Vfs* vfs = nullptr;
  std::atomic<uint64_t>* verifier = nullptr;  // rotated when unstable bytes may be lost
  vfs::InodeId ino = 0;
  uint64_t fh = 0;
  bool writable = false;
  // UNSTABLE writes completed on this handle, and how many of them an fsync has covered.
  std::atomic<uint64_t> completed_writes{0};
  std::atomic<uint64_t> synced_writes{0};
  std::atomic<int64_t> last_use_ns{0};  // steady clock

  void touch() {
    last_use_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
  }
  bool unsynced() const { return synced_writes.load() < completed_writes.load(); }

  ~PooledFile() {
    if (vfs == nullptr) return;
    if (writable && unsynced()) {
      auto st = vfs->fsync(fh);
      if (!st.ok()) {
        // The client was told these bytes are UNSTABLE under the current verifier; a new one
        // makes it resend them at its next COMMIT instead of trusting lost data.
        spdlog::error(
            "nfs: making unstable writes of inode {} durable failed: {}; changing the write "
            "verifier so clients resend them",
            ino, st.error().message());
        if (verifier != nullptr) verifier->fetch_add(0x9e3779b97f4a7c15ULL);
      }
    }
    vfs->release(fh);
  }
};

struct Nfs3Service::DirSnapshot {
  vfs::InodeId ino = 0;
  std::string path;
  uint64_t verifier = 0;
  std::vector<vfs::DirEntry> entries;  // ".", "..", then the children; cookie = index + 1
};

Nfs3Service::Nfs3Service(vfs::Vfs& vfs, HandleTable& handles, size_t open_file_cache,
                         std::chrono::milliseconds write_idle, std::function<void()> on_unmount)
    : vfs_(vfs),
      handles_(handles),
      open_file_cache_(std::max<size_t>(open_file_cache, 1)),
      write_idle_(std::max(write_idle, std::chrono::milliseconds(1))),
      on_unmount_(std::move(on_unmount)),
      write_verifier_(randomNonZero()),
      fsid_(handles.epoch()) {
  reaper_ = std::thread([this] { reaperLoop(); });
}

Nfs3Service::~Nfs3Service() {
  {
    std::lock_guard<std::mutex> lock(reaper_mu_);
    reaper_stop_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  // Every pooled handle is released (writable ones fsync'd first), outside pool_mu_.
  std::unordered_map<vfs::InodeId, std::pair<FileRef, std::list<vfs::InodeId>::iterator>> pool;
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    pool.swap(pool_);
    pool_lru_.clear();
  }
}

std::vector<char> Nfs3Service::fileHandle(uint64_t id) const {
  std::vector<char> fh(kFileHandleSize);
  std::memcpy(fh.data(), kFhMagic, 4);
  putU64(fh.data() + 4, handles_.epoch());
  putU64(fh.data() + 12, id);
  return fh;
}

// ---------------------------------------------------------------------------------------------
// Identity

void Nfs3Service::remember(const std::string& path, vfs::InodeId ino) {
  std::lock_guard<std::mutex> lock(ino_mu_);
  inos_[path] = ino;
}

void Nfs3Service::forgetPaths(const std::string& path) {
  const std::string prefix = path + "/";
  std::lock_guard<std::mutex> lock(ino_mu_);
  for (auto it = inos_.begin(); it != inos_.end();) {
    if (it->first == path || it->first.compare(0, prefix.size(), prefix) == 0)
      it = inos_.erase(it);
    else
      ++it;
  }
}

Result<vfs::Attr> Nfs3Service::peek(vfs::InodeId dir, const std::string& name) {
  auto attr = vfs_.lookup(dir, name);
  if (attr.ok()) vfs_.forget(attr->ino, 1);
  return attr;
}

Result<vfs::Attr> Nfs3Service::attrForPath(const std::string& path, bool is_dir, bool revalidate) {
  if (path.empty()) return vfs_.getattr(vfs::kRootInode);
  if (!revalidate) {
    std::optional<vfs::InodeId> cached;
    {
      std::lock_guard<std::mutex> lock(ino_mu_);
      auto it = inos_.find(path);
      if (it != inos_.end()) cached = it->second;
    }
    if (cached) {
      auto attr = vfs_.getattr(*cached);
      if (attr.ok() && attr->nlink > 0 && attr->is_dir == is_dir) return attr;
    }
  }
  HFM_ASSIGN_OR_RETURN(vfs::Attr parent, attrForPath(parentOf(path), true, false));
  const size_t slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  auto attr = vfs_.lookup(parent.ino, name);
  if (!attr.ok()) return attr.error();
  vfs_.forget(attr->ino, 1);
  if (attr->is_dir != is_dir) return Error(ESTALE, path + " changed kind");
  remember(path, attr->ino);
  return attr;
}

Result<Nfs3Service::Resolved> Nfs3Service::resolve(const char* data, size_t len, bool revalidate) {
  if (len != kFileHandleSize || data == nullptr || std::memcmp(data, kFhMagic, 4) != 0 ||
      getU64(data + 4) != handles_.epoch()) {
    return Error(ESTALE, "unknown file handle");
  }
  const uint64_t id = getU64(data + 12);
  auto record = handles_.find(id);
  if (!record) return Error(ESTALE, "unknown file handle id " + std::to_string(id));
  auto attr = attrForPath(record->path, record->is_dir, revalidate);
  if (!attr.ok()) {
    const int err = attr.error().code();
    if (err == ENOENT || err == ENOTDIR || err == ESTALE) {
      return Error(ESTALE, "'" + record->path + "' is gone: " + attr.error().message());
    }
    return attr.error();
  }
  return Resolved{id, record->path, *attr};
}

Result<Nfs3Service::Resolved> Nfs3Service::lookupChild(const Resolved& dir,
                                                       const std::string& name) {
  if (!dir.attr.is_dir) return Error(ENOTDIR, "'" + dir.path + "' is not a directory");
  if (name == ".") return dir;
  if (name == "..") {
    const std::string parent = dir.path.empty() ? std::string() : parentOf(dir.path);
    HFM_ASSIGN_OR_RETURN(vfs::Attr attr, attrForPath(parent, true, false));
    return Resolved{handles_.idFor(parent, true), parent, attr};
  }
  HFM_TRY(checkName(name.c_str()));
  auto attr = vfs_.lookup(dir.attr.ino, name);
  if (!attr.ok()) return attr.error();
  vfs_.forget(attr->ino, 1);
  const std::string path = joinPath(dir.path, name);
  remember(path, attr->ino);
  return Resolved{handles_.idFor(path, attr->is_dir), path, *attr};
}

// ---------------------------------------------------------------------------------------------
// Open files

Result<Nfs3Service::FileRef> Nfs3Service::acquireFile(vfs::InodeId ino) {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    auto it = pool_.find(ino);
    if (it != pool_.end()) {
      pool_lru_.splice(pool_lru_.begin(), pool_lru_, it->second.second);
      return it->second.first;
    }
  }
  HFM_ASSIGN_OR_RETURN(vfs::OpenResult opened, vfs_.open(ino, O_RDONLY));
  FileRef ref = makeRef(ino, opened.fh, false);
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    auto it = pool_.find(ino);
    if (it != pool_.end()) {
      // Another worker opened it meanwhile: share theirs (ours is released on return).
      pool_lru_.splice(pool_lru_.begin(), pool_lru_, it->second.second);
      return it->second.first;
    }
  }
  putFile(ino, ref);
  return ref;
}

Nfs3Service::FileRef Nfs3Service::pooledWritable(vfs::InodeId ino) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  auto it = pool_.find(ino);
  if (it == pool_.end() || !it->second.first->writable) return nullptr;
  pool_lru_.splice(pool_lru_.begin(), pool_lru_, it->second.second);
  it->second.first->touch();
  return it->second.first;
}

Result<Nfs3Service::FileRef> Nfs3Service::writableFile(vfs::InodeId ino) {
  if (FileRef ref = pooledWritable(ino)) return ref;
  // O_RDWR without O_TRUNC: the Vfs's advanced mode stages the current content and takes
  // writes at any offset; the same handle serves reads of the staged bytes.
  HFM_ASSIGN_OR_RETURN(vfs::OpenResult opened, vfs_.open(ino, O_RDWR));
  FileRef ref = makeRef(ino, opened.fh, true);
  // Another worker may have pooled one meanwhile: use theirs (ours is released on return).
  if (FileRef pooled = pooledWritable(ino)) return pooled;
  return ref;
}

Nfs3Service::FileRef Nfs3Service::makeRef(vfs::InodeId ino, uint64_t fh, bool writable) {
  auto ref = std::make_shared<PooledFile>();
  ref->vfs = &vfs_;
  ref->verifier = &write_verifier_;
  ref->ino = ino;
  ref->fh = fh;
  ref->writable = writable;
  ref->touch();
  return ref;
}

Status Nfs3Service::syncFile(PooledFile& file) {
  const uint64_t covered = file.completed_writes.load();
  HFM_TRY(vfs_.fsync(file.fh));
  uint64_t seen = file.synced_writes.load();
  while (seen < covered && !file.synced_writes.compare_exchange_weak(seen, covered)) {
  }
  return okStatus();
}

void Nfs3Service::reaperLoop() {
  const auto tick =
      std::clamp(write_idle_ / 4, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
  std::unique_lock<std::mutex> lock(reaper_mu_);
  while (!reaper_stop_) {
    reaper_cv_.wait_for(lock, tick, [this] { return reaper_stop_; });
    if (reaper_stop_) break;
    lock.unlock();
    releaseIdle();
    lock.lock();
  }
}

void Nfs3Service::releaseIdle(bool all) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  const int64_t idle_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(write_idle_).count();
  std::vector<FileRef> closing;  // released after pool_mu_ is dropped
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    for (auto it = pool_.begin(); it != pool_.end();) {
      const FileRef& ref = it->second.first;
      // Only writable handles: their release is what commits. In use (pinned) ones stay.
      if (ref->writable && ref.use_count() == 1 &&
          (all || now - ref->last_use_ns.load() >= idle_ns)) {
        closing.push_back(std::move(it->second.first));
        pool_lru_.erase(it->second.second);
        it = pool_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!closing.empty()) {
    spdlog::debug("nfs: releasing {} idle writable handle(s)", closing.size());
  }
}

void Nfs3Service::putFile(vfs::InodeId ino, FileRef ref) {
  std::vector<FileRef> closing;  // released after pool_mu_ is dropped
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    auto it = pool_.find(ino);
    if (it != pool_.end()) {
      closing.push_back(std::move(it->second.first));
      pool_lru_.erase(it->second.second);
      pool_.erase(it);
    }
    pool_lru_.push_front(ino);
    pool_.emplace(ino, std::make_pair(std::move(ref), pool_lru_.begin()));
    // Evict least recently used entries nobody is using; pinned ones stay (the pool grows).
    auto victim = pool_lru_.end();
    while (pool_.size() > open_file_cache_ && victim != pool_lru_.begin()) {
      --victim;
      auto vit = pool_.find(*victim);
      if (vit == pool_.end() || vit->second.first.use_count() > 1) continue;
      closing.push_back(std::move(vit->second.first));
      pool_.erase(vit);
      victim = pool_lru_.erase(victim);
    }
  }
}

void Nfs3Service::dropFile(vfs::InodeId ino) {
  FileRef closing;
  std::lock_guard<std::mutex> lock(pool_mu_);
  auto it = pool_.find(ino);
  if (it == pool_.end()) return;
  closing = std::move(it->second.first);
  pool_lru_.erase(it->second.second);
  pool_.erase(it);
  // `closing` is released after the lock (declared before the guard).
}

void Nfs3Service::dropReadOnly(vfs::InodeId ino) {
  FileRef closing;
  std::lock_guard<std::mutex> lock(pool_mu_);
  auto it = pool_.find(ino);
  if (it == pool_.end() || it->second.first->writable) return;
  closing = std::move(it->second.first);
  pool_lru_.erase(it->second.second);
  pool_.erase(it);
}

size_t Nfs3Service::pooledFileCount() const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  return pool_.size();
}

size_t Nfs3Service::pooledWritableCount() const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  size_t n = 0;
  for (const auto& [ino, entry] : pool_) {
    if (entry.first->writable) ++n;
  }
  return n;
}

void Nfs3Service::invalidateInode(vfs::InodeId ino, bool) { dropFile(ino); }

void Nfs3Service::invalidateEntry(vfs::InodeId parent, const std::string&) {
  std::lock_guard<std::mutex> lock(dir_mu_);
  dirs_.remove_if([parent](const auto& snap) { return snap->ino == parent; });
}

// ---------------------------------------------------------------------------------------------
// Directory snapshots (cookies are positions in a snapshot; the verifier names its content)

Result<std::shared_ptr<Nfs3Service::DirSnapshot>> Nfs3Service::snapshot(const Resolved& dir,
                                                                        uint64_t cookie,
                                                                        const char* verifier) {
  const uint64_t verf = getU64(verifier);
  if (cookie != 0) {
    std::lock_guard<std::mutex> lock(dir_mu_);
    for (auto it = dirs_.begin(); it != dirs_.end(); ++it) {
      if ((*it)->ino == dir.attr.ino && (*it)->verifier == verf) {
        dirs_.splice(dirs_.begin(), dirs_, it);
        return dirs_.front();
      }
    }
  }
  HFM_ASSIGN_OR_RETURN(uint64_t handle, vfs_.opendir(dir.attr.ino));
  auto entries = vfs_.readdir(handle, 0, SIZE_MAX);
  vfs_.releasedir(handle);
  if (!entries.ok()) return entries.error();
  auto snap = std::make_shared<DirSnapshot>();
  snap->ino = dir.attr.ino;
  snap->path = dir.path;
  snap->entries = std::move(*entries);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& e : snap->entries) {
    for (char c : e.name) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
    h = (h ^ (e.is_dir ? 0x2fU : e.is_symlink ? 0x40U : 0x3aU)) * 0x100000001b3ULL;
  }
  snap->verifier = h == 0 ? 1 : h;
  if (cookie != 0 && verf != 0 && verf != snap->verifier) {
    return Error(kErrBadCookie, "directory '" + dir.path + "' changed since the cookie");
  }
  if (cookie > snap->entries.size()) return Error(kErrBadCookie, "cookie past the end");
  std::lock_guard<std::mutex> lock(dir_mu_);
  dirs_.push_front(snap);
  if (dirs_.size() > kMaxDirSnapshots) dirs_.pop_back();
  return snap;
}

// ---------------------------------------------------------------------------------------------
// CREATE

int Nfs3Service::createFile(const Resolved& dir, const std::string& name, const createhow3& how) {
  const std::string path = joinPath(dir.path, name);
  uint64_t verf = 0;
  vfs::SetAttrRequest req;
  if (how.mode == EXCLUSIVE) {
    verf = getU64(how.createhow3_u.verf);
  } else {
    req = toRequest(how.createhow3_u.obj_attributes);
  }
  // Read-only sources answer EACCES/EROFS from the Vfs before anything is looked up.
  if (!vfs_.readOnly()) {
    auto existing = peek(dir.attr.ino, name);
    if (existing.ok()) {
      if (existing->is_dir || existing->is_symlink || how.mode == GUARDED) return EEXIST;
      if (how.mode == EXCLUSIVE) {
        // A retransmission of the create that made this file succeeds again (RFC 1813), also
        // after a restart: the verifier is kept with the file's id in the handle table.
        const auto id = handles_.idOf(path, false);
        const auto record = id ? handles_.find(*id) : std::nullopt;
        return record && record->create_verifier == verf ? 0 : EEXIST;
      }
      // UNCHECKED on an existing file: keep its content unless a size was asked for.
      if (!anySet(req)) return 0;
      auto set = vfs_.setattr(existing->ino, req);
      if (set.ok() && req.size) dropReadOnly(existing->ino);
      return set.ok() ? 0 : set.error().code();
    }
    if (existing.error().code() != ENOENT) return existing.error().code();
  }
  const int flags = O_RDWR | O_CREAT | (how.mode == UNCHECKED ? 0 : O_EXCL);
  auto created = vfs_.create(dir.attr.ino, name, flags);
  if (!created.ok()) {
    const int err = created.error().code();
    if (err != EROFS && err != EACCES && err != EEXIST) {
      spdlog::info("nfs: CREATE '{}' failed: {}", path, created.error().message());
    }
    return err;
  }
  const vfs::InodeId ino = created->attr.ino;
  vfs_.forget(ino, 1);  // the service holds no lookup references
  remember(path, ino);
  if (how.mode == EXCLUSIVE) handles_.setCreateVerifier(handles_.idFor(path, false), verf);
  // Keep the handle the file was created with: its idle release commits the (maybe empty)
  // file, and the WRITEs that usually follow use it.
  putFile(ino, makeRef(ino, created->open.fh, true));
  if (anySet(req)) {
    if (auto set = vfs_.setattr(ino, req); !set.ok()) {
      spdlog::info("nfs: CREATE '{}': applying its attributes failed: {}", path,
                   set.error().message());
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Dispatch

std::optional<std::vector<char>> Nfs3Service::call(uint32_t program, uint32_t proc, char* args,
                                                   size_t len, const CallCredential& cred) {
  if (program == MOUNT_PROGRAM) return mount3(proc, args, len);
  return nfs3(proc, args, len, cred);
}

std::optional<std::vector<char>> Nfs3Service::mount3(uint32_t proc, char* args, size_t len) {
  ArgDecoder dec(args, len);
  switch (proc) {
    case MOUNT3_NULL:
    case MOUNT3_UMNTALL:
      return std::vector<char>();
    case MOUNT3_UMNT: {
      dirpath path = nullptr;
      if (!dec.decode(zdr_dirpath, &path)) return std::nullopt;
      spdlog::info("nfs: UMNT {}", path != nullptr ? path : "");
      if (on_unmount_) on_unmount_();
      return std::vector<char>();
    }
    case MOUNT3_MNT: {
      dirpath path = nullptr;
      if (!dec.decode(zdr_dirpath, &path)) return std::nullopt;
      std::string p = path != nullptr ? path : "";
      while (!p.empty() && p.front() == '/') p.erase(p.begin());
      while (!p.empty() && p.back() == '/') p.pop_back();
      mountres3 res{};
      std::vector<char> fh;
      int flavors[] = {AUTH_UNIX, AUTH_NONE};
      auto attr = attrForPath(p, true, false);
      if (!attr.ok() && attr.error().code() == ESTALE && attrForPath(p, false, false).ok()) {
        attr = Error(ENOTDIR, "'" + p + "' is a file");
      }
      if (!attr.ok()) {
        const int err = attr.error().code();
        res.fhs_status = err == ENOENT || err == ESTALE ? MNT3ERR_NOENT
                         : err == ENOTDIR               ? MNT3ERR_NOTDIR
                         : err == EACCES                ? MNT3ERR_ACCES
                                                        : MNT3ERR_IO;
        spdlog::info("nfs: MNT '{}' refused: {}", p, attr.error().message());
      } else {
        fh = fileHandle(handles_.idFor(p, true));
        res.fhs_status = MNT3_OK;
        res.mountres3_u.mountinfo.fhandle.fhandle3_len = static_cast<u_int>(fh.size());
        res.mountres3_u.mountinfo.fhandle.fhandle3_val = fh.data();
        res.mountres3_u.mountinfo.auth_flavors.auth_flavors_len = 2;
        res.mountres3_u.mountinfo.auth_flavors.auth_flavors_val = flavors;
        spdlog::info("nfs: MNT '/{}'", p);
      }
      return encode(zdr_mountres3, &res, 128);
    }
    case MOUNT3_DUMP: {
      mountlist list = nullptr;
      return encode(zdr_mountlist, &list, 16);
    }
    case MOUNT3_EXPORT: {
      char dir[] = "/";
      exportnode node{};
      node.ex_dir = dir;
      exports list = &node;
      return encode(zdr_exports, &list, 64);
    }
    default:
      return std::nullopt;
  }
}

std::optional<std::vector<char>> Nfs3Service::nfs3(uint32_t proc, char* args, size_t len,
                                                   const CallCredential& cred) {
  ArgDecoder dec(args, len);
  auto attrOf = [this](vfs::InodeId ino) -> std::optional<vfs::Attr> {
    auto a = vfs_.getattr(ino);
    if (!a.ok()) return std::nullopt;
    return *a;
  };

  switch (proc) {
    case NFS3_NULL:
      return std::vector<char>();

    case NFS3_GETATTR: {
      GETATTR3args a;
      if (!dec.decode(zdr_GETATTR3args, &a)) return std::nullopt;
      GETATTR3res res{};
      auto r = resolve(a.object.data.data_val, a.object.data.data_len, true);
      res.status = static_cast<nfsstat3>(nfsStatFor(r.ok() ? 0 : r.error().code()));
      if (r.ok()) res.GETATTR3res_u.resok.obj_attributes = toFattr(fsid_, r->attr, r->id);
      return encode(zdr_GETATTR3res, &res, 128);
    }

    case NFS3_SETATTR: {
      SETATTR3args a;
      if (!dec.decode(zdr_SETATTR3args, &a)) return std::nullopt;
      SETATTR3res res{};
      auto r = resolve(a.object.data.data_val, a.object.data.data_len, false);
      int err = r.ok() ? 0 : r.error().code();
      std::optional<vfs::Attr> before;
      uint64_t id = 0;
      if (r.ok()) {
        before = r->attr;
        id = r->id;
        const nfstime3 ctime = toTime(r->attr.mtime_ns);
        if (a.guard.check != 0 && (a.guard.sattrguard3_u.obj_ctime.seconds != ctime.seconds ||
                                   a.guard.sattrguard3_u.obj_ctime.nseconds != ctime.nseconds)) {
          err = kErrNotSync;
        } else {
          const vfs::SetAttrRequest req = toRequest(a.new_attributes);
          if (req.size && (r->attr.is_dir || r->attr.is_symlink)) {
            err = EINVAL;  // RFC 1813: a size only applies to regular files
          } else {
            auto st = vfs_.setattr(r->attr.ino, req);
            if (!st.ok()) {
              err = st.error().code();
              spdlog::info("nfs: SETATTR '{}': {}", r->path, st.error().message());
            } else if (req.size) {
              // A read-only handle may still serve the old length; a writable one reads the
              // staged copy the truncation changed.
              dropReadOnly(r->attr.ino);
            }
          }
        }
      }
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      wcc_data& wcc =
          err == 0 ? res.SETATTR3res_u.resok.obj_wcc : res.SETATTR3res_u.resfail.obj_wcc;
      wcc.before = preOp(before);
      wcc.after = postOp(fsid_, r.ok() ? attrOf(r->attr.ino) : std::nullopt, id);
      return encode(zdr_SETATTR3res, &res, 256);
    }

    case NFS3_LOOKUP: {
      LOOKUP3args a;
      if (!dec.decode(zdr_LOOKUP3args, &a)) return std::nullopt;
      LOOKUP3res res{};
      auto dir = resolve(a.what.dir.data.data_val, a.what.dir.data.data_len, false);
      std::vector<char> fh;
      if (!dir.ok()) {
        res.status = static_cast<nfsstat3>(nfsStatFor(dir.error().code()));
        return encode(zdr_LOOKUP3res, &res, 256);
      }
      auto child = lookupChild(*dir, a.what.name != nullptr ? a.what.name : "");
      res.status = static_cast<nfsstat3>(nfsStatFor(child.ok() ? 0 : child.error().code()));
      if (child.ok()) {
        fh = fileHandle(child->id);
        res.LOOKUP3res_u.resok.object.data.data_len = static_cast<u_int>(fh.size());
        res.LOOKUP3res_u.resok.object.data.data_val = fh.data();
        res.LOOKUP3res_u.resok.obj_attributes = postOp(fsid_, child->attr, child->id);
        res.LOOKUP3res_u.resok.dir_attributes = postOp(fsid_, attrOf(dir->attr.ino), dir->id);
      } else {
        res.LOOKUP3res_u.resfail.dir_attributes = postOp(fsid_, attrOf(dir->attr.ino), dir->id);
      }
      return encode(zdr_LOOKUP3res, &res, 256);
    }

    case NFS3_ACCESS: {
      ACCESS3args a;
      if (!dec.decode(zdr_ACCESS3args, &a)) return std::nullopt;
      ACCESS3res res{};
      auto r = resolve(a.object.data.data_val, a.object.data.data_len, false);
      res.status = static_cast<nfsstat3>(nfsStatFor(r.ok() ? 0 : r.error().code()));
      if (!r.ok()) return encode(zdr_ACCESS3res, &res, 128);
      const vfs::Attr& at = r->attr;
      uint32_t bits = at.mode & 07;
      // root: read and write as the mode and the mount allow, execute if anyone may.
      if (cred.uid == 0)
        bits = 06 | ((at.mode & 0111) != 0 ? 01 : 0);
      else if (cred.uid == at.uid)
        bits = (at.mode >> 6) & 07;
      else if (cred.gid == at.gid)
        bits = (at.mode >> 3) & 07;
      uint32_t allowed = 0;
      if (bits & 04) allowed |= kAccessRead;
      if ((bits & 01) != 0) allowed |= at.is_dir ? kAccessLookup : kAccessExecute;
      if ((bits & 02) != 0 && !vfs_.readOnly()) {
        allowed |= kAccessModify | kAccessExtend | (at.is_dir ? kAccessDelete : 0);
      }
      res.ACCESS3res_u.resok.obj_attributes = postOp(fsid_, at, r->id);
      res.ACCESS3res_u.resok.access = a.access & allowed;
      return encode(zdr_ACCESS3res, &res, 128);
    }

    case NFS3_READLINK: {
      READLINK3args a;
      if (!dec.decode(zdr_READLINK3args, &a)) return std::nullopt;
      READLINK3res res{};
      auto r = resolve(a.symlink.data.data_val, a.symlink.data.data_len, false);
      int err = r.ok() ? 0 : r.error().code();
      std::string target;
      if (err == 0 && !r->attr.is_symlink) err = EINVAL;  // RFC 1813: not a symbolic link
      if (err == 0) {
        auto link = vfs_.readlink(r->attr.ino);
        if (link.ok())
          target = std::move(*link);
        else
          err = link.error().code();
      }
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      // resok and resfail both start with the attributes.
      if (r.ok()) res.READLINK3res_u.resok.symlink_attributes = postOp(fsid_, r->attr, r->id);
      if (err == 0) res.READLINK3res_u.resok.data = target.data();
      return encode(zdr_READLINK3res, &res, target.size() + 128);
    }

    case NFS3_READ: {
      READ3args a;
      if (!dec.decode(zdr_READ3args, &a)) return std::nullopt;
      READ3res res{};
      auto r = resolve(a.file.data.data_val, a.file.data.data_len, false);
      int err = r.ok() ? (r->attr.is_dir       ? EISDIR
                          : r->attr.is_symlink ? EINVAL
                                               : 0)
                       : r.error().code();
      std::vector<uint8_t> data;
      bool eof = false;
      if (err == 0) {
        const uint64_t size = r->attr.size;
        const uint64_t want =
            a.offset >= size ? 0 : std::min<uint64_t>({a.count, kMaxTransfer, size - a.offset});
        data.resize(static_cast<size_t>(want));
        size_t got = 0;
        if (want > 0) {
          for (int attempt = 0; attempt < 2; ++attempt) {
            auto file = acquireFile(r->attr.ino);
            if (!file.ok()) {
              err = file.error().code();
              break;
            }
            auto n = vfs_.read((*file)->fh, a.offset, data);
            if (n.ok()) {
              got = *n;
              err = 0;
              break;
            }
            err = n.error().code();
            // The pooled handle reads an older version (or vanished): reopen the current one.
            if (err != ESTALE && err != EBADF) break;
            dropFile(r->attr.ino);
          }
        }
        data.resize(got);
        if (err == 0) {
          auto now = attrOf(r->attr.ino);
          const uint64_t now_size = now ? now->size : size;
          eof = got < want || a.offset + got >= now_size;
          r->attr = now.value_or(r->attr);
        }
      }
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      if (err == 0) {
        res.READ3res_u.resok.file_attributes = postOp(fsid_, r->attr, r->id);
        res.READ3res_u.resok.count = static_cast<count3>(data.size());
        res.READ3res_u.resok.eof = eof ? 1 : 0;
        res.READ3res_u.resok.data.data_len = static_cast<u_int>(data.size());
        res.READ3res_u.resok.data.data_val = reinterpret_cast<char*>(data.data());
      } else if (r.ok()) {
        res.READ3res_u.resfail.file_attributes = postOp(fsid_, attrOf(r->attr.ino), r->id);
      }
      return encode(zdr_READ3res, &res, data.size() + 256);
    }

    case NFS3_WRITE: {
      WRITE3args a;
      if (!dec.decode(zdr_WRITE3args, &a)) return std::nullopt;
      WRITE3res res{};
      auto r = resolve(a.file.data.data_val, a.file.data.data_len, false);
      int err = r.ok() ? (r->attr.is_dir       ? EISDIR
                          : r->attr.is_symlink ? EINVAL
                                               : 0)
                       : r.error().code();
      std::optional<vfs::Attr> before;
      if (r.ok()) before = r->attr;
      // `count` is the length the client means; the opaque must carry at least that much.
      if (err == 0 && a.count > a.data.data_len) err = EINVAL;
      if (err == 0 && a.count > kMaxTransfer) err = EFBIG;
      if (err == 0 && a.offset > static_cast<uint64_t>(INT64_MAX) - a.count) err = EFBIG;
      stable_how committed = a.stable == UNSTABLE ? UNSTABLE : FILE_SYNC;
      if (err == 0) {
        const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(a.data.data_val),
                                             a.count);
        // Reuse a pooled handle only if it is writable. Never write through a read-only one
        // (#178): open a writable handle and pool it only once the write went through (#185),
        // where it replaces the read-only one (reads then see the staged bytes).
        for (int attempt = 0; attempt < 2; ++attempt) {
          auto file = writableFile(r->attr.ino);
          if (!file.ok()) {
            err = file.error().code();
            break;
          }
          FileRef ref = *file;
          auto n = vfs_.write(ref->fh, a.offset, bytes);
          if (!n.ok()) {
            err = n.error().code();
            // The Vfs handle vanished under the pool (invalidated): open a fresh one once.
            if (err == EBADF && attempt == 0) {
              dropFile(r->attr.ino);
              continue;
            }
            break;
          }
          err = 0;
          ref->touch();
          if (a.stable == UNSTABLE) {
            ref->completed_writes++;
          } else if (auto st = syncFile(*ref); !st.ok()) {
            err = st.error().code();
            spdlog::error("nfs: WRITE {} bytes at {} to '{}': making them durable failed: {}",
                          a.count, a.offset, r->path, st.error().message());
          }
          if (pooledWritable(r->attr.ino) != ref) putFile(r->attr.ino, ref);
          break;
        }
        if (err != 0 && err != EROFS && err != EACCES) {
          spdlog::info("nfs: WRITE {} bytes at {} to '{}' failed: {}", a.count, a.offset, r->path,
                       std::strerror(err > 0 ? err : EIO));
        }
      }
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      const uint64_t id = r.ok() ? r->id : 0;
      std::optional<vfs::Attr> after = r.ok() ? attrOf(r->attr.ino) : std::nullopt;
      if (err == 0) {
        res.WRITE3res_u.resok.file_wcc.before = preOp(before);
        res.WRITE3res_u.resok.file_wcc.after = postOp(fsid_, after, id);
        res.WRITE3res_u.resok.count = a.count;
        res.WRITE3res_u.resok.committed = committed;
        putU64(res.WRITE3res_u.resok.verf, write_verifier_.load());
      } else {
        res.WRITE3res_u.resfail.file_wcc.before = preOp(before);
        res.WRITE3res_u.resfail.file_wcc.after = postOp(fsid_, after, id);
      }
      return encode(zdr_WRITE3res, &res, 256);
    }

    case NFS3_CREATE:
    case NFS3_MKDIR:
    case NFS3_SYMLINK:
    case NFS3_MKNOD: {
      // The four "make a name" procedures share their reply shape (post_op_fh3, attributes,
      // directory WCC), which the generated structs lay out identically.
      CREATE3args ca;
      MKDIR3args ma;
      SYMLINK3args sa;
      MKNOD3args na;
      diropargs3* where = nullptr;
      bool decoded = false;
      if (proc == NFS3_CREATE) decoded = dec.decode(zdr_CREATE3args, &ca), where = &ca.where;
      if (proc == NFS3_MKDIR) decoded = dec.decode(zdr_MKDIR3args, &ma), where = &ma.where;
      if (proc == NFS3_SYMLINK) decoded = dec.decode(zdr_SYMLINK3args, &sa), where = &sa.where;
      if (proc == NFS3_MKNOD) decoded = dec.decode(zdr_MKNOD3args, &na), where = &na.where;
      if (!decoded) return std::nullopt;
      auto dir = resolve(where->dir.data.data_val, where->dir.data.data_len, false);
      int err = dir.ok() ? (dir->attr.is_dir ? 0 : ENOTDIR) : dir.error().code();
      const char* name = where->name != nullptr ? where->name : "";
      if (err == 0) {
        auto st = checkName(name);
        if (!st.ok()) err = st.error().code();
        if (err == 0 && (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0)) err = EEXIST;
      }
      std::optional<vfs::Attr> before;
      if (dir.ok()) before = dir->attr;
      std::optional<vfs::Attr> link_attr;
      if (err == 0 && proc == NFS3_CREATE) {
        err = createFile(*dir, name, ca.how);
      } else if (err == 0) {
        if (proc == NFS3_SYMLINK) {
          const char* target = sa.symlink.symlink_data != nullptr ? sa.symlink.symlink_data : "";
          auto made_link = vfs_.symlink(dir->attr.ino, name, target);
          if (made_link.ok()) {
            vfs_.forget(made_link->ino, 1);  // the service holds no lookup references
            link_attr = *made_link;
          } else {
            err = made_link.error().code();
          }
        } else {
          Status st = proc == NFS3_MKDIR ? vfs_.mkdir(dir->attr.ino, name)
                                         : vfs_.mknod(dir->attr.ino, name);
          if (!st.ok()) err = st.error().code();
        }
      }
      std::optional<Resolved> made;
      std::vector<char> fh;
      if (err == 0 && link_attr) {
        invalidateEntry(dir->attr.ino, name);
        const std::string path = joinPath(dir->path, name);
        remember(path, link_attr->ino);
        made = Resolved{handles_.idFor(path, false), path, *link_attr};
        fh = fileHandle(made->id);
      } else if (err == 0) {
        invalidateEntry(dir->attr.ino, name);
        auto child = lookupChild(*dir, name);
        if (child.ok()) {
          made = *child;
          fh = fileHandle(child->id);
          if (proc == NFS3_MKDIR) {
            // The Vfs makes directories with default attributes; apply what mkdir asked.
            const vfs::SetAttrRequest req = toRequest(ma.attributes);
            if (anySet(req) && !req.size) {
              if (auto set = vfs_.setattr(child->attr.ino, req); set.ok()) made->attr = *set;
            }
          }
        }
      }
      CREATE3res res{};
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      const uint64_t dir_id = dir.ok() ? dir->id : 0;
      std::optional<vfs::Attr> after = dir.ok() ? attrOf(dir->attr.ino) : std::nullopt;
      if (err == 0) {
        if (made) {
          res.CREATE3res_u.resok.obj.handle_follows = 1;
          res.CREATE3res_u.resok.obj.post_op_fh3_u.handle.data.data_len =
              static_cast<u_int>(fh.size());
          res.CREATE3res_u.resok.obj.post_op_fh3_u.handle.data.data_val = fh.data();
          res.CREATE3res_u.resok.obj_attributes = postOp(fsid_, made->attr, made->id);
        }
        res.CREATE3res_u.resok.dir_wcc.before = preOp(before);
        res.CREATE3res_u.resok.dir_wcc.after = postOp(fsid_, after, dir_id);
      } else {
        res.CREATE3res_u.resfail.dir_wcc.before = preOp(before);
        res.CREATE3res_u.resfail.dir_wcc.after = postOp(fsid_, after, dir_id);
      }
      return encode(zdr_CREATE3res, &res, 512);
    }

    case NFS3_REMOVE:
    case NFS3_RMDIR: {
      REMOVE3args a;  // RMDIR3args has the same layout (one diropargs3)
      if (!dec.decode(zdr_REMOVE3args, &a)) return std::nullopt;
      auto dir = resolve(a.object.dir.data.data_val, a.object.dir.data.data_len, false);
      int err = dir.ok() ? (dir->attr.is_dir ? 0 : ENOTDIR) : dir.error().code();
      const char* name = a.object.name != nullptr ? a.object.name : "";
      if (err == 0) {
        auto st = checkName(name);
        if (!st.ok()) err = st.error().code();
      }
      std::optional<vfs::Attr> before;
      if (dir.ok()) before = dir->attr;
      if (err == 0) {
        const std::string path = joinPath(dir->path, name);
        // The victim's inode, to drop the handles this service keeps on it.
        auto victim = peek(dir->attr.ino, name);
        auto st = proc == NFS3_REMOVE ? vfs_.unlink(dir->attr.ino, name)
                                      : vfs_.rmdir(dir->attr.ino, name);
        if (!st.ok() && proc == NFS3_REMOVE && victim.ok() && pooledWritable(victim->ino)) {
          // The Vfs may refuse to delete a file a handle is writing: let go of ours, retry.
          dropFile(victim->ino);
          st = vfs_.unlink(dir->attr.ino, name);
        }
        if (!st.ok()) {
          err = st.error().code();
          if (err != ENOENT && err != ENOTEMPTY && err != EROFS && err != EACCES) {
            spdlog::info("nfs: {} '{}' failed: {}", proc == NFS3_REMOVE ? "REMOVE" : "RMDIR", path,
                         st.error().message());
          }
        } else {
          if (victim.ok()) dropFile(victim->ino);
          // Deleted: its handles turn stale, even if the name is created again.
          handles_.forget(path, proc == NFS3_RMDIR);
          forgetPaths(path);
          invalidateEntry(dir->attr.ino, name);
        }
      }
      REMOVE3res res{};
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      wcc_data& wcc = err == 0 ? res.REMOVE3res_u.resok.dir_wcc : res.REMOVE3res_u.resfail.dir_wcc;
      wcc.before = preOp(before);
      wcc.after =
          postOp(fsid_, dir.ok() ? attrOf(dir->attr.ino) : std::nullopt, dir.ok() ? dir->id : 0);
      return encode(zdr_REMOVE3res, &res, 256);
    }

    case NFS3_RENAME: {
      RENAME3args a;
      if (!dec.decode(zdr_RENAME3args, &a)) return std::nullopt;
      auto from = resolve(a.from.dir.data.data_val, a.from.dir.data.data_len, false);
      auto to = resolve(a.to.dir.data.data_val, a.to.dir.data.data_len, false);
      int err = !from.ok() ? from.error().code() : !to.ok() ? to.error().code() : 0;
      if (err == 0 && (!from->attr.is_dir || !to->attr.is_dir)) err = ENOTDIR;
      const char* from_name = a.from.name != nullptr ? a.from.name : "";
      const char* to_name = a.to.name != nullptr ? a.to.name : "";
      if (err == 0) {
        auto st = checkName(from_name);
        if (st.ok()) st = checkName(to_name);
        if (!st.ok()) err = st.error().code();
      }
      std::optional<vfs::Attr> from_before, to_before;
      if (from.ok()) from_before = from->attr;
      if (to.ok()) to_before = to->attr;
      if (err == 0) {
        const std::string from_path = joinPath(from->path, from_name);
        const std::string to_path = joinPath(to->path, to_name);
        auto moving = peek(from->attr.ino, from_name);
        auto replaced = peek(to->attr.ino, to_name);
        Status st = moving.ok() ? vfs_.rename(from->attr.ino, from_name, to->attr.ino, to_name)
                                : Status(moving.error());
        if (!st.ok() && st.error().code() == EBUSY && moving.ok() && !moving->is_dir &&
            pooledWritable(moving->ino)) {
          // The Vfs may refuse to move a file a handle is writing: let go of ours, retry.
          dropFile(moving->ino);
          st = vfs_.rename(from->attr.ino, from_name, to->attr.ino, to_name);
        }
        if (!st.ok()) {
          err = st.error().code();
          if (err == EBUSY) {
            // A directory with uncommitted files below cannot move yet. The client retries
            // after NFS3ERR_JUKEBOX; releasing the idle writable handles now starts those
            // commits instead of waiting for write_idle_release.
            releaseIdle(true);
          }
          if (err != ENOENT && err != EROFS && err != EACCES) {
            spdlog::info("nfs: RENAME '{}' → '{}' failed: {}", from_path, to_path,
                         st.error().message());
          }
        } else {
          if (replaced.ok() && replaced->ino != moving->ino) dropFile(replaced->ino);
          // Handles follow the object; what was at the target is gone.
          handles_.rename(from_path, to_path, moving->is_dir);
          forgetPaths(from_path);
          forgetPaths(to_path);
          remember(to_path, moving->ino);
          invalidateEntry(from->attr.ino, from_name);
          invalidateEntry(to->attr.ino, to_name);
          if (moving->is_dir) {
            // Snapshots of directories below hold their old paths.
            std::lock_guard<std::mutex> lock(dir_mu_);
            const std::string prefix = from_path + "/";
            dirs_.remove_if([&](const auto& snap) {
              return snap->path == from_path || snap->path.compare(0, prefix.size(), prefix) == 0;
            });
          }
        }
      }
      RENAME3res res{};
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      RENAME3resok& body = res.RENAME3res_u.resok;  // resfail has the same layout
      body.fromdir_wcc.before = preOp(from_before);
      body.fromdir_wcc.after = postOp(fsid_, from.ok() ? attrOf(from->attr.ino) : std::nullopt,
                                      from.ok() ? from->id : 0);
      body.todir_wcc.before = preOp(to_before);
      body.todir_wcc.after =
          postOp(fsid_, to.ok() ? attrOf(to->attr.ino) : std::nullopt, to.ok() ? to->id : 0);
      if (err != 0) {
        RENAME3resok copy = body;
        res.RENAME3res_u.resfail.fromdir_wcc = copy.fromdir_wcc;
        res.RENAME3res_u.resfail.todir_wcc = copy.todir_wcc;
      }
      return encode(zdr_RENAME3res, &res, 512);
    }

    case NFS3_LINK: {
      LINK3args a;
      if (!dec.decode(zdr_LINK3args, &a)) return std::nullopt;
      auto file = resolve(a.file.data.data_val, a.file.data.data_len, false);
      auto dir = resolve(a.link.dir.data.data_val, a.link.dir.data.data_len, false);
      int err = !file.ok() ? file.error().code() : !dir.ok() ? dir.error().code() : 0;
      if (err == 0 && !dir->attr.is_dir) err = ENOTDIR;
      if (err == 0 && file->attr.is_dir) err = EISDIR;
      const char* name = a.link.name != nullptr ? a.link.name : "";
      if (err == 0) {
        auto st = checkName(name);
        if (!st.ok()) err = st.error().code();
      }
      std::optional<vfs::Attr> before;
      if (dir.ok()) before = dir->attr;
      if (err == 0) {
        auto linked = vfs_.link(file->attr.ino, dir->attr.ino, name);
        if (!linked.ok()) {
          err = linked.error().code();
        } else {
          vfs_.forget(linked->ino, 1);  // the service holds no lookup references
          invalidateEntry(dir->attr.ino, name);
        }
      }
      LINK3res res{};
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      LINK3resok& body = res.LINK3res_u.resok;  // resfail has the same layout
      body.file_attributes = postOp(fsid_, file.ok() ? attrOf(file->attr.ino) : std::nullopt,
                                    file.ok() ? file->id : 0);
      body.linkdir_wcc.before = preOp(before);
      body.linkdir_wcc.after =
          postOp(fsid_, dir.ok() ? attrOf(dir->attr.ino) : std::nullopt, dir.ok() ? dir->id : 0);
      if (err != 0) {
        LINK3resok copy = body;
        res.LINK3res_u.resfail.file_attributes = copy.file_attributes;
        res.LINK3res_u.resfail.linkdir_wcc = copy.linkdir_wcc;
      }
      return encode(zdr_LINK3res, &res, 512);
    }

    case NFS3_READDIR:
    case NFS3_READDIRPLUS: {
      const bool plus = proc == NFS3_READDIRPLUS;
      READDIR3args ra;
      READDIRPLUS3args pa;
      if (plus ? !dec.decode(zdr_READDIRPLUS3args, &pa) : !dec.decode(zdr_READDIR3args, &ra)) {
        return std::nullopt;
      }
      const nfs_fh3& fh3 = plus ? pa.dir : ra.dir;
      const uint64_t cookie = plus ? pa.cookie : ra.cookie;
      const char* verf = plus ? pa.cookieverf : ra.cookieverf;
      // Budgets: `count`/`maxcount` bound the whole reply; `dircount` bounds the directory
      // part (fileid + name + cookie) of READDIRPLUS.
      const uint64_t maxcount = plus ? pa.maxcount : ra.count;
      const uint64_t dircount = plus ? pa.dircount : ra.count;

      auto dir = resolve(fh3.data.data_val, fh3.data.data_len, false);
      int err = dir.ok() ? (dir->attr.is_dir ? 0 : ENOTDIR) : dir.error().code();
      std::shared_ptr<DirSnapshot> snap;
      if (err == 0) {
        auto s = snapshot(*dir, cookie, verf);
        if (s.ok())
          snap = *s;
        else
          err = s.error().code();
      }
      std::vector<entry3> plain;
      std::vector<entryplus3> rich;
      std::vector<std::vector<char>> handles;
      bool eof = false;
      if (err == 0) {
        const uint64_t overhead = 4 + 88 + 8 + 4 + 4;  // status, dir attrs, verifier, end, eof
        uint64_t used = overhead;
        uint64_t dir_used = 0;
        const std::string parent_path = dir->path.empty() ? std::string() : parentOf(dir->path);
        auto i = static_cast<size_t>(cookie);
        for (; i < snap->entries.size(); ++i) {
          const vfs::DirEntry& e = snap->entries[i];
          const uint64_t dir_part = 8 + 4 + pad4(e.name.size()) + 8;
          const uint64_t full = 4 + dir_part + (plus ? 88 + 4 + 4 + pad4(kFileHandleSize) : 0);
          if (used + full > maxcount || (plus && dir_used + dir_part > dircount)) break;
          used += full;
          dir_used += dir_part;
          std::string path;
          bool is_dir = e.is_dir;
          if (e.name == ".")
            path = dir->path, is_dir = true;
          else if (e.name == "..")
            path = parent_path, is_dir = true;
          else
            path = joinPath(dir->path, e.name);
          const uint64_t id = handles_.idFor(path, is_dir);
          if (e.name != "." && e.name != "..") remember(path, e.ino);
          char* name = const_cast<char*>(e.name.c_str());
          if (plus) {
            entryplus3 ent{};
            ent.fileid = id;
            ent.name = name;
            ent.cookie = e.next_offset;
            ent.name_attributes = postOp(fsid_, attrOf(e.name == "." ? dir->attr.ino : e.ino), id);
            if (e.name == "..") ent.name_attributes.attributes_follow = 0;
            handles.push_back(fileHandle(id));
            rich.push_back(ent);
          } else {
            entry3 ent{};
            ent.fileid = id;
            ent.name = name;
            ent.cookie = e.next_offset;
            plain.push_back(ent);
          }
        }
        eof = i >= snap->entries.size();
        const size_t n = plus ? rich.size() : plain.size();
        if (n == 0 && !eof) err = kErrTooSmall;
        for (size_t k = 0; k < n; ++k) {
          if (plus) {
            rich[k].name_handle.handle_follows = 1;
            rich[k].name_handle.post_op_fh3_u.handle.data.data_len =
                static_cast<u_int>(handles[k].size());
            rich[k].name_handle.post_op_fh3_u.handle.data.data_val = handles[k].data();
            rich[k].nextentry = k + 1 < n ? &rich[k + 1] : nullptr;
          } else {
            plain[k].nextentry = k + 1 < n ? &plain[k + 1] : nullptr;
          }
        }
      }
      const std::optional<vfs::Attr> dir_attr =
          dir.ok() ? attrOf(dir->attr.ino) : std::optional<vfs::Attr>();
      const uint64_t dir_id = dir.ok() ? dir->id : 0;
      if (plus) {
        READDIRPLUS3res res{};
        res.status = static_cast<nfsstat3>(nfsStatFor(err));
        if (err == 0) {
          res.READDIRPLUS3res_u.resok.dir_attributes = postOp(fsid_, dir_attr, dir_id);
          putU64(res.READDIRPLUS3res_u.resok.cookieverf, snap->verifier);
          res.READDIRPLUS3res_u.resok.reply.entries = rich.empty() ? nullptr : rich.data();
          res.READDIRPLUS3res_u.resok.reply.eof = eof ? 1 : 0;
        } else {
          res.READDIRPLUS3res_u.resfail.dir_attributes = postOp(fsid_, dir_attr, dir_id);
        }
        return encode(zdr_READDIRPLUS3res, &res, static_cast<size_t>(maxcount) + 1024);
      }
      READDIR3res res{};
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      if (err == 0) {
        res.READDIR3res_u.resok.dir_attributes = postOp(fsid_, dir_attr, dir_id);
        putU64(res.READDIR3res_u.resok.cookieverf, snap->verifier);
        res.READDIR3res_u.resok.reply.entries = plain.empty() ? nullptr : plain.data();
        res.READDIR3res_u.resok.reply.eof = eof ? 1 : 0;
      } else {
        res.READDIR3res_u.resfail.dir_attributes = postOp(fsid_, dir_attr, dir_id);
      }
      return encode(zdr_READDIR3res, &res, static_cast<size_t>(maxcount) + 1024);
    }

    case NFS3_FSSTAT: {
      FSSTAT3args a;
      if (!dec.decode(zdr_FSSTAT3args, &a)) return std::nullopt;
      FSSTAT3res res{};
      auto r = resolve(a.fsroot.data.data_val, a.fsroot.data.data_len, false);
      res.status = static_cast<nfsstat3>(nfsStatFor(r.ok() ? 0 : r.error().code()));
      if (r.ok()) {
        const vfs::StatFs s = vfs_.statfs();
        FSSTAT3resok& ok = res.FSSTAT3res_u.resok;
        ok.obj_attributes = postOp(fsid_, r->attr, r->id);
        ok.tbytes = s.blocks * s.block_size;
        ok.fbytes = s.blocks_free * s.block_size;
        ok.abytes = s.blocks_available * s.block_size;
        ok.tfiles = s.files;
        ok.ffiles = s.files_free;
        ok.afiles = s.files_free;
        ok.invarsec = 0;
      }
      return encode(zdr_FSSTAT3res, &res, 256);
    }

    case NFS3_FSINFO: {
      FSINFO3args a;
      if (!dec.decode(zdr_FSINFO3args, &a)) return std::nullopt;
      FSINFO3res res{};
      auto r = resolve(a.fsroot.data.data_val, a.fsroot.data.data_len, false);
      res.status = static_cast<nfsstat3>(nfsStatFor(r.ok() ? 0 : r.error().code()));
      if (r.ok()) {
        FSINFO3resok& ok = res.FSINFO3res_u.resok;
        ok.obj_attributes = postOp(fsid_, r->attr, r->id);
        ok.rtmax = ok.rtpref = kMaxTransfer;
        ok.wtmax = ok.wtpref = kMaxTransfer;
        ok.rtmult = ok.wtmult = 4096;
        ok.dtpref = 64 * 1024;
        ok.maxfilesize = static_cast<size3>(INT64_MAX);
        ok.time_delta.seconds = 0;
        ok.time_delta.nseconds = 1;
        ok.properties = kFsfHomogeneous | kFsfCanSetTime;
      }
      return encode(zdr_FSINFO3res, &res, 256);
    }

    case NFS3_PATHCONF: {
      PATHCONF3args a;
      if (!dec.decode(zdr_PATHCONF3args, &a)) return std::nullopt;
      PATHCONF3res res{};
      auto r = resolve(a.object.data.data_val, a.object.data.data_len, false);
      res.status = static_cast<nfsstat3>(nfsStatFor(r.ok() ? 0 : r.error().code()));
      if (r.ok()) {
        PATHCONF3resok& ok = res.PATHCONF3res_u.resok;
        ok.obj_attributes = postOp(fsid_, r->attr, r->id);
        ok.linkmax = 1;
        ok.name_max = vfs_.statfs().name_max;
        ok.no_trunc = 1;
        ok.chown_restricted = 1;
        ok.case_insensitive = 0;
        ok.case_preserving = 1;
      }
      return encode(zdr_PATHCONF3res, &res, 256);
    }

    case NFS3_COMMIT: {
      COMMIT3args a;
      if (!dec.decode(zdr_COMMIT3args, &a)) return std::nullopt;
      COMMIT3res res{};
      auto r = resolve(a.file.data.data_val, a.file.data.data_len, false);
      int err = r.ok() ? (r->attr.is_dir ? EISDIR : 0) : r.error().code();
      // Only a pooled writable handle can hold UNSTABLE bytes: a released one was fsync'd on
      // release (or the verifier changed), so without one there is nothing left to do.
      if (err == 0) {
        if (FileRef ref = pooledWritable(r->attr.ino)) {
          if (auto st = syncFile(*ref); !st.ok()) {
            err = st.error().code();
            spdlog::error("nfs: COMMIT of '{}' failed: {}", r->path, st.error().message());
          }
        }
      }
      res.status = static_cast<nfsstat3>(nfsStatFor(err));
      const std::optional<vfs::Attr> before =
          r.ok() ? std::optional<vfs::Attr>(r->attr) : std::nullopt;
      const std::optional<vfs::Attr> after = r.ok() ? attrOf(r->attr.ino) : std::nullopt;
      wcc_data& wcc =
          err == 0 ? res.COMMIT3res_u.resok.file_wcc : res.COMMIT3res_u.resfail.file_wcc;
      wcc.before = preOp(before);
      wcc.after = postOp(fsid_, after, r.ok() ? r->id : 0);
      if (err == 0) putU64(res.COMMIT3res_u.resok.verf, write_verifier_.load());
      return encode(zdr_COMMIT3res, &res, 256);
    }

    default:
      return std::nullopt;
  }
}

}  // namespace hfm::nfs
