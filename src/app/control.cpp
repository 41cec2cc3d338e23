#include "hfm/app/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace hfm::app {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr size_t kMaxMessage = 4096;
constexpr auto kServerIoTimeout = std::chrono::milliseconds(1000);
constexpr std::string_view kPendingPhrase = " left pending";

Error sysError(const std::string& what) { return {errno, what + ": " + std::strerror(errno)}; }

Result<sockaddr_un> socketAddress(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string text = path.string();
  if (text.empty() || text.size() >= sizeof addr.sun_path) {
    return Error(ENAMETOOLONG, "control socket path too long: " + text);
  }
  std::memcpy(addr.sun_path, text.c_str(), text.size() + 1);
  return addr;
}

int64_t millisLeft(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::steady_clock::now())
      .count();
}

// Waits until `fd` is ready for `events` or the deadline passes (ETIMEDOUT).
Status waitFd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const int64_t left = millisLeft(deadline);
    if (left <= 0) return Error(ETIMEDOUT, "timed out");
    pollfd pfd{fd, events, 0};
    const int n = ::poll(&pfd, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sysError("poll");
    if (n > 0) return okStatus();
  }
}

// Sends all of `data` on a non-blocking socket before the deadline.
Status sendAll(int fd, std::string_view data, std::chrono::steady_clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto st = waitFd(fd, POLLOUT, deadline); !st) return st;
      continue;
    }
    return sysError("send");
  }
  return okStatus();
}

// Reads one '\n'-terminated line (or until EOF) of at most kMaxMessage bytes.
Result<std::string> recvLine(int fd, std::chrono::steady_clock::time_point deadline) {
  std::string line;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      line.append(buf, static_cast<size_t>(n));
      const size_t nl = line.find('\n');
      if (nl != std::string::npos) return line.substr(0, nl);
      if (line.size() > kMaxMessage) return Error(EMSGSIZE, "control message too long");
      continue;
    }
    if (n == 0) return line;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto st = waitFd(fd, POLLIN, deadline); !st) return st.error();
      continue;
    }
    return sysError("recv");
  }
}

template <typename T>
void putOptional(Json& j, const char* name, const std::optional<T>& value) {
  if (value) j[name] = *value;
}

std::optional<uint64_t> getOptional(const Json& j, const char* name) {
  const auto it = j.find(name);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

std::string getString(const Json& j, const char* name) {
  const auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string encodeReport(const BackendReport& r) {
  Json j;
  j["state"] = r.state;
  j["pid"] = r.pid;
  j["backend"] = r.backend;
  j["source"] = r.source;
  j["mountpoint"] = r.mountpoint;
  putOptional(j, "flush_shutdown_timeout_ms", r.flush_shutdown_timeout_ms);
  putOptional(j, "cache_used_bytes", r.cache_used_bytes);
  putOptional(j, "cache_limit_bytes", r.cache_limit_bytes);
  putOptional(j, "dirty_files", r.dirty_files);
  putOptional(j, "pending_commits", r.pending_commits);
  putOptional(j, "pending_bytes", r.pending_bytes);
  putOptional(j, "committed_files", r.committed_files);
  putOptional(j, "failed_attempts", r.failed_attempts);
  return j.dump();
}

Result<BackendReport> decodeReport(std::string_view text) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Error::invalid("control answer is not a JSON object");
  if (const auto it = j.find("error"); it != j.end()) {
    return Error::invalid("backend refused the request: " + it->dump());
  }
  const auto state = j.find("state");
  if (state == j.end() || !state->is_string()) return Error::invalid("control answer has no state");
  BackendReport r;
  r.state = state->get<std::string>();
  if (const auto it = j.find("pid"); it != j.end() && it->is_number_integer()) {
    r.pid = it->get<int64_t>();
  }
  r.backend = getString(j, "backend");
  r.source = getString(j, "source");
  r.mountpoint = getString(j, "mountpoint");
  r.flush_shutdown_timeout_ms = getOptional(j, "flush_shutdown_timeout_ms");
  r.cache_used_bytes = getOptional(j, "cache_used_bytes");
  r.cache_limit_bytes = getOptional(j, "cache_limit_bytes");
  r.dirty_files = getOptional(j, "dirty_files");
  r.pending_commits = getOptional(j, "pending_commits");
  r.pending_bytes = getOptional(j, "pending_bytes");
  r.committed_files = getOptional(j, "committed_files");
  r.failed_attempts = getOptional(j, "failed_attempts");
  return r;
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<ControlServer>> ControlServer::start(fs::path socket_path,
                                                            std::function<BackendReport()> report) {
  auto addr = socketAddress(socket_path);
  if (!addr) return addr.error();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return sysError("socket");
  ::unlink(socket_path.c_str());  // a stale socket of an earlier run (the pid file is ours)
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    Error error = sysError("cannot bind " + socket_path.string());
    ::close(fd);
    return error;
  }
  // The directory is 0700 already; the socket itself is for the owner only too.
  if (::chmod(socket_path.c_str(), 0600) != 0 || ::listen(fd, 8) != 0) {
    Error error = sysError("cannot listen on " + socket_path.string());
    ::close(fd);
    ::unlink(socket_path.c_str());
    return error;
  }
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    Error error = sysError("eventfd");
    ::close(fd);
    ::unlink(socket_path.c_str());
    return error;
  }
  return std::unique_ptr<ControlServer>(
      new ControlServer(std::move(socket_path), fd, wake, std::move(report)));
}

