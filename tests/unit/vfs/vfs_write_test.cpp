// Streaming writes on a writable remote (bucket semantics) over FakeRemote.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "fake_remote.h"
#include "hfm/vfs/staging.h"
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
    rebuild(WriteConfig{});
  }

  // A fresh Vfs over the same remote with `w` (short retry backoff unless set).
  void rebuild(WriteConfig w) {
    vfs_.reset();
    VfsConfig c;
    c.now = [this] { return Clock::time_point(std::chrono::milliseconds(clock_ms_.load())); };
    c.prefetch.retry_backoff = std::chrono::milliseconds(1);
    c.prefetch.fetch_attempts = 1;
    c.worker_threads = 2;
    if (w.retry_initial == WriteConfig{}.retry_initial) {
      w.retry_initial = std::chrono::milliseconds(20);
      w.retry_max = std::chrono::milliseconds(80);
    }
    c.writes = w;
    vfs_ = std::make_unique<Vfs>(vfs_remote_ != nullptr ? vfs_remote_ : remote_, c);
    ASSERT_TRUE(vfs_->preloadRoot().ok());
  }

  static WriteConfig advanced(int debounce_ms = 20, int window_ms = 500) {
    WriteConfig w;
    w.advanced = true;
    w.flush_debounce = std::chrono::milliseconds(debounce_ms);
    w.flush_max_batch_window = std::chrono::milliseconds(window_ms);
    return w;
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
  std::shared_ptr<Remote> vfs_remote_;  // what the Vfs talks to, if not remote_ itself
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
  // The uncommitted bytes are readable, through a new handle and through the write handle.
  auto reader = vfs_->open(made->attr.ino, O_RDONLY);
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(reader->keep_cache);
  uint8_t buf[4] = {};
  auto n = vfs_->read(reader->fh, 0, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(buf[2], 3);
  vfs_->release(reader->fh);
  n = vfs_->read(made->open.fh, 1, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
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
  EXPECT_EQ(vfs_->write(h->fh, 5, b).error().code(), EINVAL);  // not sequential
  ASSERT_TRUE(vfs_->write(h->fh, 2, b).ok());
  ASSERT_TRUE(vfs_->flush(h->fh).ok());
  EXPECT_EQ(remote_->contents("old.txt"), (std::vector<uint8_t>{'h', 'i', 'h', 'i'}));
  // A dup'd descriptor keeps writing after the first close committed: the staged copy has
  // every byte, so the next commit sends the longer file.
  ASSERT_TRUE(vfs_->write(h->fh, 4, b).ok());
  EXPECT_EQ(vfs_->getattr(old)->size, 6u);
  vfs_->release(h->fh);
  EXPECT_EQ(remote_->contents("old.txt"), (std::vector<uint8_t>{'h', 'i', 'h', 'i', 'h', 'i'}));
  EXPECT_EQ(readAll(old), (std::vector<uint8_t>{'h', 'i', 'h', 'i', 'h', 'i'}));
  EXPECT_EQ(remote_->counts().commits, 2u);
  // O_EXCL on an existing name.
  EXPECT_EQ(vfs_->create(kRootInode, "old.txt", O_WRONLY | O_CREAT | O_EXCL).error().code(),
            EEXIST);
  EXPECT_EQ(vfs_->create(kRootInode, ".DS_Store", O_WRONLY | O_CREAT).error().code(), EACCES);
}

TEST_F(VfsWriteTest, SecondStreamingWriterSupersedesTheFirst) {
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  auto first = vfs_->open(old, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(first.ok());
  const uint8_t a[1] = {'a'};
  const uint8_t b[1] = {'b'};
  ASSERT_TRUE(vfs_->write(first->fh, 0, a).ok());
  auto second = vfs_->open(old, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(vfs_->write(second->fh, 0, b).ok());
  EXPECT_EQ(vfs_->write(first->fh, 1, a).error().code(), EIO);
  EXPECT_EQ(vfs_->flush(first->fh).error().code(), EIO);
  vfs_->release(first->fh);
  EXPECT_EQ(remote_->counts().commits, 0u);  // the replaced version is never committed
  ASSERT_TRUE(vfs_->flush(second->fh).ok());
  vfs_->release(second->fh);
  EXPECT_EQ(remote_->contents("old.txt"), std::vector<uint8_t>{'b'});
  EXPECT_EQ(remote_->counts().commits, 1u);
}

// Polls `done` every 5 ms for at most `limit`.
template <typename F>
bool waitFor(F done, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

TEST_F(VfsWriteTest, FailedCommitStaysPendingAndIsRetried) {
  remote_->failAlways(FakeRemote::kCommit, EIO);
  auto made = vfs_->create(kRootInode, "kept", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(made.ok());
  const auto bytes = patternBytes(70000, 5);
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, bytes).ok());
  // close() succeeds: the bytes are safe on local disk and the commit is retried.
  EXPECT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  EXPECT_FALSE(remote_->stat("kept").ok());
  ASSERT_TRUE(vfs_->inodeForPath("kept").has_value());
  EXPECT_EQ(readAll(made->attr.ino), bytes);
  vfs_->refreshLoaded();  // the remote does not know it: the local version stays
  EXPECT_TRUE(vfs_->inodeForPath("kept").has_value());
  auto stats = vfs_->writeStats();
  EXPECT_EQ(stats.pending_commits, 1u);
  EXPECT_EQ(stats.pending_bytes, bytes.size());
  EXPECT_TRUE(waitFor([&] { return vfs_->writeStats().failed_attempts >= 3; }));  // retried
  remote_->clearFaults();
  ASSERT_TRUE(waitFor([&] { return remote_->stat("kept").ok(); }));
  EXPECT_EQ(remote_->contents("kept"), bytes);
  EXPECT_TRUE(waitFor([&] { return vfs_->writeStats().pending_commits == 0; }));
  EXPECT_EQ(vfs_->writeStats().committed_files, 1u);

  // The upload failing while the bytes arrive: writes still succeed (local disk), the rewrite
  // of an existing file is committed once the hub is back, never rolled back.
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  auto h = vfs_->open(old, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(h.ok());
  remote_->failAlways(FakeRemote::kUpload, ENOSPC);
  const uint8_t b[1] = {9};
  ASSERT_TRUE(vfs_->write(h->fh, 0, b).ok());
  EXPECT_TRUE(vfs_->flush(h->fh).ok());
  vfs_->release(h->fh);
  EXPECT_EQ(vfs_->getattr(old)->size, 1u);
  EXPECT_EQ(remote_->contents("old.txt").size(), 11u);
  remote_->clearFaults();
  ASSERT_TRUE(waitFor([&] { return remote_->contents("old.txt").size() == 1; }));
  EXPECT_EQ(remote_->contents("old.txt"), std::vector<uint8_t>{9});
}

TEST_F(VfsWriteTest, HubUnreachableAtCreateStillKeepsTheFile) {
  remote_->failAlways(FakeRemote::kUpload | FakeRemote::kCommit, ECONNREFUSED);
  auto ino = writeFile(kRootInode, "offline.txt", {'o', 'k'});  // create, write, close: all 0
  ASSERT_TRUE(ino.ok()) << ino.error().message();
  EXPECT_EQ(readAll(*ino), (std::vector<uint8_t>{'o', 'k'}));
  remote_->clearFaults();
  ASSERT_TRUE(waitFor([&] { return remote_->stat("offline.txt").ok(); }));
  EXPECT_EQ(remote_->contents("offline.txt"), (std::vector<uint8_t>{'o', 'k'}));
}

TEST_F(VfsWriteTest, PendingFileRenamedBeforeItsCommitLandsAtTheNewName) {
  remote_->failAlways(FakeRemote::kCommit, EIO);
  auto ino = writeFile(kRootInode, "draft.tmp", {'d', 'o', 'c'});
  ASSERT_TRUE(ino.ok());
  ASSERT_TRUE(vfs_->rename(kRootInode, "draft.tmp", kRootInode, "doc.txt").ok());
  EXPECT_EQ(vfs_->inodeForPath("doc.txt"), *ino);
  remote_->clearFaults();
  ASSERT_TRUE(waitFor([&] { return remote_->stat("doc.txt").ok(); }));
  EXPECT_EQ(remote_->contents("doc.txt"), (std::vector<uint8_t>{'d', 'o', 'c'}));
  EXPECT_FALSE(remote_->stat("draft.tmp").ok());
  // Renaming a committed file over a pending one: the pending version is dropped.
  remote_->failAlways(FakeRemote::kCommit, EIO);
  ASSERT_TRUE(writeFile(kRootInode, "pending", {'p'}).ok());
  remote_->clearFaults();
  ASSERT_TRUE(vfs_->lookup(kRootInode, "old.txt").ok());
  ASSERT_TRUE(vfs_->rename(kRootInode, "old.txt", kRootInode, "pending").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past every retry
  EXPECT_EQ(remote_->contents("pending").size(), 11u);
  EXPECT_EQ(vfs_->writeStats().pending_commits, 0u);
}

TEST_F(VfsWriteTest, UnlinkOfAPendingFileCancelsItsCommit) {
  remote_->failAlways(FakeRemote::kCommit, EIO);
  ASSERT_TRUE(writeFile(kRootInode, "scratch", {'s'}).ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "scratch").ok());
  remote_->clearFaults();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE(remote_->stat("scratch").ok());
  EXPECT_EQ(vfs_->writeStats().dirty_files, 0u);
}

// --- advanced mode ---

TEST_F(VfsWriteTest, AdvancedRandomWritesMatchAModel) {
  rebuild(advanced());
  std::vector<uint8_t> model = patternBytes(200000, 3);
  remote_->putFile("model.bin", model);
  clock_ms_ += 60'000;  // the root listing is older than the TTL
  const InodeId ino = vfs_->lookup(kRootInode, "model.bin")->ino;
  auto h = vfs_->open(ino, O_RDWR);  // no O_TRUNC: the current content is staged first
  ASSERT_TRUE(h.ok()) << h.error().message();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 400; ++i) {
    const auto op = rng() % 10;
    if (op < 6) {
      const uint64_t at = rng() % (model.size() + 5000);
      const auto piece = patternBytes(1 + rng() % 9000, rng());
      ASSERT_TRUE(vfs_->write(h->fh, at, piece).ok());
      if (model.size() < at + piece.size()) model.resize(at + piece.size(), 0);
      std::copy(piece.begin(), piece.end(), model.begin() + static_cast<ptrdiff_t>(at));
    } else if (op == 6) {
      SetAttrRequest req;
      req.size = rng() % (model.size() + 10000);
      auto a = vfs_->setattr(ino, req);
      ASSERT_TRUE(a.ok()) << a.error().message();
      model.resize(*req.size, 0);
      EXPECT_EQ(a->size, model.size());
    } else if (op == 7) {
      ASSERT_TRUE(vfs_->fsync(h->fh).ok());
    } else {
      const uint64_t at = rng() % (model.size() + 100);
      std::vector<uint8_t> got(1 + rng() % 20000);
      auto n = vfs_->read(h->fh, at, got);
      ASSERT_TRUE(n.ok());
      const size_t want = at >= model.size() ? 0 : std::min<size_t>(got.size(), model.size() - at);
      ASSERT_EQ(*n, want);
      ASSERT_TRUE(std::equal(got.begin(), got.begin() + static_cast<ptrdiff_t>(want),
                             model.begin() + static_cast<ptrdiff_t>(at)));
    }
  }
  EXPECT_EQ(vfs_->getattr(ino)->size, model.size());
  ASSERT_TRUE(vfs_->flush(h->fh).ok());
  vfs_->release(h->fh);
  ASSERT_TRUE(waitFor([&] { return remote_->contents("model.bin") == model; }));
  EXPECT_EQ(readAll(ino), model);
  EXPECT_TRUE(waitFor([&] { return vfs_->writeStats().dirty_files == 0; }));
}

TEST_F(VfsWriteTest, AdvancedAppendTruncateAndReadAfterWrite) {
  rebuild(advanced());
  remote_->putFile("log.txt", "abc");
  clock_ms_ += 60'000;
  const InodeId ino = vfs_->lookup(kRootInode, "log.txt")->ino;
  // A read handle opened on the remote version before the change sees the local bytes too.
  auto early = vfs_->open(ino, O_RDONLY);
  ASSERT_TRUE(early.ok());
  auto h = vfs_->open(ino, O_WRONLY | O_APPEND);
  ASSERT_TRUE(h.ok()) << h.error().message();
  const std::string def = "def";
  ASSERT_TRUE(vfs_->write(h->fh, 0,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(def.data()), 3))
                  .ok());
  // Another handle sees the bytes before any commit.
  auto rw = vfs_->open(ino, O_RDWR);
  ASSERT_TRUE(rw.ok());
  const uint8_t x[1] = {'X'};
  ASSERT_TRUE(vfs_->write(rw->fh, 1, x).ok());
  auto reader = vfs_->open(ino, O_RDONLY);
  ASSERT_TRUE(reader.ok());
  std::vector<uint8_t> got(10);
  auto n = vfs_->read(reader->fh, 0, got);
  ASSERT_TRUE(n.ok());
  got.resize(*n);
  EXPECT_EQ(std::string(got.begin(), got.end()), "aXcdef");
  vfs_->release(reader->fh);
  got.assign(10, 0);
  n = vfs_->read(early->fh, 0, got);
  ASSERT_TRUE(n.ok());
  got.resize(*n);
  EXPECT_EQ(std::string(got.begin(), got.end()), "aXcdef");
  vfs_->release(early->fh);
  vfs_->release(rw->fh);
  vfs_->release(h->fh);
  ASSERT_TRUE(waitFor([&] { return remote_->contents("log.txt").size() == 6; }));
  auto stored = remote_->contents("log.txt");
  EXPECT_EQ(std::string(stored.begin(), stored.end()), "aXcdef");
  // A handle-less truncate (truncate(1)) shrinks, then extends with zeros.
  SetAttrRequest shrink;
  shrink.size = 2;
  ASSERT_TRUE(vfs_->setattr(ino, shrink).ok());
  ASSERT_TRUE(waitFor([&] { return remote_->contents("log.txt").size() == 2; }));
  SetAttrRequest grow;
  grow.size = 4;
  ASSERT_TRUE(vfs_->setattr(ino, grow).ok());
  ASSERT_TRUE(waitFor([&] { return remote_->contents("log.txt").size() == 4; }));
  EXPECT_EQ(remote_->contents("log.txt"), (std::vector<uint8_t>{'a', 'X', 0, 0}));
  EXPECT_EQ(readAll(ino), (std::vector<uint8_t>{'a', 'X', 0, 0}));
}

TEST_F(VfsWriteTest, AdvancedEditOfARemoteFileOffersItsVersionAsTheUploadBase) {
  rebuild(advanced());
  const auto original = patternBytes(200000, 3);
  const std::string hash = remote_->putFile("ckpt.bin", original);
  clock_ms_ += 60'000;
  const InodeId ino = vfs_->lookup(kRootInode, "ckpt.bin")->ino;
  auto h = vfs_->open(ino, O_RDWR);
  ASSERT_TRUE(h.ok()) << h.error().message();
  const uint8_t x[2] = {'X', 'Y'};
  ASSERT_TRUE(vfs_->write(h->fh, 100000, x).ok());
  vfs_->release(h->fh);
  ASSERT_TRUE(waitFor([&] {
    const auto stored = remote_->contents("ckpt.bin");
    return stored.size() > 100000 && stored[100000] == 'X';
  }));
  // The version the copy was downloaded from, before the upload; a new file offers none.
  ASSERT_TRUE(writeFile(kRootInode, "new.bin", patternBytes(5000, 4)).ok());
  ASSERT_TRUE(waitFor([&] { return remote_->contents("new.bin").size() == 5000; }));
  const auto bases = remote_->learnedBases();
  ASSERT_EQ(bases.size(), 1u);
  EXPECT_EQ(bases[0].path, "ckpt.bin");
  EXPECT_EQ(bases[0].xet_hash, hash);
  EXPECT_EQ(bases[0].size, original.size());
}

TEST_F(VfsWriteTest, AdvancedFsyncNeverWaitsForTheHub) {
  rebuild(advanced(/*debounce_ms=*/60'000, /*window_ms=*/60'000));
  auto made = vfs_->create(kRootInode, "db.sqlite", O_RDWR | O_CREAT);
  ASSERT_TRUE(made.ok());
  remote_->failAlways(FakeRemote::kUpload | FakeRemote::kCommit | FakeRemote::kAll, EIO);
  remote_->resetCounts();
  const auto page = patternBytes(4096, 1);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(vfs_->write(made->open.fh, static_cast<uint64_t>(i) * 4096, page).ok());
    ASSERT_TRUE(vfs_->fsync(made->open.fh).ok());  // local disk only
  }
  const auto c = remote_->counts();
  EXPECT_EQ(c.uploads + c.commits + c.stat + c.list + c.read, 0u);
  EXPECT_EQ(vfs_->writeStats().dirty_files, 1u);
  remote_->clearFaults();
  vfs_->release(made->open.fh);
  ASSERT_TRUE(vfs_->flushAll(std::chrono::milliseconds(5000)).ok());
  EXPECT_EQ(remote_->contents("db.sqlite").size(), 20u * 4096);
}

TEST_F(VfsWriteTest, AdvancedDebounceBatchesCommits) {
  rebuild(advanced(/*debounce_ms=*/150, /*window_ms=*/5000));
  for (int i = 0; i < 5; ++i) {
    auto ino = writeFile(kRootInode, "f" + std::to_string(i),
                         patternBytes(1000, static_cast<uint64_t>(i)));
    ASSERT_TRUE(ino.ok());
  }
  EXPECT_EQ(remote_->counts().commits, 0u);  // still debouncing
  ASSERT_TRUE(waitFor([&] { return remote_->stat("f4").ok(); }));
  EXPECT_EQ(remote_->counts().commits, 1u);  // one batch for the five files
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(remote_->contents("f" + std::to_string(i)),
              patternBytes(1000, static_cast<uint64_t>(i)));
  }
  // Signals that keep coming are bounded by the batch window.
  rebuild(advanced(/*debounce_ms=*/150, /*window_ms=*/300));
  remote_->resetCounts();
  auto made = vfs_->create(kRootInode, "busy", O_RDWR | O_CREAT);
  ASSERT_TRUE(made.ok());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 40 && remote_->counts().commits == 0; ++i) {
    const uint8_t b[1] = {static_cast<uint8_t>(i)};
    ASSERT_TRUE(vfs_->write(made->open.fh, static_cast<uint64_t>(i), b).ok());
    ASSERT_TRUE(vfs_->fsync(made->open.fh).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GE(remote_->counts().commits, 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));
  vfs_->release(made->open.fh);
}

TEST_F(VfsWriteTest, AdvancedCommitErrorComesBackOnFlushAndIsRetried) {
  rebuild(advanced());
  remote_->failAlways(FakeRemote::kCommit, EIO);
  auto made = vfs_->create(kRootInode, "retry.bin", O_RDWR | O_CREAT);
  ASSERT_TRUE(made.ok());
  const uint8_t b[2] = {1, 2};
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, b).ok());
  EXPECT_TRUE(vfs_->flush(made->open.fh).ok());  // the commit has not run yet
  ASSERT_TRUE(waitFor([&] { return vfs_->writeStats().failed_attempts >= 1; }));
  EXPECT_EQ(vfs_->flush(made->open.fh).error().code(), EIO);
  vfs_->release(made->open.fh);
  EXPECT_TRUE(vfs_->inodeForPath("retry.bin").has_value());
  remote_->clearFaults();
  ASSERT_TRUE(waitFor([&] { return remote_->stat("retry.bin").ok(); }));
  EXPECT_EQ(remote_->contents("retry.bin"), (std::vector<uint8_t>{1, 2}));
}

