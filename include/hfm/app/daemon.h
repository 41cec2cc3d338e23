// The files and handshakes between `hf-mount` (supervisor) and its detached backends,
// compatible with the reference hf-mount (hf-mount-reference.md §1.2):
//   ~/.hf-mount/pids/<key>.pid   line 1 pid, line 2 canonical mount point, line 3 source label,
//                                then (ours) line 4 backend name, line 5 start time (unix s)
//   ~/.hf-mount/logs/<key>.log   the backend's stdout/stderr
//   ~/.hf-mount/run/<key>.sock   (ours) the backend's control socket (control.h)
// <key> is the canonical mount point without leading/trailing '/', with '%' → "%25" and
// '/' → "%2F". Directories are created 0700 and files 0600 ($HOME unset → /tmp/.hf-mount).
//
// Readiness: the supervisor passes the write end of a pipe in HF_MOUNT_DAEMON_FD (and the pid
// file path in HF_MOUNT_DAEMON_PID_FILE). The backend's DaemonGuard writes 'R' once the mount
// is live, or 'E' followed by a one-line reason if it exits before that; it removes the pid
// file when the backend exits. The token travels in HF_MOUNT_TOKEN_FD (a pipe the backend
// reads once), never in argv. HF_MOUNT_CONTROL_SOCKET names where the backend listens for
// `status` (absent: no control channel, e.g. a backend run by hand or by systemd).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::app {

struct DaemonPaths {
  std::filesystem::path root;  // ~/.hf-mount
  std::filesystem::path pids;
  std::filesystem::path logs;
  std::filesystem::path run;  // control sockets

  // From $HOME (or /tmp/.hf-mount when unset).
  static DaemonPaths fromEnvironment();
  // Creates the directories with mode 0700.
  Status ensureExists() const;
  std::filesystem::path pidFile(const std::string& key) const;
  std::filesystem::path logFile(const std::string& key) const;
  // run/<key>.sock, or run/h-<hash of key>.sock when that path would not fit in a unix socket
  // address (sun_path, 108 bytes).
  std::filesystem::path socketFile(const std::string& key) const;
};

// Canonical form of a mount point: canonicalized if it exists, else its parent canonicalized
// plus the normalized last component.
std::filesystem::path canonicalMountPoint(const std::filesystem::path& mountpoint);
std::string mountKey(const std::filesystem::path& canonical_mountpoint);
std::filesystem::path mountPointFromKey(const std::string& key);

struct PidRecord {
  pid_t pid = 0;
  std::string mountpoint;
  std::string source;
  std::string backend;
  int64_t started_at = 0;  // unix seconds; 0 when unknown (reference pid files)
};

Result<PidRecord> readPidFile(const std::filesystem::path& path);
Status writePidFile(const std::filesystem::path& path, const PidRecord& record);

// True if `pid` runs and (on Linux) its executable's name starts with "hf-mount".
bool isDaemonAlive(pid_t pid);

// Live daemons, one per pid file. Stale pid files are removed with their control sockets, and
// so are sockets nothing listens on any more (a kill -9'd backend's).
std::vector<PidRecord> listLiveDaemons(const DaemonPaths& paths);

// True if `path` is a mount point in /proc/self/mountinfo.
bool isMounted(const std::filesystem::path& path);

// Backend side of the readiness handshake. Construct once at start-up; it reads and clears
// the environment variables. Without them (foreground use) every call is a no-op.
class DaemonGuard {
 public:
  static DaemonGuard fromEnvironment();
  DaemonGuard(DaemonGuard&& other) noexcept;
  DaemonGuard& operator=(DaemonGuard&&) = delete;
  DaemonGuard(const DaemonGuard&) = delete;
  DaemonGuard& operator=(const DaemonGuard&) = delete;
  ~DaemonGuard();  // reports failure if ready() was never called; removes the pid file

  void ready();
  void failed(const std::string& reason);
  // Where to serve the control channel; empty when not started by `hf-mount start`.
  const std::string& controlSocket() const { return control_socket_; }

 private:
  DaemonGuard(int fd, std::string pid_file, std::string control_socket)
      : fd_(fd), pid_file_(std::move(pid_file)), control_socket_(std::move(control_socket)) {}
  int fd_ = -1;
  std::string pid_file_;
  std::string control_socket_;
  bool reported_ = false;
};

// Reads the token a supervisor passed through HF_MOUNT_TOKEN_FD (and clears the variable);
// nullopt when the variable is absent.
std::optional<std::string> readTokenFromInheritedFd();

struct SpawnRequest {
  std::filesystem::path backend_binary;
  std::vector<std::string> args;  // argv[1..]; must not contain the token
  std::optional<std::string> token;
  std::filesystem::path log_file;
  std::filesystem::path pid_file;
  std::filesystem::path control_socket;  // passed in HF_MOUNT_CONTROL_SOCKET when not empty
  PidRecord record;                      // pid filled in by spawnDaemon
  std::chrono::milliseconds ready_timeout{120'000};
};

struct SpawnOutcome {
  pid_t pid = 0;
  bool ready = false;
  std::string error;  // the backend's reason when !ready
};

// Forks, setsid()s, redirects output to the log, writes the pid file and execs the backend;
// then waits for the readiness byte (printing a '.' every second when `progress` is true).
Result<SpawnOutcome> spawnDaemon(SpawnRequest request, bool progress);

}  // namespace hfm::app
