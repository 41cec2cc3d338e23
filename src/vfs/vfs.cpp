#include "hfm/vfs/vfs.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <thread>
#include <utility>

#include "hfm/util/log.h"
#include "hfm/vfs/staging.h"
#include "vfs_internal.h"

namespace hfm::vfs {

namespace {

constexpr size_t kNameMax = 255;
constexpr uint64_t kFakeCapacityBytes = 42ull * 1000 * 1000 * 1000 * 1000 * 1000;  // 42 PB

}  // namespace

bool isOsJunkName(std::string_view name) {
  static constexpr std::array<std::string_view, 7> kJunk = {
      ".DS_Store", ".Spotlight-V100", ".Trashes",   ".fseventsd",
      "__MACOSX",  "Thumbs.db",       "desktop.ini"};
  if (name.substr(0, 2) == "._") return true;
  return std::find(kJunk.begin(), kJunk.end(), name) != kJunk.end();
}

Vfs::Vfs(std::shared_ptr<Remote> remote, VfsConfig config)
    : remote_(std::move(remote)),
      config_(std::move(config)),
      budget_(config_.prefetch_memory_limit),
      pool_(config_.worker_threads) {
  auto root = std::make_unique<Inode>();
  root->ino = kRootInode;
  root->parent = kRootInode;
  root->is_dir = true;
  root->entry.is_dir = true;
  root->entry.mtime_ns = config_.root_mtime_ns;
  path_ino_[""] = kRootInode;
  inodes_[kRootInode] = std::move(root);
  initWritePath();
}

Vfs::~Vfs() {
  shutdownWritePath();
  setInvalidationSink(nullptr);
  std::lock_guard<std::mutex> lock(handles_mu_);
  files_.clear();  // prefetchers drop their parts before the pool joins
  dirs_.clear();
}

Clock::time_point Vfs::now() const { return config_.now ? config_.now() : Clock::now(); }

Status Vfs::preloadRoot() { return ensureListed(kRootInode, false); }

void Vfs::setInvalidationSink(InvalidationSink* sink) {
  std::lock_guard<std::mutex> lock(sink_mu_);
  sink_ = sink;
}

void Vfs::dispatch(std::vector<std::function<void(InvalidationSink&)>>& notes) {
  if (notes.empty()) return;
  std::lock_guard<std::mutex> lock(sink_mu_);
  if (sink_ != nullptr) {
    for (auto& note : notes) note(*sink_);
  }
  notes.clear();
}

Vfs::Inode* Vfs::findLocked(InodeId ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second.get();
}

std::string Vfs::childPath(const Inode& dir, std::string_view name) const {
  return dir.path.empty() ? std::string(name) : dir.path + "/" + std::string(name);
}

Attr Vfs::attrLocked(const Inode& node) const {
  Attr a;
  a.ino = node.ino;
  a.is_dir = node.is_dir;
  // Read-only core: the reference reports 0444 / 0555 on read-only mounts.
  if (remote_->readOnly()) {
    a.mode = node.is_dir ? (S_IFDIR | 0555) : (S_IFREG | 0444);
  } else {
    a.mode = node.is_dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  }
  a.nlink = node.detached ? 0 : (node.is_dir ? 2 : 1);
  a.uid = config_.uid;
  a.gid = config_.gid;
  a.size = node.is_dir ? 0 : node.entry.size;
  a.mtime_ns = node.entry.mtime_ns != 0 ? node.entry.mtime_ns : config_.root_mtime_ns;
  if (!node.is_dir && node.staged != nullptr && (node.dirty() || node.writers > 0)) {
    a.size = node.staged->size.load();  // the local version is the one the caller sees
    a.mtime_ns = node.staged->mtime_ns.load();
  }
  if (auto link = symlinks_.find(node.ino); link != symlinks_.end()) {
    a.is_symlink = true;
    a.mode = S_IFLNK | 0777;  // permission bits of a symlink are never used
    a.size = link->second.size();
  } else if (node.mode_override) {
    a.mode = (a.mode & S_IFMT) | (*node.mode_override & 07777);
  }
  if (node.uid_override) a.uid = *node.uid_override;
  if (node.gid_override) a.gid = *node.gid_override;
  if (node.mtime_override) a.mtime_ns = *node.mtime_override;
  a.blocks = (a.size + 511) / 512;
  a.blksize = 512;
  return a;
}

std::shared_ptr<std::mutex> Vfs::listingMutex(InodeId dir) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (findLocked(dir) == nullptr) return nullptr;
  auto& m = listing_mu_[dir];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

// ---------------------------------------------------------------------------------------------
// Negative cache

bool Vfs::negativeHitLocked(const std::string& path) {
  if (config_.metadata_ttl_minimal) return false;
  std::lock_guard<std::mutex> lock(neg_mu_);
  auto it = negative_.find(path);
  if (it == negative_.end()) return false;
  if (it->second <= now()) {
    negative_.erase(it);
    return false;
  }
  return true;
}

void Vfs::addNegative(const std::string& path) {
  if (config_.metadata_ttl_minimal || config_.negative_cache_max == 0) return;
  const auto t = now();
  std::lock_guard<std::mutex> lock(neg_mu_);
  if (negative_.size() >= config_.negative_cache_max) {
    std::erase_if(negative_, [t](const auto& kv) { return kv.second <= t; });
    // Still full: drop a sample of entries (as the reference does, 128 at a time).
    size_t dropped = 0;
    for (auto it = negative_.begin();
         negative_.size() >= config_.negative_cache_max && it != negative_.end() && dropped < 128;
         ++dropped) {
      it = negative_.erase(it);
    }
  }
  negative_[path] = t + config_.negative_ttl;
}

void Vfs::dropNegativeUnder(const std::string& dir_path) {
  std::lock_guard<std::mutex> lock(neg_mu_);
  std::erase_if(negative_, [&](const auto& kv) {
    const std::string& p = kv.first;
    if (dir_path.empty()) return true;
    return p.size() > dir_path.size() && p.compare(0, dir_path.size(), dir_path) == 0 &&
           p[dir_path.size()] == '/';
  });
}

// ---------------------------------------------------------------------------------------------
// Listings

void Vfs::maybeFreeLocked(InodeId ino) {
  Inode* node = findLocked(ino);
  if (node == nullptr || ino == kRootInode) return;
  if (node->detached && node->nlookup == 0 && node->open_handles == 0) {
    listing_mu_.erase(ino);
    symlinks_.erase(ino);
    inodes_.erase(ino);
  }
}

void Vfs::detachLocked(Inode& dir, const std::string& name, ChangeSet& changes,
                       std::vector<std::function<void(InvalidationSink&)>>& notes) {
  auto it = dir.children.find(name);
  if (it == dir.children.end()) return;
  const InodeId id = it->second;
  dir.children.erase(it);
  Inode* node = findLocked(id);
  if (node == nullptr) return;
  changes.deleted.push_back(node->path);
  const InodeId parent = dir.ino;
  const bool drop_pages = node->open_handles == 0;
  notes.emplace_back([parent, name](InvalidationSink& s) { s.invalidateEntry(parent, name); });
  notes.emplace_back([id, drop_pages](InvalidationSink& s) { s.invalidateInode(id, drop_pages); });
  // Detach the whole subtree; only the top entry needs a kernel notification.
  std::vector<InodeId> stack{id};
  while (!stack.empty()) {
    Inode* n = findLocked(stack.back());
    stack.pop_back();
    if (n == nullptr) continue;
    n->detached = true;
    n->listed_at.reset();
    for (const auto& [child_name, child_id] : n->children) stack.push_back(child_id);
    n->children.clear();
    maybeFreeLocked(n->ino);
  }
}

void Vfs::updateFileLocked(Inode& node, const RemoteEntry& entry, ChangeSet& changes,
                           std::vector<std::function<void(InvalidationSink&)>>& notes) {
  const bool differs = node.entry.contentDiffers(entry);
  const std::string path = node.path;
  node.entry = entry;
  node.entry.path = path;
  node.entry.is_dir = false;
  node.revalidated_at = now();
  if (differs) {
    // A new remote version: what chmod/chown/utimens set in memory described the old one.
    node.mode_override.reset();
    node.uid_override.reset();
    node.gid_override.reset();
    node.mtime_override.reset();
    changes.changed.push_back(path);
    const InodeId id = node.ino;
    const bool drop_pages = node.open_handles == 0;
    notes.emplace_back(
        [id, drop_pages](InvalidationSink& s) { s.invalidateInode(id, drop_pages); });
  }
}

InodeId Vfs::childLocked(Inode& dir, const std::string& name, const RemoteEntry& entry,
                         ChangeSet& changes,
                         std::vector<std::function<void(InvalidationSink&)>>& notes) {
  auto it = dir.children.find(name);
  if (it != dir.children.end()) {
    Inode* existing = findLocked(it->second);
    if (existing != nullptr && (existing->dirty() || isSymlinkLocked(existing->ino))) {
      return existing->ino;  // local content (uncommitted bytes, a symlink) wins
    }
    if (existing != nullptr && existing->is_dir == entry.is_dir) {
      if (!existing->is_dir) {
        updateFileLocked(*existing, entry, changes, notes);
      } else if (entry.mtime_ns != 0) {
        existing->entry.mtime_ns = entry.mtime_ns;
      }
      return existing->ino;
    }
    detachLocked(dir, name, changes, notes);  // kind changed: file ↔ directory
  }
  const std::string path = childPath(dir, name);
  InodeId id = 0;
  auto known = path_ino_.find(path);
  if (known != path_ino_.end()) {
    Inode* old = findLocked(known->second);
    // A path that named a symlink is a new kind of object when the remote has it.
    if (old == nullptr || (old->is_dir == entry.is_dir && !isSymlinkLocked(old->ino))) {
      id = known->second;
    }
  }
  if (id == 0) {
    id = next_ino_++;
    path_ino_[path] = id;
  }
  Inode* node = findLocked(id);
  bool resurrected = false;
  if (node == nullptr) {
    auto fresh = std::make_unique<Inode>();
    node = fresh.get();
    inodes_[id] = std::move(fresh);
  } else {
    resurrected = true;  // the kernel may still know this inode: refresh what it caches
  }
  node->ino = id;
  node->parent = dir.ino;
  node->name = name;
  node->path = path;
  node->is_dir = entry.is_dir;
  node->detached = false;
  node->entry = entry;
  node->entry.path = path;
  if (node->is_dir) node->entry.size = 0;
  node->revalidated_at = now();
  dir.children[name] = id;
  changes.added.push_back(path);
  const InodeId parent = dir.ino;
  // A kernel negative dentry may exist if we answered ENOENT for this name before, or if the
  // directory had been listed before (re-list). A first listing needs no notifications.
  if (dir.listed_at.has_value() || negativeHitLocked(path)) {
    notes.emplace_back([parent, name](InvalidationSink& s) { s.invalidateEntry(parent, name); });
  }
  if (resurrected) {
    const bool drop_pages = node->open_handles == 0;
    notes.emplace_back(
        [id, drop_pages](InvalidationSink& s) { s.invalidateInode(id, drop_pages); });
  }
  return id;
}

void Vfs::applyListingLocked(Inode& dir, const std::vector<RemoteEntry>& entries,
                             ChangeSet& changes,
                             std::vector<std::function<void(InvalidationSink&)>>& notes) {
  const std::string prefix = dir.path.empty() ? std::string() : dir.path + "/";
  std::map<std::string, RemoteEntry> wanted;
  for (const auto& e : entries) {
    // Keep only strict descendants of the directory: the bucket tree API matches raw key
    // prefixes, so "a/b.json" may come back when listing "a/b" (#207).
    if (e.path.size() <= prefix.size() || e.path.compare(0, prefix.size(), prefix) != 0) continue;
    if (!e.is_dir && deletePending(e.path)) continue;  // unlinked here, delete not sent yet
    const std::string rest = e.path.substr(prefix.size());
    const auto slash = rest.find('/');
    RemoteEntry child = e;
    std::string name = rest;
    if (slash != std::string::npos) {
      name = rest.substr(0, slash);
      child = RemoteEntry{};
      child.path = prefix + name;
      child.is_dir = true;
    }
    if (name.empty() || name == "." || name == ".." || name.size() > kNameMax) continue;
    auto [it, inserted] = wanted.emplace(name, child);
    if (!inserted && child.is_dir && !it->second.is_dir) it->second = child;  // dir wins
  }
  std::vector<std::string> gone;
  for (const auto& [name, id] : dir.children) {
    if (wanted.contains(name)) continue;
    Inode* child = findLocked(id);
    // Local state the remote cannot know yet: a file being written, a mkdir'd directory, a
    // symlink, or a directory holding one of those (it becomes local: only we know it now).
    if (child != nullptr && holdsLocalStateLocked(*child)) {
      if (child->is_dir) child->local_dir = true;
      continue;
    }
    gone.push_back(name);
  }
  for (const auto& name : gone) detachLocked(dir, name, changes, notes);
  for (const auto& [name, e] : wanted) childLocked(dir, name, e, changes, notes);
}

Status Vfs::ensureListed(InodeId dir, bool force, ChangeSet* out) {
  const auto requested = now();
  uint64_t seen_generation = 0;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (Inode* d = findLocked(dir)) seen_generation = d->list_generation;
  }
  auto lm = listingMutex(dir);
  if (!lm) return Error(ENOENT, "directory inode " + std::to_string(dir) + " is gone");
  std::lock_guard<std::mutex> listing_lock(*lm);
  std::string path;
  bool local = false;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* d = findLocked(dir);
    if (d == nullptr || d->detached) return Error(ENOENT, "directory was removed");
    if (!d->is_dir) return Error(ENOTDIR, d->path + " is not a directory");
    local = d->local_dir;
    if (d->listed_at) {
      // Someone listed while we waited for the listing lock: that answer is fresh enough.
      if (d->list_generation != seen_generation) return okStatus();
      if (!force && !config_.metadata_ttl_minimal &&
          requested - *d->listed_at < config_.metadata_ttl) {
        return okStatus();
      }
    }
    path = d->path;
  }
  auto listing = remote_->listDirectory(path);
  if (!listing.ok() && listing.error().code() != ENOENT) {
    return listing.error().withContext("listing '" + path + "'");
  }
  ChangeSet changes;
  std::vector<std::function<void(InvalidationSink&)>> notes;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* d = findLocked(dir);
    if (d == nullptr || d->detached) return Error(ENOENT, "directory was removed");
    static const std::vector<RemoteEntry> kEmpty;
    applyListingLocked(*d, listing.ok() ? *listing : kEmpty, changes, notes);
    d->listed_at = requested;
    d->list_generation++;
  }
  if (!changes.added.empty()) dropNegativeUnder(path);
  if (!changes.empty()) {
    spdlog::debug("listing '{}': +{} ~{} -{}", path, changes.added.size(), changes.changed.size(),
                  changes.deleted.size());
  }
  dispatch(notes);
  if (out != nullptr) {
    for (auto& p : changes.added) out->added.push_back(std::move(p));
    for (auto& p : changes.changed) out->changed.push_back(std::move(p));
    for (auto& p : changes.deleted) out->deleted.push_back(std::move(p));
  }
  if (!listing.ok() && !local) return listing.error().withContext("listing '" + path + "'");
  return okStatus();
}

