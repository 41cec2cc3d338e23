// Real FUSE mounts of the vfs over FakeRemote: shell tools, preads, mmap, concurrency, remote
// changes through the poller, errors, and SIGTERM handling of the hfm-fake-mount helper.
// Every mount is unmounted in TearDown (or by a guard) even when an assertion fails.
#include "hfm/fuse/fuse_mount.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

#include "fake_remote.h"
#include "hfm/vfs/poller.h"
#include "hfm/vfs/vfs.h"

extern char** environ;

namespace hfm {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;
using namespace std::chrono_literals;

constexpr uint64_t kBigSize = 24 * 1024 * 1024 + 4321;

bool fuseAvailable() { return geteuid() == 0 && access("/dev/fuse", R_OK | W_OK) == 0; }

std::string sha256Hex(const uint8_t* data, size_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof(b), "%02x", md[i]);
    hex += b;
  }
  return hex;
}

// Runs a shell command; returns (exit status, stdout).
std::pair<int, std::string> sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool isMounted(const std::string& mp) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f;
    for (int i = 0; i < 5 && fields >> f; ++i) {
    }
    if (f == mp) return true;
  }
  return false;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FuseMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
    char tmpl[] = "/tmp/hfm-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    mp_ = tmpl;
    remote_ = std::make_shared<FakeRemote>();
    big_ = patternBytes(kBigSize, 42);
    remote_->putFile("README.md", "hello\n");
    remote_->putFile("config.json", "{\"a\": 1}\n");
    remote_->putFile("models/big.bin", big_);
    remote_->putFile("models/other.bin", patternBytes(3 * 1024 * 1024, 43));
    remote_->putFile("data/train/part-0.parquet", patternBytes(70000, 44));
    remote_->putFile("data/train/part-1.parquet", patternBytes(80000, 45));

    vfs::VfsConfig vc;
    vc.uid = 0;
    vc.gid = 0;
    vc.metadata_ttl = 1s;
    vc.prefetch.retry_backoff = 5ms;
    vc.prefetch.read_timeout = 5s;
    vfs_ = std::make_unique<vfs::Vfs>(remote_, vc);
    ASSERT_TRUE(vfs_->preloadRoot().ok());

    fuse::FuseConfig fc;
    fc.mountpoint = mp_;
    fc.max_threads = 4;
    fc.entry_timeout = 1s;
    fc.read_ahead_kb = 4096;
    fc.on_ready = [this] { ready_.set_value(); };
    auto m = fuse::FuseMount::mount(*vfs_, fc);
    ASSERT_TRUE(m.ok()) << m.error().message();
    mount_ = std::move(*m);
    serve_ = std::thread([this] {
      served_ = mount_->serve();
      done_ = true;
    });
    ASSERT_EQ(ready_.get_future().wait_for(10s), std::future_status::ready);
    poller_ = std::make_unique<vfs::Poller>(*vfs_, remote_, 200ms);
    poller_->start();
  }

  void TearDown() override {
    if (poller_) poller_->stop();
    if (mount_) {
      mount_->requestStop();
      if (serve_.joinable()) {
        if (!eventually([this] { return done_.load(); }, 15s)) {
          (void)fuse::unmountLazy(mp_);  // last resort; serve() returns once the kernel lets go
        }
        serve_.join();
        EXPECT_TRUE(served_.ok());
      }
      mount_.reset();  // unmounts if serve() never ran
      EXPECT_FALSE(isMounted(mp_));
    }
    mount_.reset();
    vfs_.reset();
    if (!mp_.empty()) ::rmdir(mp_.c_str());
  }

  std::string path(const std::string& rel) const { return mp_ + "/" + rel; }

  std::string mp_;
  std::shared_ptr<FakeRemote> remote_;
  std::vector<uint8_t> big_;
  std::unique_ptr<vfs::Vfs> vfs_;
  std::unique_ptr<fuse::FuseMount> mount_;
  std::unique_ptr<vfs::Poller> poller_;
  std::promise<void> ready_;
  std::thread serve_;
  std::atomic<bool> done_{false};
  Status served_;
};

