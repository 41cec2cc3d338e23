// hf-mount-nfs end to end, without a kernel NFS client: hf-local-hub serves a repo, the
// backend serves it with --no-mount, and Debian's nfs-ls / nfs-cat read it through NFS.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr const char* kToken = "hf_nfsbinarytesttoken0123456789";

struct Process {
  pid_t pid = -1;
  int out = -1;  // stdout (stderr goes to the test's stderr)
  std::string buffered;

  static std::optional<Process> start(const std::vector<std::string>& argv) {
    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return std::nullopt;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    Process p;
    const int rc = ::posix_spawnp(&p.pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_pipe[1]);
    if (rc != 0) {
      ::close(out_pipe[0]);
      return std::nullopt;
    }
    p.out = out_pipe[0];
    return p;
  }

  // The first stdout line starting with `prefix` (the rest of it), within `timeout`.
  std::optional<std::string> waitForLine(const std::string& prefix, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      size_t nl;
      while ((nl = buffered.find('\n')) != std::string::npos) {
        std::string line = buffered.substr(0, nl);
        buffered.erase(0, nl + 1);
        if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
      }
      pollfd pfd{out, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out, buf, sizeof(buf));
      if (n <= 0) return std::nullopt;
      buffered.append(buf, static_cast<size_t>(n));
    }
    return std::nullopt;
  }

  // SIGTERM, then the exit code (or -1 after a SIGKILL on timeout).
  int stop(std::chrono::seconds timeout) {
    if (pid <= 0) return -1;
    ::kill(pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        pid = -1;
        return -1;
      }
      ::usleep(20000);
    }
    pid = -1;
    if (out >= 0) ::close(out);
    out = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

struct Guard {
  Process* p;
  ~Guard() {
    if (p != nullptr && p->pid > 0) p->stop(std::chrono::seconds(10));
  }
};

// A minimal HTTP/1.1 POST over loopback; returns the status code.
int httpPost(uint16_t port, const std::string& path, const std::string& body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                          "Authorization: Bearer " + kToken + "\r\n" +
                          "Content-Type: application/json\r\nConnection: close\r\n" +
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[4096];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 10000) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (resp.rfind("HTTP/1.1 ", 0) != 0) return -1;
  return std::stoi(resp.substr(9, 3));
}

std::pair<int, std::string> runTool(const std::vector<std::string>& argv) {
  auto p = Process::start(argv);
  if (!p) return {-1, ""};
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{p->out, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = ::read(p->out, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(p->out);
  int status = 0;
  if (std::chrono::steady_clock::now() >= deadline) ::kill(p->pid, SIGKILL);
  ::waitpid(p->pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(NfsBinaryTest, ServesARepoFromTheLocalHubToNfsClients) {
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("hfm-nfs-bin-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device()()));
  std::filesystem::create_directories(dir);
  const std::string bin = std::string(HFM_BINARY_DIR) + "/src/bin/";

  auto hub = Process::start({bin + "hf-local-hub", "serve", "--data", (dir / "hub").string(),
                             "--port", "0", "--token", std::string("user:") + kToken});
  ASSERT_TRUE(hub.has_value());
  Guard hub_guard{&*hub};
  auto base = hub->waitForLine("hf-local-hub listening on ", std::chrono::seconds(30));
  ASSERT_TRUE(base.has_value());
  const uint16_t hub_port = static_cast<uint16_t>(std::stoi(base->substr(base->rfind(':') + 1)));

  // "hello nfs\n" and "leaf\n", base64.
  ASSERT_EQ(httpPost(hub_port, "/api/repos/create",
                     R"({"type":"model","name":"demo","organization":"user","files":[)"
                     R"({"path":"hello.txt","content":"aGVsbG8gbmZzCg==","encoding":"base64"},)"
                     R"({"path":"sub/leaf.txt","content":"bGVhZgo=","encoding":"base64"}]})"),
            200);

  auto backend = Process::start({bin + "hf-mount-nfs", "--hub-endpoint",
                                 "http://127.0.0.1:" + std::to_string(hub_port), "--hf-token",
                                 kToken, "--cache-dir", (dir / "cache").string(), "--no-mount",
                                 "repo", "user/demo", (dir / "mnt").string()});
  ASSERT_TRUE(backend.has_value());
  Guard backend_guard{&*backend};
  auto listening =
      backend->waitForLine("NFS server listening on 127.0.0.1:", std::chrono::seconds(60));
  ASSERT_TRUE(listening.has_value());
  const std::string port = *listening;
  auto url = [&](const std::string& path) {
    return "nfs://127.0.0.1" + path + "?nfsport=" + port + "&mountport=" + port + "&version=3";
  };

  auto [ls_code, ls_out] = runTool({"nfs-ls", "-R", url("/")});
  ASSERT_EQ(ls_code, 0) << ls_out;
  EXPECT_NE(ls_out.find("hello.txt"), std::string::npos) << ls_out;
  EXPECT_NE(ls_out.find("sub/leaf.txt"), std::string::npos) << ls_out;
  auto [cat_code, cat_out] = runTool({"nfs-cat", url("//hello.txt")});
  ASSERT_EQ(cat_code, 0);
  EXPECT_EQ(cat_out, "hello nfs\n");
  auto [leaf_code, leaf_out] = runTool({"nfs-cat", url("/sub/leaf.txt")});
  ASSERT_EQ(leaf_code, 0);
  EXPECT_EQ(leaf_out, "leaf\n");

  EXPECT_EQ(backend->stop(std::chrono::seconds(20)), 0);  // SIGTERM: clean exit
  // The handle table was written under the cache dir.
  bool found = false;
  for (const auto& e : std::filesystem::directory_iterator(dir / "cache" / "nfs")) {
    found = found || e.path().filename().string().rfind("handles-", 0) == 0;
  }
  EXPECT_TRUE(found);
  hub->stop(std::chrono::seconds(10));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(NfsBinaryTest, UnreachableHubFailsWithOneLine) {
  const std::string bin = std::string(HFM_BINARY_DIR) + "/src/bin/";
  auto [code, out] = runTool({bin + "hf-mount-nfs", "--hub-endpoint", "http://127.0.0.1:1",
                              "--no-mount", "bucket", "ns/b", "/tmp/hfm-nfs-never-mounted"});
  EXPECT_EQ(code, 1);
  EXPECT_EQ(out.find("NFS server listening"), std::string::npos);
}

}  // namespace
