#include "hfm/app/supervisor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "hfm/app/control.h"
#include "hfm/app/daemon.h"
#include "hfm/app/mount_options.h"
#include "hfm/hub/ids.h"

namespace hfm::app {
namespace fs = std::filesystem;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Looks for `name` next to the running executable, then on PATH.
std::optional<fs::path> findBackend(const std::string& name) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path sibling = self.parent_path() / name;
    if (::access(sibling.c_str(), X_OK) == 0) return sibling;
  }
  if (const char* path = std::getenv("PATH")) {
    std::string dirs = path;
    size_t start = 0;
    while (start <= dirs.size()) {
      const size_t end = dirs.find(':', start);
      const std::string dir = dirs.substr(start, end == std::string::npos ? end : end - start);
      if (!dir.empty()) {
        const fs::path candidate = fs::path(dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      }
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return std::nullopt;
}

bool programExists(const std::string& name) {
  for (const char* dir : {"/sbin", "/usr/sbin", "/bin", "/usr/bin"}) {
    if (::access((fs::path(dir) / name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Removes "--hf-token V" / "--hf-token=V" from args, returning V if present.
std::optional<std::string> extractToken(std::vector<std::string>& args) {
  std::optional<std::string> token;
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--hf-token" && i + 1 < args.size()) {
      token = args[++i];
    } else if (args[i].rfind("--hf-token=", 0) == 0) {
      token = args[i].substr(std::string("--hf-token=").size());
    } else {
      kept.push_back(args[i]);
    }
  }
  args = std::move(kept);
  return token;
}

std::string formatUptime(int64_t started_at) {
  if (started_at <= 0) return "-";
  int64_t secs = static_cast<int64_t>(std::time(nullptr)) - started_at;
  if (secs < 0) secs = 0;
  char buf[32];
  if (secs >= 86400) {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(secs / 86400),
                  static_cast<long long>(secs % 86400 / 3600));
  } else if (secs >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(secs / 60),
                  static_cast<long long>(secs % 60));
  }
  return buf;
}

// Detaches a mount left behind by a dead backend.
void lazyUnmount(const fs::path& mountpoint) {
  if (!isMounted(mountpoint)) return;
  const std::string target = mountpoint.string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, STDOUT_FILENO);
      ::dup2(devnull, STDERR_FILENO);
    }
    if (::geteuid() == 0) {
      ::execlp("umount", "umount", "-l", target.c_str(), static_cast<char*>(nullptr));
    } else {
      ::execlp("fusermount3", "fusermount3", "-u", "-z", target.c_str(),
               static_cast<char*>(nullptr));
    }
    ::_exit(127);
  }
  if (pid > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
}

// Waits (bounded) for a backend that failed to start to exit, killing it if it lingers, and
// reaps it (it is still our child), then detaches any mount it left.
void reapFailedBackend(pid_t pid, const fs::path& mountpoint) {
  if (pid <= 0) return;
  const auto wait_exit = [pid](std::chrono::milliseconds budget) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && errno != EINTR)) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  if (!wait_exit(std::chrono::milliseconds(3000))) {
    ::kill(pid, SIGTERM);
    if (!wait_exit(std::chrono::milliseconds(5000))) {
      ::kill(pid, SIGKILL);
      wait_exit(std::chrono::milliseconds(5000));
    }
  }
  lazyUnmount(mountpoint);
}

}  // namespace

SupervisorCommands::SupervisorCommands(CLI::App& app) {
  start_ = app.add_subcommand(
      "start", "Mount in the background: start [--fuse] [OPTIONS] bucket|repo ID MOUNTPOINT");
  start_->add_flag("--fuse", start_fuse_, "Use the FUSE backend (default: NFS)");
  start_->allow_extras();
  start_->prefix_command();
  start_->footer(
      "Every option of hf-mount-fuse / hf-mount-nfs is accepted (see `hf-mount-fuse --help`).");
  stop_ = app.add_subcommand("stop", "Flush pending writes, unmount and stop a mount");
  stop_->add_option("mountpoint", stop_mountpoint_, "The mount point")->required();
  stop_->add_option("--timeout-secs", stop_timeout_secs_,
                    "How long to wait for the backend to flush and exit before killing it "
                    "(default: its --flush-shutdown-timeout-ms + 15 s)");
  status_ = app.add_subcommand("status", "List running mounts");
}

