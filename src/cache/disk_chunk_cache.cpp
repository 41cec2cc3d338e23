// Disk chunk cache (see chunk_cache.h for layout and contract).
//
// Locking: one mutex mu_ guards the entries, the chunk index, the LRU list and the byte
// accounting. File reads, checksum computation and temp-file writes run without it; unlink() of
// evicted entries and the final rename() run under it, so the accounted total is an upper bound of
// what is on disk at every instant.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "dir_lock.h"
#include "hfm/cache/chunk_cache.h"
#include "hfm/util/log.h"

namespace hfm::cache {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'H', 'F', 'M', 'R', 'N', 'G', '0', '1'};
constexpr size_t kFixedHeader = 8 + 32 + 4 + 4;  // magic, xorb, first, count
constexpr size_t kSlotBytes = 4 + 8;             // length, checksum
constexpr uint32_t kMaxChunkBytes = 1u << 24;    // sanity bound on a stored length field
constexpr uint32_t kMaxChunksPerEntry = 1u << 16;

size_t headerSize(uint32_t count) { return kFixedHeader + size_t{count} * kSlotBytes + 8; }

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

// Seeding with the chunk index ties the checksum to the chunk's place, not just its bytes.
uint64_t chunkChecksum(std::span<const uint8_t> data, uint32_t index) {
  return XXH3_64bits_withSeed(data.data(), data.size(), index);
}

std::string entryName(const xet::MerkleHash& xorb, uint32_t first, uint32_t end) {
  return xorb.hex() + "." + std::to_string(first) + "-" + std::to_string(end);
}

std::optional<uint32_t> parseIndex(std::string_view text) {
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  if (std::to_string(v) != text) return std::nullopt;  // leading zeros or '+': not ours
  return v;
}

struct EntryName {
  xet::MerkleHash xorb;
  uint32_t first = 0;
  uint32_t end = 0;
};

// Parses "<64 hex>.<first>-<end>"; nullopt for anything else (the old layout included).
std::optional<EntryName> parseEntryName(std::string_view name) {
  if (name.size() < 68 || name[64] != '.') return std::nullopt;
  auto hash = xet::MerkleHash::fromHex(name.substr(0, 64));
  const auto dash = name.find('-', 65);
  if (!hash || dash == std::string_view::npos) return std::nullopt;
  auto first = parseIndex(name.substr(65, dash - 65));
  auto end = parseIndex(name.substr(dash + 1));
  if (!first || !end || *end <= *first || *end - *first > kMaxChunksPerEntry) return std::nullopt;
  return EntryName{*hash, *first, *end};
}

Error sysError(const std::string& what, int err) { return {err, what + ": " + std::strerror(err)}; }

// One write() per piece: measured faster than writev() of the same pieces into ext4, whose
// per-segment handling made the copy into the page cache several times slower.
Status writeAll(int fd, const iovec* iov, int n) {
  for (int i = 0; i < n; ++i) {
    const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      const ssize_t w = ::write(fd, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        return sysError("write", errno);
      }
      p += w;
      left -= static_cast<size_t>(w);
    }
  }
  return okStatus();
}

