// Disk chunk cache (see chunk_cache.h for layout and contract).
//
// Locking: one mutex mu_ guards the index, the LRU list and the byte accounting. File
// reads, checksum computation and temp-file writes run without it; unlink() of evicted entries
// and the final rename() run under it, so the accounted total is an upper bound of what is on
// disk at every instant.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <list>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>

#include "hfm/cache/chunk_cache.h"
#include "hfm/util/log.h"

namespace hfm::cache {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'H', 'F', 'M', 'C', 'H', 'N', 'K', '1'};
constexpr size_t kChecksumOffset = 48;
constexpr size_t kHeaderSize = 56;
constexpr uint32_t kMaxChunkBytes = 1u << 24;  // sanity bound on a stored length field

void putLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void putLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t getLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t getLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t checksum(const uint8_t* header, std::span<const uint8_t> data) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, header, kChecksumOffset);
  XXH3_64bits_update(state, data.data(), data.size());
  const uint64_t sum = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return sum;
}

std::string entryName(const ChunkKey& key) {
  return key.xorb.hex() + "." + std::to_string(key.index);
}

// Parses "<64 hex>.<decimal index>"; nullopt for anything else.
std::optional<ChunkKey> parseEntryName(const std::string& name) {
  if (name.size() < 66 || name[64] != '.') return std::nullopt;
  auto hash = xet::MerkleHash::fromHex(std::string_view(name).substr(0, 64));
  if (!hash) return std::nullopt;
  uint32_t index = 0;
  const char* first = name.data() + 65;
  const char* last = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(first, last, index);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  if (std::to_string(index) != std::string_view(first, static_cast<size_t>(last - first))) {
    return std::nullopt;  // leading zeros or '+': not a name we write
  }
  return ChunkKey{*hash, index};
}

Error sysError(const std::string& what, int err) { return {err, what + ": " + std::strerror(err)}; }

Status writeAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return sysError("write", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return okStatus();
}

class DiskChunkCache final : public ChunkCache {
 public:
  DiskChunkCache(fs::path root, uint64_t capacity, int lock_fd)
      : root_(std::move(root)), capacity_(capacity), lock_fd_(lock_fd) {}

  ~DiskChunkCache() override {
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  }

  DiskChunkCache(const DiskChunkCache&) = delete;
  DiskChunkCache& operator=(const DiskChunkCache&) = delete;

  // Scans the directory, deleting temp files and anything that is not a valid entry name.
  Status rebuild() {
    std::error_code ec;
    fs::create_directories(root_ / "tmp", ec);
    if (ec) return Error(EIO, "create " + (root_ / "tmp").string() + ": " + ec.message());
    for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) fs::remove_all(e.path(), ec);

