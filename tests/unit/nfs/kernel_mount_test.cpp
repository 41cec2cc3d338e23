#include "hfm/nfs/kernel_mount.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace hfm::nfs {
namespace {

KernelMountRequest request(MountPlatform platform, bool read_only) {
  KernelMountRequest r;
  r.port = 20490;
  r.mountpoint = "/mnt/hf";
  r.read_only = read_only;
  r.metadata_ttl_ms = 10'500;
  r.platform = platform;
  return r;
}

TEST(KernelMountTest, LinuxOptionsFollowTheReference) {
  EXPECT_EQ(kernelMountOptions(request(MountPlatform::kLinux, true)),
            "nolock,vers=3,tcp,mountproto=tcp,port=20490,mountport=20490,rsize=1048576,"
            "actimeo=11,ro");
  EXPECT_EQ(kernelMountOptions(request(MountPlatform::kLinux, false)),
            "nolock,vers=3,tcp,mountproto=tcp,port=20490,mountport=20490,rsize=1048576,"
            "actimeo=11,wsize=1048576");
}

TEST(KernelMountTest, MacOptionsUseLocalLocks) {
  EXPECT_EQ(kernelMountOptions(request(MountPlatform::kMacOS, true)),
            "rdonly,locallocks,vers=3,tcp,port=20490,mountport=20490,rsize=1048576,actimeo=11");
  EXPECT_EQ(kernelMountOptions(request(MountPlatform::kMacOS, false)),
            "locallocks,vers=3,tcp,port=20490,mountport=20490,rsize=1048576,actimeo=11,"
            "wsize=1048576");
}

TEST(KernelMountTest, CommandLines) {
  MountEnvironment env;
  env.is_root = true;
  env.helper = "/sbin/mount.nfs";
  auto argv = buildKernelMountCommand(request(MountPlatform::kLinux, true), env);
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ(*argv,
            (std::vector<std::string>{"/sbin/mount.nfs", "127.0.0.1:/", "/mnt/hf", "-o",
                                      kernelMountOptions(request(MountPlatform::kLinux, true))}));
  env.is_root = false;
  env.sudo = "/usr/bin/sudo";
  argv = buildKernelMountCommand(request(MountPlatform::kLinux, true), env);
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ((*argv)[0], "/usr/bin/sudo");
  EXPECT_EQ((*argv)[1], "-n");
  EXPECT_EQ((*argv)[2], "/sbin/mount.nfs");

  env.helper = "/sbin/mount_nfs";
  argv = buildKernelMountCommand(request(MountPlatform::kMacOS, false), env);
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ(*argv,
            (std::vector<std::string>{"/sbin/mount_nfs", "-o",
                                      kernelMountOptions(request(MountPlatform::kMacOS, false)),
                                      "127.0.0.1:/", "/mnt/hf"}));
}

TEST(KernelMountTest, MissingHelperOrPrivilegeIsOneClearLine) {
  MountEnvironment env;
  env.is_root = true;
  auto argv = buildKernelMountCommand(request(MountPlatform::kLinux, true), env);
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().message(),
            "cannot mount over NFS: mount.nfs not found (install nfs-common (Debian/Ubuntu) or "
            "nfs-utils (Fedora/RHEL/Alpine)), or use --fuse");
  env.is_root = false;
  env.helper = "/sbin/mount.nfs";
  argv = buildKernelMountCommand(request(MountPlatform::kLinux, true), env);
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().code(), EPERM);
  EXPECT_NE(argv.error().message().find("--fuse"), std::string::npos);
  EXPECT_EQ(argv.error().message().find('\n'), std::string::npos);

  const std::string msg = kernelMountFailureMessage(request(MountPlatform::kLinux, true), 32,
                                                    "mount.nfs: Operation not permitted\nmore");
  EXPECT_EQ(msg,
            "cannot mount /mnt/hf over NFS: permission denied (mount.nfs: Operation not "
            "permitted); mounting NFS needs root or CAP_SYS_ADMIN (in a container: "
            "--privileged or --cap-add SYS_ADMIN), or use --fuse");
}

TEST(KernelMountTest, RunsTheHelperAndReportsItsFailure) {
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("hfm-mount-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device()()));
  std::filesystem::create_directories(dir);
  const auto helper = dir / "mount.nfs";
  const auto args_file = dir / "args";
  {
    std::ofstream out(helper);
    out << "#!/bin/sh\necho \"$@\" > '" << args_file.string() << "'\n"
        << "echo 'mount.nfs: Operation not permitted' >&2\nexit 32\n";
  }
  ::chmod(helper.c_str(), 0755);
  MountEnvironment env;
  env.is_root = true;
  env.helper = helper.string();
  const auto req = request(MountPlatform::kLinux, true);
  Status st = kernelMount(req, env);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), EPERM);
  EXPECT_NE(st.error().message().find("CAP_SYS_ADMIN"), std::string::npos);
  std::ifstream in(args_file);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "127.0.0.1:/ /mnt/hf -o " + kernelMountOptions(req));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hfm::nfs
