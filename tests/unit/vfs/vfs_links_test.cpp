// In-memory symlinks, hard links as server-side copies and in-memory chmod/chown/utimens on a
// writable remote (bucket semantics) over FakeRemote, in both write modes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <string>
#include <vector>

#include "fake_remote.h"
#include "hfm/vfs/vfs.h"
#include "vfs_fixture.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;

// A bucket where files under plain/ carry no xet hash (as files stored before Xet, or git
// blobs): they cannot be copied by hash.
class PartlyHashlessRemote : public FakeRemote {
 public:
  using FakeRemote::FakeRemote;
  Result<std::vector<RemoteEntry>> listDirectory(const std::string& dir) override {
    auto r = FakeRemote::listDirectory(dir);
    if (r.ok()) {
      for (auto& e : *r) strip(e);
    }
    return r;
  }
  Result<RemoteEntry> stat(const std::string& path) override {
    auto r = FakeRemote::stat(path);
    if (r.ok()) strip(*r);
    return r;
  }

 private:
  static void strip(RemoteEntry& e) {
    if (e.path.starts_with("plain/")) e.xet_hash.clear();
  }
};

class VfsLinksTest : public hfm::testing::VfsFixture<::testing::TestWithParam<bool>> {
 protected:
  void SetUp() override {
    remote_ = std::make_shared<PartlyHashlessRemote>(/*read_only=*/false);
    a_bytes_ = patternBytes(200'000, 11);
    remote_->putFile("a.bin", a_bytes_);
    remote_->putFile("old.txt", "old content");
    remote_->putFile("dir/inner.txt", "inner");
    remote_->putFile("plain/p.txt", "no hash");
    vfs_ = makeVfs(remote_, GetParam());
  }

  bool advanced() const { return GetParam(); }

  std::unique_ptr<Vfs> makeVfs(std::shared_ptr<FakeRemote> remote, bool advanced_writes) {
    VfsConfig c;
    c.prefetch.fetch_attempts = 1;
    c.writes.retry_initial = std::chrono::milliseconds(20);
    c.writes.retry_max = std::chrono::milliseconds(80);
    if (advanced_writes) {
      c.writes.advanced = true;
      c.writes.flush_debounce = std::chrono::milliseconds(20);
      c.writes.flush_max_batch_window = std::chrono::milliseconds(500);
    }
    auto v = makeVfsOver(std::move(remote), c);
    EXPECT_TRUE(v->preloadRoot().ok());
    return v;
  }

  InodeId mustLookup(InodeId parent, const std::string& name) {
    return VfsFixture::mustLookup(*vfs_, parent, name);
  }
  std::vector<DirEntry> entries(InodeId dir) { return listEntries(*vfs_, dir); }
  std::vector<uint8_t> readAll(InodeId ino) { return VfsFixture::readAll(*vfs_, ino); }

  int errorOf(const Result<Attr>& r) { return r.ok() ? 0 : r.error().code(); }
  int errorOf(const Status& s) { return s.ok() ? 0 : s.error().code(); }

  // Everything queued is on the remote (advanced mode commits in the background).
  void settle() { ASSERT_TRUE(vfs_->flushAll(std::chrono::seconds(10)).ok()); }

  std::shared_ptr<PartlyHashlessRemote> remote_;
  std::unique_ptr<Vfs> vfs_;
  std::vector<uint8_t> a_bytes_;
};

std::string modeName(const ::testing::TestParamInfo<bool>& mode) {
  return mode.param ? "Advanced" : "Streaming";
}

INSTANTIATE_TEST_SUITE_P(WriteModes, VfsLinksTest, ::testing::Bool(), modeName);

// --- symlinks -------------------------------------------------------------------------------

TEST_P(VfsLinksTest, SymlinkLivesInMemoryOnly) {
  const auto before = remote_->counts();
  auto made = vfs_->symlink(kRootInode, "ln", "a.bin");
  ASSERT_TRUE(made.ok()) << made.error().message();
  EXPECT_TRUE(made->is_symlink);
  EXPECT_FALSE(made->is_dir);
  EXPECT_EQ(made->mode, static_cast<uint32_t>(S_IFLNK | 0777));
  EXPECT_EQ(made->size, 5u);
  EXPECT_EQ(made->nlink, 1u);
  EXPECT_EQ(vfs_->lookupCount(made->ino), 1u);
  EXPECT_NE(made->ino, mustLookup(kRootInode, "a.bin"));
  auto target = vfs_->readlink(made->ino);
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(*target, "a.bin");
  auto again = vfs_->lookup(kRootInode, "ln");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ino, made->ino);
  EXPECT_TRUE(again->is_symlink);
  const auto listed = entries(kRootInode);
  const DirEntry* e = findEntry(listed, "ln");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->is_symlink);
  EXPECT_FALSE(e->is_dir);
  const DirEntry* file = findEntry(listed, "a.bin");
  ASSERT_NE(file, nullptr);
  EXPECT_FALSE(file->is_symlink);
  settle();
  EXPECT_EQ(remote_->counts().commits, before.commits);
  EXPECT_EQ(remote_->stat("ln").error().code(), ENOENT);
  // A symlink has no content to open (the kernel follows it instead).
  EXPECT_EQ(vfs_->open(made->ino, O_RDONLY).error().code(), ELOOP);
}

