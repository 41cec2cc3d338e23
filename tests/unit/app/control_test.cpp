#include "hfm/app/control.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "hfm/app/daemon.h"
#include "temp_dir.h"

namespace hfm::app {
namespace {
namespace fs = std::filesystem;
using std::chrono::milliseconds;

using TempDir = hfm::testing::TempDir;

BackendReport sampleReport() {
  BackendReport r;
  r.state = "serving";
  r.pid = 4242;
  r.backend = "fuse";
  r.source = "bucket user/b";
  r.mountpoint = "/mnt/b";
  r.flush_shutdown_timeout_ms = 45000;
  r.cache_used_bytes = 1234;
  r.cache_limit_bytes = 10'000'000'000ULL;
  r.dirty_files = 1;
  r.pending_commits = 2;
  r.pending_bytes = 3;
  r.committed_files = 4;
  r.failed_attempts = 5;
  return r;
}

// A unix socket at `path` that listens (so connect succeeds) but never answers.
int silentListener(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(fd, 4), 0);
  return fd;
}

// Sends `request` raw and returns the whole answer.
std::string rawExchange(const fs::path& path, const std::string& request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  ::shutdown(fd, SHUT_WR);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    answer.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return answer;
}

TEST(ControlTest, ReportRoundTripsThroughJson) {
  const BackendReport in = sampleReport();
  auto out = decodeReport(encodeReport(in));
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(out->state, "serving");
  EXPECT_EQ(out->pid, 4242);
  EXPECT_EQ(out->backend, "fuse");
  EXPECT_EQ(out->source, "bucket user/b");
  EXPECT_EQ(out->mountpoint, "/mnt/b");
  EXPECT_EQ(out->flush_shutdown_timeout_ms, 45000U);
  EXPECT_EQ(out->cache_used_bytes, 1234U);
  EXPECT_EQ(out->cache_limit_bytes, 10'000'000'000ULL);
  EXPECT_EQ(out->dirty_files, 1U);
  EXPECT_EQ(out->pending_commits, 2U);
  EXPECT_EQ(out->pending_bytes, 3U);
  EXPECT_EQ(out->committed_files, 4U);
  EXPECT_EQ(out->failed_attempts, 5U);
}

TEST(ControlTest, AbsentFieldsStayAbsentAndBadAnswersAreErrors) {
  BackendReport read_only;
  read_only.state = "starting";
  const std::string json = encodeReport(read_only);
  EXPECT_EQ(json.find("dirty_files"), std::string::npos) << json;
  auto out = decodeReport(json);
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->dirty_files.has_value());
  EXPECT_FALSE(out->cache_used_bytes.has_value());
  EXPECT_EQ(decodeReport("not json").error().code(), EINVAL);
  EXPECT_EQ(decodeReport("[1,2]").error().code(), EINVAL);
  EXPECT_EQ(decodeReport(R"({"error":"nope"})").error().code(), EINVAL);
  EXPECT_EQ(decodeReport(R"({"pid":1})").error().code(), EINVAL);
  // A negative or non-numeric counter is treated as unknown, not as a huge number.
  auto odd = decodeReport(R"({"state":"serving","pending_bytes":-1,"dirty_files":"3"})");
  ASSERT_TRUE(odd.ok());
  EXPECT_FALSE(odd->pending_bytes.has_value());
  EXPECT_FALSE(odd->dirty_files.has_value());
}

TEST(ControlTest, ServerAnswersStatusOnAPrivateSocketAndRemovesItWhenDone) {
  TempDir dir;
  const fs::path socket = dir.path() / "m.sock";
  std::atomic<int> calls{0};
  {
    auto server = ControlServer::start(socket, [&] {
      ++calls;
      return sampleReport();
    });
    ASSERT_TRUE(server.ok()) << server.error().message();
    struct stat st {};
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600U);
    for (int i = 0; i < 3; ++i) {
      auto report = queryBackend(socket, milliseconds(2000));
      ASSERT_TRUE(report.ok()) << report.error().message();
      EXPECT_EQ(report->pending_commits, 2U);
      EXPECT_EQ(report->mountpoint, "/mnt/b");
    }
    EXPECT_EQ(calls.load(), 3);
    const std::string refused = rawExchange(socket, "{\"op\":\"format-disk\"}\n");
    EXPECT_NE(refused.find("\"error\""), std::string::npos) << refused;
    EXPECT_EQ(calls.load(), 3);
  }
  EXPECT_FALSE(fs::exists(socket));
  auto gone = queryBackend(socket, milliseconds(500));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ENOENT);
}

TEST(ControlTest, ServerReplacesAStaleSocketOfAnEarlierRun) {
  TempDir dir;
  const fs::path socket = dir.path() / "m.sock";
  ::close(silentListener(socket));  // the file stays, nothing listens: a kill -9'd backend
  EXPECT_TRUE(isStaleSocket(socket));
  auto server = ControlServer::start(socket, sampleReport);
  ASSERT_TRUE(server.ok()) << server.error().message();
  EXPECT_FALSE(isStaleSocket(socket));
  EXPECT_TRUE(queryBackend(socket, milliseconds(2000)).ok());
}

