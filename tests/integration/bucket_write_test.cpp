// Real end-to-end bucket writes: the real hf-mount-fuse over the real hf-local-hub. Shell tools
// write files of 0 B, 1 B and 10 MiB (cp, redirect, dd), mkdir -p, mv (file and directory) and rm;
// a fresh read-only mount with an empty cache then proves the bytes reached the Hub intact.
// --advanced-writes: random-offset writes against a local model, append, sqlite3 and git inside
// the mount, checked against the hub's bytes. Durability: the hub down during close (close
// returns 0, the file arrives when the hub is back) and kill -9 right after close (the next
// start commits it). Needs root and /dev/fuse (skips otherwise). Every process and mount is
// stopped even on failure. Dedup: an in-place edit of 1 % of another client's 20 MiB file
// grows the hub (global dedup off) by < 5 % of it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bucket_mount_process.h"
#include "local_hub_process.h"
#include "run_script.h"

namespace {

namespace fs = std::filesystem;
using hfm::testing::BucketMountProcess;
using hfm::testing::fuseAvailable;
using hfm::testing::LocalHubProcess;
using hfm::testing::runScript;

// Runs `script` with bash -e from a temporary file (any quoting allowed), at most 300 s.
int run(const std::string& script) { return runScript(script, 300); }

// A mount of tester/wb by this build's hf-mount-fuse; `read_only` adds --read-only.
class MountProcess : public BucketMountProcess {
 public:
  MountProcess(const std::string& hub_url, const std::string& cache, const std::string& mnt,
               bool read_only, std::vector<std::string> extra = {})
      : BucketMountProcess(HFM_BINARY_DIR, hub_url, cache, mnt,
                           read_only ? withReadOnly(std::move(extra)) : std::move(extra)) {}

 private:
  static std::vector<std::string> withReadOnly(std::vector<std::string> extra) {
    extra.insert(extra.begin(), "--read-only");
    return extra;
  }
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
  ASSERT_EQ(runScript("cd " + root +
                      " && head -c 10485760 /dev/urandom > big && printf x > one && : > zero"),
            0);
  {
    MountProcess writer(hub.url(), root + "/cache1", mnt, false);
    ASSERT_TRUE(writer.mounted());
    const std::string& m = mnt;
    EXPECT_EQ(
        runScript("cd " + root + " && cp zero " + m + "/zero && cp one " + m + "/one && cp big " +
                  m + "/big && echo hello > " + m + "/redir.txt && dd if=big of=" + m +
                  "/dd.bin bs=1M status=none && mkdir -p " + m + "/a/b/c && cp one " + m +
                  "/a/b/c/f && mv " + m + "/one " + m + "/a/moved && mv " + m + "/a/b " + m +
                  "/a/b2 && cp one " + m + "/gone && rm " + m + "/gone"),
        0);
    // Streaming rules seen through the kernel: appends are refused.
    EXPECT_NE(runScript("echo more >> " + m + "/redir.txt"), 0);
    writer.stop();
  }
  // A fresh read-only mount with an empty cache reads what the Hub has.
  MountProcess reader(hub.url(), root + "/cache2", mnt, true);
  ASSERT_TRUE(reader.mounted());
  const std::string& m = mnt;
  EXPECT_EQ(
      runScript("cd " + root + " && cmp big " + m + "/big && cmp big " + m + "/dd.bin && cmp one " +
                m + "/a/moved && cmp one " + m + "/a/b2/c/f && cmp zero " + m +
                "/zero && test \"$(cat " + m + "/redir.txt)\" = hello"),
      0);
  EXPECT_FALSE(fs::exists(m + "/one"));
  EXPECT_FALSE(fs::exists(m + "/gone"));
  EXPECT_FALSE(fs::exists(m + "/a/b"));
  reader.stop();
}

// hf-local-hub on a fixed loopback port and data directory, so it can be stopped and started
// again at the same URL (the mount keeps its endpoint). The destructor always stops it.
class FixedPortHub {
 public:
  explicit FixedPortHub(std::string data) : data_(std::move(data)) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    if (fd >= 0) close(fd);
    url_ = "http://127.0.0.1:" + std::to_string(port_);
  }
  ~FixedPortHub() { stop(); }
  FixedPortHub(const FixedPortHub&) = delete;
  FixedPortHub& operator=(const FixedPortHub&) = delete;

  const std::string& url() const { return url_; }

