// hf-mount-nfs: mounts a Hugging Face bucket or repo over NFSv3, in the foreground.
//
//   hf-mount-nfs [OPTIONS] bucket <ns/name>[/<subdir>] <mountpoint>
//   hf-mount-nfs [OPTIONS] repo <[datasets/|spaces/]ns/name>[/<subdir>] <mountpoint> [--revision R]
//
// Start-up and shutdown are runBackend's (mount/backend_runner.h). This file says how the Vfs
// reaches the kernel: NfsServer on 127.0.0.1 (--nfs-port, 0 = a free port; the port is printed
// once serving), then mount.nfs / mount_nfs unless --no-mount. The backend stops on
// SIGINT/SIGTERM/SIGHUP (committing pending writes, then unmounting), when the kernel sends
// MOUNT UMNT for our own mount, or when the mount disappears (checked every 2 s), like the
// reference. With --no-mount it serves until a signal. NFSv3 has no close, so writes always go
// through the staging path: --advanced-writes is forced on (as the reference).
#include <atomic>
#include <cstdio>
#include <filesystem>

#include "hfm/app/daemon.h"
#include "hfm/mount/backend_runner.h"
#include "hfm/nfs/kernel_mount.h"
#include "hfm/nfs/nfs_server.h"
#include "hfm/util/log.h"

namespace {

constexpr auto kMountCheckInterval = std::chrono::seconds(2);

class NfsFrontend final : public hfm::mount::Frontend {
 public:
  NfsFrontend(const hfm::app::MountOptions& options, const hfm::app::MountSource& source)
      : options_(options), source_(source) {}
  ~NfsFrontend() override { (void)stop(); }
  NfsFrontend(const NfsFrontend&) = delete;
  NfsFrontend& operator=(const NfsFrontend&) = delete;

  hfm::Status start(hfm::vfs::Vfs& vfs, const hfm::mount::MountContext& ctx,
                    const std::string& mountpoint) override {
    hfm::nfs::NfsServerConfig config;
    config.port = options_.nfs_port;
    config.worker_threads = options_.max_threads;
    config.handle_dir = std::filesystem::path(options_.cache_dir) / "nfs";
    config.handle_key = source_.label() +
                        (source_.kind == hfm::app::SourceKind::kRepo ? "@" + source_.revision : "");
    config.on_unmount = [this] { kernel_unmounted_ = true; };
    server_ = std::make_unique<hfm::nfs::NfsServer>(vfs, config);
    if (auto st = server_->start(); !st) {
      server_.reset();
      return st.error().withContext("cannot serve NFS");
    }
    std::printf("NFS server listening on 127.0.0.1:%u\n", static_cast<unsigned>(server_->port()));
    std::fflush(stdout);

    request_.port = server_->port();
    request_.mountpoint = mountpoint;
    request_.read_only = ctx.read_only;
    request_.metadata_ttl_ms = options_.metadata_ttl_ms;
    if (options_.no_mount) {
      spdlog::info(
          "--no-mount: serving on 127.0.0.1:{} (mount with -o vers=3,tcp,port={},"
          "mountport={},nolock)",
          server_->port(), server_->port(), server_->port());
      return hfm::okStatus();
    }
    std::error_code ec;
    std::filesystem::create_directories(mountpoint, ec);  // as the reference: mkdir -p
    canonical_ = hfm::app::canonicalMountPoint(mountpoint).string();
    auto st = hfm::nfs::kernelMount(request_, hfm::nfs::probeMountEnvironment(request_.platform));
    if (!st) {
      server_->stop();
      server_.reset();
      return st.error();
    }
    mounted_ = true;
    last_check_ = std::chrono::steady_clock::now();
    spdlog::info("mounted {} at {} over NFS (port {})", ctx.source.display(), mountpoint,
                 server_->port());
    return hfm::okStatus();
  }

  std::optional<std::string> gone() override {
    if (!mounted_) return std::nullopt;
    if (kernel_unmounted_.load()) {
      mounted_ = false;
      return "the kernel unmounted " + request_.mountpoint + " (UMNT)";
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_check_ < kMountCheckInterval) return std::nullopt;
    last_check_ = now;
    if (hfm::app::isMounted(canonical_)) return std::nullopt;
    mounted_ = false;
    return request_.mountpoint + " is no longer mounted";
  }

  hfm::Status stop() override {
    if (!server_) return hfm::okStatus();
    if (mounted_ && hfm::app::isMounted(canonical_)) {
      if (auto st = hfm::nfs::kernelUnmount(request_.mountpoint, request_.platform); !st) {
        spdlog::warn("{}", st.error().message());
      }
    }
    mounted_ = false;
    server_->stop();
    server_.reset();
    return hfm::okStatus();
  }

 private:
  const hfm::app::MountOptions& options_;
  const hfm::app::MountSource& source_;
  std::unique_ptr<hfm::nfs::NfsServer> server_;
  hfm::nfs::KernelMountRequest request_;
  std::string canonical_;
  bool mounted_ = false;                       // we mounted it and have not seen it go
  std::atomic<bool> kernel_unmounted_{false};  // set from the server thread on UMNT
  std::chrono::steady_clock::time_point last_check_;
};

}  // namespace

int main(int argc, char** argv) {
  hfm::mount::BackendSpec spec;
  spec.program = "hf-mount-nfs";
  spec.version = HFM_VERSION;
  spec.about = "hf-mount-nfs: mount a Hugging Face bucket or repo over NFS (foreground)";
  spec.backend = hfm::app::Backend::kNfs;
  spec.backend_name = "nfs";
  // NFSv3 has no close: writes always go through the staging path (as the reference).
  spec.adjust_options = [](hfm::app::MountOptions& options) { options.advanced_writes = true; };
  spec.make_frontend = [](const hfm::app::MountOptions& options,
                          const hfm::app::MountSource& source) {
    return std::make_unique<NfsFrontend>(options, source);
  };
  return hfm::mount::runBackend(argc, argv, spec);
}
