// CLI11 2.1's inlined string helpers trip GCC 12's -Wnull-dereference (a false positive in
// libstdc++'s basic_string); silence it for this header only, included first so that
// <string> is too.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "hfm/app/control.h"
#include "hfm/app/daemon.h"
#include "hfm/mount/backend_runner.h"
#include "hfm/util/log.h"
#include "hfm/vfs/poller.h"

namespace hfm::mount {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr milliseconds kGonePollInterval{200};

class Runner {
 public:
  explicit Runner(const BackendSpec& spec) : spec_(spec) {}

  int run(int argc, char** argv);

 private:
  int fail(app::DaemonGuard& guard, int code, const std::string& message) const {
    spdlog::error("{}", message);
    std::fprintf(stderr, "%s: %s\n", spec_.program.c_str(), message.c_str());
    guard.failed(message);
    return code;
  }
  app::BackendReport report(const app::MountOptions& options, const MountContext& ctx,
                            const vfs::Vfs& vfs, const std::string& mountpoint) const;
  // Steps 1-5 of the shutdown (see the header). Returns the exit code.
  int shutDown(const app::MountOptions& options, const MountContext& ctx, vfs::Vfs& vfs,
               vfs::Poller& poller, Frontend& frontend, bool still_mounted);

  const BackendSpec& spec_;
  std::atomic<const char*> state_{"starting"};
};

// Waits for SIGINT/SIGTERM/SIGHUP (blocked in every thread) or for the mount to vanish.
std::string waitForStop(const sigset_t& signals, Frontend& frontend, bool& still_mounted) {
  for (;;) {
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(kGonePollInterval);
    timespec ts{0, static_cast<long>(wait.count())};
    const int sig = ::sigtimedwait(&signals, nullptr, &ts);
    if (sig > 0) {
      still_mounted = true;
      return "received signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
    }
    if (auto reason = frontend.gone()) {
      still_mounted = false;
      return *reason;
    }
  }
}

app::BackendReport Runner::report(const app::MountOptions& options, const MountContext& ctx,
                                  const vfs::Vfs& vfs, const std::string& mountpoint) const {
  app::BackendReport r;
  r.state = state_.load();
  r.pid = ::getpid();
  r.backend = spec_.backend_name;
  r.source = ctx.source.display();
  r.mountpoint = mountpoint;
  r.flush_shutdown_timeout_ms = options.flush_shutdown_timeout_ms;
  if (ctx.file_cache) {  // --cache-mode file: the disk cache is the whole-file one
    r.cache_used_bytes = ctx.file_cache->stats().bytes;
    r.cache_limit_bytes = options.cache_size;
  } else if (ctx.chunk_cache) {
    const auto stats = ctx.chunk_cache->stats();
    r.cache_used_bytes = stats.used_bytes;
    r.cache_limit_bytes = stats.capacity_bytes;
  }
  if (!ctx.read_only) {
    const vfs::WriteStats writes = vfs.writeStats();
    r.dirty_files = writes.dirty_files;
    r.pending_commits = writes.pending_commits;
    r.pending_bytes = writes.pending_bytes;
    r.committed_files = writes.committed_files;
    r.failed_attempts = writes.failed_attempts;
  }
  return r;
}

int Runner::shutDown(const app::MountOptions& options, const MountContext& ctx, vfs::Vfs& vfs,
                     vfs::Poller& poller, Frontend& frontend, bool still_mounted) {
  state_ = "flushing";
  poller.stop();
  const auto deadline = SteadyClock::now() + milliseconds(options.flush_shutdown_timeout_ms);
  const auto left = [&] {
    return std::max(milliseconds(0),
                    std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()));
  };
  if (!ctx.read_only) {
    // dirty_files counts every uncommitted file; pending_commits the closed ones among them.
    const auto before = vfs.writeStats();
    if (before.dirty_files > 0) {
      spdlog::info(
          "committing {} uncommitted file(s) ({} closed, {}) before unmounting (at most "
          "{} ms)",
          before.dirty_files, before.pending_commits, app::formatBytes(before.pending_bytes),
          options.flush_shutdown_timeout_ms);
    }
    // While the mount still serves: a writer finishing close() is answered, not cut off.
    if (still_mounted) {
      if (auto st = vfs.flushAll(left()); !st) spdlog::warn("{}", st.error().message());
    }
  }
  const Status stopped = frontend.stop();
  if (!stopped) spdlog::error("{}", stopped.error().message());
  int code = stopped ? 0 : 1;
  if (ctx.read_only) {
    spdlog::info("{}{}", app::kShutdownMarker, app::formatShutdownOutcome(true, 0, 0, 0, ""));
    return code;
  }
  // Handles the unmount released were committed as they closed; retry what is left with the
  // rest of the budget.
  if (auto st = vfs.flushAll(left()); !st) spdlog::warn("{}", st.error().message());
  const auto after = vfs.writeStats();
  const uint64_t pending = after.dirty_files;
  const std::string outcome =
      app::formatShutdownOutcome(false, pending, after.pending_bytes, after.committed_files,
                                 ctx.vfs_config.writes.staging_dir);
  if (pending == 0) {
    spdlog::info("{}{}", app::kShutdownMarker, outcome);
  } else {
    spdlog::warn("{}{}", app::kShutdownMarker, outcome);
  }
  return code;
}