// ---------------------------------------------------------------------------------------------
// Namespace

Result<Attr> Vfs::lookup(InodeId parent, std::string_view name_view) {
  if (name_view.size() > kNameMax) return Error(ENAMETOOLONG, "name too long");
  const std::string name(name_view);
  if (name.empty()) return Error(ENOENT, "empty name");
  if (name == "." || name == "..") {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    if (dir == nullptr) return Error(ENOENT, "unknown inode");
    Inode* target = name == "." ? dir : findLocked(dir->parent);
    if (target == nullptr) return Error(ENOENT, "parent is gone");
    if (target->ino != kRootInode) target->nlookup++;
    return attrLocked(*target);
  }

  enum class Next { kRevalidate, kRelist, kPointLookup };
  for (int round = 0; round < 2; ++round) {
    Next next = Next::kRelist;
    std::string path;
    {
      std::unique_lock<std::shared_mutex> lock(mu_);
      Inode* dir = findLocked(parent);
      if (dir == nullptr || dir->detached) return Error(ENOENT, "directory was removed");
      if (!dir->is_dir) return Error(ENOTDIR, dir->path + " is not a directory");
      path = childPath(*dir, name);
      auto it = dir->children.find(name);
      if (it != dir->children.end()) {
        Inode* node = findLocked(it->second);
        if (node != nullptr) {
          const bool stale = !node->is_dir && !node->dirty() && !isSymlinkLocked(node->ino) &&
                             (config_.metadata_ttl_minimal ||
                              now() - node->revalidated_at >= config_.metadata_ttl);
          if (!stale || round > 0) {
            node->nlookup++;
            return attrLocked(*node);
          }
          next = Next::kRevalidate;
        }
      } else {
        const bool fresh = dir->listed_at.has_value() && !config_.metadata_ttl_minimal &&
                           now() - *dir->listed_at < config_.metadata_ttl;
        if (fresh || round > 0) {
          lock.unlock();
          addNegative(path);
          return Error(ENOENT, path + " does not exist");
        }
        if (config_.filter_os_files && isOsJunkName(name)) {
          return Error(ENOENT, path + " is an OS junk name");
        }
        if (negativeHitLocked(path)) return Error(ENOENT, path + " does not exist (cached)");
        next = dir->listed_at.has_value() ? Next::kRelist : Next::kPointLookup;
      }
    }

    switch (next) {
      case Next::kRevalidate: {
        auto st = remote_->stat(path);
        if (st.ok() && !st->is_dir && deletePending(path)) st = Error(ENOENT, "delete pending");
        if (st.ok() && !st->is_dir) {
          ChangeSet changes;
          std::vector<std::function<void(InvalidationSink&)>> notes;
          {
            std::unique_lock<std::shared_mutex> lock(mu_);
            Inode* dir = findLocked(parent);
            if (dir != nullptr && !dir->detached) {
              auto it = dir->children.find(name);
              Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
              if (node != nullptr && !node->is_dir) updateFileLocked(*node, *st, changes, notes);
            }
          }
          dispatch(notes);
        } else if (st.ok() || st.error().code() == ENOENT) {
          // Gone, or no longer a file: the parent's listing tells which.
          Status listed = ensureListed(parent, true);
          if (!listed.ok()) {
            ChangeSet changes;
            std::vector<std::function<void(InvalidationSink&)>> notes;
            {
              std::unique_lock<std::shared_mutex> lock(mu_);
              Inode* dir = findLocked(parent);
              if (dir != nullptr) detachLocked(*dir, name, changes, notes);
            }
            dispatch(notes);
            return Error(ENOENT, path + " was removed");
          }
        } else {
          // Network trouble: keep serving what we know (the reference ignores these too).
          spdlog::debug("revalidating {} failed, serving cached metadata: {}", path,
                        st.error().message());
        }
        break;
      }
      case Next::kRelist:
        HFM_TRY(ensureListed(parent, true));
        break;
      case Next::kPointLookup: {
        auto st = remote_->stat(path);
        if (st.ok() && !st->is_dir && deletePending(path)) st = Error(ENOENT, "delete pending");
        if (st.ok() && !st->is_dir) {
          ChangeSet changes;
          std::vector<std::function<void(InvalidationSink&)>> notes;
          {
            std::unique_lock<std::shared_mutex> lock(mu_);
            Inode* dir = findLocked(parent);
            if (dir == nullptr || dir->detached) return Error(ENOENT, "directory was removed");
            RemoteEntry e = *st;
            e.path = path;
            childLocked(*dir, name, e, changes, notes);
          }
          dispatch(notes);
        } else if (st.ok() || st.error().code() == ENOENT) {
          HFM_TRY(ensureListed(parent, false));
        } else {
          return st.error();
        }
        break;
      }
    }
  }
  return Error(EIO, "lookup did not converge");  // unreachable: round 1 always returns
}