TEST_P(VfsLinksTest, ReadlinkOfFilesDirectoriesAndUnknownInodes) {
  EXPECT_EQ(vfs_->readlink(mustLookup(kRootInode, "a.bin")).error().code(), EINVAL);
  EXPECT_EQ(vfs_->readlink(mustLookup(kRootInode, "dir")).error().code(), EINVAL);
  EXPECT_EQ(vfs_->readlink(kRootInode).error().code(), EINVAL);
  EXPECT_EQ(vfs_->readlink(987654).error().code(), ENOENT);
}

TEST_P(VfsLinksTest, SymlinkErrors) {
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, "a.bin", "x")), EEXIST);
  // dir/ was never listed: the name is found remotely.
  EXPECT_EQ(errorOf(vfs_->symlink(mustLookup(kRootInode, "dir"), "inner.txt", "x")), EEXIST);
  ASSERT_TRUE(vfs_->symlink(kRootInode, "ln", "a.bin").ok());
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, "ln", "b")), EEXIST);
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, std::string(256, 'n'), "x")), ENAMETOOLONG);
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, "long", std::string(PATH_MAX, 't'))), ENAMETOOLONG);
  auto longest = vfs_->symlink(kRootInode, "longest", std::string(PATH_MAX - 1, 't'));
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(longest->size, static_cast<uint64_t>(PATH_MAX - 1));
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, ".DS_Store", "x")), EACCES);
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, "._resource", "x")), EACCES);
  EXPECT_EQ(errorOf(vfs_->symlink(kRootInode, "empty-target", "")), ENOENT);
  EXPECT_EQ(errorOf(vfs_->symlink(mustLookup(kRootInode, "a.bin"), "x", "y")), ENOTDIR);

  auto ro_remote = std::make_shared<FakeRemote>(/*read_only=*/true);
  ro_remote->putFile("f", "x");
  auto ro = makeVfs(ro_remote, advanced());
  EXPECT_EQ(errorOf(ro->symlink(kRootInode, "ln", "f")), EROFS);
  EXPECT_EQ(errorOf(ro->symlink(kRootInode, ".DS_Store", "f")), EACCES);  // junk first
}

