// `hf-mount start | stop | status`: the supervisor half of the CLI.
//
// start  validates the backend command line exactly as the backend will (same parser), checks
//        the mount point, token and backend binary, spawns the backend detached and returns 0
//        only once the backend reports the mount live (see daemon.h for the handshake).
// stop   asks the backend to flush and unmount (SIGTERM), waits (by default its
//        --flush-shutdown-timeout-ms plus a margin), and reports the outcome: whether every
//        write reached the Hub, or what is left for the next start (exit 1 then).
// status prints a table of live mounts (with cache use and pending writes from each backend's
//        control channel, "-" when it does not answer) and removes stale pid files and sockets.
// Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hfm::app {

class SupervisorCommands {
 public:
  // Registers start, stop and status on `app`.
  explicit SupervisorCommands(CLI::App& app);

  // After app.parse(): runs the selected supervisor command and returns its exit code, or
  // nullopt if none of them was selected.
  std::optional<int> run() const;

 private:
  CLI::App* start_ = nullptr;
  CLI::App* stop_ = nullptr;
  CLI::App* status_ = nullptr;
  bool start_fuse_ = false;
  std::string stop_mountpoint_;
  std::optional<unsigned> stop_timeout_secs_;
};

// The pieces of `start`, exposed for tests.
struct StartPlan {
  bool fuse = false;
  std::vector<std::string> backend_args;  // token removed
  std::optional<std::string> token;       // from --hf-token or HF_TOKEN, sent through a pipe
  std::string mountpoint;                 // canonical
  std::string source_label;
};

// Parses and validates `hf-mount start` arguments; on failure returns the one-line reason
// in `error` and the exit code to use (2 for usage, 1 for environment problems).
std::optional<StartPlan> planStart(const std::vector<std::string>& args, bool fuse,
                                   std::string& error, int& exit_code);

int runStart(const std::vector<std::string>& args, bool fuse);
// Margin `stop` adds to the backend's flush timeout: unmount, the last commits, exit.
inline constexpr unsigned kStopMarginSecs = 15;

int runStop(const std::string& mountpoint, std::optional<unsigned> timeout_secs);
int runStatus();

}  // namespace hfm::app
