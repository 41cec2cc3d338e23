#include "fake_remote.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

namespace hfm::testing {

std::vector<uint8_t> patternBytes(uint64_t size, uint64_t seed) {
  std::vector<uint8_t> out(static_cast<size_t>(size));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&x] {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const size_t words = out.size() / 8;
  for (size_t i = 0; i < words; ++i) {
    const uint64_t z = next();
    std::memcpy(out.data() + i * 8, &z, 8);
  }
  if (const size_t tail = out.size() % 8; tail != 0) {
    const uint64_t z = next();
    std::memcpy(out.data() + words * 8, &z, tail);
  }
  return out;
}

namespace {

// A cheap content fingerprint (size, head and tail); the generation counter appended to it
// makes every version's hash unique anyway.
uint64_t fingerprint(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull ^ bytes.size();
  auto mix = [&h](uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  };
  const size_t n = std::min<size_t>(bytes.size(), 4096);
  for (size_t i = 0; i < n; ++i) mix(bytes[i]);
  for (size_t i = bytes.size() - n; i < bytes.size(); ++i) mix(bytes[i]);
  return h;
}

}  // namespace

std::string FakeRemote::putFile(const std::string& path, std::vector<uint8_t> bytes,
                                int64_t mtime_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  char hash[64];
  std::snprintf(hash, sizeof(hash), "%016llx%016llx",
                static_cast<unsigned long long>(fingerprint(bytes)),
                static_cast<unsigned long long>(generation_));
  vfs::RemoteEntry e;
  e.path = path;
  e.is_dir = false;
  e.size = bytes.size();
  e.mtime_ns = mtime_ns != 0 ? mtime_ns : static_cast<int64_t>(generation_) * 1000000000;
  e.xet_hash = hash;
  e.etag = hash;
  blobs_[hash] = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  files_[path] = File{e};
  generation_++;
  return hash;
}

std::string FakeRemote::putFile(const std::string& path, std::string_view text, int64_t mtime_ns) {
  return putFile(path, std::vector<uint8_t>(text.begin(), text.end()), mtime_ns);
}

bool FakeRemote::removeFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (files_.erase(path) == 0) return false;
  generation_++;
  return true;
}

std::vector<uint8_t> FakeRemote::contents(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return {};
  return *blobs_.at(it->second.entry.xet_hash);
}

void FakeRemote::failAlways(unsigned ops, int err) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_always_ops_ = ops;
  fail_always_err_ = err;
}

void FakeRemote::failNext(unsigned ops, int count, int err) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_next_ops_ = ops;
  fail_next_count_ = count;
  fail_next_err_ = err;
}

void FakeRemote::setShortReads(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  short_reads_ = on;
}

void FakeRemote::clearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_always_ops_ = 0;
  fail_next_ops_ = 0;
  fail_next_count_ = 0;
  short_reads_ = false;
}

void FakeRemote::setLatency(std::chrono::microseconds latency) {
  std::lock_guard<std::mutex> lock(mu_);
  latency_ = latency;
}

void FakeRemote::pauseReads(bool paused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = paused;
  }
  cv_.notify_all();
}

void FakeRemote::setRawPrefixListing(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  raw_prefix_ = on;
}

FakeRemote::Counts FakeRemote::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void FakeRemote::resetCounts() {
  std::lock_guard<std::mutex> lock(mu_);
  counts_ = Counts{};
  read_log_.clear();
}

std::vector<std::pair<uint64_t, uint64_t>> FakeRemote::readLog() const {
  std::lock_guard<std::mutex> lock(mu_);
  return read_log_;
}

std::optional<Error> FakeRemote::injectLocked(Op op, std::unique_lock<std::mutex>& lock) {
  if (latency_.count() > 0) {
    const auto latency = latency_;
    lock.unlock();
    std::this_thread::sleep_for(latency);
    lock.lock();
  }
  if ((fail_always_ops_ & op) != 0) {
    return Error(fail_always_err_, "injected fault (always)");
  }
  if ((fail_next_ops_ & op) != 0 && fail_next_count_ > 0) {
    fail_next_count_--;
    return Error(fail_next_err_, "injected fault (next)");
  }
  return std::nullopt;
}

Result<std::vector<vfs::RemoteEntry>> FakeRemote::listDirectory(const std::string& dir) {
  std::unique_lock<std::mutex> lock(mu_);
  counts_.list++;
  counts_.max_concurrent_lists = std::max(counts_.max_concurrent_lists, ++lists_in_flight_);
  auto err = injectLocked(kList, lock);  // may sleep (latency) with the lock released
  lists_in_flight_--;
  if (err) return *err;
  const std::string prefix = dir.empty() ? std::string() : dir + "/";
  const std::string match = raw_prefix_ ? dir : prefix;
  std::vector<vfs::RemoteEntry> out;
  std::set<std::string> dirs;
  bool any = false;
  for (auto it = files_.lower_bound(match); it != files_.end(); ++it) {
    const std::string& path = it->first;
    if (path.compare(0, match.size(), match) != 0) break;
    if (path.compare(0, prefix.size(), prefix) == 0) any = true;
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0) {
      const auto slash = path.find('/', prefix.size());
      if (slash != std::string::npos) {
        dirs.insert(path.substr(0, slash));
        continue;
      }
    } else if (raw_prefix_) {
      // Raw key-prefix match outside the directory: the quirk under test. Report it as the
      // bucket API would (its full path, as a file or as the directory it is in).
      const auto slash = path.find('/', match.size());
      if (slash != std::string::npos) {
        dirs.insert(path.substr(0, slash));
        continue;
      }
    }
    out.push_back(it->second.entry);
  }
  for (const auto& d : dirs) {
    vfs::RemoteEntry e;
    e.path = d;
    e.is_dir = true;
    out.push_back(e);
  }
  if (!dir.empty() && !any) return Error(ENOENT, "no such directory: " + dir);
  return out;
}