    struct Found {
      ChunkKey key;
      uint64_t bytes;
      int64_t mtime_ns;
    };
    std::vector<Found> found;
    for (const auto& dir : fs::directory_iterator(root_, ec)) {
      const std::string dname = dir.path().filename().string();
      if (dname == "tmp" || dname == ".lock") continue;
      if (!dir.is_directory() || dname.size() != 2) {
        fs::remove_all(dir.path(), ec);
        continue;
      }
      for (const auto& f : fs::directory_iterator(dir.path(), ec)) {
        const std::string fname = f.path().filename().string();
        auto key = parseEntryName(fname);
        struct stat st {};
        if (!key || fname.substr(0, 2) != dname || ::lstat(f.path().c_str(), &st) != 0 ||
            !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) <= kHeaderSize) {
          fs::remove_all(f.path(), ec);
          continue;
        }
        found.push_back({*key, static_cast<uint64_t>(st.st_size),
                         int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec});
      }
    }
    if (ec) return Error(EIO, "scan " + root_.string() + ": " + ec.message());
    // Oldest first, so the newest ends at the LRU front.
    std::sort(found.begin(), found.end(),
              [](const Found& a, const Found& b) { return a.mtime_ns < b.mtime_ns; });
    std::lock_guard lock(mu_);
    for (const auto& f : found) {
      lru_.push_front(f.key);
      index_.emplace(f.key, Entry{f.bytes, next_gen_++, lru_.begin()});
      used_ += f.bytes;
    }
    evictLocked(0);
    spdlog::info("chunk cache {}: {} entries, {} bytes (capacity {})", root_.string(),
                 index_.size(), used_, capacity_);
    return okStatus();
  }

  ChunkData get(const ChunkKey& key) override {
    uint64_t gen = 0;
    {
      std::lock_guard lock(mu_);
      auto it = index_.find(key);
      if (it == index_.end()) {
        ++misses_;
        return nullptr;
      }
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      gen = it->second.gen;
    }
    auto data = readVerified(key);
    std::lock_guard lock(mu_);
    if (data) {
      ++hits_;
      return data;
    }
    ++misses_;
    ++corrupt_;
    auto it = index_.find(key);
    if (it != index_.end() && it->second.gen == gen) dropLocked(it);
    return nullptr;
  }

  std::optional<uint32_t> peekSize(const ChunkKey& key) override {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    return static_cast<uint32_t>(it->second.bytes - kHeaderSize);
  }

  Status put(const ChunkKey& key, std::span<const uint8_t> data) override {
    if (data.size() > kMaxChunkBytes) return Error::invalid("chunk too large to cache");
    const uint64_t bytes = kHeaderSize + data.size();
    {
      std::lock_guard lock(mu_);
      if (bytes > capacity_) return okStatus();
      evictLocked(bytes);
      // Other puts' reservations are not evictable: if they fill the cache, skip this one.
      if (used_ + bytes > capacity_) return okStatus();
      used_ += bytes;  // reservation, released on failure or kept by the committed entry
    }
    auto release = [&] {
      std::lock_guard lock(mu_);
      used_ -= bytes;
    };

    uint8_t header[kHeaderSize];
    std::memcpy(header, kMagic, 8);
    std::memcpy(header + 8, key.xorb.raw().data(), 32);
    putLe32(header + 40, key.index);
    putLe32(header + 44, static_cast<uint32_t>(data.size()));
    putLe64(header + kChecksumOffset, checksum(header, data));

    const fs::path tmp =
        root_ / "tmp" /
        (std::to_string(::getpid()) + "-" + std::to_string(tmp_counter_.fetch_add(1)));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      release();
      return sysError("create " + tmp.string(), err);
    }
    Status written = writeAll(fd, header, kHeaderSize);
    if (written) written = writeAll(fd, data.data(), data.size());
    if (::close(fd) != 0 && written) written = sysError("close " + tmp.string(), errno);
    if (!written) {
      ::unlink(tmp.c_str());
      release();
      return written.error().withContext("chunk cache put");
    }

    const fs::path dir = root_ / key.xorb.hex().substr(0, 2);
    const fs::path final_path = dir / entryName(key);
    std::lock_guard lock(mu_);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      const int err = errno;
      ::unlink(tmp.c_str());
      used_ -= bytes;
      return sysError("mkdir " + dir.string(), err);
    }
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      used_ -= bytes;
      return sysError("rename to " + final_path.string(), err);
    }
    // An existing entry of this key was just replaced by the rename: release its bytes.
    if (auto it = index_.find(key); it != index_.end()) {
      used_ -= it->second.bytes;
      lru_.erase(it->second.lru);
      index_.erase(it);
    }
    lru_.push_front(key);
    index_.emplace(key, Entry{bytes, next_gen_++, lru_.begin()});
    return okStatus();
  }

  CacheStats stats() const override {
    std::lock_guard lock(mu_);
    return {capacity_, used_, index_.size(), hits_, misses_, corrupt_, evictions_};
  }

 private:
  struct Entry {
    uint64_t bytes;  // file size
    uint64_t gen;    // distinguishes re-inserted entries of one key
    std::list<ChunkKey>::iterator lru;
  };
  using Index = std::unordered_map<ChunkKey, Entry, ChunkKeyHash>;

  fs::path pathOf(const ChunkKey& key) const {
    return root_ / key.xorb.hex().substr(0, 2) / entryName(key);
  }

  // Reads and verifies an entry; nullptr if missing, truncated or corrupt.
  ChunkData readVerified(const ChunkKey& key) const {
    const fs::path path = pathOf(key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    auto readAt = [fd](uint8_t* p, size_t n, off_t at) {
      size_t got = 0;
      while (got < n) {
        const ssize_t r = ::pread(fd, p + got, n - got, at + static_cast<off_t>(got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += static_cast<size_t>(r);
      }
      return true;
    };
    struct stat st {};
    uint8_t h[kHeaderSize];
    std::vector<uint8_t> data;
    bool ok = ::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) > kHeaderSize &&
              static_cast<uint64_t>(st.st_size) <= kHeaderSize + kMaxChunkBytes &&
              readAt(h, kHeaderSize, 0);
    // The data goes straight into the buffer handed out; the header is read on its own.
    if (ok) {
      data.resize(static_cast<size_t>(st.st_size) - kHeaderSize);
      ok = readAt(data.data(), data.size(), static_cast<off_t>(kHeaderSize));
    }
    ::close(fd);
    if (!ok) {
      spdlog::warn("chunk cache: dropping unreadable entry {}", path.string());
      return nullptr;
    }
    if (std::memcmp(h, kMagic, 8) != 0 || std::memcmp(h + 8, key.xorb.raw().data(), 32) != 0 ||
        getLe32(h + 40) != key.index || getLe32(h + 44) != data.size() ||
        getLe64(h + kChecksumOffset) != checksum(h, data)) {
      spdlog::warn("chunk cache: dropping corrupt entry {}", path.string());
      return nullptr;
    }
    return std::make_shared<const std::vector<uint8_t>>(std::move(data));
  }

  // Evicts LRU entries until `incoming` more bytes fit. Requires mu_.
  void evictLocked(uint64_t incoming) {
    while (used_ + incoming > capacity_ && !lru_.empty()) {
      auto it = index_.find(lru_.back());
      dropLocked(it);
      ++evictions_;
    }
  }

  // Deletes the entry's file, then forgets it. Requires mu_.
  void dropLocked(Index::iterator it) {
    const fs::path path = pathOf(it->first);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("chunk cache: unlink {}: {}", path.string(), std::strerror(errno));
    }
    used_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    index_.erase(it);
  }

  const fs::path root_;
  const uint64_t capacity_;
  const int lock_fd_;
  std::atomic<uint64_t> tmp_counter_{0};

  mutable std::mutex mu_;
  Index index_;              // Guarded by mu_
  std::list<ChunkKey> lru_;  // Guarded by mu_; front = most recently used
  uint64_t used_ = 0;        // Guarded by mu_
  uint64_t next_gen_ = 1;    // Guarded by mu_
  uint64_t hits_ = 0;        // Guarded by mu_
  uint64_t misses_ = 0;      // Guarded by mu_
  uint64_t corrupt_ = 0;     // Guarded by mu_
  uint64_t evictions_ = 0;   // Guarded by mu_
};

}  // namespace