TEST_F(VfsWriteTest, AdvancedUnlinkQueuesTheDeleteAndRecreateCancelsIt) {
  rebuild(advanced(/*debounce_ms=*/50));
  ASSERT_TRUE(vfs_->lookup(kRootInode, "old.txt").ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "old.txt").ok());
  EXPECT_EQ(vfs_->lookup(kRootInode, "old.txt").error().code(), ENOENT);
  clock_ms_ += 60'000;
  vfs_->refreshLoaded();  // the delete is not sent yet: the listing must not bring it back
  EXPECT_FALSE(vfs_->inodeForPath("old.txt").has_value());
  ASSERT_TRUE(waitFor([&] { return !remote_->stat("old.txt").ok(); }));
  // A journal pattern: delete, then create the same name before the batch goes.
  remote_->putFile("j", "old journal");
  clock_ms_ += 60'000;
  ASSERT_TRUE(vfs_->lookup(kRootInode, "j").ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "j").ok());
  ASSERT_TRUE(writeFile(kRootInode, "j", {'n', 'e', 'w'}).ok());
  ASSERT_TRUE(waitFor([&] { return remote_->contents("j").size() == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // no late delete
  EXPECT_EQ(remote_->contents("j"), (std::vector<uint8_t>{'n', 'e', 'w'}));
  // A file created and deleted inside one debounce window never reaches the hub.
  remote_->resetCounts();
  ASSERT_TRUE(writeFile(kRootInode, "tmp-journal", {'t'}).ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "tmp-journal").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(remote_->stat("tmp-journal").ok());
  EXPECT_EQ(remote_->counts().uploads, 0u);
}

TEST_F(VfsWriteTest, AdvancedRenameOfAClosedLockFile) {
  rebuild(advanced());
  remote_->putFile("index", "old index");
  clock_ms_ += 60'000;
  ASSERT_TRUE(vfs_->lookup(kRootInode, "index").ok());
  ASSERT_TRUE(writeFile(kRootInode, "index.lock", {'n', 'e', 'w'}).ok());
  ASSERT_TRUE(vfs_->rename(kRootInode, "index.lock", kRootInode, "index").ok());
  ASSERT_TRUE(waitFor([&] { return remote_->contents("index").size() == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(remote_->stat("index.lock").ok());
  EXPECT_EQ(remote_->contents("index"), (std::vector<uint8_t>{'n', 'e', 'w'}));
}

TEST_F(VfsWriteTest, AdvancedDirectoryWithUncommittedFilesMoves) {
  rebuild(advanced());
  const InodeId dir = vfs_->lookup(kRootInode, "dir")->ino;
  auto made = vfs_->create(dir, "a.txt", O_RDWR | O_CREAT);
  ASSERT_TRUE(made.ok());
  const uint8_t b[3] = {'a', 'b', 'c'};
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, b).ok());
  // Still open for writing: the directory moves anyway, the file with it.
  ASSERT_TRUE(vfs_->rename(kRootInode, "dir", kRootInode, "dst").ok());
  EXPECT_EQ(remote_->contents("dst/inner.txt"), (std::vector<uint8_t>{'i', 'n', 'n', 'e', 'r'}));
  EXPECT_FALSE(remote_->stat("dir/inner.txt").ok());
  EXPECT_EQ(vfs_->inodeForPath("dst/a.txt"), std::optional<InodeId>(made->attr.ino));
  const uint8_t d[1] = {'d'};
  ASSERT_TRUE(vfs_->write(made->open.fh, 3, d).ok());
  ASSERT_TRUE(vfs_->flush(made->open.fh).ok());
  vfs_->release(made->open.fh);
  ASSERT_TRUE(waitFor([&] { return remote_->stat("dst/a.txt").ok(); }));
  EXPECT_EQ(remote_->contents("dst/a.txt"), (std::vector<uint8_t>{'a', 'b', 'c', 'd'}));
  EXPECT_FALSE(remote_->stat("dir/a.txt").ok());
  EXPECT_EQ(readAll(made->attr.ino), (std::vector<uint8_t>{'a', 'b', 'c', 'd'}));
}

TEST_F(VfsWriteTest, FlushAllCommitsEverythingOrNamesWhatRemains) {
  rebuild(advanced(/*debounce_ms=*/60'000, /*window_ms=*/60'000));
  ASSERT_TRUE(writeFile(kRootInode, "a", {'a'}).ok());
  ASSERT_TRUE(writeFile(kRootInode, "b", {'b'}).ok());
  EXPECT_EQ(remote_->counts().commits, 0u);
  EXPECT_EQ(vfs_->writeStats().pending_commits, 2u);
  ASSERT_TRUE(vfs_->flushAll(std::chrono::milliseconds(5000)).ok());
  EXPECT_EQ(remote_->contents("a"), std::vector<uint8_t>{'a'});
  EXPECT_EQ(remote_->contents("b"), std::vector<uint8_t>{'b'});
  remote_->failAlways(FakeRemote::kCommit, EIO);
  ASSERT_TRUE(writeFile(kRootInode, "stuck", {'s'}).ok());
  const auto start = std::chrono::steady_clock::now();
  auto st = vfs_->flushAll(std::chrono::milliseconds(300));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("stuck"), std::string::npos) << st.error().message();
  EXPECT_EQ(vfs_->writeStats().pending_commits, 1u);
  remote_->clearFaults();
}

TEST_F(VfsWriteTest, SetattrKeepsModeOwnerAndTimesInMemory) {
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  SetAttrRequest req;
  req.mode = 0600;
  req.uid = 1234;
  req.gid = 5678;
  req.mtime_ns = 1'700'000'000'000'000'000;
  req.size = 3;  // streaming mode ignores size, as the reference
  auto a = vfs_->setattr(old, req);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode, S_IFREG | 0600u);
  EXPECT_EQ(a->uid, 1234u);
  EXPECT_EQ(a->gid, 5678u);
  EXPECT_EQ(a->mtime_ns, req.mtime_ns);
  EXPECT_EQ(a->size, 11u);
  EXPECT_EQ(vfs_->getattr(old)->mode, S_IFREG | 0600u);
  EXPECT_EQ(remote_->counts().commits, 0u);
}

// A staging directory of its own (kept across Vfs instances), removed at the end.
class StagingDir {
 public:
  StagingDir() {
    std::string tmpl = ::testing::TempDir() + "hfm-staging-test-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~StagingDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  size_t count(const std::string& suffix) const {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      if (e.path().filename().string().ends_with(suffix)) n++;
    }
    return n;
  }

 private:
  std::string path_;
};