Result<vfs::RemoteEntry> FakeRemote::stat(const std::string& path) {
  std::unique_lock<std::mutex> lock(mu_);
  counts_.stat++;
  if (auto err = injectLocked(kStat, lock)) return *err;
  auto it = files_.find(path);
  if (it == files_.end()) return Error(ENOENT, "no such file: " + path);
  return it->second.entry;
}

Result<size_t> FakeRemote::read(const vfs::RemoteEntry& file, uint64_t offset,
                                std::span<uint8_t> out) {
  std::unique_lock<std::mutex> lock(mu_);
  counts_.read++;
  read_log_.emplace_back(offset, out.size());
  if (!cv_.wait_for(lock, std::chrono::seconds(30), [this] { return !paused_; })) {
    return Error(ETIMEDOUT, "fake read paused too long");
  }
  if (auto err = injectLocked(kRead, lock)) return *err;
  auto it = blobs_.find(file.xet_hash);
  if (it == blobs_.end()) return Error(ENOENT, "unknown version of " + file.path);
  const auto& blob = *it->second;
  if (offset >= blob.size()) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), blob.size() - offset));
  if (short_reads_ && n > 1) n /= 2;
  std::memcpy(out.data(), blob.data() + offset, n);
  counts_.bytes_read += n;
  return n;
}

Result<std::string> FakeRemote::revision() {
  std::unique_lock<std::mutex> lock(mu_);
  counts_.revision++;
  if (auto err = injectLocked(kRevision, lock)) return *err;
  return std::to_string(generation_);
}

// ---------------------------------------------------------------------------------------------
// Writes

class FakeRemote::Upload final : public vfs::RemoteUpload {
 public:
  explicit Upload(FakeRemote& remote) : remote_(remote) {}

  Status write(std::span<const uint8_t> data) override {
    {
      std::unique_lock<std::mutex> lock(remote_.mu_);
      if (auto err = remote_.injectLocked(kUpload, lock)) return *err;
    }
    bytes_.insert(bytes_.end(), data.begin(), data.end());
    return okStatus();
  }

  Result<vfs::UploadedContent> finish() override {
    std::unique_lock<std::mutex> lock(remote_.mu_);
    if (auto err = remote_.injectLocked(kUpload, lock)) return *err;
    char hash[64];
    std::snprintf(hash, sizeof(hash), "%016llx%016llx",
                  static_cast<unsigned long long>(fingerprint(bytes_)),
                  static_cast<unsigned long long>(remote_.generation_++));
    vfs::UploadedContent out{hash, bytes_.size()};
    remote_.counts_.uploads++;
    remote_.counts_.bytes_uploaded += bytes_.size();
    remote_.blobs_[hash] = std::make_shared<const std::vector<uint8_t>>(std::move(bytes_));
    bytes_.clear();
    return out;
  }

 private:
  FakeRemote& remote_;
  std::vector<uint8_t> bytes_;
};

Result<std::unique_ptr<vfs::RemoteUpload>> FakeRemote::beginUpload() {
  if (read_only_) return Error(EROFS, "read-only fake remote");
  std::unique_lock<std::mutex> lock(mu_);
  if (auto err = injectLocked(kUpload, lock)) return *err;
  return std::unique_ptr<vfs::RemoteUpload>(std::make_unique<Upload>(*this));
}

void FakeRemote::learnBase(const vfs::RemoteEntry& base) {
  std::lock_guard<std::mutex> lock(mu_);
  learned_bases_.push_back(base);
}

std::vector<vfs::RemoteEntry> FakeRemote::learnedBases() const {
  std::lock_guard<std::mutex> lock(mu_);
  return learned_bases_;
}

Status FakeRemote::commitFiles(std::span<const vfs::RemoteAdd> adds,
                               std::span<const std::string> deletes) {
  if (read_only_) return Error(EROFS, "read-only fake remote");
  std::unique_lock<std::mutex> lock(mu_);
  if (auto err = injectLocked(kCommit, lock)) return *err;
  for (const auto& add : adds) {
    auto blob = blobs_.find(add.xet_hash);
    if (blob == blobs_.end()) return Error(EIO, "commit names unknown content " + add.xet_hash);
  }
  // Adds first, then deletes, as a Hub bucket batch.
  for (const auto& add : adds) {
    vfs::RemoteEntry e;
    e.path = add.path;
    e.size = blobs_.at(add.xet_hash)->size();
    e.mtime_ns = add.mtime_ms * 1'000'000;
    e.xet_hash = add.xet_hash;
    e.etag = add.xet_hash;
    files_[add.path] = File{e};
  }
  for (const auto& path : deletes) files_.erase(path);
  generation_++;
  counts_.commits++;
  return okStatus();
}

}  // namespace hfm::testing
