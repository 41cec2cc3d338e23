// The control channel between a running backend and `hf-mount status` / `hf-mount stop`.
//
// The backend listens on a unix socket, ~/.hf-mount/run/<key>.sock (see
// DaemonPaths::socketFile: the directory is 0700, the socket 0600, and only the backend's own
// user or root may talk to it, checked with SO_PEERCRED). One connection carries one request
// line and one answer line, both JSON objects, then closes:
//   → {"op":"status"}
//   ← {"state":"serving","pid":123,"backend":"fuse","source":"bucket ns/b",
//      "mountpoint":"/mnt","flush_shutdown_timeout_ms":45000,
//      "cache_used_bytes":1024,"cache_limit_bytes":10000000000,
//      "dirty_files":0,"pending_commits":1,"pending_bytes":4096,"committed_files":3,
//      "failed_attempts":0}
// Fields the backend cannot report are absent (read-only mounts have no write counters).
// Unknown ops get {"error":"..."}. Both sides bound every wait (connect, read, write), so a
// backend that hangs never hangs `status`: the client reports an error and status shows "-".
// Nothing secret travels here: no token, no option values beyond those listed.
//
// Shutdown outcome: the backend ends with one log line starting with kShutdownMarker
// (formatShutdownOutcome); `stop` finds it in the log (parseShutdownOutcome) to report whether
// every write reached the Hub or what is left for the next start.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "hfm/util/result.h"

namespace hfm::app {

// What a backend reports about itself.
struct BackendReport {
  std::string state;  // "starting", "serving" or "flushing"
  int64_t pid = 0;
  std::string backend;  // "fuse" | "nfs"
  std::string source;   // "bucket ns/name"
  std::string mountpoint;
  std::optional<uint64_t> flush_shutdown_timeout_ms;
  std::optional<uint64_t> cache_used_bytes;
  std::optional<uint64_t> cache_limit_bytes;
  std::optional<uint64_t> dirty_files;      // every file not committed yet (open or closed)
  std::optional<uint64_t> pending_commits;  // the closed ones among them, waiting to commit
  std::optional<uint64_t> pending_bytes;    // bytes of those closed files on local disk
  std::optional<uint64_t> committed_files;
  std::optional<uint64_t> failed_attempts;
};

std::string encodeReport(const BackendReport& report);
// EINVAL for anything that is not a JSON object with a string "state" (e.g. {"error":...}).
Result<BackendReport> decodeReport(std::string_view json);

// Backend side: serves status requests on its own thread until destroyed, then removes the
// socket. `report` runs on that thread, one call per request; it must not block for long.
class ControlServer {
 public:
  // Binds `socket_path` (replacing a stale socket there), mode 0600. Errors: the path is too
  // long for a unix socket (ENAMETOOLONG), or bind/listen fail.
  static Result<std::unique_ptr<ControlServer>> start(std::filesystem::path socket_path,
                                                      std::function<BackendReport()> report);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  ControlServer(std::filesystem::path path, int listen_fd, int wake_fd,
                std::function<BackendReport()> report);
  void loop();
  void answer(int fd);

  std::filesystem::path path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: written by the destructor to end loop()
  std::function<BackendReport()> report_;
  std::thread thread_;
};

// Client side: asks the backend at `socket_path` for its report, waiting at most `timeout`
// in all. ECONNREFUSED / ENOENT when nothing listens (a stale socket), ETIMEDOUT when the
// backend does not answer in time.
Result<BackendReport> queryBackend(const std::filesystem::path& socket_path,
                                   std::chrono::milliseconds timeout);

// True when `socket_path` is a socket nothing listens on (its backend died): connect() is
// refused. False when it accepts, does not exist, or cannot be checked.
bool isStaleSocket(const std::filesystem::path& socket_path);

// The backend's last log line, "shutdown: ...".
inline constexpr std::string_view kShutdownMarker = "shutdown: ";

struct ShutdownOutcome {
  bool clean = true;  // every write reached the Hub (or there was nothing to write)
  std::string text;   // the line after the marker, for `stop` to print
};

// The line (without the marker) the backend logs as it exits. `pending_files` /
// `pending_bytes`: what is still uncommitted; `committed_files`: committed during this run;
// `staging_dir`: where the uncommitted bytes stay (may be empty).
std::string formatShutdownOutcome(bool read_only, uint64_t pending_files, uint64_t pending_bytes,
                                  uint64_t committed_files, const std::string& staging_dir);
// The last shutdown line in `log_text`, or nullopt if there is none.
std::optional<ShutdownOutcome> parseShutdownOutcome(std::string_view log_text);

// "1.5 MiB", "12 B": for status and stop.
std::string formatBytes(uint64_t bytes);

}  // namespace hfm::app
