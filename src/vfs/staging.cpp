#include "hfm/vfs/staging.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

namespace hfm::vfs::staging {

namespace {

// Paths may hold any byte but NUL and '/' separators; escape what would break a line format.
std::string encode(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '%' || c == 0x7f) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode(const std::string& s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hexValue(s[i + 1]);
    const int lo = hexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

bool parseU64(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return false;  // overflow
    v = next;
  }
  out = v;
  return true;
}

Error errnoError(const std::string& what) {
  const int err = errno;
  return {err == ENOSPC || err == EDQUOT ? ENOSPC : EIO, what + ": " + std::strerror(err)};
}

}  // namespace

namespace {

constexpr const char* kManifestHeader = "hfm-pending 1";
constexpr const char* kDeleteHeader = "hfm-delete 1";

// The shared shape of manifests and delete records: `header`, then `key value` lines handed to
// `on_field` (which returns an error for a bad or unknown field), then "end". Anything after
// "end" is ignored; a record without it is truncated.
Status parseRecord(const std::string& text, const std::string& header,
                   const std::function<Status(const std::string&, const std::string&)>& on_field) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != header) return Error(EINVAL, "bad header");
  while (std::getline(in, line)) {
    if (line == "end") return okStatus();
    const auto space = line.find(' ');
    if (space == std::string::npos) return Error(EINVAL, "malformed line '" + line + "'");
    HFM_TRY(on_field(line.substr(0, space), line.substr(space + 1)));
  }
  return Error(EINVAL, "truncated (no end line)");
}

// The inverse of parseRecord, the one place that formats a record: `header`, one
// "key value" line per field in order (values already encoded), then "end".
std::string writeRecord(const std::string& header,
                        const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out = header + "\n";
  for (const auto& [key, value] : fields) out += key + " " + value + "\n";
  out += "end\n";
  return out;
}

Error unknownField(const std::string& key) { return {EINVAL, "unknown field '" + key + "'"}; }

// A relative path: decodes and refuses empty and absolute ones.
bool decodePath(const std::string& value, std::string& out) {
  return decode(value, out) && !out.empty() && out.front() != '/';
}

bool validDataName(const std::string& name) {
  const std::string stem = name.substr(0, name.find('.'));
  return isStagingName(stem) && name == stem + ".data";
}

}  // namespace

std::string serializeManifest(const Manifest& m) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"path", encode(m.path)},
      {"size", std::to_string(m.size)},
      {"mtime_ns", std::to_string(m.mtime_ns)},
      {"data", encode(m.data)}};
  for (const auto& d : m.deletes) fields.emplace_back("delete", encode(d));
  return writeRecord(kManifestHeader, fields);
}

Result<Manifest> parseManifest(const std::string& text) {
  Manifest m;
  bool have_path = false, have_size = false, have_data = false;
  Status st = parseRecord(text, kManifestHeader,
                          [&](const std::string& key, const std::string& value) -> Status {
                            uint64_t number = 0;
                            std::string decoded;
                            if (key == "path") {
                              if (!decodePath(value, m.path))
                                return Error(EINVAL, "bad path '" + value + "'");
                              have_path = true;
                            } else if (key == "size") {
                              if (!parseU64(value, m.size))
                                return Error(EINVAL, "bad size '" + value + "'");
                              have_size = true;
                            } else if (key == "mtime_ns") {
                              if (!parseU64(value, number))
                                return Error(EINVAL, "bad mtime '" + value + "'");
                              m.mtime_ns = static_cast<int64_t>(number);
                            } else if (key == "data") {
                              if (!decode(value, m.data) || !validDataName(m.data)) {
                                return Error(EINVAL, "bad data file name '" + value + "'");
                              }
                              have_data = true;
                            } else if (key == "delete") {
                              if (!decode(value, decoded) || decoded.empty()) {
                                return Error(EINVAL, "bad delete '" + value + "'");
                              }
                              m.deletes.push_back(std::move(decoded));
                            } else {
                              return unknownField(key);
                            }
                            return okStatus();
                          });
  if (!st.ok()) return st.error().withContext("pending-file manifest");
  if (!have_path || !have_size || !have_data) {
    return Error(EINVAL, "pending-file manifest: missing field");
  }
  return m;
}