TEST_P(VfsLinksTest, SymlinkSurvivesPollsRelistingsAndRevalidation) {
  const InodeId dir = mustLookup(kRootInode, "dir");
  ASSERT_FALSE(entries(dir).empty());
  auto top = vfs_->symlink(kRootInode, "ln", "a.bin");
  auto inner = vfs_->symlink(dir, "up", "../a.bin");
  ASSERT_TRUE(top.ok() && inner.ok());
  for (int round = 0; round < 3; ++round) {
    clock_ms_ += 60'000;  // every listing and revalidation is stale
    const ChangeSet changes = vfs_->refreshLoaded();
    EXPECT_TRUE(changes.deleted.empty()) << changes.deleted.front();
  }
  const auto stats = remote_->counts();
  auto found = vfs_->lookup(kRootInode, "ln");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->ino, top->ino);
  EXPECT_EQ(remote_->counts().stat, stats.stat);  // nothing to revalidate remotely
  EXPECT_NE(findEntry(entries(dir), "up"), nullptr);
  EXPECT_EQ(*vfs_->readlink(inner->ino), "../a.bin");

  // A directory whose remote files all go away stays while it holds a symlink.
  ASSERT_TRUE(remote_->removeFile("dir/inner.txt"));
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  EXPECT_EQ(vfs_->inodeForPath("dir"), dir);
  EXPECT_EQ(vfs_->inodeForPath("dir/up"), inner->ino);
  EXPECT_FALSE(vfs_->inodeForPath("dir/inner.txt").has_value());

  // A remote file under the symlink's name stays hidden behind it (local wins) until the
  // symlink is unlinked; then the remote file shows.
  remote_->putFile("ln", "remote file");
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  auto still = vfs_->lookup(kRootInode, "ln");
  ASSERT_TRUE(still.ok());
  EXPECT_TRUE(still->is_symlink);
  ASSERT_TRUE(vfs_->unlink(kRootInode, "ln").ok());
  EXPECT_TRUE(remote_->stat("ln").ok()) << "unlinking the symlink must not delete remotely";
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  auto file = vfs_->lookup(kRootInode, "ln");
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->is_symlink);
  EXPECT_NE(file->ino, top->ino);
  EXPECT_EQ(file->size, 11u);
}

TEST_P(VfsLinksTest, UnlinkOfASymlinkIsLocal) {
  auto made = vfs_->symlink(kRootInode, "ln", "a.bin");
  ASSERT_TRUE(made.ok());
  const auto before = remote_->counts();
  ASSERT_TRUE(vfs_->unlink(kRootInode, "ln").ok());
  settle();
  EXPECT_EQ(remote_->counts().commits, before.commits);
  EXPECT_EQ(errorOf(vfs_->lookup(kRootInode, "ln")), ENOENT);
  EXPECT_EQ(findEntry(entries(kRootInode), "ln"), nullptr);
  // The kernel still holds a reference: the orphan answers until forgotten.
  EXPECT_EQ(vfs_->getattr(made->ino)->nlink, 0u);
  EXPECT_EQ(*vfs_->readlink(made->ino), "a.bin");
  vfs_->forget(made->ino, 1);
  EXPECT_EQ(vfs_->readlink(made->ino).error().code(), ENOENT);
  // The name is free again.
  EXPECT_TRUE(vfs_->symlink(kRootInode, "ln", "other").ok());
}

