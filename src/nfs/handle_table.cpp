#include "hfm/nfs/handle_table.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string_view>
#include <system_error>

#include "hfm/util/atomic_file.h"
#include "hfm/util/log.h"

namespace hfm::nfs {
namespace {

constexpr std::string_view kMagic = "hfm-nfs-handles";
// Version 2 added the rename ("r") and forget ("x") records, version 3 the create verifier
// ("v") and next id ("n") ones; older files load unchanged and are appended to as version 3
// ones.
constexpr int kFormatVersion = 3;

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Percent-escapes control bytes, space, '%' and DEL so a record is one line of fields.
std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto b = static_cast<uint8_t>(c);
    if (b <= 0x20 || b == '%' || b == 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", b);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    for (size_t k = 1; k <= 2; ++k) {
      const char c = s[i + k];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        return std::nullopt;
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

std::optional<uint64_t> parseHex(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= static_cast<uint64_t>(c - 'a' + 10);
    else
      return std::nullopt;
  }
  return v;
}

uint64_t randomEpoch() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return v;
}

std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= line.size()) {
    const size_t sp = line.find(' ', start);
    if (sp == std::string_view::npos) {
      out.push_back(line.substr(start));
      break;
    }
    out.push_back(line.substr(start, sp - start));
    start = sp + 1;
  }
  return out;
}

}  // namespace

std::string HandleTable::fileNameFor(const std::string& key) {
  return "handles-" + hex64(fnv1a64(key)) + ".log";
}

std::unique_ptr<HandleTable> HandleTable::open(const std::filesystem::path& dir,
                                               const std::string& key, HandleTableOptions options) {
  std::unique_ptr<HandleTable> table(new HandleTable(options));
  {
    std::lock_guard<std::mutex> lock(table->mu_);
    table->key_ = key;
    table->by_id_[kRootHandleId] = HandleRecord{kRootHandleId, true, "", std::nullopt};
    table->dir_ids_[""] = kRootHandleId;
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      table->file_ = dir / fileNameFor(key);
      table->openFileLocked(key);
    }
    if (table->epoch_ == 0) table->epoch_ = randomEpoch();
  }
  table->compactIfDue();
  return table;
}

HandleTable::~HandleTable() {
  if (fd_ >= 0) ::close(fd_);
}

std::filesystem::path HandleTable::compactPath() const {
  std::filesystem::path tmp = file_;
  tmp += ".compact";
  return tmp;
}

void HandleTable::openFileLocked(const std::string& key) {
  // Another process's compaction may rename a new log over the one just opened: after
  // locking, check that the name still leads to the file we locked.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      spdlog::warn(
          "nfs: cannot open the handle table {}: {}; file handles will not survive a "
          "restart",
          file_.string(), std::strerror(errno));
      return;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      spdlog::warn(
          "nfs: the handle table {} is in use by another mount of the same source; "
          "file handles of this mount will not survive a restart",
          file_.string());
      ::close(fd);
      return;
    }
    struct stat locked {};
    struct stat named {};
    if (::fstat(fd, &locked) == 0 && ::stat(file_.c_str(), &named) == 0 &&
        locked.st_dev == named.st_dev && locked.st_ino == named.st_ino) {
      fd_ = fd;
      // A compaction that crashed before its rename left a partial copy: the log is intact.
      std::error_code ec;
      if (std::filesystem::remove(compactPath(), ec)) {
        spdlog::warn("nfs: dropped an unfinished compaction of {}", file_.string());
      }
      loadLocked(key);
      return;
    }
    ::close(fd);
  }
  spdlog::warn(
      "nfs: the handle table {} keeps being replaced by another process; file handles of "
      "this mount will not survive a restart",
      file_.string());
}

std::string HandleTable::headerLocked() const {
  return std::string(kMagic) + " " + std::to_string(kFormatVersion) + " " + hex64(epoch_) + " " +
         escape(key_) + "\n";
}