std::optional<int> SupervisorCommands::run() const {
  if (start_->parsed()) return runStart(start_->remaining(), start_fuse_);
  if (stop_->parsed()) return runStop(stop_mountpoint_, stop_timeout_secs_);
  if (status_->parsed()) return runStatus();
  return std::nullopt;
}

std::optional<StartPlan> planStart(const std::vector<std::string>& input_args, bool fuse,
                                   std::string& error, int& exit_code) {
  StartPlan plan;
  plan.fuse = fuse;
  std::vector<std::string> args;
  for (const auto& a : input_args) {
    if (a == "--fuse") {
      plan.fuse = true;
    } else {
      args.push_back(a);
    }
  }
  exit_code = kExitUsage;

  // Validate with the backend's own parser so `start` rejects exactly what the backend would.
  MountOptions options;
  MountSource source;
  CLI::App parser{"hf-mount backend"};
  addMountCommandLine(parser, options, source, plan.fuse ? Backend::kFuse : Backend::kNfs);
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    parser.parse(reversed);
  } catch (const CLI::ParseError& e) {
    error = std::string(e.what());
    return std::nullopt;
  }
  if (auto problem = finalizeMountOptions(options, source)) {
    error = *problem;
    return std::nullopt;
  }
  auto id = source.kind == SourceKind::kBucket ? hub::parseBucketId(source.id)
                                               : hub::parseRepoId(source.id, source.revision);
  if (!id) {
    error = id.error().message();
    return std::nullopt;
  }

  exit_code = kExitFailure;
  std::error_code ec;
  const fs::path mountpoint = canonicalMountPoint(source.mountpoint);
  if (!fs::exists(mountpoint, ec)) {
    error = "mount point " + source.mountpoint + " does not exist (create it with mkdir -p)";
    return std::nullopt;
  }
  if (!fs::is_directory(mountpoint, ec)) {
    error = "mount point " + source.mountpoint + " is not a directory";
    return std::nullopt;
  }
  if (isMounted(mountpoint)) {
    error = "mount point " + mountpoint.string() +
            " is already mounted (if nothing serves it any more: hf-mount stop " +
            mountpoint.string() + ")";
    return std::nullopt;
  }
  if (!options.token_file.empty() && ::access(options.token_file.c_str(), R_OK) != 0) {
    error = "token file " + options.token_file + " is not readable";
    return std::nullopt;
  }
  if (plan.fuse && ::access("/dev/fuse", R_OK | W_OK) != 0) {
    error = "/dev/fuse is not available here; use the NFS backend (drop --fuse)";
    return std::nullopt;
  }
  if (!plan.fuse && !options.no_mount && !programExists("mount.nfs") &&
      !programExists("mount_nfs")) {
    error =
        "the NFS backend needs mount.nfs (apt-get install nfs-common)"
        "; or use the FUSE backend: hf-mount start --fuse ...";
    return std::nullopt;
  }

  plan.token = extractToken(args);
  if (!plan.token) {
    if (const char* env = std::getenv("HF_TOKEN"); env != nullptr && *env != '\0') {
      plan.token = env;
    }
  }
  plan.backend_args = std::move(args);
  plan.mountpoint = mountpoint.string();
  plan.source_label = source.label();
  exit_code = kExitOk;
  return plan;
}

