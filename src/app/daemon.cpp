#include "hfm/app/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "hfm/app/control.h"
#include "hfm/util/atomic_file.h"

namespace hfm::app {
namespace fs = std::filesystem;

namespace {

Error sysError(const std::string& what) { return {errno, what + ": " + std::strerror(errno)}; }

std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

DaemonPaths DaemonPaths::fromEnvironment() {
  const char* home = std::getenv("HOME");
  const fs::path root = (home != nullptr && *home != '\0') ? fs::path(home) / ".hf-mount"
                                                           : fs::path("/tmp/.hf-mount");
  return {root, root / "pids", root / "logs", root / "run"};
}

Status DaemonPaths::ensureExists() const {
  for (const auto& dir : {root, pids, logs, run}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Error(ec.value(), "cannot create " + dir.string() + ": " + ec.message());
    if (::chmod(dir.c_str(), 0700) != 0) return sysError("chmod " + dir.string());
  }
  return okStatus();
}

fs::path DaemonPaths::pidFile(const std::string& key) const { return pids / (key + ".pid"); }
fs::path DaemonPaths::logFile(const std::string& key) const { return logs / (key + ".log"); }

fs::path DaemonPaths::socketFile(const std::string& key) const {
  fs::path plain = run / (key + ".sock");
  if (plain.string().size() < sizeof(sockaddr_un::sun_path)) return plain;
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (char c : key) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  char name[32];
  std::snprintf(name, sizeof name, "h-%016llx.sock", static_cast<unsigned long long>(hash));
  return run / name;
}

fs::path canonicalMountPoint(const fs::path& mountpoint) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(mountpoint, ec).lexically_normal();
  fs::path canonical = fs::canonical(absolute, ec);
  if (!ec) return canonical;
  fs::path trimmed = absolute;
  if (!trimmed.has_filename()) trimmed = trimmed.parent_path();
  const fs::path parent = fs::weakly_canonical(trimmed.parent_path(), ec);
  return ec ? trimmed : parent / trimmed.filename();
}

std::string mountKey(const fs::path& canonical_mountpoint) {
  std::string path = canonical_mountpoint.string();
  const size_t first = path.find_first_not_of('/');
  const size_t last = path.find_last_not_of('/');
  path = first == std::string::npos ? std::string() : path.substr(first, last - first + 1);
  std::string key;
  for (char c : path) {
    if (c == '%') {
      key += "%25";
    } else if (c == '/') {
      key += "%2F";
    } else {
      key += c;
    }
  }
  return key;
}

fs::path mountPointFromKey(const std::string& key) {
  std::string path = "/";
  for (size_t i = 0; i < key.size(); ++i) {
    if (key.compare(i, 3, "%2F") == 0) {
      path += '/';
      i += 2;
    } else if (key.compare(i, 3, "%25") == 0) {
      path += '%';
      i += 2;
    } else {
      path += key[i];
    }
  }
  return path;
}

Result<PidRecord> readPidFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return Error(ENOENT, "no pid file " + path.string());
  PidRecord record;
  std::string line;
  if (!std::getline(in, line)) return Error::invalid("empty pid file " + path.string());
  try {
    size_t used = 0;
    const long pid = std::stol(line, &used);
    if (pid <= 0 || used != line.size()) throw std::invalid_argument(line);
    record.pid = static_cast<pid_t>(pid);
  } catch (const std::exception&) {
    return Error::invalid("bad pid in " + path.string());
  }
  if (std::getline(in, line)) record.mountpoint = line;
  if (std::getline(in, line)) record.source = line;
  if (std::getline(in, line)) record.backend = line;
  if (std::getline(in, line)) record.started_at = std::strtoll(line.c_str(), nullptr, 10);
  if (record.mountpoint.empty()) {
    record.mountpoint = mountPointFromKey(path.stem().string()).string();
  }
  return record;
}

Status writePidFile(const fs::path& path, const PidRecord& record) {
  std::ostringstream text;
  text << record.pid << '\n'
       << record.mountpoint << '\n'
       << record.source << '\n'
       << record.backend << '\n'
       << record.started_at << '\n';
  return util::writeFileAtomic(path, text.str());
}