void Vfs::forget(InodeId ino, uint64_t nlookup) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  Inode* node = findLocked(ino);
  if (node == nullptr || ino == kRootInode) return;
  node->nlookup = nlookup >= node->nlookup ? 0 : node->nlookup - nlookup;
  maybeFreeLocked(ino);
}

void Vfs::forgetMulti(std::span<const std::pair<InodeId, uint64_t>> items) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (const auto& [ino, n] : items) {
    Inode* node = findLocked(ino);
    if (node == nullptr || ino == kRootInode) continue;
    node->nlookup = n >= node->nlookup ? 0 : node->nlookup - n;
    maybeFreeLocked(ino);
  }
}

Result<Attr> Vfs::retain(InodeId ino) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  Inode* node = findLocked(ino);
  if (node == nullptr) return Error(ENOENT, "unknown inode " + std::to_string(ino));
  if (ino != kRootInode) node->nlookup++;
  return attrLocked(*node);
}

Result<Attr> Vfs::getattr(InodeId ino) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  Inode* node = findLocked(ino);
  if (node == nullptr) return Error(ENOENT, "unknown inode " + std::to_string(ino));
  return attrLocked(*node);
}

// ---------------------------------------------------------------------------------------------
// Directories

Result<uint64_t> Vfs::opendir(InodeId ino) {
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || node->detached) return Error(ENOENT, "directory was removed");
    if (!node->is_dir) return Error(ENOTDIR, node->path + " is not a directory");
  }
  Status listed = ensureListed(ino, false);
  auto handle = std::make_shared<DirHandle>();
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr) return Error(ENOENT, "directory was removed");
    if (!listed.ok()) {
      if (!node->listed_at.has_value() || listed.error().code() == ENOENT) return listed.error();
      spdlog::warn("serving the previous listing of '{}': {}", node->path,
                   listed.error().message());
    }
    handle->entries.reserve(node->children.size() + 2);
    handle->entries.push_back({".", node->ino, true, 1});
    handle->entries.push_back({"..", node->parent, true, 2});
    for (const auto& [name, id] : node->children) {
      Inode* child = findLocked(id);
      if (child == nullptr) continue;
      handle->entries.push_back(
          {name, id, child->is_dir, handle->entries.size() + 1, isSymlinkLocked(id)});
    }
  }
  std::lock_guard<std::mutex> lock(handles_mu_);
  const uint64_t fh = next_fh_++;
  dirs_[fh] = std::move(handle);
  return fh;
}

