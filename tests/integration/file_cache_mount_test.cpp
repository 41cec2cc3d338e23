// --cache-mode file through a real mount: hf-mount-fuse over hf-local-hub. A read-only mount
// serves a file from its whole-file copy once made (with FUSE passthrough where the kernel
// offers it), keeps serving it with the hub down, and never serves an old copy to a new open
// after a remote change. Needs root and /dev/fuse, else skips.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bucket_mount_process.h"
#include "local_hub_process.h"
#include "run_script.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using hfm::testing::BucketMountProcess;
using hfm::testing::fuseAvailable;
using hfm::testing::LocalHubProcess;
using hfm::testing::runScript;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits (at most `secs`) until `pred` holds.
template <typename Pred>
bool eventually(int secs, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(secs);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

// The whole-file copies under <cache>/files of exactly `size` bytes.
int copiesOfSize(const std::string& cache, uintmax_t size) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(cache + "/files", ec)) {
    if (e.is_regular_file(ec) && e.path().parent_path().filename() != ".tmp" &&
        e.file_size(ec) == size) {
      n++;
    }
  }
  return n;
}

bool createBucket(const LocalHubProcess& hub) {
  return runScript("curl -sf -o /dev/null -X POST -H 'Authorization: Bearer " +
                   std::string(LocalHubProcess::kToken) + "' " + hub.url() +
                   "/api/buckets/tester/wb") == 0;
}

// Copies the local file `src` to `name` in the bucket through a writable mount at `mnt` (its
// cache in `cache`); true once that mount committed it and stopped.
bool writeThroughAMount(const LocalHubProcess& hub, const std::string& cache,
                        const std::string& mnt, const std::string& src, const std::string& name) {
  BucketMountProcess writer(HFM_BINARY_DIR, hub.url(), cache, mnt);
  if (!writer.mounted()) return false;
  const bool copied = runScript("cp " + src + " " + mnt + "/" + name) == 0;
  writer.stop();
  return copied;
}

