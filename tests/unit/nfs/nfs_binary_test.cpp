// hf-mount-nfs end to end, without a kernel NFS client: hf-local-hub serves a repo or a
// bucket, the backend serves it with --no-mount, and libnfs's client (RpcTestClient) and
// Debian's nfs-ls / nfs-cat / nfs-cp talk to it as outside clients. Written bytes are checked
// through the hub's own resolve API and through a fresh server.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "rpc_test_client.h"

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

// Stops whatever process the optional holds when the test ends (also after a failed ASSERT).
struct OptGuard {
  std::optional<Process>* p;
  ~OptGuard() {
    if (p->has_value() && (*p)->pid > 0) (*p)->stop(std::chrono::seconds(30));
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

using hfm::nfs::testing::Fh;
using hfm::nfs::testing::RpcTestClient;
constexpr auto kOk = static_cast<uint32_t>(NFS3_OK);

// hf-local-hub with one user, in a temp dir removed at the end (processes stop first).
struct HubFixture {
  std::filesystem::path dir;
  std::optional<Process> hub;
  uint16_t port = 0;
  std::string bin = std::string(HFM_BINARY_DIR) + "/src/bin/";

  HubFixture() {
    dir = std::filesystem::temp_directory_path() / ("hfm-nfs-bin-" + std::to_string(::getpid()) +
                                                    "-" + std::to_string(std::random_device()()));
    std::filesystem::create_directories(dir);
    hub = Process::start({bin + "hf-local-hub", "serve", "--data", (dir / "hub").string(), "--port",
                          "0", "--token", std::string("user:") + kToken});
    if (!hub) return;
    auto base = hub->waitForLine("hf-local-hub listening on ", std::chrono::seconds(30));
    if (base) port = static_cast<uint16_t>(std::stoi(base->substr(base->rfind(':') + 1)));
  }
  ~HubFixture() {
    if (hub && hub->pid > 0) hub->stop(std::chrono::seconds(10));
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  // hf-mount-nfs --no-mount on `kind id` with `cache`; nullopt if it did not start.
  std::optional<Process> backend(const std::string& kind, const std::string& id,
                                 const std::string& cache, uint16_t* nfs_port) {
    auto p = Process::start({bin + "hf-mount-nfs", "--hub-endpoint", url(), "--hf-token", kToken,
                             "--cache-dir", (dir / cache).string(), "--flush-debounce-ms", "100",
                             "--no-mount", kind, id, (dir / "mnt").string()});
    if (!p) return std::nullopt;
    auto listening = p->waitForLine("NFS server listening on 127.0.0.1:", std::chrono::seconds(60));
    if (!listening) {
      p->stop(std::chrono::seconds(10));
      return std::nullopt;
    }
    *nfs_port = static_cast<uint16_t>(std::stoi(*listening));
    return p;
  }

  // The file's bytes as the hub serves them (GET /buckets/{id}/resolve/{path}); nullopt when
  // the hub does not have it.
  std::optional<std::string> resolve(const std::string& bucket, const std::string& path) {
    auto [code, out] =
        runTool({"curl", "-sfL", "-H", std::string("Authorization: Bearer ") + kToken,
                 url() + "/buckets/" + bucket + "/resolve/" + path});
    if (code != 0) return std::nullopt;
    return out;
  }
};

// Polls `pred` every 100 ms for at most `timeout`.
bool eventually(const std::function<bool()>& pred, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    ::usleep(100000);
  }
  return pred();
}

std::string nfsUrl(uint16_t port, const std::string& path) {
  const std::string p = std::to_string(port);
  return "nfs://127.0.0.1" + path + "?nfsport=" + p + "&mountport=" + p + "&version=3";
}

TEST(NfsBinaryTest, BucketWritesThroughNfsReachTheHubAndHandlesSurviveARestart) {
  HubFixture hub;
  ASSERT_NE(hub.port, 0);
  ASSERT_EQ(httpPost(hub.port, "/api/buckets/user/wb", "{}"), 200);

  uint16_t port = 0;
  auto backend = hub.backend("bucket", "user/wb", "cache", &port);
  OptGuard backend_guard{&backend};
  ASSERT_TRUE(backend.has_value());

  std::vector<uint8_t> model;
  Fh root, moved, gone, excl;
  constexpr uint64_t kVerf = 0x5eed5eed00c0ffeeULL;
  {
    RpcTestClient client(port);
    ASSERT_TRUE(client.connected());
    ASSERT_EQ(client.mount("/", &root), static_cast<uint32_t>(MNT3_OK));
    Fh dir, f;
    ASSERT_EQ(client.mkdir(root, "dir", &dir), kOk);
    ASSERT_EQ(client.create(root, "data.bin", UNCHECKED, &f), kOk);
    // Random-offset writes (gaps read back as zeros) against a local model.
    std::mt19937_64 rng(99);
    for (int i = 0; i < 40; ++i) {
      const uint64_t off = rng() % (3u << 20);
      std::vector<uint8_t> chunk(1 + rng() % (256 * 1024));
      for (auto& b : chunk) b = static_cast<uint8_t>(rng());
      ASSERT_EQ(client.write(f, off, chunk).status, kOk) << "write " << i;
      if (model.size() < off + chunk.size()) model.resize(off + chunk.size(), 0);
      std::copy(chunk.begin(), chunk.end(), model.begin() + static_cast<std::ptrdiff_t>(off));
    }
    // Append, then truncate through SETATTR.
    const std::vector<uint8_t> tail = {'e', 'n', 'd'};
    ASSERT_EQ(client.write(f, model.size(), tail).status, kOk);
    model.insert(model.end(), tail.begin(), tail.end());
    sattr3 cut{};
    cut.size.set_it = 1;
    cut.size.set_size3_u.size = model.size() - 1000;
    ASSERT_EQ(client.setattr(f, cut), kOk);
    model.resize(model.size() - 1000);
    std::vector<uint8_t> back;
    ASSERT_EQ(client.readAll(f, &back), kOk);
    ASSERT_TRUE(back == model);
    ASSERT_EQ(client.commit(f), kOk);
    // Renamed into the directory: the handle follows.
    ASSERT_EQ(client.rename(root, "data.bin", dir, "moved.bin"), kOk);
    moved = f;
    ASSERT_EQ(client.readAll(moved, &back), kOk);
    ASSERT_TRUE(back == model);
    EXPECT_EQ(client.lookup(root, "data.bin", nullptr), static_cast<uint32_t>(NFS3ERR_NOENT));
    // Removed: stale.
    ASSERT_EQ(client.create(root, "gone.txt", GUARDED, &gone), kOk);
    ASSERT_EQ(client.write(gone, 0, {'x'}, FILE_SYNC).status, kOk);
    ASSERT_EQ(client.remove(root, "gone.txt"), kOk);
    EXPECT_EQ(client.getattr(gone), static_cast<uint32_t>(NFS3ERR_STALE));
    ASSERT_EQ(client.create(root, "excl.txt", EXCLUSIVE, &excl, {}, kVerf), kOk);
  }
  // An outside client: nfs-cp of a local file into the bucket.
  const auto local = hub.dir / "local.txt";
  {
    std::ofstream out(local, std::ios::binary);
    out << "copied with nfs-cp\n";
  }
  auto [cp_code, cp_out] = runTool({"nfs-cp", local.string(), nfsUrl(port, "/dir/cp.txt")});
  ASSERT_EQ(cp_code, 0) << cp_out;

  // NFS has no close: the writes reach the hub through idle release and the debounced commit,
  // while the server keeps running.
  const std::string expected(model.begin(), model.end());
  EXPECT_TRUE(eventually([&] { return hub.resolve("user/wb", "dir/moved.bin") == expected; },
                         std::chrono::seconds(60)));
  EXPECT_TRUE(
      eventually([&] { return hub.resolve("user/wb", "dir/cp.txt") == "copied with nfs-cp\n"; },
                 std::chrono::seconds(60)));
  EXPECT_FALSE(hub.resolve("user/wb", "data.bin").has_value());
  EXPECT_FALSE(hub.resolve("user/wb", "gone.txt").has_value());
  EXPECT_EQ(backend->stop(std::chrono::seconds(60)), 0);
  EXPECT_EQ(hub.resolve("user/wb", "excl.txt"), std::optional<std::string>(""));

  // Restart on the same cache dir: the handles the client holds still name the same files.
  backend = hub.backend("bucket", "user/wb", "cache", &port);
  ASSERT_TRUE(backend.has_value());
  {
    RpcTestClient client(port);
    std::vector<uint8_t> back;
    ASSERT_EQ(client.readAll(moved, &back), kOk);
    EXPECT_TRUE(back == model);
    EXPECT_EQ(client.getattr(gone), static_cast<uint32_t>(NFS3ERR_STALE));
    Fh again;
    ASSERT_EQ(client.mount("/", &again), static_cast<uint32_t>(MNT3_OK));
    EXPECT_EQ(again, root);
    // A CREATE EXCLUSIVE retransmitted across the restart: same verifier, same file.
    Fh retransmitted;
    ASSERT_EQ(client.create(root, "excl.txt", EXCLUSIVE, &retransmitted, {}, kVerf), kOk);
    EXPECT_EQ(retransmitted, excl);
    EXPECT_EQ(client.create(root, "excl.txt", EXCLUSIVE, nullptr, {}, kVerf ^ 1),
              static_cast<uint32_t>(NFS3ERR_EXIST));
  }
  EXPECT_EQ(backend->stop(std::chrono::seconds(60)), 0);
  // A fresh server with an empty cache reads the hub's bytes.
  backend = hub.backend("bucket", "user/wb", "cache2", &port);
  ASSERT_TRUE(backend.has_value());
  auto [cat_code, cat_out] = runTool({"nfs-cat", nfsUrl(port, "/dir/moved.bin")});
  ASSERT_EQ(cat_code, 0);
  EXPECT_TRUE(cat_out == expected);
}

TEST(NfsBinaryTest, UnstableWritesWithoutCommitAreCommittedByAStop) {
  HubFixture hub;
  ASSERT_NE(hub.port, 0);
  ASSERT_EQ(httpPost(hub.port, "/api/buckets/user/st", "{}"), 200);
  uint16_t port = 0;
  auto backend = hub.backend("bucket", "user/st", "cache", &port);
  OptGuard backend_guard{&backend};
  ASSERT_TRUE(backend.has_value());
  std::vector<uint8_t> bytes(1u << 20);
  std::mt19937_64 rng(7);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  {
    RpcTestClient client(port);
    Fh root, f;
    ASSERT_EQ(client.mount("/", &root), static_cast<uint32_t>(MNT3_OK));
    ASSERT_EQ(client.create(root, "late.bin", UNCHECKED, &f), kOk);
    // UNSTABLE, no COMMIT, and the handle is still pooled (not idle yet) when SIGTERM comes.
    ASSERT_EQ(client.write(f, 0, bytes).status, kOk);
  }
  EXPECT_EQ(backend->stop(std::chrono::seconds(60)), 0);
  EXPECT_EQ(hub.resolve("user/st", "late.bin"), std::string(bytes.begin(), bytes.end()));
}

TEST(NfsBinaryTest, TenThousandEntriesPageAndMalformedRpcOnlyClosesItsConnection) {
  HubFixture hub;
  ASSERT_NE(hub.port, 0);
  ASSERT_EQ(httpPost(hub.port, "/api/buckets/user/many", "{}"), 200);
  // 10 000 empty files in one batch commit (the zero hash is the empty file).
  constexpr int kFiles = 10000;
  std::string ndjson;
  for (int i = 0; i < kFiles; ++i) {
    ndjson += R"({"type":"addFile","path":"big/f)" + std::to_string(i) + R"(.txt","xetHash":")" +
              std::string(64, '0') + "\"}\n";
  }
  ASSERT_EQ(httpPost(hub.port, "/api/buckets/user/many/batch", ndjson), 200);

  uint16_t port = 0;
  auto backend = hub.backend("bucket", "user/many", "cache", &port);
  OptGuard backend_guard{&backend};
  ASSERT_TRUE(backend.has_value());
  RpcTestClient client(port);
  Fh root, big;
  ASSERT_EQ(client.mount("/", &root), static_cast<uint32_t>(MNT3_OK));
  ASSERT_EQ(client.lookup(root, "big", &big), kOk);
  std::set<std::string> names;
  uint64_t cookie = 0;
  char verf[NFS3_COOKIEVERFSIZE] = {};
  bool eof = false;
  for (int page = 0; page < 2000 && !eof; ++page) {
    auto p = client.readdirplus(big, cookie, cookie == 0 ? nullptr : verf, 8192, 32768);
    ASSERT_EQ(p.status, kOk);
    ASSERT_TRUE(p.eof || !p.entries.empty());
    for (const auto& e : p.entries) {
      if (e.name != "." && e.name != "..") {
        EXPECT_TRUE(names.insert(e.name).second) << e.name;
      }
      cookie = e.cookie;
    }
    std::memcpy(verf, p.verf, sizeof(verf));
    eof = p.eof;
  }
  EXPECT_TRUE(eof);
  EXPECT_EQ(names.size(), static_cast<size_t>(kFiles));

  // Garbage, a truncated record and a huge record length, each on its own connection.
  auto raw = [&](const std::vector<uint8_t>& bytes) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }
    return fd;
  };
  const int garbage = raw(std::vector<uint8_t>(64, 0xab));
  const int huge = raw({0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4});
  const int truncated = raw({0x80, 0, 0, 100, 0, 0, 0, 1});  // says 100 bytes, sends 4
  ::shutdown(truncated, SHUT_WR);
  for (int fd : {garbage, huge, truncated}) {
    pollfd pfd{fd, POLLIN, 0};
    char buf[64];
    const bool closed = ::poll(&pfd, 1, 10000) > 0 && ::recv(fd, buf, sizeof(buf), 0) <= 0;
    EXPECT_TRUE(closed) << "the server kept a malformed connection open";
    ::close(fd);
  }
  // The well-behaved client is still served.
  EXPECT_TRUE(client.nullCall(NFS_PROGRAM));
  fattr3 a{};
  ASSERT_EQ(client.getattr(big, &a), kOk);
  EXPECT_EQ(a.type, NF3DIR);
}

}  // namespace
