// runBackend: the life of a foreground backend (hf-mount-fuse, hf-mount-nfs), shared by both.
//
// Start-up, in order: block SIGINT/SIGTERM/SIGHUP (before any thread exists) → DaemonGuard and
// the piped token (daemon.h) → the shared command line (mount_options.h; --help/--version exit
// 0, bad usage 2) → logging → BackendSpec::adjust_options → MountContext::open → Vfs →
// preloadRoot → recoverPending (commits what an earlier run left staged) → the control
// channel (control.h, when started by `hf-mount start`) → Frontend::start (kernel mount; the
// mount answers) → DaemonGuard::ready → poller. Any failure before ready exits 1 (2 for usage)
// with one line on stderr and in the readiness pipe.
//
// Shutdown, on a signal or when the mount goes away on its own (external umount, NFS UMNT):
//   1. the poller stops (no remote change is applied while writes drain);
//   2. if the mount is still there, Vfs::flushAll(--flush-shutdown-timeout-ms) commits every
//      closed file while the kernel mount keeps serving, so a writer still finishing its
//      close() is answered rather than cut off;
//   3. the frontend unmounts and stops serving (handles released by the unmount are
//      committed by the Vfs as they go);
//   4. flushAll again with what is left of the same budget, for files released in step 3;
//   5. one log line "shutdown: ..." (control.h, formatShutdownOutcome) says whether every
//      write reached the Hub or how much stays staged for the next start; exit 0 (1 if the
//      serve loop itself failed).
// The control channel answers "flushing" from step 1 to the end of step 4.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hfm/app/mount_options.h"
#include "hfm/mount/mount_context.h"
#include "hfm/util/result.h"
#include "hfm/vfs/vfs.h"

namespace hfm::mount {

// How one backend brings a Vfs to the kernel. Implemented next to the binaries (FUSE in
// hf-mount-fuse.cpp, NFS in hf-mount-nfs.cpp), so this layer needs neither libfuse nor libnfs.
// Methods are called from the runner's main thread, in the order start, gone*, stop.
class Frontend {
 public:
  virtual ~Frontend() = default;
  // Mounts `vfs` at `mountpoint` (absolute) and returns once the mount answers requests.
  virtual Status start(vfs::Vfs& vfs, const MountContext& ctx, const std::string& mountpoint) = 0;
  // Called every 200 ms while serving: a reason when the mount went away by itself (then the
  // runner shuts down), nullopt while it is in place.
  virtual std::optional<std::string> gone() = 0;
  // Unmounts (if still mounted) and stops serving; returns once no request runs any more.
  virtual Status stop() = 0;
};

struct BackendSpec {
  std::string program;  // "hf-mount-fuse": prefix of error lines, --version
  std::string version;  // HFM_VERSION of the binary
  std::string about;    // --help title
  app::Backend backend = app::Backend::kFuse;
  std::string backend_name;  // "fuse" | "nfs": logs, status
  // After the options are final (e.g. NFS forces --advanced-writes).
  std::function<void(app::MountOptions&)> adjust_options;
  std::function<std::unique_ptr<Frontend>(const app::MountOptions&, const app::MountSource&)>
      make_frontend;
};

// Runs the backend described by `spec` with the process's arguments; returns the exit code.
// Call it first thing in main(): it blocks the shutdown signals for every thread to come.
int runBackend(int argc, char** argv, const BackendSpec& spec);

}  // namespace hfm::mount