bool isDaemonAlive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
#ifdef __linux__
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) return false;  // a zombie or a process we may not inspect: not a live backend
  return exe.filename().string().rfind("hf-mount", 0) == 0;
#else
  return true;
#endif
}

std::vector<PidRecord> listLiveDaemons(const DaemonPaths& paths) {
  std::vector<PidRecord> live;
  std::set<fs::path> live_sockets;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(paths.pids, ec)) {
    if (entry.path().extension() != ".pid") continue;
    auto record = readPidFile(entry.path());
    const std::string key = entry.path().stem().string();
    if (record.ok() && isDaemonAlive(record->pid)) {
      live_sockets.insert(paths.socketFile(key));
      live.push_back(*record);
    } else {
      fs::remove(entry.path(), ec);  // stale: its daemon is gone
      fs::remove(paths.socketFile(key), ec);
    }
  }
  // Sockets without a live pid file that nobody listens on: their backend died. (A socket
  // that still accepts belongs to a backend whose pid file is being written: leave it.)
  for (const auto& entry : fs::directory_iterator(paths.run, ec)) {
    if (entry.path().extension() != ".sock" || live_sockets.count(entry.path()) != 0) continue;
    if (isStaleSocket(entry.path())) fs::remove(entry.path(), ec);
  }
  return live;
}

bool isMounted(const fs::path& path) {
  std::ifstream in("/proc/self/mountinfo");
  const std::string target = path.string();
  std::string line;
  while (std::getline(in, line)) {
    // Field 5 is the mount point (octal-escaped spaces; our paths compare escaped too).
    std::istringstream fields(line);
    std::string field;
    for (int i = 0; i < 5 && fields >> field; ++i) {
    }
    std::string unescaped;
    for (size_t i = 0; i < field.size(); ++i) {
      if (field[i] == '\\' && i + 3 < field.size()) {
        unescaped += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        unescaped += field[i];
      }
    }
    if (unescaped == target) return true;
  }
  return false;
}

DaemonGuard DaemonGuard::fromEnvironment() {
  int fd = -1;
  std::string pid_file;
  if (const char* value = std::getenv("HF_MOUNT_DAEMON_FD")) {
    fd = std::atoi(value);
    if (fd > 2) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    } else {
      fd = -1;
    }
  }
  if (const char* value = std::getenv("HF_MOUNT_DAEMON_PID_FILE")) pid_file = value;
  std::string control_socket;
  if (const char* value = std::getenv("HF_MOUNT_CONTROL_SOCKET")) control_socket = value;
  ::unsetenv("HF_MOUNT_DAEMON_FD");
  ::unsetenv("HF_MOUNT_DAEMON_PID_FILE");
  ::unsetenv("HF_MOUNT_CONTROL_SOCKET");
  return {fd, pid_file, control_socket};
}

DaemonGuard::DaemonGuard(DaemonGuard&& other) noexcept
    : fd_(other.fd_),
      pid_file_(std::move(other.pid_file_)),
      control_socket_(std::move(other.control_socket_)),
      reported_(other.reported_) {
  other.fd_ = -1;
  other.pid_file_.clear();
  other.reported_ = true;
}

void DaemonGuard::ready() {
  if (reported_) return;
  reported_ = true;
  if (fd_ >= 0) {
    (void)util::writeAll(fd_, "R");  // a parent that went away needs no answer
    ::close(fd_);
    fd_ = -1;
  }
}

void DaemonGuard::failed(const std::string& reason) {
  if (reported_) return;
  reported_ = true;
  if (fd_ >= 0) {
    (void)util::writeAll(fd_, "E" + reason.substr(0, 900));
    ::close(fd_);
    fd_ = -1;
  }
}

DaemonGuard::~DaemonGuard() {
  failed("backend exited before the mount was ready");
  if (!pid_file_.empty()) ::unlink(pid_file_.c_str());
}

std::optional<std::string> readTokenFromInheritedFd() {
  const char* value = std::getenv("HF_MOUNT_TOKEN_FD");
  if (value == nullptr) return std::nullopt;
  const int fd = std::atoi(value);
  ::unsetenv("HF_MOUNT_TOKEN_FD");
  if (fd <= 2) return std::nullopt;
  std::string token = readAll(fd);
  ::close(fd);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  return token;
}

