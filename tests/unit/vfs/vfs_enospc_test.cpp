// Writes that outgrow the staging filesystem (a real 1 MiB tmpfs as staging_dir, over
// FakeRemote), in both write modes: the failing write() is ENOSPC, the file's unsaved bytes are
// dropped (space freed), later write/flush/fsync on the handle are ENOSPC, nothing partial is
// committed, the path shows the hub's version (or is gone), and other files keep working.
// Mounting the tmpfs needs root; the tests skip otherwise.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "fake_remote.h"
#include "hfm/vfs/vfs.h"
#include "tiny_tmpfs.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;
using hfm::testing::TinyTmpfs;

constexpr uint64_t kStagingBytes = 1u << 20;
constexpr size_t kPiece = 128 * 1024;
constexpr uint64_t kTooBig = 4u << 20;

class VfsEnospcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tmpfs_.mounted()) GTEST_SKIP() << "needs root to mount a tmpfs";
    remote_ = std::make_shared<FakeRemote>(/*read_only=*/false);
    remote_->putFile("old.txt", "old content");
  }
  void TearDown() override { vfs_.reset(); }  // before the tmpfs goes

  void start(bool advanced) {
    VfsConfig c;
    c.worker_threads = 2;
    c.prefetch.fetch_attempts = 1;
    c.writes.advanced = advanced;
    c.writes.staging_dir = tmpfs_.dir() + "/staging";
    c.writes.flush_debounce = std::chrono::milliseconds(10);
    c.writes.flush_max_batch_window = std::chrono::milliseconds(100);
    c.writes.retry_initial = std::chrono::milliseconds(20);
    c.writes.retry_max = std::chrono::milliseconds(80);
    vfs_ = std::make_unique<Vfs>(remote_, c);
    ASSERT_TRUE(vfs_->preloadRoot().ok());
    free_at_start_ = tmpfs_.freeBytes();
  }

  // Writes kTooBig bytes in kPiece writes until one fails; returns that errno (0: none failed)
  // and how many bytes were accepted before.
  std::pair<int, uint64_t> writeUntilFull(uint64_t fh, uint64_t from = 0) {
    const auto bytes = patternBytes(kPiece, 3);
    for (uint64_t at = from; at < from + kTooBig; at += kPiece) {
      auto w = vfs_->write(fh, at, bytes);
      if (!w.ok()) return {w.error().code(), at - from};
      EXPECT_EQ(*w, kPiece);
    }
    return {0, kTooBig};
  }

  // Expects a read through `fh` (tied to the dropped copy) to fail with EIO, not to show an
  // empty or different file.
  void expectReadOfDroppedCopyFails(uint64_t fh) {
    std::vector<uint8_t> buf(4096);
    auto r = vfs_->read(fh, 0, buf);
    ASSERT_FALSE(r.ok()) << "read " << *r << " bytes of a dropped copy";
    EXPECT_EQ(r.error().code(), EIO);
  }

  // Expects every later operation on the failed handle to report ENOSPC (a read EIO), then
  // closes it.
  void expectHandleFailedThenClose(uint64_t fh, uint64_t next_offset) {
    expectReadOfDroppedCopyFails(fh);
    const uint8_t one = 1;
    auto w = vfs_->write(fh, next_offset, std::span<const uint8_t>(&one, 1));
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code(), ENOSPC);
    Status f = vfs_->fsync(fh);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code(), ENOSPC);
    f = vfs_->flush(fh);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code(), ENOSPC);
    vfs_->release(fh);
  }

  std::vector<uint8_t> readAll(InodeId ino) {
    auto attr = vfs_->getattr(ino);
    auto h = vfs_->open(ino, O_RDONLY);
    if (!attr.ok() || !h.ok()) return {};
    std::vector<uint8_t> out(static_cast<size_t>(attr->size));
    auto n = vfs_->read(h->fh, 0, out);
    vfs_->release(h->fh);
    if (!n.ok()) return {};
    out.resize(*n);
    return out;
  }

  size_t stagingDataFiles() const {
    size_t n = 0;
    DIR* d = ::opendir((tmpfs_.dir() + "/staging").c_str());
    if (d == nullptr) return 0;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.size() > 5 && name.ends_with(".data")) n++;
    }
    ::closedir(d);
    return n;
  }

  // The staging filesystem has (almost) all of its space again: the lost copy's blocks are
  // freed, not only its name. `open_files`: staging files of other files still open.
  void expectSpaceFreed(size_t open_files = 0) {
    EXPECT_GE(tmpfs_.freeBytes() + 64 * 1024, free_at_start_);
    EXPECT_EQ(stagingDataFiles(), open_files);
  }

  // A small new file written and closed now lands on the remote intact.
  void expectSmallFileWorks(const std::string& name) {
    const auto bytes = patternBytes(64 * 1024, 9);
    auto made = vfs_->create(kRootInode, name, O_WRONLY | O_CREAT | O_TRUNC);
    ASSERT_TRUE(made.ok()) << made.error().message();
    auto w = vfs_->write(made->open.fh, 0, bytes);
    ASSERT_TRUE(w.ok()) << w.error().message();
    EXPECT_TRUE(vfs_->flush(made->open.fh).ok());
    vfs_->release(made->open.fh);
    EXPECT_TRUE(vfs_->flushAll(std::chrono::seconds(5)).ok());
    EXPECT_EQ(remote_->contents(name), bytes);
  }

  TinyTmpfs tmpfs_{kStagingBytes};  // first member: unmounted after everything else
  std::shared_ptr<FakeRemote> remote_;
  std::unique_ptr<Vfs> vfs_;
  uint64_t free_at_start_ = 0;
};