TEST_P(VfsLinksTest, RenameOfASymlinkIsLocal) {
  auto made = vfs_->symlink(kRootInode, "ln", "a.bin");
  ASSERT_TRUE(made.ok());
  const InodeId dir = mustLookup(kRootInode, "dir");
  const auto before = remote_->counts();
  ASSERT_TRUE(vfs_->rename(kRootInode, "ln", dir, "moved").ok());
  settle();
  EXPECT_EQ(remote_->counts().commits, before.commits);
  EXPECT_EQ(errorOf(vfs_->lookup(kRootInode, "ln")), ENOENT);
  auto moved = vfs_->lookup(dir, "moved");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->ino, made->ino);
  EXPECT_EQ(*vfs_->readlink(moved->ino), "a.bin");
  EXPECT_EQ(remote_->stat("dir/moved").error().code(), ENOENT);

  // Over an existing remote file: the file is deleted (as by unlink), the symlink stays local.
  ASSERT_TRUE(vfs_->rename(dir, "moved", kRootInode, "old.txt").ok());
  settle();
  EXPECT_EQ(remote_->stat("old.txt").error().code(), ENOENT);
  auto replaced = vfs_->lookup(kRootInode, "old.txt");
  ASSERT_TRUE(replaced.ok());
  EXPECT_TRUE(replaced->is_symlink);
  // Onto a directory: EISDIR; a file renamed over the symlink replaces it remotely by hash.
  EXPECT_EQ(errorOf(vfs_->rename(kRootInode, "old.txt", kRootInode, "dir")), EISDIR);
  ASSERT_TRUE(vfs_->rename(kRootInode, "a.bin", kRootInode, "old.txt").ok());
  settle();
  EXPECT_EQ(remote_->contents("old.txt"), a_bytes_);
  auto file = vfs_->lookup(kRootInode, "old.txt");
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->is_symlink);
}

TEST_P(VfsLinksTest, DirectoriesHoldingSymlinks) {
  ASSERT_TRUE(vfs_->mkdir(kRootInode, "local").ok());
  const InodeId local = mustLookup(kRootInode, "local");
  auto made = vfs_->symlink(local, "ln", "../a.bin");
  ASSERT_TRUE(made.ok());
  EXPECT_EQ(errorOf(vfs_->rmdir(kRootInode, "local")), ENOTEMPTY);
  ASSERT_TRUE(vfs_->rename(kRootInode, "local", kRootInode, "renamed").ok());
  EXPECT_EQ(vfs_->inodeForPath("renamed/ln"), made->ino);
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  EXPECT_EQ(*vfs_->readlink(*vfs_->inodeForPath("renamed/ln")), "../a.bin");
  ASSERT_TRUE(vfs_->unlink(mustLookup(kRootInode, "renamed"), "ln").ok());
  EXPECT_TRUE(vfs_->rmdir(kRootInode, "renamed").ok());
}

// --- hard links -----------------------------------------------------------------------------

TEST_P(VfsLinksTest, LinkIsAServerSideCopyByHash) {
  const InodeId a = mustLookup(kRootInode, "a.bin");
  const std::string hash = remote_->stat("a.bin")->xet_hash;
  const auto before = remote_->counts();
  auto linked = vfs_->link(a, kRootInode, "b.bin");
  ASSERT_TRUE(linked.ok()) << linked.error().message();
  EXPECT_NE(linked->ino, a);
  EXPECT_EQ(linked->nlink, 1u);
  EXPECT_EQ(linked->size, a_bytes_.size());
  EXPECT_FALSE(linked->is_symlink);
  EXPECT_EQ(vfs_->lookupCount(linked->ino), 1u);
  const auto after = remote_->counts();
  EXPECT_EQ(after.commits, before.commits + 1);
  EXPECT_EQ(after.uploads, before.uploads);
  EXPECT_EQ(after.bytes_uploaded, before.bytes_uploaded);
  auto st = remote_->stat("b.bin");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->xet_hash, hash);
  EXPECT_EQ(remote_->contents("b.bin"), a_bytes_);
  EXPECT_TRUE(remote_->stat("a.bin").ok());
  EXPECT_EQ(readAll(linked->ino), a_bytes_);
  EXPECT_EQ(mustLookup(kRootInode, "b.bin"), linked->ino);
  // Into another directory, never listed.
  auto deeper = vfs_->link(a, mustLookup(kRootInode, "dir"), "c.bin");
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(remote_->stat("dir/c.bin")->xet_hash, hash);
  // Both survive a poll; the copy is independent of its source.
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  ASSERT_TRUE(vfs_->unlink(kRootInode, "a.bin").ok());
  settle();
  EXPECT_EQ(remote_->contents("b.bin"), a_bytes_);
  EXPECT_EQ(readAll(linked->ino), a_bytes_);
}