Result<SpawnOutcome> spawnDaemon(SpawnRequest request, bool progress) {
  int ready_pipe[2];
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return sysError("pipe");
  int token_pipe[2] = {-1, -1};
  if (request.token && ::pipe2(token_pipe, O_CLOEXEC) != 0) {
    ::close(ready_pipe[0]);
    ::close(ready_pipe[1]);
    return sysError("pipe");
  }
  const int log_fd =
      ::open(request.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  const auto close_pipes = [&] {
    for (int fd : {ready_pipe[0], ready_pipe[1], token_pipe[0], token_pipe[1]}) {
      if (fd >= 0) ::close(fd);
    }
  };
  if (log_fd < 0) {
    Error error = sysError("cannot open log " + request.log_file.string());
    close_pipes();
    return error;
  }

  std::vector<std::string> argv_storage;
  argv_storage.push_back(request.backend_binary.string());
  argv_storage.insert(argv_storage.end(), request.args.begin(), request.args.end());
  std::vector<char*> argv;
  argv.reserve(argv_storage.size() + 1);
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    Error error = sysError("fork");
    close_pipes();
    ::close(log_fd);
    return error;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::setsid();
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::fcntl(ready_pipe[1], F_SETFD, 0);
    char fd_text[16];
    std::snprintf(fd_text, sizeof fd_text, "%d", ready_pipe[1]);
    ::setenv("HF_MOUNT_DAEMON_FD", fd_text, 1);
    ::setenv("HF_MOUNT_DAEMON_PID_FILE", request.pid_file.c_str(), 1);
    if (!request.control_socket.empty()) {
      ::setenv("HF_MOUNT_CONTROL_SOCKET", request.control_socket.c_str(), 1);
    }
    if (token_pipe[0] >= 0) {
      ::fcntl(token_pipe[0], F_SETFD, 0);
      std::snprintf(fd_text, sizeof fd_text, "%d", token_pipe[0]);
      ::setenv("HF_MOUNT_TOKEN_FD", fd_text, 1);
    }
    ::unsetenv("HF_TOKEN");  // the pipe carries it; keep it out of /proc/<pid>/environ
    ::execv(argv[0], argv.data());
    const char msg[] = "EFailed to exec the backend binary";
    (void)!::write(ready_pipe[1], msg, sizeof msg - 1);
    ::_exit(127);
  }

  ::close(log_fd);
  ::close(ready_pipe[1]);
  if (token_pipe[0] >= 0) {
    ::close(token_pipe[0]);
    (void)util::writeAll(token_pipe[1], *request.token);  // a backend that died reports it
    ::close(token_pipe[1]);
  }
  request.record.pid = pid;
  request.record.started_at = static_cast<int64_t>(std::time(nullptr));
  // Written by the parent so that it exists before `start` returns; the backend removes it.
  if (auto st = writePidFile(request.pid_file, request.record); !st) {
    ::kill(pid, SIGTERM);
    ::close(ready_pipe[0]);
    return st.error();
  }

  SpawnOutcome outcome;
  outcome.pid = pid;
  const auto deadline = std::chrono::steady_clock::now() + request.ready_timeout;
  std::string reply;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      outcome.error = "timed out waiting for the backend to mount";
      break;
    }
    pollfd pfd{ready_pipe[0], POLLIN, 0};
    const int wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 1000));
    const int n = ::poll(&pfd, 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      if (progress) {
        std::fputc('.', stdout);
        std::fflush(stdout);
      }
      continue;
    }
    // The backend writes its whole message in one write (< PIPE_BUF, so atomic); it may keep
    // running with the pipe open, so read once rather than to EOF.
    char buf[1024];
    const ssize_t got = ::read(ready_pipe[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got > 0) reply.assign(buf, static_cast<size_t>(got));
    break;
  }
  ::close(ready_pipe[0]);
  if (!reply.empty() && reply[0] == 'R') {
    outcome.ready = true;
  } else if (outcome.error.empty()) {
    outcome.error = reply.size() > 1 ? reply.substr(1) : "backend exited before mounting";
  }
  return outcome;
}

}  // namespace hfm::app
