// hf-mount-fuse: the FUSE backend, in the foreground (containers, systemd, or spawned by
// `hf-mount start --fuse`).
//
//   hf-mount-fuse [OPTIONS] bucket <ns/name>[/<subdir>] <mountpoint>
//   hf-mount-fuse [OPTIONS] repo <[datasets/|spaces/]ns/name>[/<subdir>] <mountpoint> [--revision
//   R]
//
// Start-up fails with one clear line and a non-zero exit (2 bad usage, 1 anything else) if
// the source is missing, the token is refused or the hub is unreachable. SIGTERM, SIGINT and
// SIGHUP unmount cleanly and exit 0.
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "hfm/app/daemon.h"
#include "hfm/app/mount_options.h"
#include "hfm/fuse/fuse_mount.h"
#include "hfm/mount/mount_context.h"
#include "hfm/util/log.h"
#include "hfm/vfs/poller.h"
#include "hfm/vfs/vfs.h"

namespace {

int fail(hfm::app::DaemonGuard& guard, int code, const std::string& message) {
  spdlog::error("{}", message);
  std::fprintf(stderr, "hf-mount-fuse: %s\n", message.c_str());
  guard.failed(message);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // The signal thread may fire while main tears the mount down: mount_mu keeps it from
  // calling into a FuseMount that is being destroyed.
  std::mutex mount_mu;
  hfm::fuse::FuseMount* mount_ptr = nullptr;  // Guarded by mount_mu.
  std::atomic<bool> stop_early{false};
  // Before any other thread exists, so every thread inherits the blocked signals.
  hfm::fuse::SignalWatcher signals([&](int) {
    stop_early = true;
    std::lock_guard lock(mount_mu);
    if (mount_ptr != nullptr) mount_ptr->requestStop();
  });
  auto guard = hfm::app::DaemonGuard::fromEnvironment();
  const auto piped_token = hfm::app::readTokenFromInheritedFd();

  CLI::App app{"hf-mount-fuse: mount a Hugging Face bucket or repo with FUSE (foreground)"};
  app.set_version_flag("--version", std::string("hf-mount-fuse ") + HFM_VERSION);
  hfm::app::MountOptions options;
  hfm::app::MountSource source;
  hfm::app::addMountCommandLine(app, options, source, hfm::app::Backend::kFuse);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    app.exit(e);
    guard.failed(e.what());
    return 2;
  }
  hfm::util::setupLogging();
  if (auto problem = hfm::app::finalizeMountOptions(options, source)) {
    return fail(guard, 2, *problem);
  }
  spdlog::info("{}", hfm::app::describeMountOptions(options));

  auto context = hfm::mount::MountContext::open(options, source, piped_token);
  if (!context) return fail(guard, 1, context.error().message());
  auto& ctx = **context;

  std::error_code ec;
  std::filesystem::create_directories(source.mountpoint, ec);  // as the reference: mkdir -p
  const std::string mountpoint = std::filesystem::absolute(source.mountpoint, ec).string();
  spdlog::info("{}", ctx.describe(mountpoint, "fuse"));

  hfm::vfs::Vfs vfs(ctx.remote, ctx.vfs_config);
  if (auto st = vfs.preloadRoot(); !st) {
    return fail(guard, 1, "listing " + ctx.source.display() + " failed: " + st.error().message());
  }

  hfm::fuse::FuseConfig fc;
  fc.mountpoint = mountpoint;
  fc.max_threads = options.max_threads;
  fc.allow_other = !options.fuse_owner_only;
  fc.entry_timeout = std::chrono::milliseconds(options.metadata_ttl_ms);
  fc.on_ready = [&] {
    spdlog::info("mounted {} at {}", ctx.source.display(), mountpoint);
    guard.ready();
  };
  auto mounted = hfm::fuse::FuseMount::mount(vfs, fc);
  if (!mounted) return fail(guard, 1, mounted.error().message());
  auto& mount = *mounted;
  {
    std::lock_guard lock(mount_mu);
    mount_ptr = mount.get();
  }
  if (stop_early) mount->requestStop();

  hfm::vfs::Poller poller(vfs, ctx.remote, std::chrono::seconds(options.poll_interval_secs),
                          [](const hfm::vfs::ChangeSet& changes) {
                            spdlog::info("remote changes: {} added, {} changed, {} deleted",
                                         changes.added.size(), changes.changed.size(),
                                         changes.deleted.size());
                          });
  poller.start();
  auto served = mount->serve();
  poller.stop();
  {
    std::lock_guard lock(mount_mu);
    mount_ptr = nullptr;
  }
  if (!served) return fail(guard, 1, served.error().message());
  spdlog::info("unmounted {}", mountpoint);
  return 0;
}
