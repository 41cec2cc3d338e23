// Whole-file cache (see file_cache.h for layout and contract).
#include "hfm/cache/file_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "dir_lock.h"
#include "hfm/util/atomic_file.h"
#include "hfm/util/log.h"

namespace hfm::cache {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kPieceBytes = 8ull * 1024 * 1024;  // one read + one write of a download
constexpr size_t kMaxQueued = 64;

Error sysError(const std::string& what, int err) { return {err, what + ": " + std::strerror(err)}; }

// Hashes come from the Hub: only 64 lowercase hex digits may become a file name.
bool validHash(const std::string& hash) {
  return hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

CachedFile::~CachedFile() { ::close(fd_); }

Result<std::unique_ptr<FileCache>> FileCache::open(const fs::path& root, uint64_t capacity_bytes,
                                                   size_t max_downloads) {
  std::error_code ec;
  fs::create_directories(root / ".tmp", ec);
  if (ec) return Error(EIO, "cannot create " + (root / ".tmp").string() + ": " + ec.message());
  auto fd = lockCacheDirectory(root, "file cache");
  if (!fd) return fd.error();
  std::unique_ptr<FileCache> cache(
      new FileCache(root, capacity_bytes, std::max<size_t>(max_downloads, 1), *fd));
  HFM_TRY(cache->rebuild());
  return cache;
}

FileCache::FileCache(fs::path root, uint64_t capacity, size_t max_downloads, int lock_fd)
    : root_(std::move(root)), capacity_(capacity), lock_fd_(lock_fd) {
  workers_.reserve(max_downloads);
  for (size_t i = 0; i < max_downloads; ++i) workers_.emplace_back([this] { work(); });
}

FileCache::~FileCache() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (const auto& job : queue_) pending_.erase(job.hash);
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  ::close(lock_fd_);  // releases the flock
}

fs::path FileCache::pathOf(const std::string& hash) const {
  return root_ / hash.substr(0, 2) / hash;
}

Status FileCache::rebuild() {
  std::error_code ec;
  // Downloads a previous run left unfinished.
  for (const auto& tmp : fs::directory_iterator(root_ / ".tmp", ec)) fs::remove_all(tmp, ec);
  struct Found {
    std::string hash;
    uint64_t size;
    fs::file_time_type mtime;
  };
  std::vector<Found> found;
  for (const auto& dir : fs::directory_iterator(root_, ec)) {
    const std::string prefix = dir.path().filename().string();
    if (!dir.is_directory() || prefix.size() != 2) continue;
    for (const auto& file : fs::directory_iterator(dir.path(), ec)) {
      const std::string name = file.path().filename().string();
      std::error_code fec;
      if (!validHash(name) || name.compare(0, 2, prefix) != 0 || !file.is_regular_file(fec)) {
        fs::remove_all(file.path(), fec);  // not ours: nothing else belongs here
        continue;
      }
      found.push_back({name, file.file_size(fec), file.last_write_time(fec)});
    }
  }
  if (ec) return Error(EIO, "scanning " + root_.string() + ": " + ec.message());
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : found) insertLocked(f.hash, f.size);
  evictLocked(0);
  spdlog::debug("file cache {}: {} files, {} bytes", root_.string(), entries_.size(), bytes_);
  return okStatus();
}

std::shared_ptr<CachedFile> FileCache::open(const std::string& hash, uint64_t size) {
  if (!validHash(hash)) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(hash);
  if (it == entries_.end()) {
    stats_.misses++;
    return nullptr;
  }
  const fs::path path = pathOf(hash);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != size ||
      it->second.size != size) {
    if (fd >= 0) {
      spdlog::warn("file cache: {} has {} bytes, expected {}: deleted", path.string(), st.st_size,
                   size);
      ::close(fd);
    }
    ::unlink(path.c_str());
    eraseLocked(hash);
    stats_.misses++;
    return nullptr;
  }
  ::futimens(fd, nullptr);  // the LRU rank a restart reads back
  lru_.splice(lru_.end(), lru_, it->second.lru);
  stats_.hits++;
  return std::make_shared<CachedFile>(fd, size);
}

