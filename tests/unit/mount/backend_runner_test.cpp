// runBackend with a fake Frontend (no kernel): exit codes and the readiness pipe on start-up
// failures, and, against a real hf-local-hub, the shutdown order: on SIGTERM every closed file
// is committed while the frontend still serves, then the frontend is stopped, the control
// socket answers meanwhile and is removed at exit.
#include "hfm/mount/backend_runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "hfm/app/control.h"
#include "hfm/util/log.h"
#include "local_hub_process.h"
#include "temp_dir.h"

namespace hfm::mount {
namespace {
namespace fs = std::filesystem;
using hfm::testing::LocalHubProcess;

using TempDir = hfm::testing::TempDir;

// What the fake saw, for the assertions.
struct FrontendLog {
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  std::atomic<int64_t> dirty_at_stop{-1};
  std::atomic<int64_t> committed_at_stop{-1};
};

// Mounts nothing; on start() it writes `file` through the Vfs like a kernel would (create,
// write, flush, release), so the file is closed and waits for its (debounced) commit.
class FakeFrontend final : public Frontend {
 public:
  explicit FakeFrontend(FrontendLog& log) : log_(log) {}

  Status start(vfs::Vfs& vfs, const MountContext&, const std::string&) override {
    ++log_.starts;
    vfs_ = &vfs;
    auto created = vfs.create(vfs::kRootInode, "runner.txt", O_WRONLY | O_CREAT | O_TRUNC);
    if (!created) return created.error();
    const std::string text = "written before SIGTERM\n";
    const uint64_t fh = created->open.fh;
    auto wrote =
        vfs.write(fh, 0, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
    if (!wrote) return wrote.error();
    if (auto st = vfs.flush(fh); !st) return st;
    vfs.release(fh);
    return okStatus();
  }
  std::optional<std::string> gone() override { return std::nullopt; }
  Status stop() override {
    ++log_.stops;
    const auto stats = vfs_->writeStats();
    log_.dirty_at_stop = static_cast<int64_t>(stats.dirty_files);
    log_.committed_at_stop = static_cast<int64_t>(stats.committed_files);
    return okStatus();
  }

 private:
  FrontendLog& log_;
  vfs::Vfs* vfs_ = nullptr;
};

BackendSpec fakeSpec(FrontendLog& log) {
  BackendSpec spec;
  spec.program = "hf-mount-test";
  spec.version = "0.0.0";
  spec.about = "test backend";
  spec.backend = app::Backend::kFuse;
  spec.backend_name = "fake";
  spec.make_frontend = [&log](const app::MountOptions&, const app::MountSource&) {
    return std::make_unique<FakeFrontend>(log);
  };
  return spec;
}

int runWith(std::vector<std::string> args, const BackendSpec& spec) {
  spdlog::drop("hf-mount");  // runBackend registers the logger again
  args.insert(args.begin(), "hf-mount-test");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return runBackend(static_cast<int>(args.size()), argv.data(), spec);
}

// A readiness pipe as `hf-mount start` passes it; returns the read end.
int exportReadinessPipe() {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  ::setenv("HF_MOUNT_DAEMON_FD", std::to_string(fds[1]).c_str(), 1);
  return fds[0];
}

std::string readReadiness(int fd) {
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Restores the signal mask runBackend changes in the calling thread.
class SignalMaskGuard {
 public:
  SignalMaskGuard() { pthread_sigmask(SIG_SETMASK, nullptr, &saved_); }
  ~SignalMaskGuard() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

 private:
  sigset_t saved_{};
};

TEST(BackendRunnerTest, UsageErrorsExitWith2AndReportThroughThePipe) {
  SignalMaskGuard mask;
  FrontendLog log;
  const int ready = exportReadinessPipe();
  EXPECT_EQ(runWith({"--no-such-flag", "bucket", "a/b", "/tmp/x"}, fakeSpec(log)), 2);
  EXPECT_EQ(readReadiness(ready).substr(0, 1), "E");
  const int ready2 = exportReadinessPipe();
  EXPECT_EQ(runWith({"--hub-endpoint", "ftp://x", "bucket", "a/b", "/tmp/x"}, fakeSpec(log)), 2);
  EXPECT_NE(readReadiness(ready2).find("--hub-endpoint must start with http"), std::string::npos);
  EXPECT_EQ(runWith({"--version"}, fakeSpec(log)), 0);
  EXPECT_EQ(log.starts.load(), 0);
}

TEST(BackendRunnerTest, UnreachableHubFailsBeforeAnyFrontendStarts) {
  SignalMaskGuard mask;
  FrontendLog log;
  TempDir dir;
  const int ready = exportReadinessPipe();
  // Port 9 (discard) on loopback: nothing listens there in the test environment.
  const int code =
      runWith({"--hub-endpoint", "http://127.0.0.1:9", "--cache-dir",
               (dir.path() / "cache").string(), "bucket", "a/b", (dir.path() / "mnt").string()},
              fakeSpec(log));
  EXPECT_EQ(code, 1);
  const std::string reason = readReadiness(ready);
  EXPECT_EQ(reason.substr(0, 1), "E");
  EXPECT_NE(reason.find("127.0.0.1:9"), std::string::npos) << reason;
  EXPECT_EQ(log.starts.load(), 0);
}

TEST(BackendRunnerTest, SigtermCommitsClosedFilesBeforeTheFrontendStops) {
  SignalMaskGuard mask;
  LocalHubProcess hub;
  const std::string auth =
      "-H 'Authorization: Bearer " + std::string(LocalHubProcess::kToken) + "'";
  ASSERT_EQ(std::system(("curl -sf -o /dev/null -X POST " + auth + " " + hub.url() +
                         "/api/buckets/tester/runner")
                            .c_str()),
            0);
  TempDir dir;
  const fs::path socket = dir.path() / "c.sock";
  const int ready = exportReadinessPipe();
  ::setenv("HF_MOUNT_CONTROL_SOCKET", socket.c_str(), 1);
  FrontendLog log;
  const BackendSpec spec = fakeSpec(log);
  std::atomic<int> code{-1};
  std::thread runner([&] {
    code =
        runWith({"--hf-token", LocalHubProcess::kToken, "--hub-endpoint", hub.url(), "--cache-dir",
                 (dir.path() / "cache").string(), "--poll-interval-secs", "0", "--advanced-writes",
                 "--flush-debounce-ms", "600000", "--flush-max-batch-window-ms", "600000", "bucket",
                 "tester/runner", (dir.path() / "mnt").string()},
                spec);
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) {
        // The runner under test stops on SIGTERM: that is what is being tested, not a kill.
        pthread_kill(t.native_handle(), SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
        t.join();
      }
    }
  } joiner{runner};

  ASSERT_EQ(readReadiness(ready), "R");
  EXPECT_EQ(log.starts.load(), 1);
  auto report = app::queryBackend(socket, std::chrono::milliseconds(2000));
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->state, "serving");
  EXPECT_EQ(report->backend, "fake");
  EXPECT_EQ(report->source, "bucket tester/runner");
  EXPECT_EQ(report->dirty_files, 1U);
  EXPECT_EQ(report->pending_commits, 1U);
  EXPECT_EQ(report->pending_bytes, 23U);
  EXPECT_EQ(report->committed_files, 0U);
  EXPECT_TRUE(report->cache_limit_bytes.has_value());

  pthread_kill(runner.native_handle(), SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
  runner.join();
  EXPECT_EQ(code.load(), 0);
  EXPECT_EQ(log.stops.load(), 1);
  EXPECT_EQ(log.dirty_at_stop.load(), 0) << "the frontend was stopped before the flush";
  EXPECT_EQ(log.committed_at_stop.load(), 1);
  EXPECT_FALSE(fs::exists(socket)) << "control socket left behind";

  FILE* got = ::popen(
      ("curl -sf " + auth + " " + hub.url() + "/buckets/tester/runner/resolve/runner.txt").c_str(),
      "r");
  ASSERT_NE(got, nullptr);
  char buf[256];
  const size_t n = std::fread(buf, 1, sizeof buf, got);
  ::pclose(got);
  EXPECT_EQ(std::string(buf, n), "written before SIGTERM\n");
}

}  // namespace
}  // namespace hfm::mount
