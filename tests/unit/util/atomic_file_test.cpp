#include "hfm/util/atomic_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace hfm::util {
namespace {

namespace fs = std::filesystem;
using hfm::testing::TempDir;

std::string contentOf(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> namesIn(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

TEST(AtomicFileTest, WritesANewFilePrivatelyAndLeavesNoTemporary) {
  TempDir dir("hfm-atomic");
  const fs::path p = fs::path(dir.path()) / "state";
  ASSERT_TRUE(writeFileAtomic(p, "first\n").ok());
  EXPECT_EQ(contentOf(p), "first\n");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(namesIn(dir.path()), std::vector<std::string>{"state"});
}

TEST(AtomicFileTest, ReplacesLongerContentWithoutATailAndWritesEmptyFiles) {
  TempDir dir("hfm-atomic");
  const fs::path p = fs::path(dir.path()) / "state";
  ASSERT_TRUE(writeFileAtomic(p, std::string(100000, 'x')).ok());
  ASSERT_TRUE(writeFileAtomic(p, "short").ok());
  EXPECT_EQ(contentOf(p), "short");
  ASSERT_TRUE(writeFileAtomic(p, "").ok());
  EXPECT_TRUE(fs::exists(p));
  EXPECT_EQ(fs::file_size(p), 0u);
  EXPECT_EQ(namesIn(dir.path()).size(), 1u);
}

TEST(AtomicFileTest, FailuresCarryTheErrnoAndLeaveThePathAsItWas) {
  TempDir dir("hfm-atomic");
  const fs::path missing = fs::path(dir.path()) / "no-such-dir" / "state";
  auto st = writeFileAtomic(missing, "x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOENT);
  EXPECT_NE(st.error().message().find(missing.string()), std::string::npos);
  // A directory in the way: the rename fails after the temporary was written; it is removed.
  const fs::path blocked = fs::path(dir.path()) / "blocked";
  fs::create_directory(blocked);
  auto over_dir = writeFileAtomic(blocked, "x");
  ASSERT_FALSE(over_dir.ok());
  EXPECT_EQ(over_dir.error().code(), EISDIR);
  EXPECT_TRUE(fs::is_directory(blocked));
  EXPECT_EQ(namesIn(dir.path()), std::vector<std::string>{"blocked"});
}

TEST(AtomicFileTest, ConcurrentWritersLeaveOneWholeVersion) {
  TempDir dir("hfm-atomic");
  const fs::path p = fs::path(dir.path()) / "state";
  const std::array<std::string, 2> versions = {std::string(300000, 'a'), std::string(200000, 'b')};
  std::vector<std::thread> writers;
  for (const auto& v : versions) {
    writers.emplace_back([&p, &v] {
      for (int i = 0; i < 50; ++i) EXPECT_TRUE(writeFileAtomic(p, v).ok());
    });
  }
  // Every read during the race sees one whole version (or nothing yet), never a mix.
  for (int i = 0; i < 200; ++i) {
    const std::string seen = contentOf(p);
    EXPECT_TRUE(seen.empty() || seen == versions[0] || seen == versions[1]) << seen.size();
  }
  for (auto& t : writers) t.join();
  const std::string last = contentOf(p);
  EXPECT_TRUE(last == versions[0] || last == versions[1]);
  EXPECT_EQ(namesIn(dir.path()), std::vector<std::string>{"state"});
}

TEST(AtomicFileTest, WriteAllFinishesShortWritesIntoAPipe) {
  std::array<int, 2> fds{};
  ASSERT_EQ(::pipe(fds.data()), 0);
  const std::string data(1 << 20, 'p');  // far more than a pipe buffer: writes come back short
  std::string received;
  std::thread reader([&] {
    std::array<char, 65536> buf{};
    for (ssize_t n; (n = ::read(fds[0], buf.data(), buf.size())) > 0;)
      received.append(buf.data(), static_cast<size_t>(n));
  });
  EXPECT_TRUE(writeAll(fds[1], data).ok());
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  EXPECT_EQ(received, data);
  auto bad = writeAll(-1, "x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EBADF);
}

TEST(AtomicFileTest, FsyncParentDirNeedsAnExistingDirectory) {
  TempDir dir("hfm-atomic");
  EXPECT_TRUE(fsyncParentDir(fs::path(dir.path()) / "anything").ok());
  auto st = fsyncParentDir(fs::path(dir.path()) / "missing" / "x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOENT);
}

}  // namespace
}  // namespace hfm::util