TEST_F(FuseMountTest, ShellToolsSeeTheTree) {
  auto [find_rc, found] = sh("cd " + mp_ + " && find . -type f | sort");
  ASSERT_EQ(find_rc, 0) << found;
  EXPECT_EQ(found,
            "./README.md\n./config.json\n./data/train/part-0.parquet\n"
            "./data/train/part-1.parquet\n./models/big.bin\n./models/other.bin\n");
  auto [ls_rc, listing] = sh("ls -lR " + mp_);
  ASSERT_EQ(ls_rc, 0) << listing;
  EXPECT_NE(listing.find(std::to_string(kBigSize) + " "), std::string::npos) << listing;
  EXPECT_NE(listing.find("part-1.parquet"), std::string::npos);
  EXPECT_EQ(sh("stat -c '%s %a %F' " + path("README.md")).second, "6 444 regular file\n");
  EXPECT_EQ(sh("stat -c '%a %F' " + path("models")).second, "555 directory\n");
  EXPECT_EQ(sh("cat " + path("README.md")).second, "hello\n");
  auto [sum_rc, sum] = sh("sha256sum " + path("models/big.bin"));
  ASSERT_EQ(sum_rc, 0) << sum;
  EXPECT_EQ(sum.substr(0, 64), sha256Hex(big_.data(), big_.size()));
  auto [df_rc, df] = sh("df -P " + mp_);
  EXPECT_EQ(df_rc, 0) << df;
  EXPECT_EQ(sh("stat " + path("nope.txt")).first, 1);
}

TEST_F(FuseMountTest, RandomPreadsMatchTheSource) {
  int fd = ::open(path("models/big.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::mt19937_64 rng(1234);
  std::vector<uint8_t> buf(256 * 1024);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t off = rng() % (kBigSize + 100);
    const size_t len = 1 + static_cast<size_t>(rng() % buf.size());
    const ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
    const uint64_t want = off >= kBigSize ? 0 : std::min<uint64_t>(len, kBigSize - off);
    ASSERT_EQ(n, static_cast<ssize_t>(want)) << "pread " << len << " at " << off;
    ASSERT_EQ(0, std::memcmp(buf.data(), big_.data() + std::min<uint64_t>(off, kBigSize),
                             static_cast<size_t>(want)))
        << "bytes differ for pread " << len << " at " << off;
  }
  ::close(fd);
}

TEST_F(FuseMountTest, MmapReadsMatchTheSource) {
  int fd = ::open(path("models/big.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, kBigSize, PROT_READ, MAP_PRIVATE, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  const auto* bytes = static_cast<const uint8_t*>(p);
  // Touch pages out of order first (page faults at random offsets), then compare everything.
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200; ++i) {
    const uint64_t off = rng() % kBigSize;
    ASSERT_EQ(bytes[off], big_[off]) << "at " << off;
  }
  EXPECT_EQ(0, std::memcmp(bytes, big_.data(), kBigSize));
  ::munmap(p, kBigSize);
  ::close(fd);
}

TEST_F(FuseMountTest, EightConcurrentReaders) {
  const auto other = remote_->contents("models/other.bin");
  std::atomic<int> mismatches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      const bool use_big = t % 2 == 0;
      const auto& want = use_big ? big_ : other;
      const std::string file = use_big ? "models/big.bin" : "models/other.bin";
      int fd = ::open(path(file).c_str(), O_RDONLY);
      if (fd < 0) {
        mismatches++;
        return;
      }
      std::vector<uint8_t> got;
      std::vector<uint8_t> buf(64 * 1024 + static_cast<size_t>(t) * 4096);
      for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n <= 0) break;
        got.insert(got.end(), buf.begin(), buf.begin() + n);
      }
      ::close(fd);
      if (got != want) mismatches++;
    });
  }
  for (auto& r : readers) r.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(FuseMountTest, RemoteChangesAppearAfterAPoll) {
  ASSERT_EQ(readFile(path("README.md")), "hello\n");
  struct stat st {};
  ASSERT_EQ(::stat(path("config.json").c_str(), &st), 0);
  ASSERT_NE(::stat(path("new.txt").c_str(), &st), 0);  // kernel caches this negative entry
  ASSERT_EQ(readFile(path("data/train/part-0.parquet")).size(), 70000u);

  remote_->putFile("README.md", "hello, changed remotely\n");
  remote_->putFile("new.txt", "brand new\n");
  remote_->putFile("data/train/part-2.parquet", "p2");
  remote_->removeFile("config.json");

  EXPECT_TRUE(eventually([&] {
    return readFile(path("README.md")) == "hello, changed remotely\n";
  })) << readFile(path("README.md"));
  EXPECT_TRUE(eventually([&] { return ::stat(path("new.txt").c_str(), &st) == 0; }));
  EXPECT_EQ(readFile(path("new.txt")), "brand new\n");
  EXPECT_TRUE(eventually([&] {
    errno = 0;
    return ::stat(path("config.json").c_str(), &st) != 0 && errno == ENOENT;
  }));
  int fd = ::open(path("config.json").c_str(), O_RDONLY);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_TRUE(eventually([&] {
    return sh("ls " + path("data/train")).second ==
           "part-0.parquet\npart-1.parquet\npart-2.parquet\n";
  }));
}