TEST_P(VfsLinksTest, LinkErrors) {
  const InodeId a = mustLookup(kRootInode, "a.bin");
  const InodeId dir = mustLookup(kRootInode, "dir");
  EXPECT_EQ(errorOf(vfs_->link(a, kRootInode, "old.txt")), EEXIST);
  EXPECT_EQ(errorOf(vfs_->link(a, kRootInode, "a.bin")), EEXIST);
  EXPECT_EQ(errorOf(vfs_->link(a, dir, "inner.txt")), EEXIST);  // dir/ not listed yet
  EXPECT_EQ(errorOf(vfs_->link(a, kRootInode, "dir")), EEXIST);
  EXPECT_EQ(errorOf(vfs_->link(dir, kRootInode, "dir2")), EPERM);
  EXPECT_EQ(errorOf(vfs_->link(a, kRootInode, std::string(256, 'n'))), ENAMETOOLONG);
  EXPECT_EQ(errorOf(vfs_->link(a, kRootInode, "Thumbs.db")), EACCES);
  EXPECT_EQ(errorOf(vfs_->link(a, a, "x")), ENOTDIR);
  EXPECT_EQ(errorOf(vfs_->link(987654, kRootInode, "x")), ENOENT);
  // A file without a xet hash cannot be copied by hash: the caller copies instead.
  const InodeId plain = mustLookup(mustLookup(kRootInode, "plain"), "p.txt");
  EXPECT_EQ(errorOf(vfs_->link(plain, kRootInode, "p2.txt")), ENOTSUP);
  // A failed batch is EIO and leaves nothing behind.
  remote_->failNext(FakeRemote::kCommit, 1, EIO);
  EXPECT_EQ(errorOf(vfs_->link(a, kRootInode, "failed.bin")), EIO);
  EXPECT_EQ(errorOf(vfs_->lookup(kRootInode, "failed.bin")), ENOENT);
  EXPECT_EQ(remote_->stat("failed.bin").error().code(), ENOENT);

  auto ro_remote = std::make_shared<FakeRemote>(/*read_only=*/true);
  ro_remote->putFile("f", "x");
  auto ro = makeVfs(ro_remote, advanced());
  auto f = ro->lookup(kRootInode, "f");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(errorOf(ro->link(f->ino, kRootInode, "g")), EROFS);
  EXPECT_EQ(errorOf(ro->link(f->ino, kRootInode, "desktop.ini")), EACCES);
}