TEST(FileCacheMountTest, ReadOnlyMountServesCopiesAndNeverAnOldOneAfterAChange) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  hfm::testing::TempDir root("hfm-fc");
  const std::string r = root.path().string();
  for (const char* d : {"mnt", "wmnt", "cache-w", "cache"}) fs::create_directories(r + "/" + d);
  const std::string m = r + "/mnt";
  const std::string w = r + "/wmnt";
  const std::string cache = r + "/cache";
  const std::string log = r + "/mount.log";
  constexpr uintmax_t kV1 = 24u << 20;
  constexpr uintmax_t kV2 = 16u << 20;

  LocalHubProcess hub;
  ASSERT_TRUE(createBucket(hub));
  ASSERT_EQ(runScript("head -c " + std::to_string(kV1) + " /dev/urandom > " + r +
                      "/v1 && head -c " + std::to_string(kV2) + " /dev/urandom > " + r + "/v2"),
            0);
  ASSERT_TRUE(writeThroughAMount(hub, r + "/cache-w", w, r + "/v1", "model.bin"));

  BucketMountProcess reader(HFM_BINARY_DIR, hub.url(), cache, m,
                            {"--read-only", "--cache-mode", "file", "--poll-interval-secs", "1"},
                            log);
  ASSERT_TRUE(reader.mounted()) << slurp(log);
  const std::string file = m + "/model.bin";
  // First open: read over the network while the copy is made in the background.
  ASSERT_EQ(runScript("cmp " + r + "/v1 " + file), 0);
  ASSERT_TRUE(eventually(60, [&] { return copiesOfSize(cache, kV1) == 1; })) << slurp(log);
  // Later opens read the copy: plain reads and mmap.
  ASSERT_EQ(runScript("cmp " + r + "/v1 " + file +
                      " && python3 -c \"import mmap,sys\n"
                      "a=open(sys.argv[1],'rb'); b=open(sys.argv[2],'rb')\n"
                      "ma=mmap.mmap(a.fileno(),0,prot=mmap.PROT_READ)\n"
                      "mb=mmap.mmap(b.fileno(),0,prot=mmap.PROT_READ)\n"
                      "sys.exit(0 if ma[:]==mb[:] else 1)\" " +
                      file + " " + r + "/v1"),
            0);
  const bool passthrough = slurp(log).find("FUSE passthrough on") != std::string::npos;
  if (passthrough) {
    EXPECT_NE(slurp(log).find(": passthrough (backing"), std::string::npos) << slurp(log);
  } else {
    std::printf("note: this kernel offers no FUSE passthrough; copies are read by hf-mount\n");
  }

  // A remote change while an open handle reads the old copy.
  const int held = ::open(file.c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ASSERT_TRUE(writeThroughAMount(hub, r + "/cache-w", w, r + "/v2", "model.bin"));
  ASSERT_TRUE(eventually(30, [&] {
    struct stat st {};
    return ::stat(file.c_str(), &st) == 0 && static_cast<uintmax_t>(st.st_size) == kV2;
  })) << "the poller never saw the new version";
  if (passthrough) {
    // The kernel would serve the held handle's copy to a new open: refused instead.
    const int again = ::open(file.c_str(), O_RDONLY);
    EXPECT_EQ(again, -1);
    EXPECT_EQ(errno, EBUSY);
    if (again >= 0) ::close(again);
  }
  // The held handle keeps reading the version it opened.
  std::vector<char> head(4096);
  ASSERT_EQ(::pread(held, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  std::vector<char> expect(4096);
  {
    std::ifstream v1(r + "/v1", std::ios::binary);
    v1.read(expect.data(), static_cast<std::streamsize>(expect.size()));
  }
  EXPECT_EQ(head, expect);
  ::close(held);
  // Once it is closed, new opens read the new version (over the network, then from its copy).
  ASSERT_TRUE(eventually(10, [&] { return runScript("cmp " + r + "/v2 " + file) == 0; }))
      << slurp(log);
  ASSERT_TRUE(eventually(60, [&] { return copiesOfSize(cache, kV2) == 1; })) << slurp(log);

  // With the hub gone, the copy still serves the file.
  hub.stop();
  EXPECT_EQ(runScript("cmp " + r + "/v2 " + file), 0) << slurp(log);
  reader.stop();
}

TEST(FileCacheMountTest, WithoutPassthroughTheCopyIsReadThroughTheMount) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  hfm::testing::TempDir root("hfm-fc");
  const std::string r = root.path().string();
  for (const char* d : {"mnt", "cache-w", "cache"}) fs::create_directories(r + "/" + d);
  const std::string m = r + "/mnt";
  const std::string log = r + "/mount.log";
  constexpr uintmax_t kSize = 6u << 20;
  LocalHubProcess hub;
  ASSERT_TRUE(createBucket(hub));
  ASSERT_EQ(runScript("head -c " + std::to_string(kSize) + " /dev/urandom > " + r + "/src"), 0);
  ASSERT_TRUE(writeThroughAMount(hub, r + "/cache-w", m, r + "/src", "f.bin"));
  BucketMountProcess reader(HFM_BINARY_DIR, hub.url(), r + "/cache", m,
                            {"--read-only", "--cache-mode", "file", "--no-fuse-passthrough"}, log);
  ASSERT_TRUE(reader.mounted()) << slurp(log);
  ASSERT_EQ(runScript("cmp " + r + "/src " + m + "/f.bin"), 0);
  ASSERT_TRUE(eventually(60, [&] { return copiesOfSize(r + "/cache", kSize) == 1; })) << slurp(log);
  hub.stop();
  EXPECT_EQ(runScript("cmp " + r + "/src " + m + "/f.bin"), 0)
      << slurp(log);  // only the copy has it
  reader.stop();
  EXPECT_EQ(slurp(log).find("passthrough"), std::string::npos) << slurp(log);
}

}  // namespace
