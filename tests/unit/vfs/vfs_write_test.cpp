// Streaming writes on a writable remote (bucket semantics) over FakeRemote.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>

#include "fake_remote.h"
#include "hfm/vfs/vfs.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;

class VfsWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    remote_ = std::make_shared<FakeRemote>(/*read_only=*/false);
    remote_->putFile("old.txt", "old content");
    remote_->putFile("dir/inner.txt", "inner");
    VfsConfig c;
    c.now = [this] { return Clock::time_point(std::chrono::milliseconds(clock_ms_.load())); };
    c.prefetch.retry_backoff = std::chrono::milliseconds(1);
    c.prefetch.fetch_attempts = 1;
    c.worker_threads = 2;
    vfs_ = std::make_unique<Vfs>(remote_, c);
    ASSERT_TRUE(vfs_->preloadRoot().ok());
  }

  // Writes `bytes` in `piece`-sized sequential writes through a handle from create().
  Result<InodeId> writeFile(InodeId parent, const std::string& name,
                            const std::vector<uint8_t>& bytes, size_t piece = 4096) {
    HFM_ASSIGN_OR_RETURN(auto made, vfs_->create(parent, name, O_WRONLY | O_CREAT | O_TRUNC));
    for (size_t at = 0; at < bytes.size(); at += piece) {
      const size_t n = std::min(piece, bytes.size() - at);
      auto w = vfs_->write(made.open.fh, at, std::span<const uint8_t>(bytes.data() + at, n));
      if (!w.ok()) {
        vfs_->release(made.open.fh);
        return w.error();
      }
    }
    Status st = vfs_->flush(made.open.fh);
    vfs_->release(made.open.fh);
    if (!st.ok()) return st.error();
    return made.attr.ino;
  }

  std::vector<uint8_t> readAll(InodeId ino) {
    auto attr = vfs_->getattr(ino);
    EXPECT_TRUE(attr.ok());
    auto h = vfs_->open(ino, O_RDONLY);
    EXPECT_TRUE(h.ok());
    if (!h.ok() || !attr.ok()) return {};
    std::vector<uint8_t> out(static_cast<size_t>(attr->size));
    auto n = vfs_->read(h->fh, 0, out);
    vfs_->release(h->fh);
    EXPECT_TRUE(n.ok());
    if (n.ok()) {
      EXPECT_EQ(*n, out.size());
    }
    return out;
  }

  std::shared_ptr<FakeRemote> remote_;
  std::unique_ptr<Vfs> vfs_;
  std::atomic<int64_t> clock_ms_{1'000'000};
};

TEST_F(VfsWriteTest, CreateWriteFlushCommitsAndReadsBack) {
  EXPECT_FALSE(vfs_->readOnly());
  const auto bytes = patternBytes(300000, 7);
  auto ino = writeFile(kRootInode, "new.bin", bytes, 131072);
  ASSERT_TRUE(ino.ok()) << ino.error().message();
  EXPECT_EQ(remote_->contents("new.bin"), bytes);
  EXPECT_EQ(remote_->counts().commits, 1u);
  auto attr = vfs_->getattr(*ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, bytes.size());
  EXPECT_EQ(attr->mode, S_IFREG | 0644u);
  EXPECT_EQ(readAll(*ino), bytes);
  // A later listing keeps it (it is in the remote now).
  clock_ms_ += 60'000;
  auto l = vfs_->lookup(kRootInode, "new.bin");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->ino, *ino);
}

TEST_F(VfsWriteTest, EmptyAndOneByteFilesCommitAtRelease) {
  auto made = vfs_->create(kRootInode, "empty", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  EXPECT_TRUE(vfs_->flush(made->open.fh).ok());  // nothing written: deferred to release
  EXPECT_EQ(remote_->counts().commits, 0u);
  vfs_->release(made->open.fh);
  EXPECT_EQ(remote_->counts().commits, 1u);
  auto st = remote_->stat("empty");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, 0u);

  auto one = writeFile(kRootInode, "one", {0x42});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(remote_->contents("one"), std::vector<uint8_t>{0x42});
}

