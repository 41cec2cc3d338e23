#include "dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hfm::cache {

Result<int> lockCacheDirectory(const std::filesystem::path& root, const std::string& what) {
  const std::filesystem::path lock_path = root / ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Error(errno, "open " + lock_path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Error(EBUSY, what + " " + root.string() + " is in use by another process");
    }
    return Error(err, "flock " + lock_path.string() + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace hfm::cache