bool preadAll(int fd, uint8_t* p, size_t n, uint64_t at) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(at + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
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

  // Scans the directory, deleting temp files, old-layout entries and anything that is not a
  // valid entry with a verified header.
  Status rebuild() {
    std::error_code ec;
    fs::create_directories(root_ / "tmp", ec);
    if (ec) return Error(EIO, "create " + (root_ / "tmp").string() + ": " + ec.message());
    for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) fs::remove_all(e.path(), ec);

    struct Found {
      std::shared_ptr<Entry> entry;
      int64_t mtime_ns;
    };
    std::vector<Found> found;
    uint64_t dropped = 0;
    for (const auto& dir : fs::directory_iterator(root_, ec)) {
      const std::string dname = dir.path().filename().string();
      if (dname == "tmp" || dname == ".lock") continue;
      if (!dir.is_directory() || dname.size() != 2) {
        fs::remove_all(dir.path(), ec);
        continue;
      }
      for (const auto& f : fs::directory_iterator(dir.path(), ec)) {
        const std::string fname = f.path().filename().string();
        auto name = parseEntryName(fname);
        struct stat st {};
        std::shared_ptr<Entry> entry;
        if (name && fname.substr(0, 2) == dname && ::lstat(f.path().c_str(), &st) == 0 &&
            S_ISREG(st.st_mode)) {
          entry = loadHeader(f.path(), *name, static_cast<uint64_t>(st.st_size));
        }
        if (!entry) {
          fs::remove_all(f.path(), ec);
          ++dropped;
          continue;
        }
        found.push_back(
            {std::move(entry), int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec});
      }
    }
    if (ec) return Error(EIO, "scan " + root_.string() + ": " + ec.message());
    // Oldest first, so the newest ends at the LRU front (and wins a chunk held twice).
    std::sort(found.begin(), found.end(),
              [](const Found& a, const Found& b) { return a.mtime_ns < b.mtime_ns; });
    std::lock_guard lock(mu_);
    for (auto& f : found) {
      used_ += f.entry->bytes;
      linkLocked(std::move(f.entry));
    }
    evictLocked(0);
    spdlog::info(
        "chunk cache {}: {} entries, {} chunks, {} bytes (capacity {}; {} unusable files "
        "removed)",
        root_.string(), entries_.size(), index_.size(), used_, capacity_, dropped);
    return okStatus();
  }

  ChunkData get(const ChunkKey& key) override {
    std::shared_ptr<const Entry> entry;
    Slot slot;
    {
      std::lock_guard lock(mu_);
      auto it = index_.find(key);
      if (it == index_.end()) {
        ++misses_;
        return nullptr;
      }
      entry = it->second;
      slot = entry->slots[key.index - entry->first];
      lru_.splice(lru_.begin(), lru_, entry->lru);
    }
    auto data = readVerified(*entry, key.index, slot);
    std::lock_guard lock(mu_);
    if (data) {
      ++hits_;
      return data;
    }
    ++misses_;
    ++corrupt_;
    auto it = entries_.find(entry->id);
    if (it != entries_.end() && it->second == entry) dropLocked(it);
    return nullptr;
  }

  std::optional<uint32_t> peekSize(const ChunkKey& key) override {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    return it->second->slots[key.index - it->second->first].length;
  }

  Status putRange(const xet::MerkleHash& xorb, uint32_t first,
                  std::span<const std::span<const uint8_t>> chunks) override {
    if (chunks.empty()) return okStatus();
    if (chunks.size() > kMaxChunksPerEntry || first + chunks.size() < first) {
      return Error::invalid("chunk range too large to cache");
    }
    const auto count = static_cast<uint32_t>(chunks.size());
    auto entry = std::make_shared<Entry>();
    entry->xorb = xorb;
    entry->first = first;
    entry->end = first + count;
    entry->bytes = headerSize(count);
    std::vector<uint8_t> header(headerSize(count));
    std::memcpy(header.data(), kMagic, 8);
    std::memcpy(header.data() + 8, xorb.raw().data(), 32);
    putLe32(header.data() + 40, first);
    putLe32(header.data() + 44, count);
    std::vector<iovec> iov;
    iov.reserve(chunks.size() + 1);
    iov.push_back({header.data(), header.size()});
    for (uint32_t k = 0; k < count; ++k) {
      const auto data = chunks[k];
      if (data.size() > kMaxChunkBytes) return Error::invalid("chunk too large to cache");
      const Slot slot{entry->bytes, static_cast<uint32_t>(data.size()),
                      chunkChecksum(data, first + k)};
      uint8_t* p = header.data() + kFixedHeader + size_t{k} * kSlotBytes;
      putLe32(p, slot.length);
      putLe64(p + 4, slot.checksum);
      entry->slots.push_back(slot);
      entry->bytes += data.size();
      // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): writev does not write to it
      iov.push_back({const_cast<uint8_t*>(data.data()), data.size()});
    }
    const size_t sum_at = header.size() - 8;
    putLe64(header.data() + sum_at, XXH3_64bits(header.data(), sum_at));

    const uint64_t bytes = entry->bytes;
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

    const fs::path tmp =
        root_ / "tmp" /
        (std::to_string(::getpid()) + "-" + std::to_string(tmp_counter_.fetch_add(1)));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      release();
      return sysError("create " + tmp.string(), err);
    }
    Status written = writeAll(fd, iov.data(), static_cast<int>(iov.size()));
    if (::close(fd) != 0 && written) written = sysError("close " + tmp.string(), errno);
    if (!written) {
      ::unlink(tmp.c_str());
      release();
      return written.error().withContext("chunk cache put");
    }

    const fs::path dir = root_ / xorb.hex().substr(0, 2);
    const fs::path final_path = pathOf(*entry);
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
    // An entry of the same name was just replaced by the rename: forget it, keep its file.
    if (auto same = byName_.find(final_path.filename().string()); same != byName_.end()) {
      auto it = entries_.find(same->second);
      used_ -= it->second->bytes;
      unlinkLocked(it);
    }
    linkLocked(std::move(entry));
    return okStatus();
  }

  CacheStats stats() const override {
    std::lock_guard lock(mu_);
    return {capacity_, used_, index_.size(), hits_, misses_, corrupt_, evictions_};
  }

 private:
  struct Slot {
    uint64_t offset = 0;  // of the chunk's data in the file
    uint32_t length = 0;
    uint64_t checksum = 0;
  };
  struct Entry {
    uint64_t id = 0;  // distinguishes re-inserted entries of one name
    xet::MerkleHash xorb;
    uint32_t first = 0;
    uint32_t end = 0;
    uint64_t bytes = 0;  // file size
    std::vector<Slot> slots;
    std::list<uint64_t>::iterator lru;
  };
  using Entries = std::unordered_map<uint64_t, std::shared_ptr<Entry>>;

  fs::path pathOf(const Entry& e) const {
    return root_ / e.xorb.hex().substr(0, 2) / entryName(e.xorb, e.first, e.end);
  }

  // Reads and verifies an entry's header; nullptr if it is not a complete, consistent entry.
  static std::shared_ptr<Entry> loadHeader(const fs::path& path, const EntryName& name,
                                           uint64_t file_size) {
    const uint32_t count = name.end - name.first;
    const size_t hsize = headerSize(count);
    if (file_size < hsize) return nullptr;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    std::vector<uint8_t> h(hsize);
    const bool read = preadAll(fd, h.data(), hsize, 0);
    ::close(fd);
    if (!read || std::memcmp(h.data(), kMagic, 8) != 0 ||
        std::memcmp(h.data() + 8, name.xorb.raw().data(), 32) != 0 ||
        getLe32(h.data() + 40) != name.first || getLe32(h.data() + 44) != count ||
        getLe64(h.data() + hsize - 8) != XXH3_64bits(h.data(), hsize - 8)) {
      return nullptr;
    }
    auto entry = std::make_shared<Entry>();
    entry->xorb = name.xorb;
    entry->first = name.first;
    entry->end = name.end;
    entry->bytes = hsize;
    for (uint32_t k = 0; k < count; ++k) {
      const uint8_t* p = h.data() + kFixedHeader + size_t{k} * kSlotBytes;
      const Slot slot{entry->bytes, getLe32(p), getLe64(p + 4)};
      if (slot.length > kMaxChunkBytes) return nullptr;
      entry->slots.push_back(slot);
      entry->bytes += slot.length;
    }
    if (entry->bytes != file_size) return nullptr;
    return entry;
  }

  // Reads one chunk of an entry and verifies it; nullptr if missing, truncated or corrupt.
  ChunkData readVerified(const Entry& entry, uint32_t index, const Slot& slot) const {
    const fs::path path = pathOf(entry);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    std::vector<uint8_t> data(slot.length);
    const bool read = preadAll(fd, data.data(), data.size(), slot.offset);
    ::close(fd);
    if (!read) {
      spdlog::warn("chunk cache: dropping unreadable entry {}", path.string());
      return nullptr;
    }
    if (chunkChecksum(data, index) != slot.checksum) {
      spdlog::warn("chunk cache: dropping corrupt entry {} (chunk {})", path.string(), index);
      return nullptr;
    }
    return ownedChunkData(std::move(data));
  }

  // Makes a new entry (its bytes already in used_) the most recent and the source of its
  // chunks. Requires mu_.
  void linkLocked(std::shared_ptr<Entry> entry) {
    entry->id = next_id_++;
    lru_.push_front(entry->id);
    entry->lru = lru_.begin();
    byName_[entryName(entry->xorb, entry->first, entry->end)] = entry->id;
    for (uint32_t i = entry->first; i < entry->end; ++i) index_[ChunkKey{entry->xorb, i}] = entry;
    entries_.emplace(entry->id, std::move(entry));
  }

  // Forgets an entry without touching its file or used_. Requires mu_.
  void unlinkLocked(Entries::iterator it) {
    const std::shared_ptr<Entry> entry = it->second;
    for (uint32_t i = entry->first; i < entry->end; ++i) {
      auto chunk = index_.find(ChunkKey{entry->xorb, i});
      if (chunk != index_.end() && chunk->second == entry) index_.erase(chunk);
    }
    byName_.erase(entryName(entry->xorb, entry->first, entry->end));
    lru_.erase(entry->lru);
    entries_.erase(it);
    // A chunk this entry served may still be held by an older entry: serve it from there.
    for (const auto& [id, other] : entries_) {
      if (other->xorb != entry->xorb || other->end <= entry->first || other->first >= entry->end) {
        continue;
      }
      for (uint32_t i = std::max(other->first, entry->first); i < std::min(other->end, entry->end);
           ++i) {
        auto [chunk, fresh] = index_.try_emplace(ChunkKey{other->xorb, i}, other);
        if (!fresh && chunk->second->id < other->id) chunk->second = other;
      }
    }
  }

  // Evicts LRU entries until `incoming` more bytes fit. Requires mu_.
  void evictLocked(uint64_t incoming) {
    while (used_ + incoming > capacity_ && !lru_.empty()) {
      dropLocked(entries_.find(lru_.back()));
      ++evictions_;
    }
  }

  // Deletes the entry's file, then forgets it. Requires mu_.
  void dropLocked(Entries::iterator it) {
    const fs::path path = pathOf(*it->second);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("chunk cache: unlink {}: {}", path.string(), std::strerror(errno));
    }
    used_ -= it->second->bytes;
    unlinkLocked(it);
  }

  const fs::path root_;
  const uint64_t capacity_;
  const int lock_fd_;
  std::atomic<uint64_t> tmp_counter_{0};

  mutable std::mutex mu_;
  Entries entries_;  // Guarded by mu_; by id
  std::unordered_map<ChunkKey, std::shared_ptr<Entry>, ChunkKeyHash> index_;  // Guarded by mu_
  std::unordered_map<std::string, uint64_t> byName_;  // Guarded by mu_; file name → id
  std::list<uint64_t> lru_;  // Guarded by mu_; entry ids, front = most recently used
  uint64_t used_ = 0;        // Guarded by mu_
  uint64_t next_id_ = 1;     // Guarded by mu_
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
  auto fd = lockCacheDirectory(root, "chunk cache");
  if (!fd) return fd.error();
  auto cache = std::make_unique<DiskChunkCache>(root, capacity_bytes, *fd);
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
