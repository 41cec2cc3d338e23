// Kernel NFS mount of our own server: builds and runs `mount.nfs` (Linux) or `mount_nfs`
// (macOS) for 127.0.0.1:/ with the reference's options (hf-mount-reference.md §3.5):
//   Linux: nolock,vers=3,tcp,mountproto=tcp,port=P,mountport=P,rsize=1048576,
//          actimeo=ceil(ttl_ms/1000)[,wsize=1048576 | ,ro]
//   macOS: [rdonly,]locallocks,vers=3,tcp,port=P,mountport=P,rsize=1048576,actimeo=…
//          [,wsize=1048576]   (locallocks makes flock/fcntl work, #106)
// No portmapper is involved: both programs are on port P. The helper is looked up on PATH,
// then /sbin and /usr/sbin; a non-root process runs it through `sudo -n` (Linux).
//
// Failures come back as one clear line (#99/#101/#193): a missing helper names the package
// to install, a permission error names root / CAP_SYS_ADMIN, and both suggest --fuse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hfm/util/result.h"

namespace hfm::nfs {

enum class MountPlatform { kLinux, kMacOS };

struct KernelMountRequest {
  uint16_t port = 0;
  std::string mountpoint;
  bool read_only = true;
  uint64_t metadata_ttl_ms = 10'000;
#ifdef __APPLE__
  MountPlatform platform = MountPlatform::kMacOS;
#else
  MountPlatform platform = MountPlatform::kLinux;
#endif
};

// What the machine offers (probed, or given by tests).
struct MountEnvironment {
  bool is_root = false;
  std::optional<std::string> helper;  // absolute path of mount.nfs / mount_nfs, if found
  std::optional<std::string> sudo;    // absolute path of sudo, if found
};

// The -o option string.
std::string kernelMountOptions(const KernelMountRequest& request);

// argv of the mount command, or the one-line error when it cannot run (helper missing,
// not root and no sudo).
Result<std::vector<std::string>> buildKernelMountCommand(const KernelMountRequest& request,
                                                         const MountEnvironment& env);

// Probes PATH, /sbin, /usr/sbin for the helper and sudo, and geteuid().
MountEnvironment probeMountEnvironment(MountPlatform platform);

// Turns the helper's exit status and output into the one-line error.
std::string kernelMountFailureMessage(const KernelMountRequest& request, int exit_code,
                                      const std::string& output);

// Runs the command (bounded: 60 s) and reports failures as above.
Status kernelMount(const KernelMountRequest& request, const MountEnvironment& env);

// Unmounts (umount, then sudo -n umount, then a lazy umount on Linux). Best effort.
Status kernelUnmount(const std::string& mountpoint, MountPlatform platform);

}  // namespace hfm::nfs
