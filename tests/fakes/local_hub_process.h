// LocalHubProcess: runs the real hf-local-hub binary for a test, on an ephemeral loopback
// port, with a temp data dir and one registered user. The destructor always stops it
// (SIGTERM, then SIGKILL) and removes the data dir, so a failing test leaves nothing running.
// header-only so any test target can use it without another library.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hfm::testing {

class LocalHubProcess {
 public:
  static constexpr const char* kUser = "tester";
  static constexpr const char* kToken = "hf_localhubtesttoken";

  // `extra_args` are appended to `serve` (e.g. {"--fault-rate", "0.1", "--faults", "5xx"}).
  // Pass a `data_dir` to reuse one across restarts; otherwise a fresh one is made and removed.
  explicit LocalHubProcess(std::vector<std::string> extra_args = {},
                           std::filesystem::path data_dir = {})
      : owns_dir_(data_dir.empty()) {
    if (owns_dir_) {
      std::random_device rd;
      data_dir = std::filesystem::temp_directory_path() /
                 ("hfm-hub-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    }
    data_dir_ = data_dir;
    std::filesystem::create_directories(data_dir_);
    start(std::move(extra_args));
  }
  ~LocalHubProcess() {
    stop();
    if (owns_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir_, ec);
    }
  }
  LocalHubProcess(const LocalHubProcess&) = delete;
  LocalHubProcess& operator=(const LocalHubProcess&) = delete;

  const std::string& url() const { return url_; }
  const std::filesystem::path& dataDir() const { return data_dir_; }

  // Bytes of the xorbs the hub stores (each stored once, whoever uploaded it and how often).
  uint64_t storedXorbBytes() const {
    uint64_t total = 0;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(data_dir_ / "cas" / "xorbs", ec), end;
         !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file() && it->path().extension() == ".xorb") total += it->file_size();
    }
    return total;
  }
  pid_t pid() const { return pid_; }

  // Stops the server: SIGTERM and a bounded wait, or SIGKILL right away when `hard`.
  void stop(bool hard = false) {
    if (pid_ <= 0) return;
    ::kill(pid_, hard ? SIGKILL : SIGTERM);
    for (int i = 0; i < 50 && !hard; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  static std::string binary() { return std::string(HFM_BINARY_DIR) + "/src/bin/hf-local-hub"; }

 private:
  void start(std::vector<std::string> extra_args) {
    std::vector<std::string> args = {
        binary(), "serve",  "--data",    data_dir_.string(), "--port",
        "0",      "--host", "127.0.0.1", "--token",          std::string(kUser) + ":" + kToken};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (text.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    const size_t at = text.find("http://");
    if (at == std::string::npos) {
      stop(true);
      throw std::runtime_error("hf-local-hub did not start: " + text);
    }
    url_ = text.substr(at, text.find_first_of("\r\n", at) - at);
  }

  bool owns_dir_;
  std::filesystem::path data_dir_;
  pid_t pid_ = -1;
  std::string url_;
};

}  // namespace hfm::testing