  bool start() {
    pid_ = fork();
    if (pid_ == 0) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      dup2(devnull, STDOUT_FILENO);
      std::vector<std::string> args = {
          LocalHubProcess::binary(),
          "serve",
          "--data",
          data_,
          "--port",
          std::to_string(port_),
          "--host",
          "127.0.0.1",
          "--token",
          std::string(LocalHubProcess::kUser) + ":" + LocalHubProcess::kToken};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (run("curl -s -o /dev/null " + url_ + "/api/whoami-v2") == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string data_;
  uint16_t port_ = 0;
  std::string url_;
  pid_t pid_ = -1;
};

std::string auth() {
  return std::string("-H 'Authorization: Bearer ") + LocalHubProcess::kToken + "'";
}

bool createBucket(const std::string& hub_url) {
  return std::system(
             ("curl -sf -o /dev/null -X POST " + auth() + " " + hub_url + "/api/buckets/tester/wb")
                 .c_str()) == 0;
}

// Polls the hub until its copy of `path` equals the local file `expected` (at most `secs`).
bool hubHas(const std::string& hub_url, const std::string& path, const std::string& expected,
            int secs) {
  return run("for i in $(seq 1 " + std::to_string(secs * 5) + "); do curl -sf " + auth() + " -o " +
             expected + ".hub " + hub_url + "/buckets/tester/wb/resolve/" + path + " && cmp -s " +
             expected + ".hub " + expected + " && exit 0; sleep 0.2; done; exit 1") == 0;
}

struct TempRoot {
  std::string dir;
  TempRoot() {
    char tmpl[] = "/tmp/hfm-bw-XXXXXX";
    dir = mkdtemp(tmpl) != nullptr ? tmpl : "";
  }
  ~TempRoot() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

const std::vector<std::string> kAdvanced = {"--advanced-writes", "--flush-debounce-ms", "100",
                                            "--flush-max-batch-window-ms", "1000"};

// A fresh hub with the bucket tester/wb mounted with kAdvanced at <root>/mnt (cache in
// <root>/cache; <root>/local is for the test's reference copies). Declared in teardown order:
// the mount stops first, then the hub, then the directory goes.
struct AdvancedWritesMount {
  TempRoot root;
  std::string mnt;
  LocalHubProcess hub;
  std::optional<MountProcess> writer;

  // True once the bucket exists and the mount is up.
  bool start() {
    if (root.dir.empty()) return false;
    for (const char* d : {"mnt", "cache", "local"}) fs::create_directories(root.dir + "/" + d);
    mnt = root.dir + "/mnt";
    if (!createBucket(hub.url())) return false;
    writer.emplace(hub.url(), root.dir + "/cache", mnt, false, kAdvanced);
    return writer->mounted();
  }
};

TEST(BucketWriteTest, AdvancedWritesRandomOffsetsAppendSqliteAndGit) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  AdvancedWritesMount mount;
  ASSERT_TRUE(mount.start());
  const std::string& r = mount.root.dir;
  const std::string& m = mount.mnt;
  const LocalHubProcess& hub = mount.hub;

  // Random-offset writes (fixed seed) into the mount and into a local model file.
  const std::string py =
      "import os, random\n"
      "random.seed(1234)\n"
      "paths = ['" +
      m + "/rand.bin', '" + r +
      "/local/rand.bin']\n"
      "base = os.urandom(3 << 20)\n"
      "for p in paths:\n"
      "    open(p, 'wb').write(base)\n"
      "fds = [os.open(p, os.O_RDWR) for p in paths]\n"
      "for i in range(300):\n"
      "    off = random.randrange(0, (3 << 20) + 65536)\n"
      "    data = random.randbytes(random.randrange(1, 70000))\n"
      "    for fd in fds: os.pwrite(fd, data, off)\n"
      "    if i % 50 == 0:\n"
      "        for fd in fds: os.fsync(fd)\n"
      "    if i % 97 == 0:\n"
      "        size = random.randrange(1 << 20, 3 << 20)\n"
      "        for fd in fds: os.ftruncate(fd, size)\n"
      "for fd in fds: os.close(fd)\n";
  { std::ofstream(r + "/rand.py") << py; }
  EXPECT_EQ(run("python3 " + r + "/rand.py && cmp " + m + "/rand.bin " + r + "/local/rand.bin"), 0);
  // Append (>> opens with O_APPEND, no O_TRUNC).
  EXPECT_EQ(run("cd " + r +
                " && printf abc > mnt/app.txt && printf def >> mnt/app.txt && "
                "printf abcdef > local/app.txt && cmp mnt/app.txt local/app.txt"),
            0);
  // sqlite3: create, then update in a second process; the mount and the hub copy agree.
  const std::string sqlite_script = R"SQL(
sqlite3 db.sqlite 'create table t(x integer, y text);' "insert into t values (1, 'one'), (2, 'two');"
sqlite3 db.sqlite "update t set y = 'deux' where x = 2;" "insert into t values (3, 'three');"
test "$(sqlite3 db.sqlite 'select group_concat(y) from (select y from t order by x);')" = one,deux,three
test "$(sqlite3 db.sqlite 'pragma integrity_check;')" = ok
)SQL";
  EXPECT_EQ(run("cd " + m + "\n" + sqlite_script), 0);
  // git inside the mount (lock files renamed over, objects written and chmod'ed).
  EXPECT_EQ(run("mkdir -p " + m + "/repo && cd " + m + "/repo && echo hello > README && " +
                "git init -q && git add README && git -c user.name=t -c user.email=t@e.x " +
                "commit -qm first && echo more >> README && git -c user.name=t " +
                "-c user.email=t@e.x commit -qam second && test $(git rev-list --count HEAD) = "
                "2 && git fsck --no-progress 2>&1 | (! grep -i error)"),
            0);

  // Everything reaches the hub (debounced batches): compare the hub's bytes.
  EXPECT_TRUE(hubHas(hub.url(), "rand.bin", r + "/local/rand.bin", 60));
  EXPECT_TRUE(hubHas(hub.url(), "app.txt", r + "/local/app.txt", 60));
  ASSERT_EQ(run("cp " + m + "/db.sqlite " + r + "/local/db.sqlite && cp " + m + "/repo/.git/HEAD " +
                r + "/local/HEAD && cp " + m + "/repo/README " + r + "/local/README"),
            0);
  EXPECT_TRUE(hubHas(hub.url(), "db.sqlite", r + "/local/db.sqlite", 60));
  EXPECT_TRUE(hubHas(hub.url(), "repo/.git/HEAD", r + "/local/HEAD", 60));
  EXPECT_TRUE(hubHas(hub.url(), "repo/README", r + "/local/README", 60));
  EXPECT_EQ(run("test \"$(sqlite3 " + r + "/local/db.sqlite.hub 'select count(*) from t;')\" = 3"),
            0);
  mount.writer->stop();
}

TEST(BucketWriteTest, HubDownDuringCloseTheFileArrivesWhenItIsBack) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  TempRoot root;
  ASSERT_FALSE(root.dir.empty());
  const std::string r = root.dir;
  for (const char* d : {"mnt", "cache", "hubdata"}) fs::create_directories(r + "/" + d);
  const std::string m = r + "/mnt";
  FixedPortHub hub(r + "/hubdata");
  ASSERT_TRUE(hub.start());
  ASSERT_TRUE(createBucket(hub.url()));
  MountProcess writer(hub.url(), r + "/cache", m, false);
  ASSERT_TRUE(writer.mounted());
  ASSERT_EQ(run("head -c 3000000 /dev/urandom > " + r + "/payload"), 0);
  hub.stop();
  // close() returns 0: the bytes are safe in the cache dir and the commit is retried.
  EXPECT_EQ(run("cp " + r + "/payload " + m + "/late.bin"), 0);
  EXPECT_EQ(run("cmp " + r + "/payload " + m + "/late.bin"), 0);  // readable while pending
  EXPECT_EQ(run("ls " + r + "/cache/pending/*/*.manifest >/dev/null"), 0);
  ASSERT_TRUE(hub.start());
  EXPECT_TRUE(hubHas(hub.url(), "late.bin", r + "/payload", 120));
  writer.stop();
}