TEST_P(VfsLinksTest, LinkOfAnOpenWriterCommitsItFirst) {
  auto made = vfs_->create(kRootInode, "w.bin", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const auto first = patternBytes(70'000, 21);
  const auto second = patternBytes(30'000, 22);
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, first).ok());
  // Streaming commits as close would; advanced mode commits without waiting for the debounce.
  auto linked = vfs_->link(made->attr.ino, kRootInode, "w-copy.bin");
  ASSERT_TRUE(linked.ok()) << linked.error().message();
  EXPECT_EQ(remote_->contents("w.bin"), first);
  EXPECT_EQ(remote_->contents("w-copy.bin"), first);
  EXPECT_EQ(remote_->stat("w-copy.bin")->xet_hash, remote_->stat("w.bin")->xet_hash);
  // The writer goes on; its close commits the whole file; the copy keeps what it copied.
  ASSERT_TRUE(vfs_->write(made->open.fh, first.size(), second).ok());
  ASSERT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  settle();
  auto whole = first;
  whole.insert(whole.end(), second.begin(), second.end());
  EXPECT_EQ(remote_->contents("w.bin"), whole);
  EXPECT_EQ(remote_->contents("w-copy.bin"), first);
  EXPECT_EQ(readAll(linked->ino), first);
}

TEST_P(VfsLinksTest, LinkOfANewFileNobodyWroteToYetCopiesItEmpty) {
  // `: > e; ln e e2`: the kernel may send the link before the release that commits `e`.
  auto made = vfs_->create(kRootInode, "blank", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  auto linked = vfs_->link(made->attr.ino, kRootInode, "blank2");
  ASSERT_TRUE(linked.ok()) << linked.error().message();
  EXPECT_EQ(linked->size, 0u);
  ASSERT_TRUE(remote_->stat("blank").ok());
  ASSERT_TRUE(remote_->stat("blank2").ok());
  EXPECT_EQ(remote_->stat("blank2")->size, 0u);
  // Bytes written afterwards reach the source only.
  const auto later = patternBytes(9'000, 24);
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, later).ok());
  ASSERT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  settle();
  EXPECT_EQ(remote_->contents("blank"), later);
  EXPECT_TRUE(remote_->contents("blank2").empty());
}

TEST_P(VfsLinksTest, LinkOfAFileTheHubRefusesIsEioAndTheFileIsKept) {
  remote_->failAlways(FakeRemote::kCommit, EIO);
  auto made = vfs_->create(kRootInode, "pending.bin", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, patternBytes(5000, 23)).ok());
  (void)vfs_->flush(made->open.fh);  // closed: kept on local disk, commit retried
  vfs_->release(made->open.fh);
  EXPECT_EQ(errorOf(vfs_->link(made->attr.ino, kRootInode, "pending-copy.bin")), EIO);
  EXPECT_EQ(errorOf(vfs_->lookup(kRootInode, "pending-copy.bin")), ENOENT);
  EXPECT_EQ(remote_->stat("pending-copy.bin").error().code(), ENOENT);
  remote_->clearFaults();
  settle();
  EXPECT_EQ(remote_->contents("pending.bin"), patternBytes(5000, 23));
  EXPECT_TRUE(vfs_->link(made->attr.ino, kRootInode, "pending-copy.bin").ok());
  EXPECT_EQ(remote_->contents("pending-copy.bin"), patternBytes(5000, 23));
}

TEST_P(VfsLinksTest, LinkOfAnEmptyFile) {
  auto made = vfs_->create(kRootInode, "empty", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  vfs_->release(made->open.fh);
  settle();
  ASSERT_TRUE(remote_->stat("empty").ok());
  auto linked = vfs_->link(made->attr.ino, kRootInode, "empty2");
  ASSERT_TRUE(linked.ok()) << linked.error().message();
  EXPECT_EQ(linked->size, 0u);
  auto st = remote_->stat("empty2");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, 0u);
  EXPECT_EQ(st->xet_hash, remote_->stat("empty")->xet_hash);
}

TEST_P(VfsLinksTest, LinkOfASymlinkCopiesTheSymlink) {
  auto made = vfs_->symlink(kRootInode, "ln", "a.bin");
  ASSERT_TRUE(made.ok());
  const auto before = remote_->counts();
  auto linked = vfs_->link(made->ino, kRootInode, "ln2");
  ASSERT_TRUE(linked.ok());
  EXPECT_TRUE(linked->is_symlink);
  EXPECT_NE(linked->ino, made->ino);
  EXPECT_EQ(*vfs_->readlink(linked->ino), "a.bin");
  EXPECT_EQ(remote_->counts().commits, before.commits);
}

TEST_P(VfsLinksTest, LinkOntoAPathWhoseDeleteIsQueued) {
  // Advanced mode queues the delete of an unlinked file; the link must not be deleted by it.
  ASSERT_TRUE(vfs_->unlink(kRootInode, "old.txt").ok());
  auto linked = vfs_->link(mustLookup(kRootInode, "a.bin"), kRootInode, "old.txt");
  ASSERT_TRUE(linked.ok()) << linked.error().message();
  settle();
  EXPECT_EQ(remote_->contents("old.txt"), a_bytes_);
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  EXPECT_EQ(mustLookup(kRootInode, "old.txt"), linked->ino);
}

