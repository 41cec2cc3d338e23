// A full staging area, end to end: the real hf-mount-fuse over the real hf-local-hub, with
// --cache-dir on an 8 MiB tmpfs. In both write modes (streaming, --advanced-writes), writing
// 64 MiB into a new file and into a file the hub already has fails with ENOSPC (write and
// close), dd reports "No space left on device", nothing partial reaches the hub, the new file
// is gone and the old one shows the hub's bytes again, the tmpfs has its space back, and a
// small file written afterwards lands intact. Needs root and /dev/fuse (skips otherwise). The
// mount, the hub and the tmpfs are always stopped / unmounted, even when an assertion fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bucket_mount_process.h"
#include "local_hub_process.h"
#include "run_script.h"
#include "tiny_tmpfs.h"

namespace {

namespace fs = std::filesystem;
using hfm::testing::BucketMountProcess;
using hfm::testing::fuseAvailable;
using hfm::testing::LocalHubProcess;
using hfm::testing::runScript;
using hfm::testing::TinyTmpfs;

constexpr uint64_t kStagingBytes = 8u << 20;

std::string auth() {
  return std::string("-H 'Authorization: Bearer ") + LocalHubProcess::kToken + "'";
}

std::string resolveUrl(const std::string& hub_url, const std::string& path) {
  return hub_url + "/buckets/tester/wb/resolve/" + path;
}

// Polls the hub until its copy of `path` equals the local file `expected` (at most `secs`).
bool hubHas(const std::string& hub_url, const std::string& path, const std::string& expected,
            int secs) {
  return runScript("for i in $(seq 1 " + std::to_string(secs * 5) + "); do curl -sf " + auth() +
                   " -o " + expected + ".hub " + resolveUrl(hub_url, path) + " && cmp -s " +
                   expected + ".hub " + expected + " && exit 0; sleep 0.2; done; exit 1") == 0;
}

bool hubLacks(const std::string& hub_url, const std::string& path) {
  return runScript("test \"$(curl -s -o /dev/null -w '%{http_code}' " + auth() + " " +
                   resolveUrl(hub_url, path) + ")\" = 404") == 0;
}

struct TempRoot {
  std::string dir;
  TempRoot() {
    char tmpl[] = "/tmp/hfm-enospc-XXXXXX";
    dir = mkdtemp(tmpl) != nullptr ? tmpl : "";
  }
  ~TempRoot() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
  TempRoot(const TempRoot&) = delete;
  TempRoot& operator=(const TempRoot&) = delete;
};

// A mount of tester/wb by this build's hf-mount-fuse, without a chunk cache (only staging
// lives on the tmpfs).
class MountProcess : public BucketMountProcess {
 public:
  MountProcess(const std::string& hub_url, const std::string& cache, const std::string& mnt,
               std::vector<std::string> extra)
      : BucketMountProcess(HFM_BINARY_DIR, hub_url, cache, mnt,
                           withoutDiskCache(std::move(extra))) {}

 private:
  static std::vector<std::string> withoutDiskCache(std::vector<std::string> extra) {
    extra.insert(extra.begin(), "--no-disk-cache");
    return extra;
  }
};

// Writes up to 64 MiB (1 MiB writes) to argv[1] (opened with O_TRUNC if argv[2] is "trunc",
// else O_RDWR), then closes it. Succeeds only if a write failed with ENOSPC after some bytes
// were accepted, and close failed with ENOSPC as well.
constexpr const char* kFillScript = R"PY(
import errno, os, sys
path, mode = sys.argv[1], sys.argv[2]
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if mode == "trunc" else os.O_RDWR
fd = os.open(path, flags, 0o644)
chunk = os.urandom(1 << 20)
written, write_err, close_err = 0, 0, 0
for _ in range(64):
    try:
        written += os.write(fd, chunk)
    except OSError as e:
        write_err = e.errno
        break
try:
    os.close(fd)
except OSError as e:
    close_err = e.errno
print(f"{path}: {written} bytes accepted, write errno {write_err}, close errno {close_err}")
ok = write_err == errno.ENOSPC and close_err == errno.ENOSPC and 0 < written <= (8 << 20)
sys.exit(0 if ok else 1)
)PY";

