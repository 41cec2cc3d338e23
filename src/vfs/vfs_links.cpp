// In-memory symlinks and hard links as server-side copies (see vfs.h and docs/semantics.md).
// A bucket stores neither: a symlink lives in the inode table only, and a hard link is a second
// path bound to the same content hash (a copy that costs no upload, not a shared inode).
#include <climits>
#include <optional>
#include <utility>
#include <vector>

#include "hfm/util/log.h"
#include "hfm/vfs/vfs.h"
#include "vfs_internal.h"

namespace hfm::vfs {

bool Vfs::isSymlinkLocked(InodeId ino) const { return symlinks_.contains(ino); }

bool Vfs::holdsLocalStateLocked(const Inode& node) const {
  std::vector<const Inode*> stack{&node};
  while (!stack.empty()) {
    const Inode* n = stack.back();
    stack.pop_back();
    if (n->dirty() || n->local_dir || isSymlinkLocked(n->ino)) return true;
    for (const auto& [child_name, child_id] : n->children) {
      if (const Inode* c = findLocked(child_id)) stack.push_back(c);
    }
  }
  return false;
}

Result<Attr> Vfs::symlink(InodeId parent, std::string_view name_view, std::string_view target) {
  HFM_TRY(checkMutation(name_view));
  if (target.empty()) return Error(ENOENT, "empty symlink target");
  if (target.size() >= PATH_MAX) return Error(ENAMETOOLONG, "symlink target too long");
  const std::string name(name_view);
  HFM_TRY(requireFreeName(parent, name));
  std::string path;
  Attr attr;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    HFM_ASSIGN_OR_RETURN(Inode * dir, freeNameParentLocked(parent, name));
    path = childPath(*dir, name);
    // Always a fresh number: whatever the path named before was another kind of object.
    const InodeId id = next_ino_++;
    auto node = std::make_unique<Inode>();
    node->ino = id;
    node->parent = dir->ino;
    node->name = name;
    node->path = path;
    node->entry.path = path;
    node->entry.size = target.size();
    node->entry.mtime_ns = wallNowNs();
    node->revalidated_at = now();
    node->nlookup = 1;
    symlinks_[id] = std::string(target);
    path_ino_[path] = id;
    dir->children[name] = id;
    attr = attrLocked(*node);
    inodes_[id] = std::move(node);
  }
  {
    std::lock_guard<std::mutex> lock(neg_mu_);
    negative_.erase(path);
  }
  spdlog::debug("symlink {} → {} (in memory only)", path, target);
  return attr;
}

Result<std::string> Vfs::readlink(InodeId ino) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (findLocked(ino) == nullptr) return Error(ENOENT, "unknown inode " + std::to_string(ino));
  auto it = symlinks_.find(ino);
  if (it == symlinks_.end()) return Error(EINVAL, "not a symlink");
  return it->second;
}

Status Vfs::renameSymlink(InodeId parent, const std::string& name, InodeId new_parent,
                          const std::string& new_name) {
  InodeId id = 0;
  InodeId replaced = 0;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || new_dir == nullptr) return Error(ENOENT, "directory was removed");
    auto it = dir->children.find(name);
    if (it == dir->children.end()) return Error(ENOENT, name + " does not exist");
    id = it->second;
    auto target = new_dir->children.find(new_name);
    if (target != new_dir->children.end()) replaced = target->second;
  }
  // A replaced file goes away as unlink would make it (its remote version is deleted); only
  // the symlink itself never reaches the remote.
  if (replaced != 0 && replaced != id) HFM_TRY(unlink(new_parent, new_name));
  std::string old_path;
  std::string new_path;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* dir = findLocked(parent);
    Inode* new_dir = findLocked(new_parent);
    if (dir == nullptr || new_dir == nullptr) return Error(ENOENT, "directory was removed");
    auto it = dir->children.find(name);
    if (it == dir->children.end() || it->second != id) return Error(ENOENT, name + " was removed");
    old_path = childPath(*dir, name);
    new_path = childPath(*new_dir, new_name);
    moveNodeLocked(*dir, name, *new_dir, new_name);
  }
  addNegative(old_path);
  std::lock_guard<std::mutex> lock(neg_mu_);
  negative_.erase(new_path);
  return okStatus();
}