TEST_F(VfsWriteTest, KilledVfsLeavesManifestsThatTheNextStartCommits) {
  StagingDir dir;
  ASSERT_FALSE(dir.path().empty());
  WriteConfig w;
  w.staging_dir = dir.path();
  const auto bytes = patternBytes(300000, 11);
  {
    rebuild(w);
    remote_->failAlways(FakeRemote::kCommit, EIO);  // the hub is down
    ASSERT_TRUE(vfs_->mkdir(kRootInode, "sub").ok());
    const InodeId sub = vfs_->lookup(kRootInode, "sub")->ino;
    ASSERT_TRUE(writeFile(sub, "kept.bin", bytes, 65536).ok());  // close() returned 0
    // Still being written when the process dies: never closed, no durability promise.
    auto open = vfs_->create(kRootInode, "open.bin", O_WRONLY | O_CREAT | O_TRUNC);
    ASSERT_TRUE(open.ok());
    ASSERT_TRUE(vfs_->write(open->open.fh, 0, bytes).ok());
    vfs_.reset();  // "kill -9": no flush, no release
  }
  EXPECT_EQ(dir.count(".manifest"), 1u);
  EXPECT_EQ(dir.count(".data"), 2u);
  remote_->clearFaults();
  EXPECT_FALSE(remote_->stat("sub/kept.bin").ok());
  rebuild(w);
  ASSERT_TRUE(vfs_->recoverPending().ok());
  auto ino = vfs_->inodeForPath("sub/kept.bin");
  ASSERT_TRUE(ino.has_value());
  ASSERT_TRUE(waitFor([&] { return remote_->stat("sub/kept.bin").ok(); }));
  EXPECT_EQ(remote_->contents("sub/kept.bin"), bytes);
  EXPECT_EQ(readAll(*ino), bytes);
  EXPECT_FALSE(remote_->stat("open.bin").ok());
  EXPECT_FALSE(vfs_->inodeForPath("open.bin").has_value());
  EXPECT_TRUE(waitFor([&] { return dir.count(".manifest") == 0 && dir.count(".data") == 0; }));
  vfs_.reset();
}

