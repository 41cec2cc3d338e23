#include "hfm/nfs/handle_table.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string_view>
#include <system_error>

#include "hfm/util/log.h"

namespace hfm::nfs {
namespace {

constexpr std::string_view kMagic = "hfm-nfs-handles";
// Version 2 added the rename ("r") and forget ("x") records; version 1 files (ids only) load
// unchanged and are appended to as version 2 ones.
constexpr int kFormatVersion = 2;

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

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
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
                                               const std::string& key) {
  std::unique_ptr<HandleTable> table(new HandleTable());
  table->by_id_[kRootHandleId] = HandleRecord{kRootHandleId, true, ""};
  table->dir_ids_[""] = kRootHandleId;
  std::lock_guard<std::mutex> lock(table->mu_);
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    table->file_ = dir / fileNameFor(key);
    const int fd = ::open(table->file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      spdlog::warn(
          "nfs: cannot open the handle table {}: {}; file handles will not survive a "
          "restart",
          table->file_.string(), std::strerror(errno));
    } else if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      spdlog::warn(
          "nfs: the handle table {} is in use by another mount of the same source; "
          "file handles of this mount will not survive a restart",
          table->file_.string());
      ::close(fd);
    } else {
      table->fd_ = fd;
      table->loadLocked(key);
    }
  }
  if (table->epoch_ == 0) table->epoch_ = randomEpoch();
  return table;
}

HandleTable::~HandleTable() {
  if (fd_ >= 0) ::close(fd_);
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
    by_id_[kRootHandleId] = HandleRecord{kRootHandleId, true, ""};
    dir_ids_[""] = kRootHandleId;
    next_id_ = kRootHandleId + 1;
    epoch_ = randomEpoch();
    const std::string header = std::string(kMagic) + " " + std::to_string(kFormatVersion) + " " +
                               hex64(epoch_) + " " + escape(key) + "\n";
    if (::lseek(fd_, 0, SEEK_SET) < 0 || !writeAll(fd_, header)) {
      spdlog::warn("nfs: writing {}: {}", file_.string(), std::strerror(errno));
    }
  };

  const size_t header_end = content.find('\n');
  if (header_end == std::string::npos) return startFresh("has no header");
  {
    const auto fields = splitFields(std::string_view(content).substr(0, header_end));
    if (fields.size() != 4 || fields[0] != kMagic ||
        (fields[1] != "1" && fields[1] != std::to_string(kFormatVersion))) {
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
    const auto fields = splitFields(std::string_view(content).substr(pos, nl - pos));
    if (fields.size() < 3 || (fields[1] != "d" && fields[1] != "f")) break;
    const bool is_dir = fields[1] == "d";
    if (fields[0] == "r") {
      if (fields.size() != 4) break;
      auto from = unescape(fields[2]);
      auto to = unescape(fields[3]);
      if (!from || !to || from->empty() || to->empty()) break;
      renameLocked(*from, *to, is_dir);
    } else if (fields[0] == "x") {
      auto path = unescape(fields[2]);
      if (fields.size() != 3 || !path || path->empty()) break;
      forgetLocked(*path, is_dir);
    } else {
      const auto id = parseHex(fields[0]);
      auto path = unescape(fields[2]);
      // An id is assigned once; a later record for a still-mapped path would be corruption.
      if (fields.size() != 3 || !id || *id <= kRootHandleId || !path || *id < next_id_) break;
      by_id_[*id] = HandleRecord{*id, is_dir, *path};
      (is_dir ? dir_ids_ : file_ids_)[*path] = *id;
      next_id_ = *id + 1;
    }
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
  spdlog::info("nfs: loaded {} file handles from {}", by_id_.size() - 1, file_.string());
}

void HandleTable::appendLocked(const HandleRecord& record) {
  appendLineLocked(hex64(record.id) + (record.is_dir ? " d " : " f ") + escape(record.path) + "\n");
}

void HandleTable::appendLineLocked(const std::string& line) {
  if (fd_ < 0) return;
  if (!writeAll(fd_, line) && !append_failed_logged_) {
    append_failed_logged_ = true;
    spdlog::warn("nfs: appending to {} failed: {}; newer handles will not survive a restart",
                 file_.string(), std::strerror(errno));
  }
}

uint64_t HandleTable::idFor(const std::string& path, bool is_dir) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& ids = is_dir ? dir_ids_ : file_ids_;
  auto it = ids.find(path);
  if (it != ids.end()) return it->second;
  HandleRecord record{next_id_++, is_dir, path};
  ids.emplace(path, record.id);
  appendLocked(record);
  by_id_.emplace(record.id, std::move(record));
  return next_id_ - 1;
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
    by_id_.erase(it->second);
    ids.erase(it);
  }
  if (!is_dir) return;
  const std::string prefix = path + "/";
  for (auto it = by_id_.begin(); it != by_id_.end();) {
    if (it->second.path.compare(0, prefix.size(), prefix) == 0) {
      (it->second.is_dir ? dir_ids_ : file_ids_).erase(it->second.path);
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
  std::lock_guard<std::mutex> lock(mu_);
  renameLocked(from, to, is_dir);
  appendLineLocked(std::string("r ") + (is_dir ? "d " : "f ") + escape(from) + " " + escape(to) +
                   "\n");
}

void HandleTable::forget(const std::string& path, bool is_dir) {
  if (path.empty()) return;  // the root is never deleted
  std::lock_guard<std::mutex> lock(mu_);
  forgetLocked(path, is_dir);
  appendLineLocked(std::string("x ") + (is_dir ? "d " : "f ") + escape(path) + "\n");
}

size_t HandleTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

}  // namespace hfm::nfs
