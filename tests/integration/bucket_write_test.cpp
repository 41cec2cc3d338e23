// Real end-to-end bucket writes: the real hf-mount-fuse over the real hf-local-hub. Shell tools
// write files of 0 B, 1 B and 10 MiB (cp, redirect, dd), mkdir -p, mv (file and directory) and rm;
// a fresh read-only mount with an empty cache then proves the bytes reached the Hub intact. Needs
// root and /dev/fuse (skips otherwise). Every process and mount is stopped even on failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "local_hub_process.h"

namespace {

namespace fs = std::filesystem;
using hfm::testing::LocalHubProcess;

bool fuseAvailable() { return geteuid() == 0 && access("/dev/fuse", R_OK | W_OK) == 0; }

bool isMounted(const std::string& dir) {
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir + " ") != std::string::npos) return true;
  }
  return false;
}

int sh(const std::string& script) {
  const int rc = std::system(("timeout 120 bash -ec '" + script + "'").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// One hf-mount-fuse process; the destructor unmounts and reaps it whatever happened.
class MountProcess {
 public:
  MountProcess(const std::string& hub_url, const std::string& cache, const std::string& mnt,
               bool read_only)
      : mnt_(mnt) {
    std::vector<std::string> args = {std::string(HFM_BINARY_DIR) + "/src/bin/hf-mount-fuse",
                                     "--hf-token",
                                     LocalHubProcess::kToken,
                                     "--hub-endpoint",
                                     hub_url,
                                     "--cache-dir",
                                     cache};
    if (read_only) args.emplace_back("--read-only");
    args.insert(args.end(), {"bucket", "tester/wb", mnt});
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 200 && !isMounted(mnt_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~MountProcess() { stop(); }
  MountProcess(const MountProcess&) = delete;
  MountProcess& operator=(const MountProcess&) = delete;

  bool mounted() const { return isMounted(mnt_); }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    bool reaped = false;
    for (int i = 0; i < 200 && !reaped; ++i) {
      reaped = waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!reaped) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (isMounted(mnt_)) (void)std::system(("umount -l " + mnt_).c_str());
    pid_ = -1;
  }

 private:
  std::string mnt_;
  pid_t pid_ = -1;
};

TEST(BucketWriteTest, ShellToolsWriteAndAFreshMountReadsTheSameBytes) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  char tmpl[] = "/tmp/hfm-bw-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup{root};
  for (const char* d : {"mnt", "cache1", "cache2"}) fs::create_directories(root + "/" + d);
  const std::string mnt = root + "/mnt";

  LocalHubProcess hub;
  ASSERT_EQ(std::system(("curl -sf -o /dev/null -X POST -H 'Authorization: Bearer " +
                         std::string(LocalHubProcess::kToken) + "' " + hub.url() +
                         "/api/buckets/tester/wb")
                            .c_str()),
            0);
  ASSERT_EQ(
      sh("cd " + root + " && head -c 10485760 /dev/urandom > big && printf x > one && : > zero"),
      0);
  {
    MountProcess writer(hub.url(), root + "/cache1", mnt, false);
    ASSERT_TRUE(writer.mounted());
    const std::string m = mnt;
    EXPECT_EQ(sh("cd " + root + " && cp zero " + m + "/zero && cp one " + m + "/one && cp big " +
                 m + "/big && echo hello > " + m + "/redir.txt && dd if=big of=" + m +
                 "/dd.bin bs=1M status=none && mkdir -p " + m + "/a/b/c && cp one " + m +
                 "/a/b/c/f && mv " + m + "/one " + m + "/a/moved && mv " + m + "/a/b " + m +
                 "/a/b2 && cp one " + m + "/gone && rm " + m + "/gone"),
              0);
    // Streaming rules seen through the kernel: appends are refused.
    EXPECT_NE(sh("echo more >> " + m + "/redir.txt"), 0);
    writer.stop();
  }
  // A fresh read-only mount with an empty cache reads what the Hub has.
  MountProcess reader(hub.url(), root + "/cache2", mnt, true);
  ASSERT_TRUE(reader.mounted());
  const std::string m = mnt;
  EXPECT_EQ(sh("cd " + root + " && cmp big " + m + "/big && cmp big " + m + "/dd.bin && cmp one " +
               m + "/a/moved && cmp one " + m + "/a/b2/c/f && cmp zero " + m +
               "/zero && test \"$(cat " + m + "/redir.txt)\" = hello"),
            0);
  EXPECT_FALSE(fs::exists(m + "/one"));
  EXPECT_FALSE(fs::exists(m + "/gone"));
  EXPECT_FALSE(fs::exists(m + "/a/b"));
  reader.stop();
}

}  // namespace