TEST_F(VfsWriteTest, DirtyFileSurvivesListingsUntilCommitted) {
  auto made = vfs_->create(kRootInode, "wip", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const uint8_t b[3] = {1, 2, 3};
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, b).ok());
  vfs_->refreshLoaded();  // the remote does not know "wip" yet
  EXPECT_TRUE(vfs_->inodeForPath("wip").has_value());
  auto attr = vfs_->getattr(made->attr.ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 3u);
  EXPECT_EQ(vfs_->open(made->attr.ino, O_RDONLY).error().code(), EBUSY);
  uint8_t buf[4];
  EXPECT_EQ(vfs_->read(made->open.fh, 0, buf).error().code(), EBADF);
  EXPECT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  EXPECT_EQ(remote_->contents("wip"), (std::vector<uint8_t>{1, 2, 3}));
}

TEST_F(VfsWriteTest, StreamingRules) {
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  EXPECT_EQ(vfs_->open(old, O_WRONLY).error().code(), EPERM);
  EXPECT_EQ(vfs_->open(old, O_WRONLY | O_APPEND | O_TRUNC).error().code(), EPERM);
  auto h = vfs_->open(old, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(h.ok());
  const uint8_t b[2] = {'h', 'i'};
  ASSERT_TRUE(vfs_->write(h->fh, 0, b).ok());
  EXPECT_EQ(vfs_->write(h->fh, 5, b).error().code(), EINVAL);            // not sequential
  EXPECT_EQ(vfs_->open(old, O_WRONLY | O_TRUNC).error().code(), EBUSY);  // second writer
  ASSERT_TRUE(vfs_->write(h->fh, 2, b).ok());
  ASSERT_TRUE(vfs_->flush(h->fh).ok());
  EXPECT_EQ(vfs_->write(h->fh, 4, b).error().code(), EIO);  // committed already
  vfs_->release(h->fh);
  EXPECT_EQ(remote_->contents("old.txt"), (std::vector<uint8_t>{'h', 'i', 'h', 'i'}));
  EXPECT_EQ(readAll(old), (std::vector<uint8_t>{'h', 'i', 'h', 'i'}));
  // O_EXCL on an existing name.
  EXPECT_EQ(vfs_->create(kRootInode, "old.txt", O_WRONLY | O_CREAT | O_EXCL).error().code(),
            EEXIST);
  EXPECT_EQ(vfs_->create(kRootInode, ".DS_Store", O_WRONLY | O_CREAT).error().code(), EACCES);
}

TEST_F(VfsWriteTest, UploadFailureSurfacesOnFlushAndRollsBack) {
  auto made = vfs_->create(kRootInode, "lost", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const uint8_t b[1] = {9};
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, b).ok());
  remote_->failAlways(FakeRemote::kCommit, EIO);
  auto st = vfs_->flush(made->open.fh);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), EIO);
  EXPECT_EQ(vfs_->fsync(made->open.fh).error().code(), EIO);  // sticky
  vfs_->release(made->open.fh);
  remote_->clearFaults();
  EXPECT_FALSE(vfs_->inodeForPath("lost").has_value());  // a created file is removed
  EXPECT_FALSE(remote_->stat("lost").ok());

  // A failed rewrite of an existing file restores its previous content.
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  auto h = vfs_->open(old, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(h.ok());
  remote_->failAlways(FakeRemote::kUpload, ENOSPC);
  auto w = vfs_->write(h->fh, 0, b);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ENOSPC);
  EXPECT_EQ(vfs_->flush(h->fh).error().code(), ENOSPC);
  vfs_->release(h->fh);
  remote_->clearFaults();
  EXPECT_EQ(vfs_->getattr(old)->size, 11u);
  EXPECT_EQ(remote_->contents("old.txt").size(), 11u);
}