void HandleTable::loadLocked(const std::string& key) {
  std::string content;
  {
    char buf[65536];
    if (::lseek(fd_, 0, SEEK_SET) < 0) return;
    for (;;) {
      const ssize_t n = ::read(fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      content.append(buf, static_cast<size_t>(n));
    }
  }
  auto startFresh = [&](const char* why) {
    if (!content.empty()) {
      spdlog::warn("nfs: handle table {} {}; starting a new one (old handles turn stale)",
                   file_.string(), why);
    }
    if (::ftruncate(fd_, 0) != 0) {
      spdlog::warn("nfs: truncating {}: {}", file_.string(), std::strerror(errno));
    }
    by_id_.clear();
    file_ids_.clear();
    dir_ids_.clear();
    by_id_[kRootHandleId] = HandleRecord{kRootHandleId, true, "", std::nullopt};
    dir_ids_[""] = kRootHandleId;
    next_id_ = kRootHandleId + 1;
    verifiers_ = 0;
    log_records_ = 0;
    epoch_ = randomEpoch();
    if (::lseek(fd_, 0, SEEK_SET) < 0) {
      spdlog::warn("nfs: seeking in {}: {}", file_.string(), std::strerror(errno));
    } else if (auto written = util::writeAll(fd_, headerLocked()); !written) {
      spdlog::warn("nfs: writing {}: {}", file_.string(), written.error().message());
    }
  };

  const size_t header_end = content.find('\n');
  if (header_end == std::string::npos) return startFresh("has no header");
  {
    const auto fields = splitFields(std::string_view(content).substr(0, header_end));
    if (fields.size() != 4 || fields[0] != kMagic ||
        (fields[1] != "1" && fields[1] != "2" && fields[1] != std::to_string(kFormatVersion))) {
      return startFresh("has an unknown format");
    }
    const auto epoch = parseHex(fields[2]);
    const auto stored_key = unescape(fields[3]);
    if (!epoch || *epoch == 0) return startFresh("has a bad epoch");
    if (!stored_key || *stored_key != key) return startFresh("belongs to another source");
    epoch_ = *epoch;
  }
  size_t pos = header_end + 1;
  size_t good_end = pos;
  while (pos < content.size()) {
    const size_t nl = content.find('\n', pos);
    if (nl == std::string::npos) break;  // torn last record
    if (!loadRecordLocked(splitFields(std::string_view(content).substr(pos, nl - pos)))) break;
    ++log_records_;
    pos = nl + 1;
    good_end = pos;
  }
  if (good_end != content.size()) {
    spdlog::warn("nfs: dropping {} bytes of a damaged tail in {}", content.size() - good_end,
                 file_.string());
    if (::ftruncate(fd_, static_cast<off_t>(good_end)) != 0) {
      spdlog::warn("nfs: truncating {}: {}", file_.string(), std::strerror(errno));
    }
  }
  if (::lseek(fd_, 0, SEEK_END) < 0) {
    spdlog::warn("nfs: seeking {}: {}", file_.string(), std::strerror(errno));
  }
  spdlog::info("nfs: loaded {} file handles ({} log records) from {}", by_id_.size() - 1,
               log_records_, file_.string());
}

bool HandleTable::loadRecordLocked(const std::vector<std::string_view>& fields) {
  if (fields.size() == 2 && fields[0] == "n") {
    const auto next = parseHex(fields[1]);
    if (!next || *next <= kRootHandleId) return false;
    next_id_ = std::max(next_id_, *next);
    return true;
  }
  if (fields.size() == 3 && fields[0] == "v") {
    const auto id = parseHex(fields[1]);
    const auto verifier = parseHex(fields[2]);
    if (!id || !verifier) return false;
    setVerifierLocked(*id, *verifier);  // an id forgotten since is fine: nothing to keep
    return true;
  }
  if (fields.size() < 3 || (fields[1] != "d" && fields[1] != "f")) return false;
  const bool is_dir = fields[1] == "d";
  if (fields[0] == "r") {
    if (fields.size() != 4) return false;
    auto from = unescape(fields[2]);
    auto to = unescape(fields[3]);
    if (!from || !to || from->empty() || to->empty()) return false;
    renameLocked(*from, *to, is_dir);
    return true;
  }
  if (fields[0] == "x") {
    auto path = unescape(fields[2]);
    if (fields.size() != 3 || !path || path->empty()) return false;
    forgetLocked(*path, is_dir);
    return true;
  }
  const auto id = parseHex(fields[0]);
  auto path = unescape(fields[2]);
  // An id is assigned once; a later record for a still-mapped path would be corruption.
  if (fields.size() != 3 || !id || *id <= kRootHandleId || !path || *id < next_id_) return false;
  by_id_[*id] = HandleRecord{*id, is_dir, *path, std::nullopt};
  (is_dir ? dir_ids_ : file_ids_)[*path] = *id;
  next_id_ = *id + 1;
  return true;
}

void HandleTable::appendLocked(const HandleRecord& record) {
  appendLineLocked(hex64(record.id) + (record.is_dir ? " d " : " f ") + escape(record.path) + "\n");
}

void HandleTable::appendLineLocked(const std::string& line) {
  if (fd_ < 0) return;
  ++log_records_;
  if (compacting_) {
    // The compacted copy was snapshotted before this record: it gets it before its rename.
    compact_pending_ += line;
    ++compact_pending_records_;
  }
  auto written = util::writeAll(fd_, line);
  if (!written && !append_failed_logged_) {
    append_failed_logged_ = true;
    spdlog::warn("nfs: appending to {} failed: {}; newer handles will not survive a restart",
                 file_.string(), written.error().message());
  }
}

uint64_t HandleTable::idFor(const std::string& path, bool is_dir) {
  uint64_t id = 0;
  bool due = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& ids = is_dir ? dir_ids_ : file_ids_;
    auto it = ids.find(path);
    if (it != ids.end()) return it->second;
    HandleRecord record{next_id_++, is_dir, path, std::nullopt};
    id = record.id;
    ids.emplace(path, id);
    appendLocked(record);
    by_id_.emplace(id, std::move(record));
    due = compactionDueLocked();
  }
  if (due) compactIfDue();
  return id;
}