int runStart(const std::vector<std::string>& args, bool fuse) {
  std::string error;
  int exit_code = kExitOk;
  auto plan = planStart(args, fuse, error, exit_code);
  if (!plan) {
    std::cerr << "hf-mount start: " << error << "\n";
    return exit_code;
  }
  const std::string backend_name = plan->fuse ? "hf-mount-fuse" : "hf-mount-nfs";
  auto backend = findBackend(backend_name);
  if (!backend) {
    std::cerr << "hf-mount start: " << backend_name
              << " not found next to hf-mount or on PATH (run ./install.sh)\n";
    return kExitFailure;
  }

  const DaemonPaths paths = DaemonPaths::fromEnvironment();
  if (auto st = paths.ensureExists(); !st) {
    std::cerr << "hf-mount start: " << st.error().message() << "\n";
    return kExitFailure;
  }
  const std::string key = mountKey(plan->mountpoint);
  if (auto existing = readPidFile(paths.pidFile(key))) {
    if (isDaemonAlive(existing->pid)) {
      std::cerr << "hf-mount start: " << plan->mountpoint << " is already served by pid "
                << existing->pid << " (" << existing->source << ")\n";
      return kExitFailure;
    }
    std::error_code ec;
    fs::remove(paths.pidFile(key), ec);
    fs::remove(paths.socketFile(key), ec);
  }

  SpawnRequest request;
  request.backend_binary = *backend;
  request.args = plan->backend_args;
  request.token = plan->token;
  request.log_file = paths.logFile(key);
  request.pid_file = paths.pidFile(key);
  request.control_socket = paths.socketFile(key);
  request.record.mountpoint = plan->mountpoint;
  request.record.source = plan->source_label;
  request.record.backend = plan->fuse ? "fuse" : "nfs";

  std::cout << "Starting daemon" << std::flush;
  auto outcome = spawnDaemon(request, /*progress=*/true);
  if (!outcome) {
    std::cout << " failed\n";
    std::cerr << "hf-mount start: " << outcome.error().message() << "\n";
    return kExitFailure;
  }
  if (!outcome->ready) {
    // Leave nothing behind: the backend may still be running (a timeout) or exiting, and it
    // may have exited before the pid file was written (so its guard could not remove it).
    reapFailedBackend(outcome->pid, plan->mountpoint);
    std::error_code ec;
    fs::remove(request.pid_file, ec);
    fs::remove(request.control_socket, ec);
    std::cout << " failed\n";
    std::cerr << "hf-mount start: " << outcome->error << "\n"
              << "  log: " << request.log_file.string() << "\n";
    return kExitFailure;
  }
  std::cout << " (pid=" << outcome->pid << ") ready\n"
            << "  logs: " << request.log_file.string() << "\n"
            << "  stop: hf-mount stop " << plan->mountpoint << "\n";
  return kExitOk;
}