Result<std::vector<DirEntry>> Vfs::readdir(uint64_t dir_handle, uint64_t offset,
                                           size_t max_entries) {
  std::shared_ptr<DirHandle> handle;
  {
    std::lock_guard<std::mutex> lock(handles_mu_);
    auto it = dirs_.find(dir_handle);
    if (it == dirs_.end()) return Error(EBADF, "unknown directory handle");
    handle = it->second;
  }
  std::vector<DirEntry> out;
  for (uint64_t i = offset; i < handle->entries.size() && out.size() < max_entries; ++i) {
    out.push_back(handle->entries[static_cast<size_t>(i)]);
  }
  return out;
}

void Vfs::releasedir(uint64_t dir_handle) {
  std::lock_guard<std::mutex> lock(handles_mu_);
  dirs_.erase(dir_handle);
}

// ---------------------------------------------------------------------------------------------
// Files

Result<OpenResult> Vfs::open(InodeId ino, int flags) {
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    // The kernel follows symlinks itself; only a raw open (NFS, O_NOFOLLOW) gets here.
    if (isSymlinkLocked(ino)) return Error(ELOOP, "a symlink has no content to open");
  }
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND)) != 0) {
    if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
    return openWrite(ino, flags, false);
  }
  auto handle = std::make_shared<FileHandle>();
  OpenResult result;
  std::shared_ptr<const RemoteEntry> entry;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr) return Error(ENOENT, "unknown inode " + std::to_string(ino));
    if (node->is_dir) return Error(EISDIR, node->path + " is a directory");
    if (stagedServesLocked(*node)) {
      // Local bytes (written, pending, or a clean copy of this very version): read them.
      handle->ino = ino;
      handle->staged = node->staged;
      node->staged->handles++;
      node->staged->last_used = Clock::now();
      node->open_handles++;
      node->last_open_version = std::string();  // later remote opens drop the pages
      result.keep_cache = false;
      result.direct_io = config_.direct_io;
      lock.unlock();
      std::lock_guard<std::mutex> hlock(handles_mu_);
      result.fh = next_fh_++;
      files_[result.fh] = std::move(handle);
      return result;
    }
    const std::string version = versionOf(node->entry);
    result.keep_cache = !node->last_open_version || *node->last_open_version == version;
    result.keep_cache = result.keep_cache && !config_.direct_io;
    node->last_open_version = version;
    node->open_handles++;
    handle->ino = ino;
    handle->version = version;
    result.version = version;
    entry = std::make_shared<const RemoteEntry>(node->entry);
  }
  result.direct_io = config_.direct_io;
  if (auto* copies = config_.local_copies.get();
      copies != nullptr && !entry->xet_hash.empty() && entry->size > 0) {
    handle->local = copies->open(entry->xet_hash, entry->size);
    if (handle->local) {
      result.local_fd = handle->local->fd;
    } else {
      // The next open finds the copy; this one reads over the network meanwhile.
      copies->request(entry->xet_hash, entry->size,
                      [remote = remote_, entry, prefetch = config_.prefetch](
                          uint64_t offset, std::span<uint8_t> out) {
                        return fetchExact(*remote, *entry, offset, out, prefetch.fetch_attempts,
                                          prefetch.retry_backoff);
                      });
    }
  }
  if (!handle->local) {
    handle->prefetcher =
        std::make_unique<Prefetcher>(*remote_, pool_, entry, config_.prefetch, &budget_);
  }
  std::lock_guard<std::mutex> lock(handles_mu_);
  result.fh = next_fh_++;
  files_[result.fh] = std::move(handle);
  return result;
}