Status Vfs::commitForLink(InodeId ino) {
  std::shared_ptr<Staged> staged;
  std::string path;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || !node->dirty()) return okStatus();
    staged = node->staged;
    path = node->path;
  }
  if (staged == nullptr) return okStatus();
  if (const int lost = staged->lost_errno.load(); lost != 0) return lostError(lost);
  if (!config_.writes.advanced) {
    // A writer that wrote bytes commits as its close would, serialized with its writes.
    std::vector<uint64_t> writers;
    {
      std::lock_guard<std::mutex> lock(handles_mu_);
      for (const auto& [fh, handle] : files_) {
        if (handle->writable && handle->staged == staged) writers.push_back(fh);
      }
    }
    for (const uint64_t fh : writers) HFM_TRY(flush(fh));
  }
  // What is left: a new file nobody wrote to yet (its release, which commits it, may still be
  // on its way after close returned), or advanced writes waiting for their debounce. Kept on
  // local disk first, so a failed commit is retried like any other.
  HFM_TRY(persist(staged));
  std::vector<Status> results;
  (void)commitStaged({staged}, {}, results);
  if (!results[0].ok()) {
    scheduleRetry(staged, results[0].error());
    return Error(EIO, "committing " + path + " before linking it: " + results[0].error().message());
  }
  return okStatus();
}

Status Vfs::commitByHash(const std::string& path, const RemoteEntry& entry,
                         std::span<const std::string> deletes, const std::string& what) {
  {
    // A delete of `path` being sent right now must land before the add, or it removes it.
    std::unique_lock<std::mutex> lock(commit_mu_);
    done_cv_.wait(lock, [&] { return stop_ || !inflight_deletes_.contains(path); });
  }
  const bool cancelled = cancelQueuedDelete(path);  // the add replaces what it would delete
  const RemoteAdd add{path, entry.xet_hash, entry.mtime_ns / 1'000'000};
  Status st = remote_->commitFiles(std::span<const RemoteAdd>(&add, 1), deletes);
  if (!st.ok()) {
    if (cancelled) queueDelete(path);
    spdlog::error("{}: {}", what, st.error().message());
    return Error(EIO, st.error().message());
  }
  return okStatus();
}

Result<Attr> Vfs::link(InodeId ino, InodeId new_parent, std::string_view new_name_view) {
  HFM_TRY(checkMutation(new_name_view));
  const std::string new_name(new_name_view);
  std::optional<std::string> symlink_target;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || node->detached) return Error(ENOENT, "the link source was removed");
    if (node->is_dir) return Error(EPERM, node->path + " is a directory");
    if (auto it = symlinks_.find(ino); it != symlinks_.end()) symlink_target = it->second;
  }
  if (symlink_target) return symlink(new_parent, new_name, *symlink_target);
  HFM_TRY(requireFreeName(new_parent, new_name));
  HFM_TRY(commitForLink(ino));
  RemoteEntry entry;
  std::string source_path;
  std::string new_path;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    Inode* node = findLocked(ino);
    if (node == nullptr || node->detached) return Error(ENOENT, "the link source was removed");
    source_path = node->path;
    if (node->dirty()) {
      return Error(ENOTSUP, source_path + " has uncommitted writes: copy it instead");
    }
    if (node->entry.xet_hash.empty()) {
      return Error(ENOTSUP, source_path + " has no xet hash to copy: copy it instead");
    }
    entry = node->entry;
    HFM_ASSIGN_OR_RETURN(Inode * new_dir, freeNameParentLocked(new_parent, new_name));
    new_path = childPath(*new_dir, new_name);
  }
  HFM_TRY(commitByHash(new_path, entry, {}, "link " + source_path + " → " + new_path));
  Attr attr;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Inode* new_dir = findLocked(new_parent);
    if (new_dir == nullptr || new_dir->detached) {
      return Error(ENOENT, "directory was removed");  // the next listing shows the copy
    }
    entry.path = new_path;
    ChangeSet changes;
    std::vector<std::function<void(InvalidationSink&)>> notes;  // the kernel made the call
    const InodeId id = childLocked(*new_dir, new_name, entry, changes, notes);
    Inode* node = findLocked(id);
    node->nlookup++;
    attr = attrLocked(*node);
  }
  {
    std::lock_guard<std::mutex> lock(neg_mu_);
    negative_.erase(new_path);
  }
  spdlog::info("link {} → {}: server-side copy of xet {}", source_path, new_path, entry.xet_hash);
  return attr;
}

}  // namespace hfm::vfs
