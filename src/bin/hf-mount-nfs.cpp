// hf-mount-nfs: mounts a Hugging Face bucket or repo over NFSv3, in the foreground.
//
//   hf-mount-nfs [OPTIONS] bucket <ns/name>[/<subdir>] <mountpoint>
//   hf-mount-nfs [OPTIONS] repo <[datasets/|spaces/]ns/name>[/<subdir>] <mountpoint> [--revision R]
//
// Builds the mount (MountContext: hub, xet, cache, HubRemote), serves it with NfsServer on
// 127.0.0.1 (--nfs-port, 0 = a free port; the port is printed once serving), then mounts it
// with mount.nfs / mount_nfs unless --no-mount. Reports readiness to `hf-mount start`
// through DaemonGuard. Exits on SIGINT/SIGTERM/SIGHUP (unmounting first), when the kernel
// sends MOUNT UMNT for our own mount, or when the mount disappears (checked every 2 s), like
// the reference. With --no-mount it serves until a signal.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>

#include "hfm/app/daemon.h"
#include "hfm/app/mount_options.h"
#include "hfm/mount/mount_context.h"
#include "hfm/nfs/kernel_mount.h"
#include "hfm/nfs/nfs_server.h"
#include "hfm/util/log.h"
#include "hfm/vfs/poller.h"
#include "hfm/vfs/vfs.h"

namespace {

std::atomic<bool> g_unmounted{false};

int fail(hfm::app::DaemonGuard& guard, int code, const std::string& message) {
  spdlog::error("{}", message);
  std::fprintf(stderr, "hf-mount-nfs: %s\n", message.c_str());
  guard.failed(message);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken synchronously by the main thread (sigtimedwait below); block them
  // before any other thread exists so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto guard = hfm::app::DaemonGuard::fromEnvironment();
  const auto piped_token = hfm::app::readTokenFromInheritedFd();

  CLI::App app{"hf-mount-nfs: mount a Hugging Face bucket or repo over NFS (foreground)"};
  app.set_version_flag("--version", std::string("hf-mount-nfs ") + HFM_VERSION);
  hfm::app::MountOptions options;
  hfm::app::MountSource source;
  hfm::app::addMountCommandLine(app, options, source, hfm::app::Backend::kNfs);
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
  // NFSv3 has no close: writes always go through the staging path (as the reference).
  options.advanced_writes = true;
  spdlog::info("{}", hfm::app::describeMountOptions(options));

  auto context = hfm::mount::MountContext::open(options, source, piped_token);
  if (!context) return fail(guard, 1, context.error().message());
  auto& ctx = **context;
  std::error_code ec;
  const std::string mountpoint = std::filesystem::absolute(source.mountpoint, ec).string();
  spdlog::info("{}", ctx.describe(mountpoint, "nfs"));

  hfm::vfs::Vfs vfs(ctx.remote, ctx.vfs_config);
  if (auto st = vfs.preloadRoot(); !st) {
    return fail(guard, 1, "listing " + ctx.source.display() + " failed: " + st.error().message());
  }

  hfm::nfs::NfsServerConfig config;
  config.port = options.nfs_port;
  config.worker_threads = options.max_threads;
  config.handle_dir = std::filesystem::path(options.cache_dir) / "nfs";
  config.handle_key =
      source.label() + (source.kind == hfm::app::SourceKind::kRepo ? "@" + source.revision : "");
  config.on_unmount = [] { g_unmounted = true; };
  hfm::nfs::NfsServer server(vfs, config);
  if (auto st = server.start(); !st) {
    return fail(guard, 1, "cannot serve NFS: " + st.error().message());
  }
  std::printf("NFS server listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  hfm::vfs::Poller poller(vfs, ctx.remote, std::chrono::seconds(options.poll_interval_secs),
                          [](const hfm::vfs::ChangeSet& changes) {
                            spdlog::info("remote changes: {} added, {} changed, {} deleted",
                                         changes.added.size(), changes.changed.size(),
                                         changes.deleted.size());
                          });
  poller.start();

  hfm::nfs::KernelMountRequest request;
  request.port = server.port();
  request.mountpoint = mountpoint;
  request.read_only = ctx.read_only;
  request.metadata_ttl_ms = options.metadata_ttl_ms;
  const bool mounting = !options.no_mount;
  if (mounting) {
    std::filesystem::create_directories(mountpoint, ec);  // as the reference: mkdir -p
    auto st = hfm::nfs::kernelMount(request, hfm::nfs::probeMountEnvironment(request.platform));
    if (!st) {
      poller.stop();
      server.stop();
      return fail(guard, 1, st.error().message());
    }
    spdlog::info("mounted {} at {} over NFS (port {})", ctx.source.display(), mountpoint,
                 server.port());
  } else {
    spdlog::info(
        "--no-mount: serving on 127.0.0.1:{} (mount with -o vers=3,tcp,port={},"
        "mountport={},nolock)",
        server.port(), server.port(), server.port());
  }
  guard.ready();

  const std::string canonical = hfm::app::canonicalMountPoint(mountpoint).string();
  for (;;) {
    timespec two_seconds{2, 0};
    const int sig = sigtimedwait(&signals, nullptr, &two_seconds);
    if (sig > 0) {
      spdlog::info("received signal {}, stopping", sig);
      break;
    }
    if (mounting && g_unmounted.load()) {
      spdlog::info("the kernel unmounted {} (UMNT), stopping", mountpoint);
      break;
    }
    if (mounting && !hfm::app::isMounted(canonical)) {
      spdlog::info("{} is no longer mounted, stopping", mountpoint);
      break;
    }
  }
  poller.stop();
  if (mounting && hfm::app::isMounted(canonical)) {
    if (auto st = hfm::nfs::kernelUnmount(mountpoint, request.platform); !st) {
      spdlog::warn("{}", st.error().message());
    }
  }
  server.stop();
  spdlog::info("stopped serving {}", mountpoint);
  return 0;
}