Result<size_t> Vfs::read(uint64_t fh, uint64_t offset, std::span<uint8_t> out,
                         std::vector<ReadView>* views) {
  std::shared_ptr<FileHandle> handle;
  {
    std::lock_guard<std::mutex> lock(handles_mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) return Error(EBADF, "unknown file handle");
    handle = it->second;
  }
  std::shared_ptr<Staged> staged = handle->staged;
  const bool remote_version = handle->prefetcher != nullptr || handle->local.has_value();
  if (staged == nullptr && remote_version) {
    // A handle opened on the remote version reads the local bytes once the file has local
    // changes (written, truncated, pending through another handle or a handle-less setattr).
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(handle->ino);
    if (node != nullptr && stagedServesLocked(*node)) staged = node->staged;
  }
  if (staged != nullptr) {
    Staged& st = *staged;
    if (const int lost = st.lost_errno.load(); lost != 0) {
      // The copy this handle reads was dropped after a failed write: its bytes are gone, and
      // reading on would show an empty or different file.
      return Error(EIO, "the unsaved copy this handle reads was dropped after a failed write (" +
                            std::string(std::strerror(lost)) + ")");
    }
    std::lock_guard<std::mutex> slock(st.mu);
    const uint64_t size = st.size.load();
    if (offset >= size) return size_t{0};
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
    auto got = staging::preadFull(st.fd, offset, out.first(want));
    if (!got.ok()) {
      spdlog::error("reading staged {}: {}", st.data_path, got.error().message());
      return Error(EIO, got.error().message());
    }
    // A staging file shorter than its recorded size reads as zeros (a sparse extension).
    if (*got < want)
      std::fill(out.begin() + static_cast<ptrdiff_t>(*got),
                out.begin() + static_cast<ptrdiff_t>(want), 0);
    return want;
  }
  if (!remote_version) return Error(EBADF, "read on a write-only handle");
  {
    // A handle pinned to a version that has since been replaced at the same path must not put
    // old bytes into the kernel's page cache, which new opens of the inode share: ESTALE.
    // (A file deleted remotely keeps serving its last version: nothing replaces it.)
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(handle->ino);
    if (node != nullptr && !node->detached && versionOf(node->entry) != handle->version) {
      return Error(ESTALE, node->path + " changed remotely since it was opened");
    }
  }
  if (handle->local) {
    const LocalCopy& copy = *handle->local;
    if (offset >= copy.size) return size_t{0};
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), copy.size - offset));
    auto got = staging::preadFull(copy.fd, offset, out.first(want));
    if (!got.ok() || *got != want) {
      // The copy is checked at open; a short read now means the disk failed under it.
      spdlog::error("reading the local copy of {}: {}", handle->version,
                    got.ok() ? "short read" : got.error().message());
      return Error(EIO, "reading the local copy failed");
    }
    return want;
  }
  auto got = handle->prefetcher->read(offset, out, views);
  if (!got.ok()) {
    const int code = got.error().code();
    // read(2) has no ENOENT/ENOTDIR/EISDIR: a version that vanished from the store is an I/O
    // error for the reader.
    if (code == ENOENT || code == ENOTDIR || code == EISDIR) {
      return Error(EIO, got.error().message());
    }
  }
  return got;
}

StatFs Vfs::statfs() const {
  StatFs s;
  s.block_size = 512;
  s.blocks = kFakeCapacityBytes / s.block_size;
  s.blocks_free = s.blocks;
  s.blocks_available = s.blocks;
  s.files = 0;
  s.files_free = 0;
  s.name_max = kNameMax;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Mutations

Status Vfs::checkMutation(std::string_view name) const {
  if (name.size() > kNameMax) return Error(ENAMETOOLONG, "name too long");
  if (config_.filter_os_files && isOsJunkName(name)) {
    return Error(EACCES, std::string(name) + " is an OS junk name (see --no-filter-os-files)");
  }
  if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return Error(EINVAL, "invalid name");
  }
  return okStatus();
}

Status Vfs::mknod(InodeId, std::string_view name) {
  HFM_TRY(checkMutation(name));
  return Error(EPERM, "special files cannot be stored in a bucket");
}

Result<Attr> Vfs::setattr(InodeId ino) {
  if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
  return getattr(ino);
}