ControlServer::ControlServer(fs::path path, int listen_fd, int wake_fd,
                             std::function<BackendReport()> report)
    : path_(std::move(path)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      report_(std::move(report)),
      thread_([this] { loop(); }) {}

ControlServer::~ControlServer() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void ControlServer::loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) continue;
    answer(conn);
    ::close(conn);
  }
}

void ControlServer::answer(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (cred.uid != ::geteuid() && cred.uid != 0)) {
    return;  // not our user: say nothing
  }
  const auto deadline = std::chrono::steady_clock::now() + kServerIoTimeout;
  auto line = recvLine(fd, deadline);
  if (!line) return;
  const Json request = Json::parse(*line, nullptr, /*allow_exceptions=*/false);
  std::string reply;
  if (request.is_object() && request.value("op", "") == "status") {
    reply = encodeReport(report_());
  } else {
    reply = Json{{"error", R"(unknown request; expected {"op":"status"})"}}.dump();
  }
  reply += '\n';
  (void)sendAll(fd, reply, deadline);
}

Result<BackendReport> queryBackend(const fs::path& socket_path, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto addr = socketAddress(socket_path);
  if (!addr) return addr.error();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return sysError("socket");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return sysError("cannot reach the backend at " + socket_path.string());
    }
    if (auto st = waitFd(fd, POLLOUT, deadline); !st) return st.error();
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) {
      errno = so_error;
      return sysError("cannot reach the backend at " + socket_path.string());
    }
  }
  if (auto st = sendAll(fd, "{\"op\":\"status\"}\n", deadline); !st) return st.error();
  auto line = recvLine(fd, deadline);
  if (!line) return line.error();
  if (line->empty()) return Error(ECONNRESET, "the backend closed the control connection");
  return decodeReport(*line);
}

bool isStaleSocket(const fs::path& socket_path) {
  auto addr = socketAddress(socket_path);
  if (!addr) return false;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  const bool refused = rc != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

// ---------------------------------------------------------------------------------------------

std::string formatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  auto value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string formatShutdownOutcome(bool read_only, uint64_t pending_files, uint64_t pending_bytes,
                                  uint64_t committed_files, const std::string& staging_dir) {
  if (read_only) return "read-only mount, nothing to write";
  const auto files = [](uint64_t n) { return std::to_string(n) + (n == 1 ? " file" : " files"); };
  if (pending_files == 0) {
    return "all writes committed (" + files(committed_files) + " committed by this run)";
  }
  std::string text =
      files(pending_files) + " (" + formatBytes(pending_bytes) + ")" + std::string(kPendingPhrase);
  if (!staging_dir.empty()) text += " in " + staging_dir;
  text += "; they will be committed at the next start of this mount (same --cache-dir)";
  return text;
}

std::optional<ShutdownOutcome> parseShutdownOutcome(std::string_view log_text) {
  const size_t at = log_text.rfind(kShutdownMarker);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = log_text.substr(at + kShutdownMarker.size());
  rest = rest.substr(0, rest.find('\n'));
  while (!rest.empty() && (rest.back() == '\r' || rest.back() == ' ')) rest.remove_suffix(1);
  ShutdownOutcome outcome;
  outcome.text = std::string(rest);
  outcome.clean = rest.find(kPendingPhrase) == std::string_view::npos;
  return outcome;
}

}  // namespace hfm::app
