#include "hfm/app/daemon.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "temp_dir.h"

namespace hfm::app {
namespace {
namespace fs = std::filesystem;

using TempDir = hfm::testing::TempDir;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DaemonTest, MountKeyMatchesTheReferenceEncoding) {
  EXPECT_EQ(mountKey("/mnt/data"), "mnt%2Fdata");
  EXPECT_EQ(mountKey("/mnt/100%/x/"), "mnt%2F100%25%2Fx");
  EXPECT_EQ(mountPointFromKey("mnt%2F100%25%2Fx"), fs::path("/mnt/100%/x"));
}

TEST(DaemonTest, CanonicalMountPointOfMissingPathKeepsItsName) {
  TempDir dir;
  const fs::path missing = dir.path() / "sub" / ".." / "not-yet";
  EXPECT_EQ(canonicalMountPoint(missing), fs::canonical(dir.path()) / "not-yet");
  EXPECT_EQ(canonicalMountPoint(dir.path() / "."), fs::canonical(dir.path()));
}

TEST(DaemonTest, PidFileRoundTripsWithPrivateMode) {
  TempDir dir;
  const fs::path file = dir.path() / "x.pid";
  PidRecord record{1234, "/mnt/x", "bucket a/b", "fuse", 1700000000};
  ASSERT_TRUE(writePidFile(file, record).ok());
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  auto back = readPidFile(file);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->pid, 1234);
  EXPECT_EQ(back->mountpoint, "/mnt/x");
  EXPECT_EQ(back->source, "bucket a/b");
  EXPECT_EQ(back->backend, "fuse");
  EXPECT_EQ(back->started_at, 1700000000);
}

TEST(DaemonTest, ReadsReferencePidFilesAndRejectsGarbage) {
  TempDir dir;
  const fs::path ref = dir.path() / "mnt%2Fdata.pid";
  std::ofstream(ref) << "42\n";  // the reference may write only the pid
  auto back = readPidFile(ref);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->pid, 42);
  EXPECT_EQ(back->mountpoint, "/mnt/data");
  const fs::path bad = dir.path() / "bad.pid";
  std::ofstream(bad) << "12abc\n";
  EXPECT_FALSE(readPidFile(bad).ok());
  EXPECT_EQ(readPidFile(dir.path() / "none.pid").error().code(), ENOENT);
}

TEST(DaemonTest, StalePidFilesAreRemovedByListing) {
  TempDir dir;
  ::setenv("HOME", dir.path().c_str(), 1);
  const DaemonPaths paths = DaemonPaths::fromEnvironment();
  ASSERT_TRUE(paths.ensureExists().ok());
  struct stat st {};
  ASSERT_EQ(::stat(paths.pids.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  // Our own pid is alive but is not an hf-mount binary, so it counts as stale, as does a
  // pid that cannot exist.
  ASSERT_TRUE(writePidFile(paths.pidFile("a"), {::getpid(), "/a", "bucket x/y", "fuse", 0}).ok());
  ASSERT_TRUE(writePidFile(paths.pidFile("b"), {999999999, "/b", "bucket x/y", "fuse", 0}).ok());
  EXPECT_TRUE(listLiveDaemons(paths).empty());
  EXPECT_FALSE(fs::exists(paths.pidFile("a")));
  EXPECT_FALSE(fs::exists(paths.pidFile("b")));
}

TEST(DaemonTest, MountInfoKnowsTheRoot) {
  EXPECT_TRUE(isMounted("/"));
  EXPECT_FALSE(isMounted("/definitely/not/a/mount/point"));
}

// A shell stands in for a backend: it reports through the readiness pipe like DaemonGuard.
SpawnRequest shellBackend(const TempDir& dir, const std::string& script) {
  SpawnRequest r;
  r.backend_binary = "/bin/sh";
  r.args = {"-c", script};
  r.log_file = dir.path() / "backend.log";
  r.pid_file = dir.path() / "backend.pid";
  r.record.mountpoint = "/mnt/test";
  r.record.source = "bucket a/b";
  r.record.backend = "fuse";
  r.ready_timeout = std::chrono::seconds(20);
  return r;
}

void reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
}

TEST(DaemonTest, SpawnWaitsForReadyAndPassesTokenThroughAPipe) {
  TempDir dir;
  const fs::path token_out = dir.path() / "token.txt";
  auto request = shellBackend(
      dir, "cat <&$HF_MOUNT_TOKEN_FD > " + token_out.string() +
               "; echo \"env:${HF_TOKEN:-unset}\"; printf R >&$HF_MOUNT_DAEMON_FD; sleep 0.2");
  request.token = "hf_pipedtoken";
  ::setenv("HF_TOKEN", "hf_pipedtoken", 1);
  auto outcome = spawnDaemon(request, false);
  ::unsetenv("HF_TOKEN");
  ASSERT_TRUE(outcome.ok()) << outcome.error().message();
  EXPECT_TRUE(outcome->ready) << outcome->error;
  reap(outcome->pid);
  EXPECT_EQ(slurp(token_out), "hf_pipedtoken");
  EXPECT_NE(slurp(request.log_file).find("env:unset"), std::string::npos);
  auto record = readPidFile(request.pid_file);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->pid, outcome->pid);
  EXPECT_EQ(record->source, "bucket a/b");
}

TEST(DaemonTest, SpawnReportsTheBackendsReason) {
  TempDir dir;
  auto outcome = spawnDaemon(
      shellBackend(dir, "printf 'Ebucket a/b not found' >&$HF_MOUNT_DAEMON_FD; exit 1"), false);
  ASSERT_TRUE(outcome.ok());
  EXPECT_FALSE(outcome->ready);
  EXPECT_EQ(outcome->error, "bucket a/b not found");
  reap(outcome->pid);
}

TEST(DaemonTest, SpawnNoticesABackendThatDiesSilently) {
  TempDir dir;
  auto outcome = spawnDaemon(shellBackend(dir, "exit 3"), false);
  ASSERT_TRUE(outcome.ok());
  EXPECT_FALSE(outcome->ready);
  EXPECT_FALSE(outcome->error.empty());
  reap(outcome->pid);
}

TEST(DaemonTest, GuardReportsFailureAndRemovesPidFileWhenDropped) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const fs::path pid_file = dir.path() / "g.pid";
  std::ofstream(pid_file) << "1\n";
  ::setenv("HF_MOUNT_DAEMON_FD", std::to_string(fds[1]).c_str(), 1);
  ::setenv("HF_MOUNT_DAEMON_PID_FILE", pid_file.c_str(), 1);
  { auto guard = DaemonGuard::fromEnvironment(); }
  EXPECT_EQ(std::getenv("HF_MOUNT_DAEMON_FD"), nullptr);
  char buf[128] = {};
  const ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ASSERT_GT(n, 0);
  EXPECT_EQ(buf[0], 'E');
  EXPECT_FALSE(fs::exists(pid_file));
  ::close(fds[0]);
}

}  // namespace
}  // namespace hfm::app