TEST(ControlTest, QueryOfASilentBackendTimesOutInTime) {
  TempDir dir;
  const fs::path socket = dir.path() / "silent.sock";
  const int fd = silentListener(socket);
  const auto start = std::chrono::steady_clock::now();
  auto report = queryBackend(socket, milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), ETIMEDOUT);
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_GE(took, milliseconds(250));
}

TEST(ControlTest, StaleSocketDetection) {
  TempDir dir;
  EXPECT_FALSE(isStaleSocket(dir.path() / "missing.sock"));
  const fs::path live = dir.path() / "live.sock";
  const int fd = silentListener(live);
  EXPECT_FALSE(isStaleSocket(live));
  ::close(fd);
  EXPECT_TRUE(isStaleSocket(live));
}

TEST(ControlTest, TooLongSocketPathIsRefusedClearly) {
  const fs::path socket = fs::path("/tmp") / std::string(200, 'x');
  auto server = ControlServer::start(socket, sampleReport);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), ENAMETOOLONG);
  EXPECT_EQ(queryBackend(socket, milliseconds(100)).error().code(), ENAMETOOLONG);
}

TEST(ControlTest, SocketFileFitsASocketAddressForAnyKey) {
  const DaemonPaths paths{"/home/u/.hf-mount", "/home/u/.hf-mount/pids", "/home/u/.hf-mount/logs",
                          "/home/u/.hf-mount/run"};
  EXPECT_EQ(paths.socketFile("mnt%2Fdata"), fs::path("/home/u/.hf-mount/run/mnt%2Fdata.sock"));
  const std::string long_key = mountKey("/very/" + std::string(150, 'd') + "/mount");
  const fs::path hashed = paths.socketFile(long_key);
  EXPECT_EQ(hashed.parent_path(), paths.run);
  EXPECT_LT(hashed.string().size(), sizeof(sockaddr_un::sun_path));
  EXPECT_EQ(hashed.extension(), ".sock");
  EXPECT_EQ(hashed, paths.socketFile(long_key));  // stable: supervisor and backend agree
  EXPECT_NE(hashed, paths.socketFile(long_key + "x"));
}

TEST(ControlTest, ListingRemovesSocketsOfDeadBackendsOnly) {
  TempDir dir;
  ::setenv("HOME", dir.path().c_str(), 1);
  const DaemonPaths paths = DaemonPaths::fromEnvironment();
  ASSERT_TRUE(paths.ensureExists().ok());
  struct stat st {};
  ASSERT_EQ(::stat(paths.run.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  // A dead backend with its pid file and socket; an orphan socket nothing listens on; a
  // socket that still answers (a backend whose pid file is not written yet).
  ASSERT_TRUE(
      writePidFile(paths.pidFile("dead"), {999999999, "/dead", "bucket x/y", "fuse", 0}).ok());
  ::close(silentListener(paths.socketFile("dead")));
  ::close(silentListener(paths.socketFile("orphan")));
  const int live = silentListener(paths.socketFile("starting"));
  EXPECT_TRUE(listLiveDaemons(paths).empty());
  EXPECT_FALSE(fs::exists(paths.pidFile("dead")));
  EXPECT_FALSE(fs::exists(paths.socketFile("dead")));
  EXPECT_FALSE(fs::exists(paths.socketFile("orphan")));
  EXPECT_TRUE(fs::exists(paths.socketFile("starting")));
  ::close(live);
}

TEST(ControlTest, ShutdownOutcomeIsFoundInTheLog) {
  const std::string clean = formatShutdownOutcome(false, 0, 0, 3, "/c/pending/x");
  EXPECT_EQ(clean, "all writes committed (3 files committed by this run)");
  const std::string pending = formatShutdownOutcome(false, 2, 3 << 20, 1, "/c/pending/x");
  EXPECT_NE(pending.find("2 files (3.0 MiB) left pending in /c/pending/x"), std::string::npos)
      << pending;
  EXPECT_NE(pending.find("next start"), std::string::npos);

  EXPECT_FALSE(parseShutdownOutcome("2026-01-01 info mounted\n").has_value());
  const std::string log = "2026 info mounted\n2026 info " + std::string(kShutdownMarker) + pending +
                          "\n2026 info stopped serving /m\n";
  auto outcome = parseShutdownOutcome(log);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_FALSE(outcome->clean);
  EXPECT_EQ(outcome->text, pending);
  // The last shutdown line wins (the log is appended across runs).
  auto last = parseShutdownOutcome(log + "2026 info " + std::string(kShutdownMarker) + clean);
  ASSERT_TRUE(last.has_value());
  EXPECT_TRUE(last->clean);
  EXPECT_EQ(last->text, clean);
  auto ro = parseShutdownOutcome(std::string(kShutdownMarker) +
                                 formatShutdownOutcome(true, 0, 0, 0, "") + "\r\n");
  ASSERT_TRUE(ro.has_value());
  EXPECT_TRUE(ro->clean);
  EXPECT_EQ(ro->text, "read-only mount, nothing to write");
}

TEST(ControlTest, BytesAreHumanReadable) {
  EXPECT_EQ(formatBytes(0), "0 B");
  EXPECT_EQ(formatBytes(1023), "1023 B");
  EXPECT_EQ(formatBytes(1536), "1.5 KiB");
  EXPECT_EQ(formatBytes(10'000'000'000ULL), "9.3 GiB");
}

}  // namespace
}  // namespace hfm::app
