// hf-mount-fuse: the FUSE backend, in the foreground (containers, systemd, or spawned by
// `hf-mount start --fuse`).
//
//   hf-mount-fuse [OPTIONS] bucket <ns/name>[/<subdir>] <mountpoint>
//   hf-mount-fuse [OPTIONS] repo <[datasets/|spaces/]ns/name>[/<subdir>] <mountpoint> [--revision
//   R]
//
// Start-up and shutdown are runBackend's (mount/backend_runner.h): one clear line and a
// non-zero exit (2 bad usage, 1 anything else) if the source is missing, the token is refused
// or the hub is unreachable; SIGTERM, SIGINT and SIGHUP commit pending writes, unmount and
// exit 0. This file only says how the Vfs reaches the kernel: a FuseMount whose request loop
// runs on a thread of its own.
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "hfm/fuse/fuse_mount.h"
#include "hfm/mount/backend_runner.h"
#include "hfm/util/log.h"

namespace {

// How long the kernel may take to answer FUSE_INIT after the mount(2).
constexpr auto kReadyTimeout = std::chrono::seconds(60);

class FuseFrontend final : public hfm::mount::Frontend {
 public:
  explicit FuseFrontend(const hfm::app::MountOptions& options) : options_(options) {}
  ~FuseFrontend() override { (void)stop(); }
  FuseFrontend(const FuseFrontend&) = delete;
  FuseFrontend& operator=(const FuseFrontend&) = delete;

  hfm::Status start(hfm::vfs::Vfs& vfs, const hfm::mount::MountContext& ctx,
                    const std::string& mountpoint) override {
    std::error_code ec;
    std::filesystem::create_directories(mountpoint, ec);  // as the reference: mkdir -p
    hfm::fuse::FuseConfig fc;
    fc.mountpoint = mountpoint;
    fc.max_threads = options_.max_threads;
    fc.allow_other = !options_.fuse_owner_only;
    fc.entry_timeout = std::chrono::milliseconds(options_.metadata_ttl_ms);
    // Whole-file copies (--cache-mode file) of a read-only mount can be read by the kernel.
    fc.passthrough = ctx.read_only && ctx.file_cache != nullptr && !options_.no_fuse_passthrough;
    fc.on_ready = [this] {
      std::lock_guard lock(mu_);
      ready_ = true;
      cv_.notify_all();
    };
    auto mounted = hfm::fuse::FuseMount::mount(vfs, fc);
    if (!mounted) return mounted.error();
    mount_ = std::move(mounted).value();
    serve_thread_ = std::thread([this] {
      hfm::Status served = mount_->serve();
      std::lock_guard lock(mu_);
      served_ = std::move(served);
      done_ = true;
      cv_.notify_all();
    });
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kReadyTimeout, [this] { return ready_ || done_; })) {
      lock.unlock();
      (void)stop();
      return hfm::Error(
          ETIMEDOUT, "the kernel did not answer the FUSE mount of " + mountpoint + " within 60 s");
    }
    if (!ready_) {
      lock.unlock();
      hfm::Status served = stop();
      return served ? hfm::Error(EIO, "the FUSE session of " + mountpoint +
                                          " ended before the mount was ready")
                    : served.error();
    }
    spdlog::info("mounted {} at {}", ctx.source.display(), mountpoint);
    return hfm::okStatus();
  }

  std::optional<std::string> gone() override {
    std::lock_guard lock(mu_);
    if (!done_) return std::nullopt;
    return mount_->mountpoint() + " was unmounted";
  }

  hfm::Status stop() override {
    if (!mount_) return hfm::okStatus();
    bool done = false;
    {
      std::lock_guard lock(mu_);
      done = done_;
    }
    if (!done) mount_->requestStop();
    if (serve_thread_.joinable()) serve_thread_.join();
    mount_.reset();
    return served_;
  }

 private:
  const hfm::app::MountOptions& options_;
  std::unique_ptr<hfm::fuse::FuseMount> mount_;
  std::thread serve_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;                    // Guarded by mu_.
  bool done_ = false;                     // Guarded by mu_: serve() returned.
  hfm::Status served_ = hfm::okStatus();  // Guarded by mu_ until serve_thread_ is joined.
};

}  // namespace

int main(int argc, char** argv) {
  hfm::mount::BackendSpec spec;
  spec.program = "hf-mount-fuse";
  spec.version = HFM_VERSION;
  spec.about = "hf-mount-fuse: mount a Hugging Face bucket or repo with FUSE (foreground)";
  spec.backend = hfm::app::Backend::kFuse;
  spec.backend_name = "fuse";
  spec.make_frontend = [](const hfm::app::MountOptions& options, const hfm::app::MountSource&) {
    return std::make_unique<FuseFrontend>(options);
  };
  return hfm::mount::runBackend(argc, argv, spec);
}