int Runner::run(int argc, char** argv) {
  // Signals are taken synchronously (sigtimedwait in waitForStop); block them before any
  // other thread exists so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto guard = app::DaemonGuard::fromEnvironment();
  const auto piped_token = app::readTokenFromInheritedFd();

  CLI::App cli{spec_.about};
  cli.set_version_flag("--version", spec_.program + " " + spec_.version);
  app::MountOptions options;
  app::MountSource source;
  app::addMountCommandLine(cli, options, source, spec_.backend);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help, --version
    cli.exit(e);
    guard.failed(e.what());
    return 2;
  }
  util::setupLogging();
  if (auto problem = app::finalizeMountOptions(options, source)) {
    return fail(guard, 2, *problem);
  }
  if (spec_.adjust_options) spec_.adjust_options(options);
  spdlog::info("{}", app::describeMountOptions(options));

  auto context = MountContext::open(options, source, piped_token);
  if (!context) return fail(guard, 1, context.error().message());
  const MountContext& ctx = **context;
  std::error_code ec;
  const std::string mountpoint = std::filesystem::absolute(source.mountpoint, ec).string();
  spdlog::info("{}", ctx.describe(mountpoint, spec_.backend_name));

  vfs::Vfs vfs(ctx.remote, ctx.vfs_config);
  if (auto st = vfs.preloadRoot(); !st) {
    return fail(guard, 1, "listing " + ctx.source.display() + " failed: " + st.error().message());
  }
  if (!ctx.read_only) {
    // Files an earlier run closed but could not commit (killed, hub down): committed in the
    // background, with retries. A failure here does not stop the mount.
    if (auto st = vfs.recoverPending(); !st) {
      spdlog::warn("recovering pending writes: {}", st.error().message());
    }
  }

  std::unique_ptr<app::ControlServer> control;
  if (!guard.controlSocket().empty()) {
    auto started = app::ControlServer::start(guard.controlSocket(),
                                             [&] { return report(options, ctx, vfs, mountpoint); });
    if (started) {
      control = std::move(started).value();
    } else {
      spdlog::warn("no control channel ({}): hf-mount status will show '-' for this mount",
                   started.error().message());
    }
  }

  auto frontend = spec_.make_frontend(options, source);
  if (auto st = frontend->start(vfs, ctx, mountpoint); !st) {
    return fail(guard, 1, st.error().message());
  }
  state_ = "serving";
  guard.ready();

  vfs::Poller poller(vfs, ctx.remote, std::chrono::seconds(options.poll_interval_secs),
                     [](const vfs::ChangeSet& changes) {
                       spdlog::info("remote changes: {} added, {} changed, {} deleted",
                                    changes.added.size(), changes.changed.size(),
                                    changes.deleted.size());
                     });
  poller.start();

  bool still_mounted = true;
  const std::string why = waitForStop(signals, *frontend, still_mounted);
  spdlog::info("{}, stopping", why);
  const int code = shutDown(options, ctx, vfs, poller, *frontend, still_mounted);
  control.reset();
  spdlog::info("stopped serving {}", mountpoint);
  return code;
}

}  // namespace

int runBackend(int argc, char** argv, const BackendSpec& spec) {
  // Reads move large transient buffers (fetched xorb ranges, decoded chunks, read-ahead parts).
  // glibc raises its mmap threshold after freeing such a buffer and then serves the next ones
  // from fragmented arenas that are never returned, one set per thread: peak RSS reading 1 GiB
  // was 331 MiB with the defaults, 233 MiB with a fixed 1 MiB threshold and two arenas
  // (bench/run-meta-bench.sh).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_ARENA_MAX, 2);
  Runner runner(spec);
  return runner.run(argc, argv);
}

}  // namespace hfm::mount
