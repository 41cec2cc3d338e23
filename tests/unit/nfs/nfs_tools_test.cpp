// Outside clients: Debian's libnfs-utils (nfs-ls, nfs-cat) against hfm-nfs-fake-server.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fake_remote.h"

extern char** environ;

namespace {

struct Child {
  pid_t pid = -1;
  int in = -1;   // write end of the child's stdin
  int out = -1;  // read end of the child's stdout
};

std::optional<Child> spawn(const std::vector<std::string>& argv) {
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return std::nullopt;
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Child c;
  const int rc = ::posix_spawnp(&c.pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    return std::nullopt;
  }
  c.in = in_pipe[1];
  c.out = out_pipe[0];
  return c;
}

// Reads the child's stdout until EOF (or `timeout`), then reaps it; kills it on timeout.
std::pair<int, std::string> finish(Child c, std::chrono::seconds timeout) {
  if (c.in >= 0) ::close(c.in);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  bool timed_out = false;
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      break;
    }
    pollfd pfd{c.out, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = ::read(c.out, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (timed_out) ::kill(c.pid, SIGKILL);
  ::close(c.out);
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  return {timed_out ? -1 : (WIFEXITED(status) ? WEXITSTATUS(status) : -1), out};
}

class FakeServer {
 public:
  FakeServer() {
    auto c = spawn({std::string(HFM_BINARY_DIR) + "/tests/unit/nfs/hfm-nfs-fake-server"});
    if (!c) return;
    child_ = *c;
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{child_.out, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char ch;
      if (::read(child_.out, &ch, 1) != 1) break;
      if (ch != '\n') {
        line += ch;
        continue;
      }
      if (line.rfind("PORT ", 0) == 0) port_ = static_cast<uint16_t>(std::stoi(line.substr(5)));
      line.clear();
    }
  }
  ~FakeServer() {
    if (child_.pid > 0) finish(child_, std::chrono::seconds(30));
  }
  uint16_t port() const { return port_; }
  std::string url(const std::string& path) const {
    const std::string p = std::to_string(port_);
    return "nfs://127.0.0.1" + path + "?nfsport=" + p + "&mountport=" + p + "&version=3";
  }

 private:
  Child child_;
  uint16_t port_ = 0;
};

std::pair<int, std::string> runTool(const std::vector<std::string>& argv) {
  auto c = spawn(argv);
  if (!c) return {-1, "cannot run " + argv[0]};
  return finish(*c, std::chrono::seconds(60));
}

TEST(NfsToolsTest, NfsLsListsTheTree) {
  FakeServer server;
  ASSERT_NE(server.port(), 0);
  auto [code, out] = runTool({"nfs-ls", server.url("/")});
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("README.md"), std::string::npos) << out;
  EXPECT_NE(out.find(" data\n"), std::string::npos) << out;
  EXPECT_NE(out.find("-r--r--r--"), std::string::npos) << out;

  auto [rcode, rout] = runTool({"nfs-ls", "-R", server.url("/")});
  ASSERT_EQ(rcode, 0) << rout;
  EXPECT_NE(rout.find("data/nested/leaf.txt"), std::string::npos) << rout;
  EXPECT_NE(rout.find("many/f999.txt"), std::string::npos);
  std::istringstream lines(rout);
  size_t many = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" many/f") != std::string::npos) many++;
  }
  EXPECT_EQ(many, 1000u);
}

TEST(NfsToolsTest, NfsCatIsByteIdentical) {
  FakeServer server;
  ASSERT_NE(server.port(), 0);
  // libnfs splits the URL path at its last '/' into export and file: a file at the root of
  // the export "/" is written nfs://host//file (nfs://host/file would ask for export "").
  auto [code, out] = runTool({"nfs-cat", server.url("//README.md")});
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out, "hello nfs\n");
  auto [bcode, bout] = runTool({"nfs-cat", server.url("/data/big.bin")});
  ASSERT_EQ(bcode, 0);
  const auto expected = hfm::testing::patternBytes(3 * 1024 * 1024 + 17, 7);
  ASSERT_EQ(bout.size(), expected.size());
  EXPECT_EQ(0, std::memcmp(bout.data(), expected.data(), expected.size()));
  auto [ncode, nout] = runTool({"nfs-cat", server.url("/data/nested/leaf.txt")});
  ASSERT_EQ(ncode, 0);
  EXPECT_EQ(nout, "leaf\n");
  auto [mcode, mout] = runTool({"nfs-cat", server.url("//missing.txt")});
  EXPECT_NE(mcode, 0);
}

}  // namespace