Status Vfs::requireFreeName(InodeId parent, const std::string& name) {
  auto existing = lookup(parent, name);
  if (existing.ok()) {
    forget(existing->ino, 1);  // the lookup took a reference the kernel never sees
    return Error(EEXIST, name + " exists");
  }
  if (existing.error().code() != ENOENT) return existing.error();
  return okStatus();
}

Result<Vfs::Inode*> Vfs::freeNameParentLocked(InodeId parent, const std::string& name) const {
  Inode* dir = findLocked(parent);
  if (dir == nullptr || dir->detached) return Error(ENOENT, "directory was removed");
  if (!dir->is_dir) return Error(ENOTDIR, dir->path + " is not a directory");
  if (dir->children.contains(name)) return Error(EEXIST, name + " exists");
  return dir;
}

Status Vfs::mkdir(InodeId parent, std::string_view name_view) {
  HFM_TRY(checkMutation(name_view));
  const std::string name(name_view);
  HFM_TRY(requireFreeName(parent, name));
  std::string path;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    HFM_ASSIGN_OR_RETURN(Inode * dir, freeNameParentLocked(parent, name));
    path = childPath(*dir, name);
    RemoteEntry e;
    e.path = path;
    e.is_dir = true;
    e.mtime_ns = wallNowNs();
    ChangeSet changes;
    std::vector<std::function<void(InvalidationSink&)>> notes;  // the kernel made the call
    const InodeId id = childLocked(*dir, name, e, changes, notes);
    Inode* node = findLocked(id);
    node->local_dir = true;
    node->listed_at = now();
  }
  std::lock_guard<std::mutex> lock(neg_mu_);
  negative_.erase(path);
  return okStatus();
}

Status Vfs::rmdir(InodeId parent, std::string_view name_view) {
  if (remote_->readOnly()) return Error(EROFS, "read-only filesystem");
  const std::string name(name_view);
  InodeId id = 0;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    if (dir == nullptr || dir->detached) return Error(ENOENT, "directory was removed");
    auto it = dir->children.find(name);
    Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
    if (node == nullptr) return Error(ENOENT, name + " does not exist");
    if (!node->is_dir) return Error(ENOTDIR, node->path + " is not a directory");
    id = node->ino;
  }
  HFM_TRY(ensureListed(id, false));
  std::string path;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* node = findLocked(id);
    if (dir == nullptr || node == nullptr || node->detached) return Error(ENOENT, "gone");
    if (!node->children.empty()) return Error(ENOTEMPTY, node->path + " is not empty");
    path = node->path;
    ChangeSet changes;
    std::vector<std::function<void(InvalidationSink&)>> notes;  // the kernel made the call
    detachLocked(*dir, name, changes, notes);
  }
  addNegative(path);
  return okStatus();
}

Status Vfs::rename(InodeId parent, std::string_view name_view, InodeId new_parent,
                   std::string_view new_name_view) {
  if (remote_->readOnly()) {
    HFM_TRY(checkMutation(new_name_view));
    return Error(EROFS, "read-only filesystem");
  }
  HFM_TRY(checkMutation(new_name_view));
  return renameFile(parent, std::string(name_view), new_parent, std::string(new_name_view));
}

Status Vfs::renameFile(InodeId parent, const std::string& name, InodeId new_parent,
                       const std::string& new_name) {
  // The kernel looked the target up first, so an existing target is in the table.
  std::string old_path;
  std::string new_path;
  RemoteEntry entry;
  bool is_dir = false;
  bool staged_source = false;
  bool symlink_source = false;
  std::vector<std::shared_ptr<Staged>> dirty;  // directories: uncommitted files below
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || dir->detached || new_dir == nullptr || new_dir->detached) {
      return Error(ENOENT, "directory was removed");
    }
    if (!new_dir->is_dir) return Error(ENOTDIR, new_dir->path + " is not a directory");
    auto it = dir->children.find(name);
    Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
    if (node == nullptr) return Error(ENOENT, name + " does not exist");
    if (parent == new_parent && name == new_name) return okStatus();
    auto target_it = new_dir->children.find(new_name);
    Inode* target = target_it == new_dir->children.end() ? nullptr : findLocked(target_it->second);
    old_path = node->path;
    new_path = childPath(*new_dir, new_name);
    if (node->is_dir) {
      // Cycle: the new parent is the directory itself or below it.
      if (new_path.size() > old_path.size() &&
          new_path.compare(0, old_path.size(), old_path) == 0 && new_path[old_path.size()] == '/') {
        return Error(EINVAL, "cannot move a directory into itself");
      }
      if (target != nullptr && !target->is_dir) return Error(ENOTDIR, new_path + " is a file");
      if (target != nullptr && (!target->children.empty() || !target->local_dir)) {
        return Error(ENOTEMPTY, new_path + " is not empty");
      }
      // Files below with uncommitted writes move locally (committed at their new paths).
      std::vector<const Inode*> stack{node};
      while (!stack.empty()) {
        const Inode* n = stack.back();
        stack.pop_back();
        if (n->dirty()) dirty.push_back(n->staged);
        for (const auto& [child_name, child_id] : n->children) {
          if (const Inode* c = findLocked(child_id)) stack.push_back(c);
        }
      }
      is_dir = true;
    } else {
      if (target != nullptr && target->is_dir) return Error(EISDIR, new_path + " is a directory");
      symlink_source = isSymlinkLocked(node->ino);  // in memory only: moved locally
      if (node->dirty()) staged_source = true;      // moved locally, committed at the new path
      entry = node->entry;
      if (!staged_source && !symlink_source && entry.xet_hash.empty()) {
        return Error(ENOTSUP, old_path + " has no xet hash to copy");
      }
    }
  }
  if (symlink_source) return renameSymlink(parent, name, new_parent, new_name);
  if (staged_source) return renameStaged(parent, name, new_parent, new_name);
  if (is_dir) return renameDirectory(parent, name, new_parent, new_name, std::move(dirty));
  const std::string deletes[] = {old_path};
  HFM_TRY(commitByHash(new_path, entry, deletes, "rename " + old_path + " → " + new_path));
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || new_dir == nullptr) return okStatus();  // the next listing catches up
    auto it = dir->children.find(name);
    if (it == dir->children.end()) return okStatus();
    moveNodeLocked(*dir, name, *new_dir, new_name);
  }
  addNegative(old_path);
  {
    std::lock_guard<std::mutex> lock(neg_mu_);
    negative_.erase(new_path);
  }
  return okStatus();
}