std::string serializeDelete(const DeleteRecord& d) {
  return writeRecord(kDeleteHeader,
                     {{"path", encode(d.path)}, {"time_ns", std::to_string(d.time_ns)}});
}

Result<DeleteRecord> parseDelete(const std::string& text) {
  DeleteRecord d;
  bool have_path = false, have_time = false;
  Status st = parseRecord(text, kDeleteHeader,
                          [&](const std::string& key, const std::string& value) -> Status {
                            uint64_t number = 0;
                            if (key == "path") {
                              if (!decodePath(value, d.path))
                                return Error(EINVAL, "bad path '" + value + "'");
                              have_path = true;
                            } else if (key == "time_ns") {
                              if (!parseU64(value, number))
                                return Error(EINVAL, "bad time '" + value + "'");
                              d.time_ns = static_cast<int64_t>(number);
                              have_time = true;
                            } else {
                              return unknownField(key);
                            }
                            return okStatus();
                          });
  if (!st.ok()) return st.error().withContext("queued-delete record");
  if (!have_path || !have_time) return Error(EINVAL, "queued-delete record: missing field");
  return d;
}

Status writeFileAtomic(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string tmp = dir + "/" + name + ".tmp";
  const std::string final_path = dir + "/" + name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errnoError("creating " + tmp);
  Status st = pwriteFull(
      fd, 0, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  if (st.ok() && ::fsync(fd) != 0) st = errnoError("fsync " + tmp);
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    st = errnoError("renaming " + tmp);
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  // The rename is durable only once the directory is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errnoError("opening " + dir);
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return errnoError("fsync " + dir);
  return okStatus();
}

Result<std::string> readSmallFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("opening " + path);
  std::string out(max_bytes + 1, '\0');
  auto n = preadFull(fd, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  ::close(fd);
  if (!n.ok()) return n.error();
  if (*n > max_bytes) return Error(EFBIG, path + " is larger than " + std::to_string(max_bytes));
  out.resize(*n);
  return out;
}

Result<size_t> preadFull(int fd, uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("reading a staging file");
    }
    if (n == 0) break;  // EOF
    done += static_cast<size_t>(n);
  }
  return done;
}

Status pwriteFull(int fd, uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("writing a staging file");
    }
    done += static_cast<size_t>(n);
  }
  return okStatus();
}

Status pwriteOrRollback(int fd, uint64_t offset, std::span<const uint8_t> data, uint64_t old_size) {
  Status st = pwriteFull(fd, offset, data);
  if (st.ok() || offset + data.size() <= old_size) return st;
  if (::ftruncate(fd, static_cast<off_t>(old_size)) != 0) {
    const Error cut = errnoError("cutting a failed write back to " + std::to_string(old_size));
    return st.error().withContext(cut.message());
  }
  return st;
}

namespace {
uint64_t runValue() {
  static const uint64_t run = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  return run;
}
}  // namespace

std::string runId() {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(runValue()));
  return buf;
}

std::string uniqueName() {
  static std::atomic<uint64_t> counter{0};
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s-%08llx", runId().c_str(),
                static_cast<unsigned long long>(counter++ & 0xffffffffull));
  return buf;
}

bool isStagingName(const std::string& stem) {
  if (stem.size() != 25 || stem[16] != '-') return false;
  for (size_t i = 0; i < stem.size(); ++i) {
    if (i == 16) continue;
    if (hexValue(stem[i]) < 0 || (stem[i] >= 'A' && stem[i] <= 'F')) return false;
  }
  return true;
}

}  // namespace hfm::vfs::staging