std::optional<uint64_t> HandleTable::idOf(const std::string& path, bool is_dir) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto& ids = is_dir ? dir_ids_ : file_ids_;
  auto it = ids.find(path);
  if (it == ids.end()) return std::nullopt;
  return it->second;
}

bool HandleTable::setVerifierLocked(uint64_t id, uint64_t verifier) {
  auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second.is_dir) return false;
  if (!it->second.create_verifier) ++verifiers_;
  it->second.create_verifier = verifier;
  return true;
}

void HandleTable::setCreateVerifier(uint64_t id, uint64_t verifier) {
  bool due = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!setVerifierLocked(id, verifier)) return;
    appendLineLocked("v " + hex64(id) + " " + hex64(verifier) + "\n");
    due = compactionDueLocked();
  }
  if (due) compactIfDue();
}

void HandleTable::eraseLocked(uint64_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  if (it->second.create_verifier) --verifiers_;
  by_id_.erase(it);
}

std::optional<HandleRecord> HandleTable::find(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

void HandleTable::forgetLocked(const std::string& path, bool is_dir) {
  auto& ids = is_dir ? dir_ids_ : file_ids_;
  if (auto it = ids.find(path); it != ids.end()) {
    eraseLocked(it->second);
    ids.erase(it);
  }
  if (!is_dir) return;
  const std::string prefix = path + "/";
  for (auto it = by_id_.begin(); it != by_id_.end();) {
    if (it->second.path.compare(0, prefix.size(), prefix) == 0) {
      (it->second.is_dir ? dir_ids_ : file_ids_).erase(it->second.path);
      if (it->second.create_verifier) --verifiers_;
      it = by_id_.erase(it);
    } else {
      ++it;
    }
  }
}

void HandleTable::renameLocked(const std::string& from, const std::string& to, bool is_dir) {
  if (from == to) return;
  // What the rename replaced is gone (both kinds: a record of the other kind at `to` names
  // an object that no longer exists either).
  forgetLocked(to, false);
  forgetLocked(to, true);
  auto& ids = is_dir ? dir_ids_ : file_ids_;
  if (auto it = ids.find(from); it != ids.end()) {
    const uint64_t id = it->second;
    ids.erase(it);
    ids[to] = id;
    by_id_[id].path = to;
  }
  if (!is_dir) return;
  const std::string prefix = from + "/";
  std::vector<uint64_t> moved;
  for (const auto& [id, record] : by_id_) {
    if (record.path.compare(0, prefix.size(), prefix) == 0) moved.push_back(id);
  }
  // Two passes: erase every old path first so a moved path never collides with one not yet
  // moved.
  for (uint64_t id : moved) {
    const HandleRecord& record = by_id_[id];
    (record.is_dir ? dir_ids_ : file_ids_).erase(record.path);
  }
  for (uint64_t id : moved) {
    HandleRecord& record = by_id_[id];
    record.path = to + record.path.substr(from.size());
    (record.is_dir ? dir_ids_ : file_ids_)[record.path] = id;
  }
}

void HandleTable::rename(const std::string& from, const std::string& to, bool is_dir) {
  if (from.empty() || to.empty() || from == to) return;
  bool due = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    renameLocked(from, to, is_dir);
    appendLineLocked(std::string("r ") + (is_dir ? "d " : "f ") + escape(from) + " " + escape(to) +
                     "\n");
    due = compactionDueLocked();
  }
  if (due) compactIfDue();
}