Status Vfs::renameDirectory(InodeId parent, const std::string& name, InodeId new_parent,
                            const std::string& new_name,
                            std::vector<std::shared_ptr<Staged>> dirty) {
  // The commit locks of the uncommitted files below are held until they have moved (in memory
  // and in their manifests): none of them can commit at its old path meanwhile. Taken without
  // ever blocking while holding another (the committer holds several at once).
  std::vector<std::unique_lock<std::mutex>> commit_locks(dirty.size());
  for (size_t first = 0; !dirty.empty();) {
    commit_locks[first] = std::unique_lock<std::mutex>(dirty[first]->commit_mu);
    size_t failed = dirty.size();
    for (size_t i = 0; i < dirty.size(); ++i) {
      if (i == first) continue;
      commit_locks[i] = std::unique_lock<std::mutex>(dirty[i]->commit_mu, std::try_to_lock);
      if (!commit_locks[i].owns_lock()) {
        failed = i;
        break;
      }
    }
    if (failed == dirty.size()) break;
    for (auto& l : commit_locks) {
      if (l.owns_lock()) l.unlock();
    }
    first = failed;  // wait for the busy one first
  }
  std::string old_path;
  std::string new_path;
  std::map<std::string, std::shared_ptr<Staged>> moving;  // old path → uncommitted file
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || dir->detached || new_dir == nullptr || new_dir->detached) {
      return Error(ENOENT, "directory was removed");
    }
    auto it = dir->children.find(name);
    Inode* node = it == dir->children.end() ? nullptr : findLocked(it->second);
    if (node == nullptr || !node->is_dir) return Error(ENOENT, name + " was removed");
    old_path = node->path;
    new_path = childPath(*new_dir, new_name);
    for (const auto& s : dirty) {
      // Committed (or unlinked) before its lock was ours: a clean file, re-added by hash.
      Inode* n = findLocked(s->ino);
      if (n == nullptr || n->detached || n->staged != s || s->discarded || !s->dirty()) continue;
      if (!n->path.starts_with(old_path + "/")) continue;  // moved out meanwhile
      moving[n->path] = s;
    }
  }
  // Every file stored below the directory, one listing per directory level.
  std::vector<RemoteAdd> adds;
  std::vector<std::string> deletes;
  std::set<std::string> stored_moving;  // uncommitted files with a remote version
  std::vector<std::string> dirs{old_path};
  while (!dirs.empty()) {
    const std::string d = dirs.back();
    dirs.pop_back();
    auto listing = remote_->listDirectory(d);
    if (!listing.ok()) {
      if (listing.error().code() == ENOENT) continue;  // local-only (mkdir'd) directory
      return Error(EIO, "rename " + old_path + ": " + listing.error().message());
    }
    for (const auto& e : *listing) {
      if (e.path.size() <= d.size() + 1 || e.path.compare(0, d.size() + 1, d + "/") != 0) {
        continue;  // raw-prefix matches (#207)
      }
      if (e.is_dir || e.path.find('/', d.size() + 1) != std::string::npos) {
        const auto slash = e.path.find('/', d.size() + 1);
        dirs.push_back(slash == std::string::npos ? e.path : e.path.substr(0, slash));
        continue;
      }
      if (moving.contains(e.path)) {
        // Its local version replaces this one at the new path; the old path is deleted with
        // that commit.
        stored_moving.insert(e.path);
        continue;
      }
      if (e.xet_hash.empty()) return Error(ENOTSUP, e.path + " has no xet hash to copy");
      adds.push_back(
          {new_path + e.path.substr(old_path.size()), e.xet_hash, e.mtime_ns / 1'000'000});
      deletes.push_back(e.path);
    }
  }
  if (!adds.empty()) {
    Status st = remote_->commitFiles(adds, deletes);
    if (!st.ok()) {
      spdlog::error("rename {} → {}: {}", old_path, new_path, st.error().message());
      return Error(EIO, st.error().message());
    }
  }
  std::vector<std::pair<std::shared_ptr<Staged>, std::string>> moved;  // file, new path
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || new_dir == nullptr || !dir->children.contains(name)) {
      // Removed while the batch was sent: the uncommitted files stay where they are.
      spdlog::warn("rename {} → {}: the directory went away meanwhile", old_path, new_path);
      return okStatus();
    }
    for (auto& [path, s] : moving) {
      std::lock_guard<std::mutex> slock(s->mu);
      if (s->remote_exists || stored_moving.contains(path)) s->deletes.push_back(path);
      s->remote_exists = false;
      s->committed = kNeverCommitted;  // the Hub has nothing at the new path yet
    }
    moveNodeLocked(*dir, name, *new_dir, new_name);
    for (auto& [path, s] : moving) {
      Inode* n = findLocked(s->ino);
      if (n == nullptr || n->staged != s) continue;
      {
        std::lock_guard<std::mutex> slock(s->mu);
        std::erase(s->deletes, n->path);  // the add at the new path replaces it
      }
      moved.emplace_back(s, n->path);
    }
  }
  addNegative(old_path);
  {
    std::lock_guard<std::mutex> lock(neg_mu_);
    negative_.erase(new_path);
  }
  for (const auto& [s, path] : moved) {
    if (cancelQueuedDelete(path)) {
      std::lock_guard<std::mutex> slock(s->mu);
      s->remote_exists = true;
    }
    bool had_manifest = false;
    {
      std::lock_guard<std::mutex> slock(s->mu);
      had_manifest = s->has_manifest;
    }
    if (had_manifest) {
      // A restart must commit it under the new path and delete the old one.
      Status st = persist(s);
      if (!st.ok()) {
        spdlog::error("rename {} → {}: the manifest of {} still names its old path: {}", old_path,
                      new_path, path, st.error().message());
      }
    }
    bool open_writer = false;
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      open_writer = s->writers > 0;
    }
    if (config_.writes.advanced) {
      signalFlush(s);
    } else if (!open_writer) {
      std::lock_guard<std::mutex> lock(commit_mu_);  // a pending file: commit it at its new name
      retries_[s.get()] = {s, Clock::now()};
      commit_cv_.notify_all();
    }
  }
  if (!moved.empty()) {
    spdlog::info("rename {} → {}: {} uncommitted file(s) moved, committed at their new paths",
                 old_path, new_path, moved.size());
  }
  return okStatus();
}