TEST_F(VfsWriteTest, UnlinkDeletesRemotely) {
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  auto reader = vfs_->open(old, O_RDONLY);
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "old.txt").ok());
  EXPECT_FALSE(remote_->stat("old.txt").ok());
  EXPECT_EQ(vfs_->lookup(kRootInode, "old.txt").error().code(), ENOENT);
  std::vector<uint8_t> buf(11);
  auto n = vfs_->read(reader->fh, 0, buf);  // open handles keep reading the version
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 11u);
  vfs_->release(reader->fh);
  EXPECT_EQ(vfs_->unlink(kRootInode, "old.txt").error().code(), ENOENT);
  EXPECT_EQ(vfs_->unlink(kRootInode, "dir").error().code(), EISDIR);
  remote_->failAlways(FakeRemote::kCommit, EAGAIN);
  ASSERT_TRUE(vfs_->lookup(kRootInode, "dir").ok());
  const InodeId dir = *vfs_->inodeForPath("dir");
  ASSERT_TRUE(vfs_->lookup(dir, "inner.txt").ok());
  EXPECT_EQ(vfs_->unlink(dir, "inner.txt").error().code(), EIO);
  remote_->clearFaults();
  EXPECT_TRUE(remote_->stat("dir/inner.txt").ok());
  EXPECT_TRUE(vfs_->inodeForPath("dir/inner.txt").has_value());
}

TEST_F(VfsWriteTest, MkdirRmdirAndFilesBelowNewDirectories) {
  ASSERT_TRUE(vfs_->mkdir(kRootInode, "a").ok());
  EXPECT_EQ(vfs_->mkdir(kRootInode, "a").error().code(), EEXIST);
  auto a = vfs_->lookup(kRootInode, "a");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_dir);
  ASSERT_TRUE(vfs_->mkdir(a->ino, "b").ok());
  const InodeId b = vfs_->lookup(a->ino, "b")->ino;
  // Listings (the remote knows nothing of a/ or a/b/) keep them.
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  auto dh = vfs_->opendir(b);
  ASSERT_TRUE(dh.ok());
  vfs_->releasedir(*dh);
  EXPECT_TRUE(vfs_->inodeForPath("a/b").has_value());
  EXPECT_EQ(vfs_->rmdir(kRootInode, "a").error().code(), ENOTEMPTY);
  auto f = writeFile(b, "f.txt", {'f'});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(remote_->contents("a/b/f.txt"), std::vector<uint8_t>{'f'});
  EXPECT_EQ(vfs_->rmdir(a->ino, "b").error().code(), ENOTEMPTY);
  ASSERT_TRUE(vfs_->unlink(b, "f.txt").ok());
  ASSERT_TRUE(vfs_->rmdir(a->ino, "b").ok());
  ASSERT_TRUE(vfs_->rmdir(kRootInode, "a").ok());
  EXPECT_EQ(vfs_->lookup(kRootInode, "a").error().code(), ENOENT);
  EXPECT_EQ(vfs_->rmdir(kRootInode, "old.txt").error().code(), ENOTDIR);
  EXPECT_EQ(vfs_->rmdir(kRootInode, "dir").error().code(), ENOTEMPTY);
}