TEST(BucketWriteTest, KillNineRightAfterCloseThenRestartCommitsTheFile) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  // The backends commit what an earlier run left only once they call Vfs::recoverPending().
  if (run(std::string("grep -rq 'recoverPending()' ") + HFM_SOURCE_DIR + "/src/bin " +
          HFM_SOURCE_DIR + "/src/mount") != 0) {
    GTEST_SKIP() << "hf-mount-fuse does not call Vfs::recoverPending() yet";
  }
  TempRoot root;
  ASSERT_FALSE(root.dir.empty());
  const std::string r = root.dir;
  for (const char* d : {"mnt", "cache"}) fs::create_directories(r + "/" + d);
  const std::string m = r + "/mnt";
  LocalHubProcess hub;
  ASSERT_TRUE(createBucket(hub.url()));
  ASSERT_EQ(run("head -c 5000000 /dev/urandom > " + r + "/payload"), 0);
  {
    // A long debounce: when close() returns the file is only on local disk.
    MountProcess writer(hub.url(), r + "/cache", m, false,
                        {"--advanced-writes", "--flush-debounce-ms", "600000",
                         "--flush-max-batch-window-ms", "600000"});
    ASSERT_TRUE(writer.mounted());
    EXPECT_EQ(run("cp " + r + "/payload " + m + "/crash.bin"), 0);
    writer.kill9();
  }
  EXPECT_FALSE(hubHas(hub.url(), "crash.bin", r + "/payload", 1));
  MountProcess again(hub.url(), r + "/cache", m, false);
  ASSERT_TRUE(again.mounted());
  EXPECT_TRUE(hubHas(hub.url(), "crash.bin", r + "/payload", 60));
  again.stop();
}

