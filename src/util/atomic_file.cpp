#include "hfm/util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace hfm::util {
namespace {

Error errnoError(const std::string& what) { return {errno, what + ": " + std::strerror(errno)}; }

}  // namespace

Status writeAll(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("write");
    if (n == 0) return Error(EIO, "write made no progress");
    done += static_cast<size_t>(n);
  }
  return okStatus();
}

Status fsyncParentDir(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoError("opening " + dir.string());
  if (::fsync(fd) != 0) {
    Error error = errnoError("fsync " + dir.string());  // before close() can change errno
    ::close(fd);
    return error;
  }
  ::close(fd);
  return okStatus();
}

Status writeFileAtomic(const std::filesystem::path& path, std::string_view bytes) {
  // Unique per call, so two writers of the same file never share a temporary.
  std::string tmp = path.string() + ".tmp-XXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return errnoError("creating a temporary file for " + path.string());
  Status st = writeAll(fd, bytes);
  if (st.ok() && ::fsync(fd) != 0) st = errnoError("fsync " + tmp);
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = errnoError("renaming " + tmp);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.error().withContext("writing " + path.string());
  }
  return fsyncParentDir(path);
}

}  // namespace hfm::util