TEST_F(FuseMountTest, WritesAreRefusedWithErofs) {
  errno = 0;
  EXPECT_LT(::open(path("x.txt").c_str(), O_WRONLY | O_CREAT, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_LT(::open(path("README.md").c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_NE(::mkdir(path("d").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_NE(::unlink(path("README.md").c_str()), 0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_NE(::rename(path("README.md").c_str(), path("b.md").c_str()), 0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_NE(::truncate(path("README.md").c_str(), 0), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(readFile(path("README.md")), "hello\n");
}

TEST_F(FuseMountTest, RemoteFailureGivesEioAndTheMountRecovers) {
  int fd = ::open(path("models/other.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  remote_->failAlways(FakeRemote::kRead, EIO);
  std::vector<uint8_t> buf(128 * 1024);
  errno = 0;
  EXPECT_LT(::pread(fd, buf.data(), buf.size(), 1024 * 1024), 0);
  EXPECT_EQ(errno, EIO);
  // The mount itself stays alive: metadata still works.
  EXPECT_EQ(sh("ls " + path("models")).second, "big.bin\nother.bin\n");
  remote_->clearFaults();
  const auto want = remote_->contents("models/other.bin");
  const ssize_t n = ::pread(fd, buf.data(), buf.size(), 1024 * 1024);
  ASSERT_EQ(n, static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(0, std::memcmp(buf.data(), want.data() + 1024 * 1024, buf.size()));
  ::close(fd);
}

TEST_F(FuseMountTest, BdiReadAheadIsRaised) {
  ASSERT_TRUE(eventually([&] { return mount_->deviceId().has_value(); }, 5s));
  const std::string ra = readFile("/sys/class/bdi/" + *mount_->deviceId() + "/read_ahead_kb");
  EXPECT_EQ(ra, "4096\n");
}

TEST_F(FuseMountTest, KernelForgetsDropLookupCounts) {
  struct stat st {};
  ASSERT_EQ(::stat(path("models/other.bin").c_str(), &st), 0);
  auto ino = vfs_->inodeForPath("models/other.bin");
  ASSERT_TRUE(ino.has_value());
  EXPECT_EQ(st.st_ino, *ino);
  EXPECT_GE(vfs_->lookupCount(*ino), 1u);
  // Ask the kernel to drop unused dentries and inodes: it sends FORGET for ours.
  EXPECT_TRUE(eventually([&] {
    std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
    return vfs_->lookupCount(*ino) == 0;
  }));
  // `ls -lR` (READDIRPLUS hands out references too) and then dropping caches: every
  // reference the kernel got comes back.
  ASSERT_EQ(sh("ls -lR " + mp_ + " > /dev/null").first, 0);
  std::vector<vfs::InodeId> all;
  for (const char* p : {"README.md", "config.json", "models", "models/big.bin", "data",
                        "data/train", "data/train/part-0.parquet"}) {
    auto id = vfs_->inodeForPath(p);
    ASSERT_TRUE(id.has_value()) << p;
    all.push_back(*id);
  }
  EXPECT_TRUE(eventually([&] {
    std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
    for (auto id : all) {
      if (vfs_->lookupCount(id) != 0) return false;
    }
    return true;
  }));
  // Same inode number when looked up again.
  ASSERT_EQ(::stat(path("models/other.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, *ino);
}

// The helper process: SIGTERM must unmount cleanly and exit 0.
TEST(FakeMountProcessTest, SigtermUnmountsCleanly) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  char tmpl[] = "/tmp/hfm-it-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string mp = tmpl;
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::vector<std::string> args = {HFM_FAKE_MOUNT_BIN,     mp,       "--text",
                                   "hello.txt=hi there\n", "--file", "dir/blob.bin:1000000:3",
                                   "--max-threads",        "2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  struct Guard {
    pid_t pid;
    std::string mp;
    int fd;
    ~Guard() {
      if (isMounted(mp)) (void)fuse::unmountLazy(mp);
      if (pid > 0 && ::kill(pid, 0) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
      ::close(fd);
      ::rmdir(mp.c_str());
    }
  } guard{pid, mp, out[0]};

  std::string line;
  pollfd pfd{out[0], POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (line.find("READY\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    if (::poll(&pfd, 1, 200) > 0) {
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
  }
  ASSERT_NE(line.find("READY\n"), std::string::npos) << "helper output: " << line;
  EXPECT_EQ(readFile(mp + "/hello.txt"), "hi there\n");
  const auto blob = patternBytes(1000000, 3);
  EXPECT_EQ(readFile(mp + "/dir/blob.bin"), std::string(blob.begin(), blob.end()));
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 150 && done == 0; ++i) {
    done = ::waitpid(pid, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(done, pid) << "helper did not exit within 15 s of SIGTERM";
  guard.pid = 0;
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(isMounted(mp));
}

}  // namespace
}  // namespace hfm