TEST_F(VfsWriteTest, DirectoryRenameOfPendingFilesSurvivesAKill) {
  StagingDir staging;
  ASSERT_FALSE(staging.path().empty());
  remote_->putFile("dir/clean.txt", "clean");
  WriteConfig w;
  w.staging_dir = staging.path();
  w.retry_initial = std::chrono::milliseconds(60'000);  // no retry before the "kill"
  w.retry_max = std::chrono::milliseconds(60'000);
  const std::vector<uint8_t> rewritten = {'n', 'e', 'w', ' ', 'i', 'n', 'n', 'e', 'r'};
  const std::vector<uint8_t> fresh = {'f', 'r', 'e', 's', 'h'};
  {
    rebuild(w);
    remote_->failAlways(FakeRemote::kUpload, EIO);  // closed files stay pending
    const InodeId dir = vfs_->lookup(kRootInode, "dir")->ino;
    ASSERT_TRUE(writeFile(dir, "inner.txt", rewritten).ok());  // has an older remote version
    ASSERT_TRUE(writeFile(dir, "fresh.txt", fresh).ok());      // never committed
    EXPECT_EQ(vfs_->writeStats().pending_commits, 2u);
    ASSERT_TRUE(vfs_->rename(kRootInode, "dir", kRootInode, "moved").ok());
    // The clean file moved by hash; the pending ones moved locally, their bytes with them.
    EXPECT_EQ(remote_->contents("moved/clean.txt"),
              (std::vector<uint8_t>{'c', 'l', 'e', 'a', 'n'}));
    EXPECT_FALSE(remote_->stat("dir/clean.txt").ok());
    const auto inner = vfs_->inodeForPath("moved/inner.txt");
    ASSERT_TRUE(inner.has_value());
    EXPECT_EQ(readAll(*inner), rewritten);
    EXPECT_FALSE(vfs_->inodeForPath("dir/inner.txt").has_value());
    EXPECT_EQ(vfs_->writeStats().pending_commits, 2u);
    vfs_.reset();  // "kill -9"
  }
  EXPECT_EQ(staging.count(".manifest"), 2u);
  remote_->clearFaults();
  rebuild(w);
  ASSERT_TRUE(vfs_->recoverPending().ok());
  ASSERT_TRUE(waitFor([&] {
    return remote_->stat("moved/inner.txt").ok() && remote_->stat("moved/fresh.txt").ok() &&
           !remote_->stat("dir/inner.txt").ok();
  }));
  EXPECT_EQ(remote_->contents("moved/inner.txt"), rewritten);
  EXPECT_EQ(remote_->contents("moved/fresh.txt"), fresh);
  EXPECT_FALSE(remote_->stat("dir/fresh.txt").ok());
  EXPECT_FALSE(remote_->stat("dir/clean.txt").ok());
  EXPECT_TRUE(waitFor([&] { return staging.count(".manifest") == 0; }));
  vfs_.reset();
}

TEST_F(VfsWriteTest, AdvancedQueuedDeleteSurvivesAKill) {
  StagingDir staging;
  ASSERT_FALSE(staging.path().empty());
  WriteConfig slow = advanced(/*debounce_ms=*/60'000, /*window_ms=*/60'000);
  slow.staging_dir = staging.path();
  rebuild(slow);
  ASSERT_TRUE(vfs_->lookup(kRootInode, "old.txt").ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "old.txt").ok());
  EXPECT_TRUE(remote_->stat("old.txt").ok());  // queued, not sent
  EXPECT_EQ(staging.count(".delete"), 1u);
  vfs_.reset();  // "kill -9" before the batch
  ASSERT_TRUE(remote_->stat("old.txt").ok());
  WriteConfig w = advanced();
  w.staging_dir = staging.path();
  rebuild(w);
  ASSERT_TRUE(vfs_->recoverPending().ok());
  EXPECT_EQ(vfs_->lookup(kRootInode, "old.txt").error().code(), ENOENT);  // still hidden
  ASSERT_TRUE(waitFor([&] { return !remote_->stat("old.txt").ok(); }));
  EXPECT_TRUE(remote_->stat("dir/inner.txt").ok());
  EXPECT_TRUE(waitFor([&] { return staging.count(".delete") == 0; }));
  vfs_.reset();
}

TEST_F(VfsWriteTest, AdvancedDeleteRecordsAreDroppedWhenSentOrCancelled) {
  StagingDir staging;
  ASSERT_FALSE(staging.path().empty());
  WriteConfig w = advanced(/*debounce_ms=*/150, /*window_ms=*/5000);
  w.staging_dir = staging.path();
  rebuild(w);
  ASSERT_TRUE(vfs_->lookup(kRootInode, "old.txt").ok());
  ASSERT_TRUE(vfs_->unlink(kRootInode, "old.txt").ok());
  EXPECT_EQ(staging.count(".delete"), 1u);
  // Written again before the batch: the delete is cancelled, its record goes with it.
  ASSERT_TRUE(writeFile(kRootInode, "old.txt", {'n'}).ok());
  EXPECT_EQ(staging.count(".delete"), 0u);
  ASSERT_TRUE(waitFor([&] { return remote_->contents("old.txt") == std::vector<uint8_t>{'n'}; }));
  // A failed batch keeps the record (and retries); the successful one removes it.
  remote_->failAlways(FakeRemote::kCommit, EIO);
  const InodeId dir = vfs_->lookup(kRootInode, "dir")->ino;
  ASSERT_TRUE(vfs_->lookup(dir, "inner.txt").ok());
  ASSERT_TRUE(vfs_->unlink(dir, "inner.txt").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(staging.count(".delete"), 1u);
  remote_->clearFaults();
  ASSERT_TRUE(waitFor([&] { return !remote_->stat("dir/inner.txt").ok(); }));
  EXPECT_TRUE(waitFor([&] { return staging.count(".delete") == 0; }));
  EXPECT_EQ(remote_->contents("old.txt"), std::vector<uint8_t>{'n'});
  vfs_.reset();
}

TEST_F(VfsWriteTest, RecoveredDeletesAndPendingAddsOfOnePathKeepTheirOrder) {
  StagingDir staging;
  ASSERT_FALSE(staging.path().empty());
  auto put = [&](const std::string& name, const std::string& text) {
    std::ofstream(staging.path() + "/" + name, std::ios::binary) << text;
  };
  const std::string a = "00000000000000aa-00000001";
  const std::string b = "00000000000000bb-00000002";
  // old.txt: deleted (long ago), then written again: the pending add wins.
  put("00000000000000dd-00000001.delete", "hfm-delete 1\npath old.txt\ntime_ns 1\nend\n");
  put(a + ".data", "again");
  put(a + ".manifest",
      "hfm-pending 1\npath old.txt\nsize 5\nmtime_ns 1\ndata " + a + ".data\nend\n");
  // dir/inner.txt: written, then deleted (far in the future): the delete wins.
  put("00000000000000dd-00000002.delete",
      "hfm-delete 1\npath dir/inner.txt\ntime_ns 9000000000000000000\nend\n");
  put(b + ".data", "lost");
  put(b + ".manifest",
      "hfm-pending 1\npath dir/inner.txt\nsize 4\nmtime_ns 1\ndata " + b + ".data\nend\n");
  // A corrupt record is kept aside and not sent.
  put("00000000000000dd-00000003.delete", "hfm-delete 1\npath ../x\ntime_ns 1\nend\n");
  WriteConfig w = advanced();
  w.staging_dir = staging.path();
  rebuild(w);
  ASSERT_TRUE(vfs_->recoverPending().ok());
  ASSERT_TRUE(waitFor([&] {
    return remote_->contents("old.txt") == std::vector<uint8_t>{'a', 'g', 'a', 'i', 'n'} &&
           !remote_->stat("dir/inner.txt").ok();
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(remote_->stat("old.txt").ok());
  EXPECT_TRUE(waitFor([&] { return staging.count(".delete") == 0; }));
  EXPECT_EQ(staging.count(".delete.bad"), 1u);
  EXPECT_EQ(staging.count(".manifest"), 0u);
  vfs_.reset();
}

TEST_F(VfsWriteTest, CorruptOrTruncatedManifestsAreSkipped) {
  StagingDir dir;
  ASSERT_FALSE(dir.path().empty());
  auto put = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.path() + "/" + name, std::ios::binary) << text;
  };
  const std::string a = "00000000000000aa-00000001";
  const std::string b = "00000000000000bb-00000002";
  const std::string c = "00000000000000cc-00000003";
  // a: the manifest was cut short (no end line).
  put(a + ".data", "hello");
  put(a + ".manifest", "hfm-pending 1\npath a.txt\nsize 5\nmtime_ns 1\ndata " + a + ".data\n");
  // b: the data file is shorter than the manifest says.
  put(b + ".data", "hel");
  put(b + ".manifest", "hfm-pending 1\npath b.txt\nsize 5\nmtime_ns 1\ndata " + b + ".data\nend\n");
  // c: garbage, and a path escaping the mount.
  put(c + ".data", "x");
  put(c + ".manifest", "hfm-pending 1\npath ../../etc/x\nsize 1\ndata " + c + ".data\nend\n");
  WriteConfig w;
  w.staging_dir = dir.path();
  rebuild(w);
  ASSERT_TRUE(vfs_->recoverPending().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(remote_->counts().commits, 0u);
  EXPECT_FALSE(remote_->stat("a.txt").ok());
  EXPECT_FALSE(remote_->stat("b.txt").ok());
  EXPECT_FALSE(vfs_->inodeForPath("a.txt").has_value());
  EXPECT_EQ(dir.count(".manifest.bad"), 3u);
  EXPECT_EQ(dir.count(".data"), 3u);  // kept for inspection, not deleted as orphans
}

TEST_F(VfsWriteTest, AdvancedGcDropsTheOldestCleanCopiesBeyondTheLimit) {
  StagingDir dir;
  ASSERT_FALSE(dir.path().empty());
  WriteConfig w = advanced();
  w.staging_dir = dir.path();
  w.max_staging_size = 2500;
  rebuild(w);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(
        writeFile(kRootInode, "c" + std::to_string(i), patternBytes(1000, static_cast<uint64_t>(i)))
            .ok());
  }
  ASSERT_TRUE(waitFor([&] { return remote_->stat("c3").ok(); }));
  ASSERT_TRUE(waitFor([&] { return vfs_->writeStats().dirty_files == 0; }));
  // Four clean 1000-byte copies, a 2500-byte budget: the two oldest are gone.
  EXPECT_TRUE(waitFor([&] { return dir.count(".data") == 2; }));
  EXPECT_EQ(dir.count(".manifest"), 0u);
  for (int i = 0; i < 4; ++i) {
    const auto ino = vfs_->inodeForPath("c" + std::to_string(i));
    ASSERT_TRUE(ino.has_value());
    EXPECT_EQ(readAll(*ino), patternBytes(1000, static_cast<uint64_t>(i)));
  }
  vfs_.reset();
}

TEST_F(VfsWriteTest, AdvancedOpenWithoutWritesCommitsNothing) {
  rebuild(advanced());
  const InodeId old = vfs_->lookup(kRootInode, "old.txt")->ino;
  auto h = vfs_->open(old, O_RDWR);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(vfs_->flush(h->fh).ok());
  EXPECT_TRUE(vfs_->fsync(h->fh).ok());
  vfs_->release(h->fh);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(remote_->counts().uploads, 0u);
  EXPECT_EQ(remote_->counts().commits, 0u);
  EXPECT_EQ(readAll(old).size(), 11u);  // served from the clean staged copy
}

TEST(StagingManifestTest, RoundTripsOddPaths) {
  staging::Manifest m;
  m.path = "dir with space/new\nline%.txt";
  m.size = 42;
  m.mtime_ns = 7;
  m.data = staging::uniqueName() + ".data";
  m.deletes = {"old name", "x/y"};
  auto parsed = staging::parseManifest(staging::serializeManifest(m));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->path, m.path);
  EXPECT_EQ(parsed->size, 42u);
  EXPECT_EQ(parsed->mtime_ns, 7);
  EXPECT_EQ(parsed->data, m.data);
  EXPECT_EQ(parsed->deletes, m.deletes);
  EXPECT_FALSE(staging::parseManifest("hfm-pending 1\nsize x\nend\n").ok());
}

TEST(StagingManifestTest, DeleteRecordsRoundTripAndCorruptRecordsAreRefused) {
  auto parsed = staging::parseDelete(staging::serializeDelete({"a b/%c", 123}));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->path, "a b/%c");
  EXPECT_EQ(parsed->time_ns, 123);
  const std::string data = staging::uniqueName() + ".data";
  const std::string good_manifest = "hfm-pending 1\npath p\nsize 1\ndata " + data + "\nend\n";
  ASSERT_TRUE(staging::parseManifest(good_manifest).ok());
  for (const std::string& bad : std::vector<std::string>{
           "hfm-pending 2\npath p\nsize 1\ndata " + data + "\nend\n",  // header
           "hfm-pending 1\npath p\nsize 1\ndata " + data + "\n",       // no end line
           "hfm-pending 1\npath p\nsize 1\nend\n",                     // missing data
           "hfm-pending 1\npath /abs\nsize 1\ndata " + data + "\nend\n",
           "hfm-pending 1\npath p\nsize 1\ndata ../x.data\nend\n",
           "hfm-pending 1\npathp\nsize 1\ndata " + data + "\nend\n",  // no space
           "hfm-pending 1\npath p\nsize 1\ncolor red\ndata " + data + "\nend\n",
       }) {
    EXPECT_FALSE(staging::parseManifest(bad).ok()) << bad;
  }
  for (const std::string bad :
       {"hfm-delete 1\npath p\nend\n", "hfm-delete 1\npath p\ntime_ns 1\n",
        "hfm-pending 1\npath p\ntime_ns 1\nend\n", "hfm-delete 1\npath p\ntime_ns -1\nend\n",
        "hfm-delete 1\npath p\ntime_ns 1\nsize 3\nend\n"}) {
    EXPECT_FALSE(staging::parseDelete(bad).ok()) << bad;
  }
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

// FakeRemote with a slow upload link: every upload write takes `write_delay` and finish takes
// `finish_delay`, so a writer that keeps writing always changes the file while it uploads.
class SlowUploadRemote : public Remote {
 public:
  SlowUploadRemote(std::shared_ptr<FakeRemote> inner, std::chrono::milliseconds finish_delay,
                   std::chrono::milliseconds write_delay = std::chrono::milliseconds(0))
      : inner_(std::move(inner)), delay_(finish_delay), write_delay_(write_delay) {}

  Result<std::vector<RemoteEntry>> listDirectory(const std::string& dir) override {
    return inner_->listDirectory(dir);
  }
  Result<RemoteEntry> stat(const std::string& path) override { return inner_->stat(path); }
  Result<size_t> read(const RemoteEntry& file, uint64_t offset, std::span<uint8_t> out) override {
    return inner_->read(file, offset, out);
  }
  bool readOnly() const override { return false; }
  Result<std::unique_ptr<RemoteUpload>> beginUpload() override {
    HFM_ASSIGN_OR_RETURN(auto upload, inner_->beginUpload());
    return std::unique_ptr<RemoteUpload>(
        std::make_unique<Slow>(std::move(upload), delay_, write_delay_, bytes_written_));
  }
  // Bytes every upload so far was given (a test can wait until a version is on its way).
  uint64_t bytesWritten() const { return bytes_written_->load(); }
  Status commitFiles(std::span<const RemoteAdd> adds,
                     std::span<const std::string> deletes) override {
    return inner_->commitFiles(adds, deletes);
  }

 private:
  class Slow : public RemoteUpload {
   public:
    Slow(std::unique_ptr<RemoteUpload> inner, std::chrono::milliseconds delay,
         std::chrono::milliseconds write_delay, std::shared_ptr<std::atomic<uint64_t>> written)
        : inner_(std::move(inner)),
          delay_(delay),
          write_delay_(write_delay),
          written_(std::move(written)) {}
    Status write(std::span<const uint8_t> data) override {
      std::this_thread::sleep_for(write_delay_);
      HFM_TRY(inner_->write(data));
      *written_ += data.size();
      return okStatus();
    }
    Result<UploadedContent> finish() override {
      std::this_thread::sleep_for(delay_);
      return inner_->finish();
    }

   private:
    std::unique_ptr<RemoteUpload> inner_;
    std::chrono::milliseconds delay_;
    std::chrono::milliseconds write_delay_;
    std::shared_ptr<std::atomic<uint64_t>> written_;
  };
  std::shared_ptr<FakeRemote> inner_;
  std::chrono::milliseconds delay_;
  std::chrono::milliseconds write_delay_;
  std::shared_ptr<std::atomic<uint64_t>> bytes_written_ =
      std::make_shared<std::atomic<uint64_t>>(0);
};

TEST_F(VfsWriteTest, AdvancedFileAppendedWithoutPauseStillCommitsAConsistentPrefix) {
  vfs_remote_ = std::make_shared<SlowUploadRemote>(remote_, std::chrono::milliseconds(150));
  rebuild(advanced(/*debounce_ms=*/20, /*window_ms=*/200));
  auto made = vfs_->create(kRootInode, "train.log", O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_TRUE(made.ok());
  std::vector<uint8_t> written;
  bool committed_while_writing = false;
  // A log line every 5 ms, each followed by a flush (a signal); every upload (150 ms) overlaps
  // several appends. Bounded: 3 s at most.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; std::chrono::steady_clock::now() - start < std::chrono::seconds(3); ++i) {
    const std::string line = "step " + std::to_string(i) + " loss 0.5\n";
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(line.data()),
                                         line.size());
    ASSERT_TRUE(vfs_->write(made->open.fh, 0, bytes).ok());  // O_APPEND: goes to the end
    written.insert(written.end(), bytes.begin(), bytes.end());
    ASSERT_TRUE(vfs_->flush(made->open.fh).ok());
    if (remote_->stat("train.log").ok() &&
        std::chrono::steady_clock::now() - start > std::chrono::milliseconds(600)) {
      committed_while_writing = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(committed_while_writing) << "no commit while the file kept changing";
  const auto hub = remote_->contents("train.log");
  EXPECT_FALSE(hub.empty());
  ASSERT_LE(hub.size(), written.size());
  EXPECT_TRUE(std::equal(hub.begin(), hub.end(), written.begin())) << "not a prefix";
  EXPECT_GT(vfs_->writeStats().dirty_files, 0u);  // the newer lines are still to come
  vfs_->release(made->open.fh);
  ASSERT_TRUE(vfs_->flushAll(std::chrono::milliseconds(5000)).ok());
  EXPECT_EQ(remote_->contents("train.log"), written);
}

TEST_F(VfsWriteTest, AdvancedFileRewrittenWithoutPauseCommitsASnapshotVersion) {
  StagingDir dir;
  ASSERT_FALSE(dir.path().empty());
  // Uploads read the staging file in 4 MiB pieces; each piece takes 100 ms to send, so the
  // header is always rewritten between the first piece and the second.
  vfs_remote_ = std::make_shared<SlowUploadRemote>(remote_, std::chrono::milliseconds(0),
                                                   std::chrono::milliseconds(100));
  WriteConfig w = advanced(/*debounce_ms=*/20, /*window_ms=*/200);
  w.staging_dir = dir.path();
  rebuild(w);
  auto made = vfs_->create(kRootInode, "state.bin", O_RDWR | O_CREAT);
  ASSERT_TRUE(made.ok());
  constexpr size_t kSize = 5u << 20;
  constexpr size_t kBlock = 4096;
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, std::vector<uint8_t>(kSize, 0)).ok());
  // Step v writes a header of v at 0, then a trailer of v at the end: at any moment between
  // two writes the trailer is the header or one less. An upload mixing the first piece of one
  // moment with the last piece of a later one breaks that.
  uint8_t step = 0;
  bool committed_while_writing = false;
  uint64_t snapshot_bytes_seen = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(4) && step < 250) {
    ++step;
    const std::vector<uint8_t> block(kBlock, step);
    ASSERT_TRUE(vfs_->write(made->open.fh, 0, block).ok());
    ASSERT_TRUE(vfs_->write(made->open.fh, kSize - kBlock, block).ok());
    ASSERT_TRUE(vfs_->fsync(made->open.fh).ok());
    snapshot_bytes_seen = std::max(snapshot_bytes_seen, vfs_->writeStats().snapshot_bytes);
    if (remote_->stat("state.bin").ok()) {
      committed_while_writing = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(committed_while_writing) << "no commit while the file kept changing";
  const auto hub = remote_->contents("state.bin");
  ASSERT_EQ(hub.size(), kSize);
  const uint8_t header = hub[0];
  const uint8_t trailer = hub[kSize - 1];
  EXPECT_TRUE(trailer == header || trailer + 1 == header)
      << "a commit mixed two moments: header " << int{header} << ", trailer " << int{trailer};
  EXPECT_TRUE(
      std::all_of(hub.begin() + kBlock, hub.end() - kBlock, [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(snapshot_bytes_seen, kSize);  // a snapshot copy was made, and accounted
  // The newest version still lands, and no snapshot copy is left behind.
  vfs_->release(made->open.fh);
  ASSERT_TRUE(vfs_->flushAll(std::chrono::milliseconds(10000)).ok());
  const auto final_bytes = remote_->contents("state.bin");
  ASSERT_EQ(final_bytes.size(), kSize);
  EXPECT_EQ(final_bytes[0], step);
  EXPECT_EQ(final_bytes[kSize - 1], step);
  EXPECT_EQ(dir.count(".snap"), 0u);
  EXPECT_EQ(vfs_->writeStats().snapshot_bytes, 0u);
}

TEST_F(VfsWriteTest, SnapshotCommitKeepsTheNewerClosedBytesDurable) {
  StagingDir dir;
  ASSERT_FALSE(dir.path().empty());
  auto slow = std::make_shared<SlowUploadRemote>(remote_, std::chrono::milliseconds(200));
  vfs_remote_ = slow;
  WriteConfig w = advanced(/*debounce_ms=*/10, /*window_ms=*/100);
  w.staging_dir = dir.path();
  const std::vector<uint8_t> first(100000, 1);
  const std::vector<uint8_t> second(100000, 2);
  {
    rebuild(w);
    auto made = vfs_->create(kRootInode, "ckpt", O_RDWR | O_CREAT);
    ASSERT_TRUE(made.ok());
    ASSERT_TRUE(vfs_->write(made->open.fh, 0, first).ok());
    ASSERT_TRUE(vfs_->fsync(made->open.fh).ok());
    // Overwritten once the first version's bytes are in its (slow) upload; closed (durable)
    // before that commit ends.
    ASSERT_TRUE(waitFor([&] { return slow->bytesWritten() >= first.size(); }));
    ASSERT_TRUE(vfs_->write(made->open.fh, 0, second).ok());
    ASSERT_TRUE(vfs_->flush(made->open.fh).ok());
    vfs_->release(made->open.fh);
    ASSERT_TRUE(waitFor([&] { return remote_->stat("ckpt").ok(); }));
    EXPECT_EQ(dir.count(".manifest"), 1u);  // still pending: the newer bytes are not on the hub
    remote_->failAlways(FakeRemote::kCommit, EIO);  // the next commit cannot land
    vfs_.reset();                                   // "kill -9"
  }
  remote_->clearFaults();
  EXPECT_EQ(dir.count(".snap"), 0u);
  slow.reset();
  vfs_remote_.reset();
  rebuild(w);
  ASSERT_TRUE(vfs_->recoverPending().ok());
  ASSERT_TRUE(waitFor([&] { return remote_->contents("ckpt") == second; }));
  EXPECT_TRUE(waitFor([&] { return dir.count(".manifest") == 0; }));
}

TEST_F(VfsWriteTest, AdvancedUnlinkWhileCommittingDeletesAfterTheCommitAndDropsTheRecord) {
  StagingDir dir;
  ASSERT_FALSE(dir.path().empty());
  vfs_remote_ = std::make_shared<SlowUploadRemote>(remote_, std::chrono::milliseconds(300));
  WriteConfig w = advanced(/*debounce_ms=*/10, /*window_ms=*/100);
  w.staging_dir = dir.path();
  rebuild(w);
  auto made = vfs_->create(kRootInode, "doomed", O_RDWR | O_CREAT);
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(vfs_->write(made->open.fh, 0, std::vector<uint8_t>(1000, 7)).ok());
  vfs_->release(made->open.fh);  // the committer starts its (slow) upload
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(remote_->counts().commits, 0u);
  ASSERT_TRUE(vfs_->unlink(kRootInode, "doomed").ok());  // during the upload
  // The add lands, then the delete the committer queued for it; its record goes too.
  ASSERT_TRUE(waitFor([&] { return remote_->counts().commits >= 2; }));
  EXPECT_FALSE(remote_->stat("doomed").ok());
  EXPECT_TRUE(waitFor([&] { return dir.count(".delete") == 0; }));
  EXPECT_FALSE(vfs_->inodeForPath("doomed").has_value());
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
