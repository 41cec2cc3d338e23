// Keeps docs/semantics.md honest: every row of its error table is executed against the Vfs, and
// every operation this test knows must appear in the table.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "fake_remote.h"
#include "hfm/vfs/vfs.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;

int errnoByName(const std::string& name) {
  static const std::map<std::string, int> kNames = {
      {"EROFS", EROFS},   {"EISDIR", EISDIR}, {"ENOTDIR", ENOTDIR},
      {"EACCES", EACCES}, {"ENOENT", ENOENT}, {"ENAMETOOLONG", ENAMETOOLONG},
      {"EBADF", EBADF},   {"ESTALE", ESTALE}, {"EIO", EIO},
      {"EINVAL", EINVAL}};
  auto it = kNames.find(name);
  return it == kNames.end() ? -1 : it->second;
}

// Parses "| `operation` | `ERRNO` |" rows between the semantics-table markers.
std::vector<std::pair<std::string, std::string>> tableRows() {
  std::ifstream in(std::string(HFM_SOURCE_DIR) + "/docs/semantics.md");
  EXPECT_TRUE(in.good()) << "docs/semantics.md not found";
  std::vector<std::pair<std::string, std::string>> rows;
  bool inside = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("<!-- semantics-table") != std::string::npos) inside = true;
    if (line.find("<!-- end semantics-table") != std::string::npos) break;
    if (!inside || line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> ticks;
    for (size_t pos = 0; (pos = line.find('`', pos)) != std::string::npos;) {
      const size_t end = line.find('`', pos + 1);
      if (end == std::string::npos) break;
      ticks.push_back(line.substr(pos + 1, end - pos - 1));
      pos = end + 1;
    }
    if (ticks.size() == 2) rows.emplace_back(ticks[0], ticks[1]);
  }
  return rows;
}

TEST(SemanticsDocTest, ErrorTableMatchesTheVfs) {
  auto remote = std::make_shared<FakeRemote>();
  remote->putFile("file.txt", "abc");
  remote->putFile("dir/inner.txt", "x");
  VfsConfig config;
  config.prefetch.fetch_attempts = 1;
  Vfs vfs(remote, config);
  ASSERT_TRUE(vfs.preloadRoot().ok());
  const InodeId file = vfs.lookup(kRootInode, "file.txt")->ino;
  const InodeId dir = vfs.lookup(kRootInode, "dir")->ino;
  auto code = [](const auto& result) { return result.ok() ? 0 : result.error().code(); };
  std::vector<uint8_t> buf(16);

  const std::map<std::string, std::function<int()>> ops = {
      {"open O_WRONLY", [&] { return code(vfs.open(file, O_WRONLY)); }},
      {"open O_RDWR", [&] { return code(vfs.open(file, O_RDWR)); }},
      {"open O_TRUNC", [&] { return code(vfs.open(file, O_RDONLY | O_TRUNC)); }},
      {"open directory", [&] { return code(vfs.open(dir, O_RDONLY)); }},
      {"opendir file", [&] { return code(vfs.opendir(file)); }},
      {"create",
       [&] { return code(vfs.create(kRootInode, "new.txt", O_WRONLY | O_CREAT | O_TRUNC)); }},
      {"create .DS_Store",
       [&] { return code(vfs.create(kRootInode, ".DS_Store", O_WRONLY | O_CREAT | O_TRUNC)); }},
      {"mkdir", [&] { return code(vfs.mkdir(kRootInode, "d")); }},
      {"mkdir __MACOSX", [&] { return code(vfs.mkdir(kRootInode, "__MACOSX")); }},
      {"mknod", [&] { return code(vfs.mknod(kRootInode, "n")); }},
      {"unlink", [&] { return code(vfs.unlink(kRootInode, "file.txt")); }},
      {"rmdir", [&] { return code(vfs.rmdir(kRootInode, "dir")); }},
      {"rename", [&] { return code(vfs.rename(kRootInode, "file.txt", kRootInode, "b")); }},
      {"rename to ._x",
       [&] { return code(vfs.rename(kRootInode, "file.txt", kRootInode, "._x")); }},
      {"symlink", [&] { return code(vfs.symlink(kRootInode, "s", "target")); }},
      {"symlink Thumbs.db", [&] { return code(vfs.symlink(kRootInode, "Thumbs.db", "t")); }},
      {"readlink file", [&] { return code(vfs.readlink(file)); }},
      {"link", [&] { return code(vfs.link(file, kRootInode, "l")); }},
      {"link directory", [&] { return code(vfs.link(dir, kRootInode, "l")); }},
      {"setattr", [&] { return code(vfs.setattr(file)); }},
      {"write", [&] { return code(vfs.write(1, 0, std::span<const uint8_t>(buf))); }},
      {"lookup missing", [&] { return code(vfs.lookup(kRootInode, "missing")); }},
      {"lookup 256-byte name", [&] { return code(vfs.lookup(kRootInode, std::string(256, 'n'))); }},
      {"lookup under a file", [&] { return code(vfs.lookup(file, "x")); }},
      {"read unknown handle", [&] { return code(vfs.read(424242, 0, buf)); }},
      {"read replaced file",
       [&] {
         auto h = vfs.open(file, O_RDONLY);
         remote->putFile("file.txt", "replaced");
         vfs.refreshLoaded();
         const int rc = code(vfs.read(h->fh, 0, buf));
         vfs.release(h->fh);
         return rc;
       }},
      {"read remote failure",
       [&] {
         const InodeId inner = vfs.lookup(dir, "inner.txt")->ino;
         auto h = vfs.open(inner, O_RDONLY);
         remote->failAlways(FakeRemote::kRead, EIO);
         const int rc = code(vfs.read(h->fh, 0, buf));
         remote->clearFaults();
         vfs.release(h->fh);
         return rc;
       }},
  };

  const auto rows = tableRows();
  ASSERT_FALSE(rows.empty());
  std::set<std::string> documented;
  for (const auto& [op, err] : rows) {
    documented.insert(op);
    auto it = ops.find(op);
    ASSERT_NE(it, ops.end()) << "docs/semantics.md documents an unknown operation: " << op;
    const int want = errnoByName(err);
    ASSERT_NE(want, -1) << "unknown errno name " << err;
    EXPECT_EQ(it->second(), want) << op << " should give " << err;
  }
  for (const auto& [op, fn] : ops) {
    EXPECT_TRUE(documented.contains(op)) << op << " is missing from docs/semantics.md";
  }
}

}  // namespace
}  // namespace hfm::vfs