void Vfs::moveNodeLocked(Inode& dir, const std::string& name, Inode& new_dir,
                         const std::string& new_name) {
  auto it = dir.children.find(name);
  if (it == dir.children.end()) return;
  const InodeId id = it->second;
  Inode* node = findLocked(id);
  if (node == nullptr) return;
  const std::string old_path = node->path;
  const std::string new_path = childPath(new_dir, new_name);
  ChangeSet changes;
  std::vector<std::function<void(InvalidationSink&)>> notes;  // the kernel made the call
  auto target = new_dir.children.find(new_name);
  if (target != new_dir.children.end() && target->second != id) {
    // A replaced target: its local bytes (if any) are overwritten by the moved file.
    if (Inode* t = findLocked(target->second)) discardLocked(*t);
    detachLocked(new_dir, new_name, changes, notes);
  }
  dir.children.erase(name);
  node->parent = new_dir.ino;
  node->name = new_name;
  node->path = new_path;
  node->entry.path = new_path;
  path_ino_.erase(old_path);
  path_ino_[new_path] = id;
  new_dir.children[new_name] = id;
  // Descendants follow; their directories list again (under the new path) on next use.
  std::vector<InodeId> stack;
  for (const auto& [child_name, child_id] : node->children) stack.push_back(child_id);
  if (node->is_dir && !node->local_dir) node->listed_at.reset();
  while (!stack.empty()) {
    Inode* n = findLocked(stack.back());
    stack.pop_back();
    if (n == nullptr) continue;
    const Inode* up = findLocked(n->parent);
    if (up == nullptr) continue;
    const std::string moved = childPath(*up, n->name);
    path_ino_.erase(n->path);
    path_ino_[moved] = n->ino;
    n->path = moved;
    n->entry.path = moved;
    if (n->is_dir && !n->local_dir) n->listed_at.reset();
    for (const auto& [child_name, child_id] : n->children) stack.push_back(child_id);
  }
}

// ---------------------------------------------------------------------------------------------
// Remote sync

ChangeSet Vfs::refreshLoaded() {
  struct Dir {
    InodeId ino;
    size_t depth;
    std::string path;
  };
  std::vector<Dir> dirs;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (const auto& [id, node] : inodes_) {
      // Listed directories only: a file found by a point lookup in a directory never listed
      // (think 100 000 siblings, #122) is revalidated by lookups after the TTL instead.
      if (node->is_dir && !node->detached && node->listed_at.has_value()) {
        dirs.push_back({id,
                        static_cast<size_t>(std::count(node->path.begin(), node->path.end(), '/')) +
                            (node->path.empty() ? 0 : 1),
                        node->path});
      }
    }
  }
  std::sort(dirs.begin(), dirs.end(), [](const Dir& a, const Dir& b) {
    return a.depth < b.depth || (a.depth == b.depth && a.path < b.path);
  });
  ChangeSet all;
  std::mutex all_mu;
  auto refreshOne = [&](const Dir& d) {
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      Inode* node = findLocked(d.ino);
      if (node == nullptr || node->detached) return;  // removed by its parent's listing
    }
    ChangeSet local;
    Status st = ensureListed(d.ino, true, &local);
    if (!st.ok() && st.error().code() != ENOENT) {
      // Unreachable or failing: keep what we have; deletions need the parent's word.
      spdlog::warn("poll: {}", st.error().message());
    }
    std::lock_guard<std::mutex> lock(all_mu);
    for (auto& p : local.added) all.added.push_back(std::move(p));
    for (auto& p : local.changed) all.changed.push_back(std::move(p));
    for (auto& p : local.deleted) all.deleted.push_back(std::move(p));
  };
  // One depth at a time (parents before children, so a directory deleted with its parent is
  // skipped), at most poll_listing_concurrency listings in flight (#139/#159).
  const size_t width = std::max<size_t>(config_.poll_listing_concurrency, 1);
  for (size_t begin = 0; begin < dirs.size();) {
    size_t level_end = begin;
    while (level_end < dirs.size() && dirs[level_end].depth == dirs[begin].depth) ++level_end;
    std::atomic<size_t> next{begin};
    auto worker = [&] {
      for (size_t i = next++; i < level_end; i = next++) refreshOne(dirs[i]);
    };
    const size_t helpers = std::min(width, level_end - begin) - 1;
    std::vector<std::thread> threads;
    threads.reserve(helpers);
    for (size_t t = 0; t < helpers; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    begin = level_end;
  }
  return all;
}

// ---------------------------------------------------------------------------------------------
// Introspection

uint64_t Vfs::lookupCount(InodeId ino) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  Inode* node = findLocked(ino);
  return node == nullptr ? 0 : node->nlookup;
}

size_t Vfs::inodeCount() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return inodes_.size();
}

size_t Vfs::openHandleCount() const {
  std::lock_guard<std::mutex> lock(handles_mu_);
  return files_.size();
}

std::optional<InodeId> Vfs::inodeForPath(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = path_ino_.find(path);
  if (it == path_ino_.end()) return std::nullopt;
  Inode* node = findLocked(it->second);
  if (node == nullptr || node->detached) return std::nullopt;
  return it->second;
}

std::optional<PrefetchStats> Vfs::prefetchStats(uint64_t fh) const {
  std::shared_ptr<FileHandle> handle;
  {
    std::lock_guard<std::mutex> lock(handles_mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) return std::nullopt;
    handle = it->second;
  }
  if (handle->prefetcher == nullptr) return std::nullopt;  // a staged (local) handle
  return handle->prefetcher->stats();
}

}  // namespace hfm::vfs
