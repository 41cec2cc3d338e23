// hfm-fake-mount: mounts the vfs over an in-memory FakeRemote through the real FUSE adapter.
// For mount tests (SIGTERM handling) and manual experiments/benchmarks without a Hub.
//
//   hfm-fake-mount MOUNTPOINT [--file PATH:SIZE[:SEED]]... [--text PATH=CONTENT]...
//                  [--max-threads N] [--poll-ms N] [--ttl-ms N] [--read-ahead-kb N]
//                  [--latency-us N] [--debug]
//
// Prints "READY" on stdout once the mount answers requests. SIGTERM/SIGINT/SIGHUP unmount
// cleanly and exit 0.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "fake_remote.h"
#include "hfm/fuse/fuse_mount.h"
#include "hfm/util/log.h"
#include "hfm/vfs/poller.h"
#include "hfm/vfs/vfs.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: hfm-fake-mount MOUNTPOINT [--file PATH:SIZE[:SEED]]... "
               "[--text PATH=CONTENT]... [--max-threads N] [--poll-ms N] [--ttl-ms N] "
               "[--read-ahead-kb N] [--latency-us N] [--debug]\n");
  return 2;
}

int run(int argc, char** argv) {
  std::atomic<hfm::fuse::FuseMount*> mount_ptr{nullptr};
  std::atomic<bool> stop_early{false};
  // Before any other thread exists, so every thread inherits the blocked signal mask.
  hfm::fuse::SignalWatcher signals([&](int) {
    stop_early = true;
    if (auto* m = mount_ptr.load()) m->requestStop();
  });
  hfm::util::setupLogging();
  if (argc < 2) return usage();
  const std::string mountpoint = argv[1];
  auto remote = std::make_shared<hfm::testing::FakeRemote>();
  hfm::vfs::VfsConfig vc;
  hfm::fuse::FuseConfig fc;
  fc.mountpoint = mountpoint;
  long poll_ms = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (arg == "--file") {
      const std::string spec = next();
      const auto c1 = spec.find(':');
      if (c1 == std::string::npos) return usage();
      const auto c2 = spec.find(':', c1 + 1);
      const uint64_t size = std::strtoull(spec.substr(c1 + 1, c2 - c1 - 1).c_str(), nullptr, 10);
      const uint64_t seed =
          c2 == std::string::npos ? 1 : std::strtoull(spec.substr(c2 + 1).c_str(), nullptr, 10);
      remote->putFile(spec.substr(0, c1), hfm::testing::patternBytes(size, seed));
    } else if (arg == "--text") {
      const std::string spec = next();
      const auto eq = spec.find('=');
      if (eq == std::string::npos) return usage();
      remote->putFile(spec.substr(0, eq), std::string_view(spec).substr(eq + 1));
    } else if (arg == "--max-threads") {
      fc.max_threads = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    } else if (arg == "--poll-ms") {
      poll_ms = std::strtol(next().c_str(), nullptr, 10);
    } else if (arg == "--ttl-ms") {
      vc.metadata_ttl = std::chrono::milliseconds(std::strtol(next().c_str(), nullptr, 10));
      fc.entry_timeout = vc.metadata_ttl;
    } else if (arg == "--read-ahead-kb") {
      fc.read_ahead_kb = static_cast<uint32_t>(std::strtoul(next().c_str(), nullptr, 10));
    } else if (arg == "--latency-us") {
      remote->setLatency(std::chrono::microseconds(std::strtol(next().c_str(), nullptr, 10)));
    } else if (arg == "--debug") {
      fc.debug = true;
    } else {
      return usage();
    }
  }
  vc.uid = getuid();
  vc.gid = getgid();
  hfm::vfs::Vfs vfs(remote, vc);
  if (auto st = vfs.preloadRoot(); !st.ok()) {
    std::fprintf(stderr, "listing the root failed: %s\n", st.error().message().c_str());
    return 1;
  }
  fc.on_ready = [] {
    std::printf("READY\n");
    std::fflush(stdout);
  };
  auto mounted = hfm::fuse::FuseMount::mount(vfs, fc);
  if (!mounted.ok()) {
    std::fprintf(stderr, "%s\n", mounted.error().message().c_str());
    return 1;
  }
  auto& mount = *mounted;
  mount_ptr = mount.get();
  if (stop_early) mount->requestStop();
  hfm::vfs::Poller poller(vfs, remote, std::chrono::milliseconds(poll_ms));
  poller.start();
  auto st = mount->serve();
  poller.stop();
  mount_ptr = nullptr;
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.error().message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake_mount: %s\n", e.what());
    return 1;
  }
}