TEST_F(VfsEnospcTest, StreamingNewFileBeyondFreeSpaceIsEnospcAndLeavesNothing) {
  start(/*advanced=*/false);
  // Another file open at the same time keeps working.
  auto other = vfs_->create(kRootInode, "other.bin", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(other.ok());
  const auto other_bytes = patternBytes(8192, 5);
  ASSERT_TRUE(vfs_->write(other->open.fh, 0, std::span(other_bytes).first(4096)).ok());

  auto made = vfs_->create(kRootInode, "big.bin", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const auto [err, accepted] = writeUntilFull(made->open.fh);
  ASSERT_EQ(err, ENOSPC) << "a 4 MiB file cannot fit a 1 MiB staging area";
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, kStagingBytes);
  expectHandleFailedThenClose(made->open.fh, accepted);

  EXPECT_FALSE(remote_->stat("big.bin").ok()) << "nothing partial may reach the hub";
  EXPECT_EQ(remote_->counts().commits, 0u);
  auto gone = vfs_->lookup(kRootInode, "big.bin");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ENOENT);
  expectSpaceFreed(/*open_files=*/1);  // other.bin

  ASSERT_TRUE(vfs_->write(other->open.fh, 4096, std::span(other_bytes).subspan(4096)).ok());
  EXPECT_TRUE(vfs_->flush(other->open.fh).ok());
  vfs_->release(other->open.fh);
  EXPECT_EQ(remote_->contents("other.bin"), other_bytes);
  expectSmallFileWorks("after.bin");
}

