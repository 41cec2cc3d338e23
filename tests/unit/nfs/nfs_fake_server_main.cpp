// hfm-nfs-fake-server: a test-only NfsServer over a FakeRemote tree, for outside clients
// (Debian's nfs-ls / nfs-cat). Prints "PORT <n>" once serving and stops when its stdin closes
// (so it never outlives the test that started it).
//
//   hfm-nfs-fake-server [--handle-dir DIR] [--big-mib N]
//
// Tree: README.md ("hello nfs\n"), data/big.bin (patternBytes(3 MiB + 17, 7), or N MiB with
// --big-mib, for throughput measurements),
// data/nested/leaf.txt ("leaf\n"), many/f0.txt … many/f999.txt ("<i>\n").
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "fake_remote.h"
#include "hfm/nfs/nfs_server.h"
#include "hfm/util/log.h"
#include "hfm/vfs/vfs.h"

int main(int argc, char** argv) {
  hfm::util::setupLogging();  // logs go to stderr; stdout carries the PORT line only
  std::string handle_dir;
  uint64_t big_size = 3 * 1024 * 1024 + 17;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--handle-dir") == 0 && i + 1 < argc) handle_dir = argv[++i];
    if (std::strcmp(argv[i], "--big-mib") == 0 && i + 1 < argc) {
      big_size = std::stoull(argv[++i]) * 1024 * 1024;
    }
  }
  auto remote = std::make_shared<hfm::testing::FakeRemote>();
  remote->putFile("README.md", "hello nfs\n");
  remote->putFile("data/big.bin", hfm::testing::patternBytes(big_size, 7));
  remote->putFile("data/nested/leaf.txt", "leaf\n");
  for (int i = 0; i < 1000; ++i) {
    remote->putFile("many/f" + std::to_string(i) + ".txt", std::to_string(i) + "\n");
  }
  hfm::vfs::Vfs vfs(remote, hfm::vfs::VfsConfig{});
  hfm::nfs::NfsServerConfig config;
  config.handle_dir = handle_dir;
  config.handle_key = "fake tree";
  hfm::nfs::NfsServer server(vfs, config);
  if (auto st = server.start(); !st.ok()) {
    std::fprintf(stderr, "hfm-nfs-fake-server: %s\n", st.error().message().c_str());
    return 1;
  }
  std::printf("PORT %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  char buf[256];
  while (::read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
  }
  server.stop();
  return 0;
}
