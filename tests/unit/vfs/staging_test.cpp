// staging.h helpers when the staging filesystem is full: /dev/full (always ENOSPC, no root
// needed) and a real 256 KiB tmpfs (root only, skipped otherwise).
#include "hfm/vfs/staging.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tiny_tmpfs.h"

namespace hfm::vfs::staging {
namespace {

using hfm::testing::TinyTmpfs;

uint64_t fileSize(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return static_cast<uint64_t>(st.st_size);
}

TEST(StagingTest, WriteToAFullDeviceIsEnospc) {
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "no /dev/full";
  const std::vector<uint8_t> bytes(4096, 0x5a);
  Status st = pwriteFull(fd, 0, bytes);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOSPC);
  // The rollback cannot truncate a device: the write's ENOSPC is still what is reported.
  st = pwriteOrRollback(fd, 0, bytes, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOSPC);
  ::close(fd);
}

TEST(StagingTest, FailedExtensionOnAFullTmpfsIsCutBackAndFreesItsBlocks) {
  TinyTmpfs fs(256 * 1024);
  if (!fs.mounted()) GTEST_SKIP() << "needs root to mount a tmpfs";
  const std::string path = fs.dir() + "/f.data";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  const uint64_t free_before = fs.freeBytes();
  const std::vector<uint8_t> head(64 * 1024, 0x11);
  ASSERT_TRUE(pwriteOrRollback(fd, 0, head, 0).ok());
  ASSERT_EQ(fileSize(fd), head.size());

  // 512 KiB more cannot fit: part of it lands before the filesystem is full.
  const std::vector<uint8_t> big(512 * 1024, 0x22);
  Status st = pwriteOrRollback(fd, head.size(), big, head.size());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOSPC) << st.error().message();
  EXPECT_EQ(fileSize(fd), head.size()) << "the failed extension must be cut back";
  EXPECT_EQ(fs.freeBytes(), free_before - head.size()) << "its blocks must be free again";
  std::vector<uint8_t> back(head.size() + 1, 0);
  auto n = preadFull(fd, 0, back);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, head.size());
  back.resize(*n);
  EXPECT_EQ(back, head);

  // A write that fits still works afterwards.
  const std::vector<uint8_t> tail(4096, 0x33);
  EXPECT_TRUE(pwriteOrRollback(fd, head.size(), tail, head.size()).ok());
  EXPECT_EQ(fileSize(fd), head.size() + tail.size());
  ::close(fd);
  ::unlink(path.c_str());
}

TEST(StagingTest, PlainPwriteFullOnAFullTmpfsMapsToEnospcAndKeepsWhatLanded) {
  TinyTmpfs fs(128 * 1024);
  if (!fs.mounted()) GTEST_SKIP() << "needs root to mount a tmpfs";
  const std::string path = fs.dir() + "/g.data";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  const std::vector<uint8_t> big(512 * 1024, 0x44);
  Status st = pwriteFull(fd, 0, big);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOSPC);
  // Without the rollback the partial tail stays: why the write path uses pwriteOrRollback.
  EXPECT_GT(fileSize(fd), 0u);
  EXPECT_LT(fileSize(fd), big.size());
  ::close(fd);
  ::unlink(path.c_str());
}

TEST(StagingTest, WriteFileAtomicOnAFullTmpfsFailsWithEnospcAndLeavesNoTemporary) {
  TinyTmpfs fs(64 * 1024);
  if (!fs.mounted()) GTEST_SKIP() << "needs root to mount a tmpfs";
  Status st = writeFileAtomic(fs.dir(), "x.manifest", std::string(256 * 1024, 'm'));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ENOSPC) << st.error().message();
  struct stat sb {};
  EXPECT_NE(::stat((fs.dir() + "/x.manifest.tmp").c_str(), &sb), 0);
  EXPECT_NE(::stat((fs.dir() + "/x.manifest").c_str(), &sb), 0);
  EXPECT_TRUE(writeFileAtomic(fs.dir(), "x.manifest", "small\n").ok());
}

TEST(StagingTest, RecordsHaveOneFormatAndReadBackAsWritten) {
  Manifest m;
  m.path = "dir/with space/100%\nodd";
  m.size = 42;
  m.mtime_ns = 1700000000123456789;
  m.data = "0123456789abcdef-00000001.data";
  m.deletes = {"old name", "a/b"};
  const std::string text = serializeManifest(m);
  EXPECT_EQ(text,
            "hfm-pending 1\npath dir/with%20space/100%25%0aodd\nsize 42\n"
            "mtime_ns 1700000000123456789\ndata 0123456789abcdef-00000001.data\n"
            "delete old%20name\ndelete a/b\nend\n");
  auto back = parseManifest(text);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->path, m.path);
  EXPECT_EQ(back->size, m.size);
  EXPECT_EQ(back->mtime_ns, m.mtime_ns);
  EXPECT_EQ(back->data, m.data);
  EXPECT_EQ(back->deletes, m.deletes);

  const DeleteRecord d{"gone/file", 123};
  EXPECT_EQ(serializeDelete(d), "hfm-delete 1\npath gone/file\ntime_ns 123\nend\n");
  auto dback = parseDelete(serializeDelete(d));
  ASSERT_TRUE(dback.ok());
  EXPECT_EQ(dback->path, d.path);
  EXPECT_EQ(dback->time_ns, d.time_ns);
  // A record cut before its end line is corrupt, whichever kind.
  const std::string cut = text.substr(0, text.size() - 4);
  EXPECT_FALSE(parseManifest(cut).ok());
  EXPECT_FALSE(parseDelete(serializeDelete(d).substr(0, 20)).ok());
}

}  // namespace
}  // namespace hfm::vfs::staging