TEST_F(VfsEnospcTest, StreamingOverwriteOfAHubFileRevertsToTheHubVersion) {
  start(/*advanced=*/false);
  auto made = vfs_->create(kRootInode, "old.txt", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const auto [err, accepted] = writeUntilFull(made->open.fh);
  ASSERT_EQ(err, ENOSPC);
  expectHandleFailedThenClose(made->open.fh, accepted);
  EXPECT_EQ(remote_->counts().commits, 0u);
  const std::string old = "old content";
  EXPECT_EQ(remote_->contents("old.txt"), std::vector<uint8_t>(old.begin(), old.end()));
  auto attr = vfs_->getattr(made->attr.ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, old.size());
  EXPECT_EQ(readAll(made->attr.ino), std::vector<uint8_t>(old.begin(), old.end()));
  expectSpaceFreed();
  expectSmallFileWorks("after.bin");
}

TEST_F(VfsEnospcTest, AdvancedWriteIntoAHubFileBeyondFreeSpaceRevertsAndCommitsNothing) {
  start(/*advanced=*/true);
  auto found = vfs_->lookup(kRootInode, "old.txt");
  ASSERT_TRUE(found.ok());
  auto h = vfs_->open(found->ino, O_RDWR);
  ASSERT_TRUE(h.ok()) << h.error().message();
  // A reader opened on the staged copy.
  auto reader = vfs_->open(found->ino, O_RDONLY);
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  // One big write at the end: the extension fails part way and is cut back.
  const auto big = patternBytes(2 * kStagingBytes, 4);
  auto w = vfs_->write(h->fh, 11, big);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ENOSPC);
  expectHandleFailedThenClose(h->fh, 0);
  expectReadOfDroppedCopyFails(reader->fh);
  vfs_->release(reader->fh);
  EXPECT_TRUE(vfs_->flushAll(std::chrono::seconds(5)).ok());
  EXPECT_EQ(remote_->counts().commits, 0u);
  const std::string old = "old content";
  EXPECT_EQ(remote_->contents("old.txt"), std::vector<uint8_t>(old.begin(), old.end()));
  EXPECT_EQ(readAll(found->ino), std::vector<uint8_t>(old.begin(), old.end()));
  expectSpaceFreed();

  // Writable again once there is room: a fresh staged copy of the hub version.
  auto again = vfs_->open(found->ino, O_RDWR);
  ASSERT_TRUE(again.ok());
  const std::string more = " and more";
  ASSERT_TRUE(vfs_->write(again->fh, 11,
                          std::span(reinterpret_cast<const uint8_t*>(more.data()), more.size()))
                  .ok());
  EXPECT_TRUE(vfs_->flush(again->fh).ok());
  vfs_->release(again->fh);
  EXPECT_TRUE(vfs_->flushAll(std::chrono::seconds(5)).ok());
  const std::string joined = old + more;
  EXPECT_EQ(remote_->contents("old.txt"), std::vector<uint8_t>(joined.begin(), joined.end()));
}

TEST_F(VfsEnospcTest, AdvancedNewFileBeyondFreeSpaceDisappearsAndOthersStillCommit) {
  start(/*advanced=*/true);
  auto made = vfs_->create(kRootInode, "big.bin", O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const auto [err, accepted] = writeUntilFull(made->open.fh);
  ASSERT_EQ(err, ENOSPC);
  expectHandleFailedThenClose(made->open.fh, accepted);
  EXPECT_TRUE(vfs_->flushAll(std::chrono::seconds(5)).ok());
  EXPECT_FALSE(remote_->stat("big.bin").ok());
  EXPECT_EQ(remote_->counts().commits, 0u);
  auto gone = vfs_->lookup(kRootInode, "big.bin");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ENOENT);
  expectSpaceFreed();
  expectSmallFileWorks("after.bin");
}

TEST_F(VfsEnospcTest, AdvancedCachedCleanCopiesAreDroppedToMakeRoomBeforeAnythingIsLost) {
  start(/*advanced=*/true);
  // A committed file keeps its clean staged copy as a cache (no --max-staging-size): 640 KiB of
  // the 1 MiB staging area.
  const auto cached = patternBytes(640 * 1024, 6);
  {
    auto made = vfs_->create(kRootInode, "cached.bin", O_RDWR | O_CREAT | O_TRUNC);
    ASSERT_TRUE(made.ok());
    ASSERT_TRUE(vfs_->write(made->open.fh, 0, cached).ok());
    vfs_->release(made->open.fh);
    ASSERT_TRUE(vfs_->flushAll(std::chrono::seconds(5)).ok());
    ASSERT_EQ(remote_->contents("cached.bin"), cached);
  }
  ASSERT_LT(tmpfs_.freeBytes(), 512u * 1024) << "the clean copy should still be staged";
  // 640 KiB more only fits once the cache is gone: the write succeeds, nothing is lost.
  const auto fresh = patternBytes(640 * 1024, 7);
  auto made = vfs_->create(kRootInode, "fresh.bin", O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  for (size_t at = 0; at < fresh.size(); at += kPiece) {
    auto w = vfs_->write(made->open.fh, at, std::span(fresh).subspan(at, kPiece));
    ASSERT_TRUE(w.ok()) << "at " << at << ": " << w.error().message();
  }
  EXPECT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  EXPECT_TRUE(vfs_->flushAll(std::chrono::seconds(5)).ok());
  EXPECT_EQ(remote_->contents("fresh.bin"), fresh);
  auto found = vfs_->lookup(kRootInode, "cached.bin");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(readAll(found->ino), cached) << "a dropped cache reads from the hub again";
}

}  // namespace
}  // namespace hfm::vfs