TEST(BucketWriteTest, AdvancedFileAppendedWithoutPauseReachesTheHubBeforeTheWriterStops) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  AdvancedWritesMount mount;
  ASSERT_TRUE(mount.start());
  const std::string& r = mount.root.dir;
  const std::string& m = mount.mnt;
  const LocalHubProcess& hub = mount.hub;
  // 8 MB of history, then a line appended every 50 ms for ~6 s: every upload overlaps appends.
  // The hub must show a version while the writer is still running (without consistent
  // snapshots every commit attempt meets a changed file and none lands before the end).
  const std::string script = "head -c 8000000 /dev/urandom > " + m + "/train.log\n" +
                             "( for i in $(seq 1 120); do echo step $i >> " + m +
                             "/train.log; sleep 0.05; done; touch " + r + "/stopped ) &\n" +
                             "for i in $(seq 1 200); do\n"
                             "  test -e " +
                             r + "/stopped && exit 1\n" + "  curl -sf -o /dev/null -I " + auth() +
                             " " + hub.url() +
                             "/buckets/tester/wb/resolve/train.log && { wait; exit 0; }\n" +
                             "  sleep 0.05\n"
                             "done\n"
                             "exit 1\n";
  EXPECT_EQ(run(script), 0) << "the hub showed no version before the writer stopped";
  ASSERT_EQ(
      run("for i in $(seq 1 100); do test -e " + r + "/stopped && break; sleep 0.1; done; cp " + m +
          "/train.log " + r + "/local/train.log"),
      0);
  EXPECT_TRUE(hubHas(hub.url(), "train.log", r + "/local/train.log", 60));
  mount.writer->stop();
}

// Dedup from reconstructions: another client uploads a 20 MiB file; a --advanced-writes mount
// edits 1 % of it in place (python r+b). The hub answers no global-dedup query, so only the
// mount's learning of the version it downloaded can keep the upload to the changed chunks.
TEST(BucketWriteTest, InPlaceEditOfAnotherClientsFileUploadsOnlyTheChangedChunks) {
  if (!fuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
  constexpr uint64_t kSize = 20u << 20;
  TempRoot root;
  ASSERT_FALSE(root.dir.empty());
  const std::string& r = root.dir;
  for (const char* d : {"mnt", "cache-other", "cache-editor", "local"}) {
    fs::create_directories(r + "/" + d);
  }
  const std::string m = r + "/mnt";
  const std::string model = r + "/local/ckpt.bin";
  LocalHubProcess hub({"--no-global-dedup"});
  ASSERT_TRUE(createBucket(hub.url()));
  ASSERT_EQ(run("head -c " + std::to_string(kSize) + " /dev/urandom > " + model), 0);
  {
    MountProcess other(hub.url(), r + "/cache-other", m, false);
    ASSERT_TRUE(other.mounted());
    ASSERT_EQ(run("cp " + model + " " + m + "/ckpt.bin"), 0);
    other.stop();
  }
  ASSERT_TRUE(hubHas(hub.url(), "ckpt.bin", model, 60));
  const uint64_t before = hub.storedXorbBytes();

  MountProcess editor(hub.url(), r + "/cache-editor", m, false, kAdvanced);
  ASSERT_TRUE(editor.mounted());
  const std::string py =
      "import os\n"
      "patch = os.urandom(" +
      std::to_string(kSize / 100) +
      ")\n"
      "for p in ['" +
      m + "/ckpt.bin', '" + model +
      "']:\n"
      "    with open(p, 'r+b') as f:\n"
      "        f.seek(" +
      std::to_string(kSize / 2) +
      ")\n"
      "        f.write(patch)\n";
  { std::ofstream(r + "/edit.py") << py; }
  ASSERT_EQ(run("python3 " + r + "/edit.py && cmp " + m + "/ckpt.bin " + model), 0);
  EXPECT_TRUE(hubHas(hub.url(), "ckpt.bin", model, 60));
  editor.stop();
  const uint64_t growth = hub.storedXorbBytes() - before;
  std::printf("in-place edit of %llu of %llu bytes: the hub stored %llu new bytes\n",
              static_cast<unsigned long long>(kSize / 100), static_cast<unsigned long long>(kSize),
              static_cast<unsigned long long>(growth));
  EXPECT_LT(growth, kSize / 20);
  EXPECT_GE(growth, kSize / 100);                        // the changed bytes themselves are new
  EXPECT_TRUE(hubHas(hub.url(), "ckpt.bin", model, 5));  // unchanged by the unmount
}

}  // namespace
