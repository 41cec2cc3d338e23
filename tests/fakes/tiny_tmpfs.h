// TinyTmpfs: a real, small tmpfs for tests of a full staging filesystem, unit and integration
// alike (mounting needs root; mounted() is false otherwise and the test skips or fails). The
// destructor always unmounts it.
#pragma once

#include <stdlib.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace hfm::testing {

// A tmpfs of `bytes` on a fresh directory, unmounted and removed by the destructor.
class TinyTmpfs {
 public:
  explicit TinyTmpfs(uint64_t bytes) {
    char tmpl[] = "/tmp/hfm-tiny-tmpfs-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    mounted_ = ::geteuid() == 0 && ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~TinyTmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  TinyTmpfs(const TinyTmpfs&) = delete;
  TinyTmpfs& operator=(const TinyTmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& dir() const { return dir_; }
  uint64_t freeBytes() const {
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) != 0) return 0;
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace hfm::testing