// --- chmod / chown / utimens ----------------------------------------------------------------

TEST_P(VfsLinksTest, ChmodChownUtimensShowInGetattrForFilesAndDirectories) {
  const InodeId a = mustLookup(kRootInode, "a.bin");
  const InodeId dir = mustLookup(kRootInode, "dir");
  const int64_t when = 1'600'000'000'123'456'789;
  SetAttrRequest file_changes;
  file_changes.mode = 0600;
  file_changes.uid = 4321;
  file_changes.gid = 8765;
  file_changes.mtime_ns = when;
  auto r = vfs_->setattr(a, file_changes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mode, static_cast<uint32_t>(S_IFREG | 0600));
  SetAttrRequest dir_changes;
  dir_changes.mode = 0700;
  dir_changes.mtime_ns = when;
  ASSERT_TRUE(vfs_->setattr(dir, dir_changes).ok());
  const auto before = remote_->counts();
  for (int round = 0; round < 2; ++round) {
    auto f = vfs_->getattr(a);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->mode, static_cast<uint32_t>(S_IFREG | 0600));
    EXPECT_EQ(f->uid, 4321u);
    EXPECT_EQ(f->gid, 8765u);
    EXPECT_EQ(f->mtime_ns, when);
    EXPECT_EQ(f->size, a_bytes_.size());
    auto d = vfs_->getattr(dir);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->mode, static_cast<uint32_t>(S_IFDIR | 0700));
    EXPECT_EQ(d->mtime_ns, when);
    clock_ms_ += 60'000;
    vfs_->refreshLoaded();  // an unchanged remote keeps what was set
  }
  settle();
  EXPECT_EQ(remote_->counts().commits, before.commits);  // never sent to the remote
  EXPECT_EQ(remote_->counts().uploads, before.uploads);

  // A new remote version replaces the metadata set in memory.
  remote_->putFile("a.bin", "new remote version");
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();
  auto f = vfs_->getattr(a);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mode, static_cast<uint32_t>(S_IFREG | 0644));
  EXPECT_EQ(f->uid, 0u);
  EXPECT_NE(f->mtime_ns, when);
}

TEST_P(VfsLinksTest, ChmodAndTouchOfAFileBeingWritten) {
  auto made = vfs_->create(kRootInode, "open.bin", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, patternBytes(1000, 24)).ok());
  SetAttrRequest changes;
  changes.mode = 0640;
  changes.mtime_ns = 1'500'000'000'000'000'000;
  auto r = vfs_->setattr(made->attr.ino, changes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mode, static_cast<uint32_t>(S_IFREG | 0640));
  EXPECT_EQ(r->mtime_ns, changes.mtime_ns);
  EXPECT_EQ(r->size, 1000u);
  // Streaming mode ignores truncation (as the reference); advanced mode applies it.
  SetAttrRequest shrink;
  shrink.size = 10;
  auto t = vfs_->setattr(made->attr.ino, shrink);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size, advanced() ? 10u : 1000u);
  ASSERT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  settle();
  auto after = vfs_->getattr(made->attr.ino);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->mode, static_cast<uint32_t>(S_IFREG | 0640));
  EXPECT_EQ(remote_->stat("open.bin")->size, advanced() ? 10u : 1000u);
}

TEST_P(VfsLinksTest, ChownOfASymlinkKeepsItsMode) {
  auto made = vfs_->symlink(kRootInode, "ln", "a.bin");
  ASSERT_TRUE(made.ok());
  SetAttrRequest changes;
  changes.uid = 77;
  changes.mode = 0600;  // meaningless for symlinks: Linux reports 0777 whatever chmod did
  auto r = vfs_->setattr(made->ino, changes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->uid, 77u);
  EXPECT_EQ(r->mode, static_cast<uint32_t>(S_IFLNK | 0777));
}

}  // namespace
}  // namespace hfm::vfs