void HandleTable::forget(const std::string& path, bool is_dir) {
  if (path.empty()) return;  // the root is never deleted
  bool due = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    forgetLocked(path, is_dir);
    appendLineLocked(std::string("x ") + (is_dir ? "d " : "f ") + escape(path) + "\n");
    due = compactionDueLocked();
  }
  if (due) compactIfDue();
}

size_t HandleTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

// ---------------------------------------------------------------------------------------------
// Compaction

size_t HandleTable::liveRecordsLocked() const {
  // One record per id (the root has none), one per verifier, and the "n" record.
  return (by_id_.size() - 1) + verifiers_ + 1;
}

bool HandleTable::compactionDueLocked() const {
  return fd_ >= 0 && !compacting_ && log_records_ >= options_.compact_min_records &&
         log_records_ > 2 * liveRecordsLocked() && log_records_ >= compact_retry_at_;
}

void HandleTable::compactIfDue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!compactionDueLocked()) return;
  }
  // Failures are logged by compact(); a concurrent caller may have started one meanwhile.
  (void)compact();
}

std::string HandleTable::snapshotLocked(size_t* records) const {
  std::vector<const HandleRecord*> live;
  live.reserve(by_id_.size());
  for (const auto& [id, record] : by_id_) {
    if (id != kRootHandleId) live.push_back(&record);
  }
  // Ascending ids, as the loader requires of assignment records.
  std::sort(live.begin(), live.end(),
            [](const HandleRecord* a, const HandleRecord* b) { return a->id < b->id; });
  std::string out = headerLocked();
  size_t n = 0;
  for (const HandleRecord* r : live) {
    out += hex64(r->id) + (r->is_dir ? " d " : " f ") + escape(r->path) + "\n";
    ++n;
  }
  // Ids of forgotten objects past the last live one must never come back.
  out += "n " + hex64(next_id_) + "\n";
  ++n;
  for (const HandleRecord* r : live) {
    if (!r->create_verifier) continue;
    out += "v " + hex64(r->id) + " " + hex64(*r->create_verifier) + "\n";
    ++n;
  }
  *records = n;
  return out;
}

Status HandleTable::compact() {
  std::string content;
  size_t records = 0;
  size_t before = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ < 0) return Error(ENOTSUP, "the handle table is in memory only");
    if (compacting_) return Error(EBUSY, "a compaction of the handle table is running");
    compacting_ = true;
    compact_pending_.clear();
    compact_pending_records_ = 0;
    before = log_records_;
    content = snapshotLocked(&records);
  }
  // The slow part (writing and fsyncing the copy) runs without the mutex.
  // Not util::writeFileAtomic: the copy must be locked before it appears under the name, records
  // appended meanwhile go in under mu_ right before the rename, and its fd becomes fd_.
  const std::filesystem::path tmp = compactPath();
  auto sysError = [&](const char* what) {
    return Error(errno, std::string(what) + " " + tmp.string() + ": " + std::strerror(errno));
  };
  Status st = okStatus();
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    st = sysError("creating");
  } else if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    st = sysError("locking");  // the renamed copy must already be ours when it appears
  } else if (st = util::writeAll(fd, content); st.ok() && ::fsync(fd) != 0) {
    st = sysError("fsync of");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (st.ok()) st = util::writeAll(fd, compact_pending_);
    if (st.ok() && ::rename(tmp.c_str(), file_.c_str()) != 0) st = sysError("renaming");
    if (st.ok()) {
      ::close(fd_);
      fd_ = fd;
      fd = -1;
      log_records_ = records + compact_pending_records_;
      ++compactions_;
    } else {
      compact_retry_at_ = 2 * log_records_;  // not again at every append
    }
    compacting_ = false;
    compact_pending_.clear();
    compact_pending_records_ = 0;
  }
  if (!st.ok()) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    spdlog::warn("nfs: compacting the handle table {} failed ({}); it keeps growing",
                 file_.string(), st.error().message());
    const int code = st.error().code();
    return Error(code != 0 ? code : EIO, "compacting the handle table failed");
  }
  // The rename is durable once the directory is.
  if (auto synced = util::fsyncParentDir(file_); !synced) {
    spdlog::warn("nfs: {}", synced.error().message());
  }
  spdlog::info("nfs: compacted the handle table {}: {} → {} records", file_.string(), before,
               records);
  return okStatus();
}

HandleTableStats HandleTable::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return HandleTableStats{log_records_, liveRecordsLocked(), compactions_};
}

}  // namespace hfm::nfs