void FileCache::download(const std::string& hash, uint64_t size, FileReader read) {
  if (!validHash(hash) || size == 0 || size > capacity_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || entries_.count(hash) != 0 || pending_.count(hash) != 0) return;
    if (queue_.size() >= kMaxQueued) return;
    pending_.insert(hash);
    queue_.push_back(Job{hash, size, std::move(read)});
  }
  cv_.notify_one();
}

void FileCache::waitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return pending_.empty(); });
}

FileCacheStats FileCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  FileCacheStats s = stats_;
  s.bytes = bytes_;
  s.files = entries_.size();
  return s;
}

void FileCache::work() {
  for (;;) {
    Job job;
    uint64_t n = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      n = tmp_counter_++;
      // Room first, so the download in .tmp never takes the disk over the capacity either.
      if (!evictLocked(job.size)) {
        pending_.erase(job.hash);
        stats_.failed_downloads++;
        lock.unlock();
        idle_cv_.notify_all();
        continue;  // other downloads hold the room; a later open asks again
      }
      reserved_ += job.size;
    }
    const fs::path tmp = root_ / ".tmp" / (job.hash + "." + std::to_string(n));
    Status st = fetchInto(job, tmp);
    if (st.ok()) {
      std::error_code ec;
      fs::create_directories(pathOf(job.hash).parent_path(), ec);
      if (ec || ::rename(tmp.c_str(), pathOf(job.hash).c_str()) != 0) {
        st = Error(EIO, "cannot move " + tmp.string() + " into place");
      }
    }
    if (!st.ok()) ::unlink(tmp.c_str());
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.erase(job.hash);
      reserved_ -= job.size;
      if (st.ok()) {
        insertLocked(job.hash, job.size);
        stats_.downloads++;
      } else {
        stats_.failed_downloads++;
      }
    }
    if (st.ok()) {
      spdlog::debug("file cache: stored {} ({} bytes)", job.hash, job.size);
    } else if (st.error().code() != ECANCELED) {
      spdlog::warn("file cache: download of {} failed: {}", job.hash, st.error().message());
    }
    idle_cv_.notify_all();
  }
}

Status FileCache::fetchInto(const Job& job, const fs::path& tmp) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return sysError("create " + tmp.string(), errno);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(kPieceBytes, job.size)));
  Status st = okStatus();
  for (uint64_t off = 0; off < job.size && st.ok(); off += kPieceBytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        st = Error(ECANCELED, "cancelled");
        break;
      }
    }
    auto piece =
        std::span<uint8_t>(buf).first(static_cast<size_t>(std::min(kPieceBytes, job.size - off)));
    st = job.read(off, piece);
    if (st.ok()) {
      st = util::writeAll(fd, {reinterpret_cast<const char*>(piece.data()), piece.size()});
    }
  }
  struct stat stbuf {};
  if (st.ok() && ::fsync(fd) != 0) st = sysError("fsync " + tmp.string(), errno);
  if (st.ok() && (::fstat(fd, &stbuf) != 0 || static_cast<uint64_t>(stbuf.st_size) != job.size)) {
    st = Error(EIO, "downloaded " + std::to_string(stbuf.st_size) + " of " +
                        std::to_string(job.size) + " bytes");
  }
  ::close(fd);
  return st;
}

void FileCache::insertLocked(const std::string& hash, uint64_t size) {
  if (entries_.count(hash) != 0) return;
  lru_.push_back(hash);
  entries_[hash] = Entry{size, std::prev(lru_.end())};
  bytes_ += size;
}

void FileCache::eraseLocked(const std::string& hash) {
  auto it = entries_.find(hash);
  if (it == entries_.end()) return;
  bytes_ -= it->second.size;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

bool FileCache::evictLocked(uint64_t incoming) {
  if (reserved_ + incoming > capacity_) return false;  // evicting could not make room
  while (bytes_ + reserved_ + incoming > capacity_ && !lru_.empty()) {
    const std::string victim = lru_.front();
    ::unlink(pathOf(victim).c_str());  // open descriptors keep their bytes
    eraseLocked(victim);
    stats_.evictions++;
  }
  return bytes_ + reserved_ + incoming <= capacity_;
}

}  // namespace hfm::cache