TEST_F(VfsWriteTest, RenameFileReusesTheHash) {
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  const auto uploads = remote_->counts().uploads;
  ASSERT_TRUE(vfs_->lookup(kRootInode, "dir").ok());
  const InodeId dir = *vfs_->inodeForPath("dir");
  ASSERT_TRUE(vfs_->rename(kRootInode, "old.txt", dir, "moved.txt").ok());
  EXPECT_EQ(remote_->counts().uploads, uploads);  // no byte re-uploaded
  EXPECT_FALSE(remote_->stat("old.txt").ok());
  EXPECT_EQ(remote_->contents("dir/moved.txt"),
            (std::vector<uint8_t>{'o', 'l', 'd', ' ', 'c', 'o', 'n', 't', 'e', 'n', 't'}));
  auto moved = vfs_->lookup(dir, "moved.txt");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->ino, old);
  EXPECT_EQ(vfs_->lookup(kRootInode, "old.txt").error().code(), ENOENT);
  EXPECT_EQ(readAll(old).size(), 11u);
  // Replacing an existing file.
  ASSERT_TRUE(vfs_->lookup(dir, "inner.txt").ok());
  ASSERT_TRUE(vfs_->rename(dir, "moved.txt", dir, "inner.txt").ok());
  EXPECT_EQ(remote_->contents("dir/inner.txt").size(), 11u);
  EXPECT_FALSE(remote_->stat("dir/moved.txt").ok());
  // Kind conflicts and remote directories.
  ASSERT_TRUE(vfs_->mkdir(kRootInode, "empty").ok());
  EXPECT_EQ(vfs_->rename(dir, "inner.txt", kRootInode, "empty").error().code(), EISDIR);
  EXPECT_EQ(vfs_->rename(kRootInode, "dir", dir, "x").error().code(), EINVAL);
  // A stored directory: every file below moves by hash, the subtree keeps its inodes.
  remote_->putFile("dir/sub/deep.txt", "deep");
  ASSERT_TRUE(vfs_->lookup(dir, "sub").ok());
  const InodeId sub = *vfs_->inodeForPath("dir/sub");
  const auto uploads2 = remote_->counts().uploads;
  ASSERT_TRUE(vfs_->rename(kRootInode, "dir", kRootInode, "dir2").ok());
  EXPECT_EQ(remote_->counts().uploads, uploads2);
  EXPECT_EQ(remote_->contents("dir2/inner.txt").size(), 11u);
  EXPECT_EQ(remote_->contents("dir2/sub/deep.txt"), (std::vector<uint8_t>{'d', 'e', 'e', 'p'}));
  EXPECT_FALSE(remote_->stat("dir/inner.txt").ok());
  EXPECT_FALSE(remote_->stat("dir/sub/deep.txt").ok());
  EXPECT_EQ(vfs_->inodeForPath("dir2"), dir);
  EXPECT_EQ(vfs_->inodeForPath("dir2/sub"), sub);
  auto deep = vfs_->lookup(sub, "deep.txt");
  ASSERT_TRUE(deep.ok());
  EXPECT_EQ(readAll(deep->ino), (std::vector<uint8_t>{'d', 'e', 'e', 'p'}));
  EXPECT_EQ(vfs_->lookup(kRootInode, "dir").error().code(), ENOENT);
  // A mkdir'd, empty directory is renamed in memory.
  ASSERT_TRUE(vfs_->rename(kRootInode, "empty", kRootInode, "empty2").ok());
  EXPECT_TRUE(vfs_->inodeForPath("empty2").has_value());
  EXPECT_FALSE(vfs_->inodeForPath("empty").has_value());
}

TEST(VfsReadOnlyWriteTest, EveryWriteIsErofs) {
  auto remote = std::make_shared<FakeRemote>(/*read_only=*/true);
  remote->putFile("f", "x");
  Vfs vfs(remote, VfsConfig{});
  ASSERT_TRUE(vfs.preloadRoot().ok());
  const InodeId f = vfs.lookup(kRootInode, "f")->ino;
  EXPECT_TRUE(vfs.readOnly());
  EXPECT_EQ(vfs.create(kRootInode, "n", O_WRONLY | O_CREAT).error().code(), EROFS);
  EXPECT_EQ(vfs.open(f, O_WRONLY | O_TRUNC).error().code(), EROFS);
  EXPECT_EQ(vfs.mkdir(kRootInode, "d").error().code(), EROFS);
  EXPECT_EQ(vfs.unlink(kRootInode, "f").error().code(), EROFS);
  EXPECT_EQ(vfs.rename(kRootInode, "f", kRootInode, "g").error().code(), EROFS);
  EXPECT_EQ(vfs.setattr(f).error().code(), EROFS);
  const uint8_t b[1] = {1};
  EXPECT_EQ(vfs.write(1, 0, b).error().code(), EROFS);
  EXPECT_EQ(remote->counts().commits, 0u);
}

}  // namespace
}  // namespace hfm::vfs