namespace {

constexpr auto kControlTimeout = std::chrono::milliseconds(1000);

// Bytes of the log written from `offset` on (at most the last 64 KiB of them).
std::string readLogFrom(const fs::path& log, uint64_t offset) {
  std::ifstream in(log, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const auto end = static_cast<uint64_t>(in.tellg());
  if (end <= offset) return {};
  const uint64_t start = std::max<uint64_t>(offset, end > 65536 ? end - 65536 : 0);
  in.seekg(static_cast<std::streamoff>(start));
  std::string text(end - start, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

uint64_t fileSize(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(size);
}

std::string compactBytes(uint64_t bytes) {
  std::string text = formatBytes(bytes);
  text.erase(std::remove(text.begin(), text.end(), ' '), text.end());
  return text;
}

}  // namespace

int runStop(const std::string& mountpoint_arg, std::optional<unsigned> timeout_secs) {
  const DaemonPaths paths = DaemonPaths::fromEnvironment();
  const fs::path mountpoint = canonicalMountPoint(mountpoint_arg);
  const std::string key = mountKey(mountpoint);
  const fs::path pid_file = paths.pidFile(key);
  const fs::path socket = paths.socketFile(key);
  auto record = readPidFile(pid_file);
  std::error_code ec;
  if (!record || !isDaemonAlive(record->pid)) {
    fs::remove(pid_file, ec);
    fs::remove(socket, ec);
    const bool was_mounted = isMounted(mountpoint);
    lazyUnmount(mountpoint);
    std::cerr << "hf-mount stop: no running daemon for " << mountpoint.string()
              << (was_mounted ? " (unmounted a stale mount)" : "") << "\n";
    // A stale pid file or a stale mount cleaned up is a successful stop (as the reference).
    return record || was_mounted ? kExitOk : kExitFailure;
  }
  const pid_t pid = record->pid;
  const auto before = queryBackend(socket, kControlTimeout);
  if (!timeout_secs) {
    const uint64_t flush_ms =
        before && before->flush_shutdown_timeout_ms ? *before->flush_shutdown_timeout_ms : 45'000;
    timeout_secs = static_cast<unsigned>((flush_ms + 999) / 1000) + kStopMarginSecs;
  }
  const fs::path log = paths.logFile(key);
  const uint64_t log_offset = fileSize(log);

  // SIGTERM makes the backend commit pending writes (bounded by its
  // --flush-shutdown-timeout-ms) while still mounted, then unmount and exit.
  ::kill(pid, SIGTERM);
  ::kill(pid, SIGCONT);  // a stopped backend (kill -STOP, ^Z) could not act on it
  std::cout << "Stopping daemon (pid=" << pid << ")";
  if (before && before->dirty_files.value_or(0) > 0) {  // every uncommitted file
    std::cout << ", flushing " << *before->dirty_files << " file(s) ("
              << formatBytes(before->pending_bytes.value_or(0)) << ")";
  }
  std::cout << std::flush;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(*timeout_secs);
  auto next_dot = start + std::chrono::seconds(1);
  while (isDaemonAlive(pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() >= next_dot) {
      std::cout << '.' << std::flush;
      next_dot += std::chrono::seconds(1);
    }
  }
  if (isDaemonAlive(pid)) {
    ::kill(pid, SIGKILL);
    lazyUnmount(mountpoint);
    fs::remove(pid_file, ec);
    fs::remove(socket, ec);
    std::cout << " failed\n";
    std::cerr << "hf-mount stop: daemon (pid=" << pid << ") did not stop after " << *timeout_secs
              << "s; killed it (uncommitted writes stay in its --cache-dir and are committed at "
                 "the next start of this mount)\n";
    return kExitFailure;
  }
  lazyUnmount(mountpoint);
  fs::remove(pid_file, ec);
  fs::remove(socket, ec);
  std::cout << " stopped\n";
  const auto outcome = parseShutdownOutcome(readLogFrom(log, log_offset));
  if (!outcome) {
    std::cout << "  writes: unknown (no shutdown line in " << log.string() << ")\n";
    return kExitOk;
  }
  if (!outcome->clean) {
    std::cerr << "hf-mount stop: " << outcome->text << "\n";
    return kExitFailure;
  }
  std::cout << "  writes: " << outcome->text << "\n";
  return kExitOk;
}

int runStatus() {
  const DaemonPaths paths = DaemonPaths::fromEnvironment();
  const auto live = listLiveDaemons(paths);
  if (live.empty()) {
    std::cout << "No running daemons\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"PID", "BACKEND", "UPTIME", "STATE", "CACHE", "DIRTY", "PENDING", "SOURCE", "MOUNTPOINT"}};
  for (const auto& d : live) {
    const auto report = queryBackend(paths.socketFile(mountKey(d.mountpoint)), kControlTimeout);
    std::string state = "-";
    std::string cache = "-";
    std::string dirty = "-";
    std::string pending = "-";
    if (report) {
      state = report->state;
      if (report->cache_used_bytes && report->cache_limit_bytes) {
        cache = compactBytes(*report->cache_used_bytes) + "/" +
                compactBytes(*report->cache_limit_bytes);
      }
      if (report->dirty_files) dirty = std::to_string(*report->dirty_files);
      if (report->pending_commits) {
        pending = std::to_string(*report->pending_commits);
        if (report->pending_bytes) pending += "(" + compactBytes(*report->pending_bytes) + ")";
      }
    }
    rows.push_back({std::to_string(d.pid), d.backend.empty() ? "-" : d.backend,
                    formatUptime(d.started_at), state, cache, dirty, pending,
                    d.source.empty() ? "-" : d.source, d.mountpoint});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
  return kExitOk;
}

}  // namespace hfm::app
