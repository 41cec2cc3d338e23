// FuseMount: serves a vfs::Vfs to the Linux kernel through the libfuse3 low-level API.
//
// The adapter only translates: each FUSE operation calls the matching Vfs method and replies
// with its result, or with fuse_reply_err(req, error.code()). It owns no filesystem state apart
// from libfuse's session. What it adds is kernel-facing tuning:
//  - init: FUSE_CAP_AUTO_INVAL_DATA (the kernel drops cached pages when it sees a new mtime or
//    size), async reads, max_write 1 MiB and max_read 1 MiB (256-page requests),
//    max_background 64, max_readahead 16 MiB;
//  - entry/attribute timeouts equal to the metadata TTL; negative lookups are cached by the
//    kernel for the same time (and invalidated when the Vfs sees the name appear);
//  - FOPEN_KEEP_CACHE when the Vfs says the version is unchanged since the last open;
//  - after mounting, /sys/class/bdi/<maj:min>/read_ahead_kb is raised (best effort; measured
//    ×3.8 for buffered sequential reads on this kind of machine, docs/benchmarks.md);
//  - kernel cache invalidations from the Vfs (listings, revalidation, the poller) are queued to
//    a dedicated notifier thread. notify_inval_* is never called from a request thread or with
//    a Vfs lock held (the reference deadlocked in D-state doing so, #156/#195); page-dropping
//    invalidations are only requested for inodes without open handles; everything is disarmed
//    before unmounting.
//  - passthrough (FuseConfig::passthrough): opens of files with a local copy are handed to the
//    kernel, which then reads the copy without asking this process (passthrough.h);
//  - Splice: reads are answered from userspace memory, where vmsplice+splice costs more than
//    the single copy of a plain write to /dev/fuse, so FUSE_CAP_SPLICE_* stay off.
//
// Lifetime: mount() performs the kernel mount; serve() runs the multi-threaded loop until the
// filesystem is unmounted (externally, or by requestStop()); the destructor unmounts if needed.
// requestStop() may be called from any thread (e.g. a SignalWatcher on SIGTERM/SIGINT).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hfm/util/result.h"
#include "hfm/vfs/vfs.h"

namespace hfm::fuse {

struct FuseConfig {
  std::string mountpoint;
  unsigned max_threads = 16;       // --max-threads
  bool clone_fd = false;           // one /dev/fuse fd per worker thread
  bool allow_other = true;         // false with --fuse-owner-only
  uint32_t read_ahead_kb = 16384;  // bdi read-ahead after mount; 0 leaves the kernel default
  // Kernel entry/attribute cache time: usually the metadata TTL; 0 is forced when the Vfs runs
  // with metadata_ttl_minimal.
  std::chrono::milliseconds entry_timeout{10000};
  // Let the kernel read local whole-file copies itself (FUSE passthrough, Linux >= 6.9, needs
  // CAP_SYS_ADMIN; see passthrough.h). Only for read-only mounts without --direct-io: a
  // passthrough file cannot take writes, and the kernel would refuse a writer while it is open.
  bool passthrough = false;
  bool debug = false;  // libfuse request tracing to stderr
  std::string fsname = "hf-mount";
  // Called once, from a helper thread, when the mount answers requests (after FUSE_INIT).
  std::function<void()> on_ready;
};

class FuseMount {
 public:
  static Result<std::unique_ptr<FuseMount>> mount(vfs::Vfs& vfs, FuseConfig config);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Runs the request loop; returns when the filesystem has been unmounted.
  Status serve();
  // Disarms invalidations and unmounts lazily (umount2 MNT_DETACH as root, otherwise
  // fusermount3 -u -z); serve() returns once the kernel closes the connection.
  void requestStop();

  const std::string& mountpoint() const;
  // "major:minor" of the mount's backing device, once known (for the bdi settings).
  std::optional<std::string> deviceId() const;

  struct Impl;

 private:
  explicit FuseMount(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs `on_signal` on a thread of its own when SIGINT, SIGTERM or SIGHUP arrives. The
// constructor blocks those signals in the calling thread, so construct it in main() before
// any other thread starts (threads inherit the mask).
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int)> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Lazily unmounts `mountpoint` (umount2 MNT_DETACH as root, else fusermount3 -u -z). Used by
// requestStop() and by test guards.
Status unmountLazy(const std::string& mountpoint);

}  // namespace hfm::fuse
