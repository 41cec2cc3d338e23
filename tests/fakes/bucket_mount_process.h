// BucketMountProcess: runs the real hf-mount-fuse of bucket tester/wb (LocalHubProcess's user)
// for an integration test and waits (at most 10 s) for the mount. The destructor stops it
// (SIGTERM, then SIGKILL after 10 s) and lazily detaches a mount a killed process left, so a
// failing test leaves nothing mounted. Header-only, like local_hub_process.h.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "local_hub_process.h"

namespace hfm::testing {

inline bool fuseAvailable() { return ::geteuid() == 0 && ::access("/dev/fuse", R_OK | W_OK) == 0; }

inline bool isMounted(const std::string& dir) {
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir + " ") != std::string::npos) return true;
  }
  return false;
}

class BucketMountProcess {
 public:
  // `binary_dir` is the build tree (HFM_BINARY_DIR); `extra` goes before the positional
  // arguments (e.g. {"--read-only"} or {"--advanced-writes"}). A `debug_log` path gets the
  // process's output at log level debug.
  BucketMountProcess(const std::string& binary_dir, const std::string& hub_url,
                     const std::string& cache, const std::string& mnt,
                     const std::vector<std::string>& extra = {}, const std::string& debug_log = "")
      : mnt_(mnt) {
    std::vector<std::string> args = {binary_dir + "/src/bin/hf-mount-fuse",
                                     "--hf-token",
                                     LocalHubProcess::kToken,
                                     "--hub-endpoint",
                                     hub_url,
                                     "--cache-dir",
                                     cache};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"bucket", std::string(LocalHubProcess::kUser) + "/wb", mnt});
    pid_ = ::fork();
    if (pid_ == 0) {
      if (!debug_log.empty()) {
        const int fd = ::open(debug_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
          ::dup2(fd, 1);
          ::dup2(fd, 2);
        }
        ::setenv("HF_MOUNT_LOG", "debug", 1);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !isMounted(mnt_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~BucketMountProcess() { stop(); }
  BucketMountProcess(const BucketMountProcess&) = delete;
  BucketMountProcess& operator=(const BucketMountProcess&) = delete;

  bool mounted() const { return isMounted(mnt_); }

  // kill -9: no unmount, no flush; the kernel mount is detached afterwards.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    detach();
  }

  // SIGTERM (the backend commits pending writes and unmounts), SIGKILL after 10 s.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    bool reaped = false;
    for (int i = 0; i < 200 && !reaped; ++i) {
      reaped = ::waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!reaped) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
    detach();
  }

 private:
  void detach() const {
    if (isMounted(mnt_)) (void)std::system(("umount -l " + mnt_).c_str());
  }

  std::string mnt_;
  pid_t pid_ = -1;
};

}  // namespace hfm::testing
