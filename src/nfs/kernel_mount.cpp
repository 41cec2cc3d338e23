#include "hfm/nfs/kernel_mount.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "hfm/util/log.h"

extern char** environ;

namespace hfm::nfs {
namespace {

std::optional<std::string> findProgram(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      const size_t colon = p.find(':', start);
      dirs.push_back(
          p.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  dirs.emplace_back("/sbin");
  dirs.emplace_back("/usr/sbin");
  for (const auto& dir : dirs) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::string helperName(MountPlatform platform) {
  return platform == MountPlatform::kMacOS ? "mount_nfs" : "mount.nfs";
}

struct RunResult {
  int exit_code = -1;
  std::string output;
};

// Runs argv with stdout+stderr captured, killing it after `timeout`.
Result<RunResult> run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Error(errno, "pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDERR_FILENO);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    return Error(rc, "running " + argv[0] + ": " + std::strerror(rc));
  }
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      result.output += "(timed out)";
      break;
    }
    pollfd pfd{pipefd[0], POLLIN, 0};
    const int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    const ssize_t got = ::read(pipefd[0], buf, sizeof(buf));
    if (got <= 0) break;
    if (result.output.size() < 65536) result.output.append(buf, static_cast<size_t>(got));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  while (!result.output.empty() && (result.output.back() == '\n' || result.output.back() == ' ')) {
    result.output.pop_back();
  }
  return result;
}

std::string firstLine(const std::string& s) {
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

std::string kernelMountOptions(const KernelMountRequest& request) {
  const uint64_t actimeo = (request.metadata_ttl_ms + 999) / 1000;
  const std::string port = std::to_string(request.port);
  std::string opts;
  if (request.platform == MountPlatform::kMacOS) {
    if (request.read_only) opts += "rdonly,";
    opts += "locallocks,vers=3,tcp,port=" + port + ",mountport=" + port +
            ",rsize=1048576,actimeo=" + std::to_string(actimeo);
  } else {
    opts += "nolock,vers=3,tcp,mountproto=tcp,port=" + port + ",mountport=" + port +
            ",rsize=1048576,actimeo=" + std::to_string(actimeo);
    if (request.read_only) opts += ",ro";
  }
  if (!request.read_only) opts += ",wsize=1048576";
  return opts;
}

Result<std::vector<std::string>> buildKernelMountCommand(const KernelMountRequest& request,
                                                         const MountEnvironment& env) {
  const std::string name = helperName(request.platform);
  if (!env.helper) {
    const std::string install = request.platform == MountPlatform::kMacOS
                                    ? "it ships with macOS in /sbin"
                                    : "install nfs-common (Debian/Ubuntu) or nfs-utils "
                                      "(Fedora/RHEL/Alpine)";
    return Error(ENOENT,
                 "cannot mount over NFS: " + name + " not found (" + install + "), or use --fuse");
  }
  std::vector<std::string> argv;
  if (!env.is_root && request.platform == MountPlatform::kLinux) {
    if (!env.sudo) {
      return Error(EPERM,
                   "cannot mount over NFS: mounting needs root (or CAP_SYS_ADMIN) and "
                   "sudo is not available; run as root or use --fuse");
    }
    argv = {*env.sudo, "-n"};
  }
  argv.push_back(*env.helper);
  if (request.platform == MountPlatform::kMacOS) {
    argv.insert(argv.end(), {"-o", kernelMountOptions(request), "127.0.0.1:/", request.mountpoint});
  } else {
    argv.insert(argv.end(), {"127.0.0.1:/", request.mountpoint, "-o", kernelMountOptions(request)});
  }
  return argv;
}

MountEnvironment probeMountEnvironment(MountPlatform platform) {
  MountEnvironment env;
  env.is_root = ::geteuid() == 0;
  env.helper = findProgram(helperName(platform));
  env.sudo = findProgram("sudo");
  return env;
}

std::string kernelMountFailureMessage(const KernelMountRequest& request, int exit_code,
                                      const std::string& output) {
  const std::string detail =
      output.empty() ? "exit code " + std::to_string(exit_code) : firstLine(output);
  const bool permission = output.find("Operation not permitted") != std::string::npos ||
                          output.find("only root") != std::string::npos ||
                          output.find("must be superuser") != std::string::npos ||
                          output.find("password is required") != std::string::npos ||
                          output.find("not allowed") != std::string::npos;
  if (permission) {
    return "cannot mount " + request.mountpoint + " over NFS: permission denied (" + detail +
           "); mounting NFS needs root or CAP_SYS_ADMIN (in a container: --privileged or "
           "--cap-add SYS_ADMIN), or use --fuse";
  }
  return "cannot mount " + request.mountpoint + " over NFS: " + detail + "; or use --fuse";
}

Status kernelMount(const KernelMountRequest& request, const MountEnvironment& env) {
  HFM_ASSIGN_OR_RETURN(std::vector<std::string> argv, buildKernelMountCommand(request, env));
  std::string shown;
  for (const auto& a : argv) shown += (shown.empty() ? "" : " ") + a;
  spdlog::info("nfs: {}", shown);
  auto result = run(argv, std::chrono::seconds(60));
  if (!result.ok()) {
    return Error(result.error().code(),
                 "cannot mount over NFS: " + result.error().message() + "; or use --fuse");
  }
  if (result->exit_code != 0) {
    return Error(result->output.find("Operation not permitted") != std::string::npos ? EPERM : EIO,
                 kernelMountFailureMessage(request, result->exit_code, result->output));
  }
  return okStatus();
}

Status kernelUnmount(const std::string& mountpoint, MountPlatform platform) {
  std::vector<std::vector<std::string>> attempts;
  if (auto umount = findProgram("umount")) {
    attempts.push_back({*umount, mountpoint});
    if (::geteuid() != 0) {
      if (auto sudo = findProgram("sudo")) attempts.push_back({*sudo, "-n", *umount, mountpoint});
    }
    if (platform == MountPlatform::kLinux) attempts.push_back({*umount, "-l", mountpoint});
  }
  std::string last = "umount not found";
  for (const auto& argv : attempts) {
    auto result = run(argv, std::chrono::seconds(30));
    if (result.ok() && result->exit_code == 0) return okStatus();
    last = result.ok() ? firstLine(result->output) : result.error().message();
  }
  return Error(EIO, "unmounting " + mountpoint + ": " + last);
}

}  // namespace hfm::nfs