class StagingEnospcTest : public ::testing::TestWithParam<bool> {};

TEST_P(StagingEnospcTest, WritesBeyondTheStagingAreaFailCleanly) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  const bool advanced = GetParam();
  TempRoot root;
  ASSERT_FALSE(root.dir.empty());
  const std::string r = root.dir;
  for (const char* d : {"mnt", "local"}) fs::create_directories(r + "/" + d);
  const std::string m = r + "/mnt";
  { std::ofstream(r + "/fill.py") << kFillScript; }
  ASSERT_EQ(runScript("cd " + r + " && head -c 1048576 /dev/urandom > local/keep.bin && " +
                      "head -c 300000 /dev/urandom > local/small.bin"),
            0);

  TinyTmpfs staging(kStagingBytes);  // the --cache-dir; destroyed after the mount process
  ASSERT_TRUE(staging.mounted());
  LocalHubProcess hub;
  ASSERT_EQ(std::system(("curl -sf -o /dev/null -X POST " + auth() + " " + hub.url() +
                         "/api/buckets/tester/wb")
                            .c_str()),
            0);
  std::vector<std::string> extra;
  if (advanced) {
    extra = {"--advanced-writes", "--flush-debounce-ms", "100", "--flush-max-batch-window-ms",
             "1000"};
  }
  MountProcess mount(hub.url(), staging.dir(), m, extra);
  ASSERT_TRUE(mount.mounted());
  ASSERT_EQ(runScript("cp " + r + "/local/keep.bin " + m + "/keep.bin"), 0);
  ASSERT_TRUE(hubHas(hub.url(), "keep.bin", r + "/local/keep.bin", 30));
  const uint64_t free_before = staging.freeBytes();

  // A new file larger than the staging area.
  EXPECT_EQ(runScript("python3 " + r + "/fill.py " + m + "/big.bin trunc"), 0);
  EXPECT_FALSE(fs::exists(m + "/big.bin")) << "a never-committed file that lost its bytes";
  // The same with dd: it must say ENOSPC, not EIO.
  EXPECT_EQ(runScript("if dd if=/dev/zero of=" + m + "/dd.bin bs=1M count=64 2> " + r +
                      "/dd.err; then exit 1; fi; cat " + r + "/dd.err; grep -q 'No space left' " +
                      r + "/dd.err"),
            0);
  EXPECT_FALSE(fs::exists(m + "/dd.bin"));
  // A file the hub has: overwritten (streaming) or extended in place (advanced) past the space.
  EXPECT_EQ(
      runScript("python3 " + r + "/fill.py " + m + "/keep.bin " + (advanced ? "rdwr" : "trunc")),
      0);
  EXPECT_EQ(runScript("cmp " + r + "/local/keep.bin " + m + "/keep.bin"), 0)
      << "the file must show the hub's version again";

  // The lost copies' blocks are free again (a little slack for manifests).
  EXPECT_GE(staging.freeBytes() + (256u << 10), free_before);
  // Other files work: a small one lands intact.
  EXPECT_EQ(runScript("cp " + r + "/local/small.bin " + m + "/small.bin && cmp " + r +
                      "/local/small.bin " + m + "/small.bin"),
            0);
  EXPECT_TRUE(hubHas(hub.url(), "small.bin", r + "/local/small.bin", 30));
  // Batches are sent in order: with small.bin on the hub, nothing else is still on its way.
  EXPECT_TRUE(hubLacks(hub.url(), "big.bin"));
  EXPECT_TRUE(hubLacks(hub.url(), "dd.bin"));
  EXPECT_TRUE(hubHas(hub.url(), "keep.bin", r + "/local/keep.bin", 5));
  mount.stop();
}

INSTANTIATE_TEST_SUITE_P(WriteModes, StagingEnospcTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& mode) {
                           return mode.param ? std::string("Advanced") : std::string("Streaming");
                         });

}  // namespace