Result<std::unique_ptr<ChunkCache>> openDiskChunkCache(const fs::path& root,
                                                       uint64_t capacity_bytes) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Error(EIO, "create cache dir " + root.string() + ": " + ec.message());
  const fs::path lock_path = root / ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return sysError("open " + lock_path.string(), errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Error(EBUSY, "chunk cache " + root.string() + " is in use by another process");
    }
    return sysError("flock " + lock_path.string(), err);
  }
  auto cache = std::make_unique<DiskChunkCache>(root, capacity_bytes, fd);
  HFM_TRY(cache->rebuild());
  return std::unique_ptr<ChunkCache>(std::move(cache));
}

Result<std::unique_ptr<ChunkCache>> openChunkCache(const ChunkCacheOptions& options) {
  if (!options.disk) return makeMemoryChunkCache(options.memory_capacity_bytes);
  auto disk = openDiskChunkCache(options.cache_dir / "chunks", options.capacity_bytes);
  if (disk) return std::move(disk).value();
  if (disk.error().code() == EBUSY) {
    spdlog::warn("{}; using a {}-byte memory cache instead", disk.error().message(),
                 options.memory_capacity_bytes);
    return makeMemoryChunkCache(options.memory_capacity_bytes);
  }
  return disk.error();
}

}  // namespace hfm::cache
