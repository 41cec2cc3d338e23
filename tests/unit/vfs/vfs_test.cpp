#include "hfm/vfs/vfs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "fake_remote.h"
#include "vfs_fixture.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;

// Records invalidations instead of talking to a kernel.
class RecordingSink : public InvalidationSink {
 public:
  void invalidateInode(InodeId ino, bool drop_pages) override {
    std::lock_guard<std::mutex> lock(mu);
    inodes.emplace_back(ino, drop_pages);
  }
  void invalidateEntry(InodeId parent, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu);
    entries.emplace_back(parent, name);
  }
  std::mutex mu;
  std::vector<std::pair<InodeId, bool>> inodes;
  std::vector<std::pair<InodeId, std::string>> entries;
};

class VfsTest : public hfm::testing::VfsFixture<> {
 protected:
  void SetUp() override {
    remote_ = std::make_shared<FakeRemote>();
    remote_->putFile("README.md", "hello\n");
    remote_->putFile("config.json", "{}");
    remote_->putFile("data/train.bin", patternBytes(300000, 1));
    remote_->putFile("data/test.bin", patternBytes(5000, 2));
    remote_->putFile("data/deep/x.txt", "x");
  }

  std::unique_ptr<Vfs> makeVfs(VfsConfig c = {}) {
    c.uid = 1234;
    c.gid = 5678;
    auto v = makeVfsOver(remote_, c);
    v->setInvalidationSink(&sink_);
    return v;
  }

  std::shared_ptr<FakeRemote> remote_;
  RecordingSink sink_;
};

TEST_F(VfsTest, AttributesFollowTheReference) {
  auto v = makeVfs();
  auto root = v->getattr(kRootInode);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->mode, static_cast<uint32_t>(S_IFDIR | 0555));
  auto readme = v->lookup(kRootInode, "README.md");
  ASSERT_TRUE(readme.ok());
  EXPECT_EQ(readme->mode, static_cast<uint32_t>(S_IFREG | 0444));
  EXPECT_EQ(readme->size, 6u);
  EXPECT_EQ(readme->blocks, 1u);
  EXPECT_EQ(readme->uid, 1234u);
  EXPECT_EQ(readme->gid, 5678u);
  EXPECT_EQ(readme->nlink, 1u);
  auto data = v->lookup(kRootInode, "data");
  ASSERT_TRUE(data.ok());
  EXPECT_TRUE(data->is_dir);
  EXPECT_EQ(data->mode, static_cast<uint32_t>(S_IFDIR | 0555));
  EXPECT_GE(readme->ino, 2u);
  EXPECT_NE(readme->ino, data->ino);
  auto nested = v->lookup(readme->ino, "x");
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.error().code(), ENOTDIR);
  auto too_long = v->lookup(kRootInode, std::string(256, 'a'));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code(), ENAMETOOLONG);
}

TEST_F(VfsTest, LookupCountsAndForget) {
  auto v = makeVfs();
  const InodeId ino = mustLookup(*v, kRootInode, "README.md");
  mustLookup(*v, kRootInode, "README.md");
  mustLookup(*v, kRootInode, "README.md");
  EXPECT_EQ(v->lookupCount(ino), 3u);
  v->forget(ino, 1);
  EXPECT_EQ(v->lookupCount(ino), 2u);
  std::vector<std::pair<InodeId, uint64_t>> batch = {{ino, 2}, {999999, 5}};
  v->forgetMulti(batch);
  EXPECT_EQ(v->lookupCount(ino), 0u);
  // Still in the namespace: same number on the next lookup.
  EXPECT_EQ(mustLookup(*v, kRootInode, "README.md"), ino);
}

TEST_F(VfsTest, RetainCountsLikeALookup) {
  auto v = makeVfs();
  const InodeId ino = mustLookup(*v, kRootInode, "README.md");
  auto attr = v->retain(ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 6u);
  EXPECT_EQ(v->lookupCount(ino), 2u);
  EXPECT_EQ(v->retain(987654).error().code(), ENOENT);
  v->forget(ino, 2);
  EXPECT_EQ(v->lookupCount(ino), 0u);
}

TEST_F(VfsTest, RemovedInodeLivesUntilForgottenAndKeepsItsNumberForThePath) {
  auto v = makeVfs();
  ASSERT_TRUE(v->preloadRoot().ok());
  const InodeId ino = mustLookup(*v, kRootInode, "README.md");
  const size_t before = v->inodeCount();
  remote_->removeFile("README.md");
  auto changes = v->refreshLoaded();
  EXPECT_EQ(changes.deleted, std::vector<std::string>{"README.md"});
  // The kernel still references it: attributes stay available, with nlink 0.
  auto attr = v->getattr(ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->nlink, 0u);
  auto gone = v->lookup(kRootInode, "README.md");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ENOENT);
  v->forget(ino, 1);
  EXPECT_EQ(v->inodeCount(), before - 1);
  EXPECT_FALSE(v->getattr(ino).ok());
  // Re-created remotely: the path gets its old number back.
  remote_->putFile("README.md", "again\n");
  // The poller's re-list finds it (and drops the negative entry the miss above left).
  EXPECT_EQ(v->refreshLoaded().added, std::vector<std::string>{"README.md"});
  EXPECT_EQ(mustLookup(*v, kRootInode, "README.md"), ino);
  EXPECT_EQ(v->getattr(ino)->size, 6u);
}

TEST_F(VfsTest, ListingIsCachedForTheTtlThenRefreshed) {
  auto v = makeVfs();
  EXPECT_EQ(listNames(*v, kRootInode),
            (std::vector<std::string>{".", "..", "README.md", "config.json", "data"}));
  EXPECT_EQ(remote_->counts().list, 1u);
  remote_->putFile("new.txt", "n");
  advance(std::chrono::seconds(5));
  EXPECT_EQ(listNames(*v, kRootInode).size(), 5u);  // still fresh: not listed again
  EXPECT_EQ(remote_->counts().list, 1u);
  advance(std::chrono::seconds(6));
  auto names = listNames(*v, kRootInode);
  EXPECT_EQ(remote_->counts().list, 2u);
  EXPECT_EQ(names,
            (std::vector<std::string>{".", "..", "README.md", "config.json", "data", "new.txt"}));
  // The re-list told the kernel about the new name (it may hold a negative dentry).
  std::lock_guard<std::mutex> lock(sink_.mu);
  EXPECT_EQ(sink_.entries.back(), (std::pair<InodeId, std::string>{kRootInode, "new.txt"}));
}

TEST_F(VfsTest, ReaddirOffsetsAreStableWhileTheHandleIsOpen) {
  for (int i = 0; i < 20; ++i) remote_->putFile("many/f" + std::to_string(100 + i), "x");
  auto v = makeVfs();
  const InodeId dir = mustLookup(*v, kRootInode, "many");
  auto fh = v->opendir(dir);
  ASSERT_TRUE(fh.ok());
  std::vector<std::string> names;
  uint64_t off = 0;
  for (;;) {
    auto chunk = v->readdir(*fh, off, 3);
    ASSERT_TRUE(chunk.ok());
    if (chunk->empty()) break;
    for (const auto& e : *chunk) {
      names.push_back(e.name);
      off = e.next_offset;
    }
    // Remote changes while listing do not shift offsets of the open handle.
    remote_->putFile("many/a" + std::to_string(off), "y");
    advance(std::chrono::seconds(11));
    v->refreshLoaded();
  }
  ASSERT_EQ(names.size(), 22u);
  EXPECT_EQ(names[0], ".");
  EXPECT_EQ(names[1], "..");
  EXPECT_EQ(names[2], "f100");
  EXPECT_EQ(names[21], "f119");
  // Re-reading from a remembered offset gives the same entries.
  auto again = v->readdir(*fh, 5, 1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].name, names[5]);
  v->releasedir(*fh);
  auto bad = v->readdir(*fh, 0, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EBADF);
}

TEST_F(VfsTest, NegativeLookupsAreCached) {
  auto v = makeVfs();
  ASSERT_TRUE(v->preloadRoot().ok());
  remote_->resetCounts();
  // Fresh listing: the miss is answered without a remote call.
  EXPECT_EQ(v->lookup(kRootInode, "missing.py").error().code(), ENOENT);
  EXPECT_EQ(remote_->counts().list + remote_->counts().stat, 0u);
  // Listing expired, but the miss is still in the negative cache (30 s).
  advance(std::chrono::seconds(11));
  EXPECT_EQ(v->lookup(kRootInode, "missing.py").error().code(), ENOENT);
  EXPECT_EQ(remote_->counts().list + remote_->counts().stat, 0u);
  // Negative entry expired too: one re-list, then cached again.
  advance(std::chrono::seconds(20));
  EXPECT_EQ(v->lookup(kRootInode, "missing.py").error().code(), ENOENT);
  EXPECT_EQ(remote_->counts().list, 1u);
  advance(std::chrono::seconds(11));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(v->lookup(kRootInode, "missing.py").error().code(), ENOENT);
  }
  EXPECT_EQ(remote_->counts().list, 1u);
  // Past the negative TTL (30 s) it asks again.
  advance(std::chrono::seconds(31));
  remote_->putFile("missing.py", "now here");
  auto found = v->lookup(kRootInode, "missing.py");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->size, 8u);
}

TEST_F(VfsTest, PointLookupInAnUnlistedDirectoryDoesNotListIt) {
  auto v = makeVfs();
  const InodeId data = mustLookup(*v, kRootInode, "data");
  remote_->resetCounts();
  const InodeId train = mustLookup(*v, data, "train.bin");
  EXPECT_NE(train, 0u);
  EXPECT_EQ(remote_->counts().stat, 1u);
  EXPECT_EQ(remote_->counts().list, 0u);
  // The poller does not list it either (only the root, which was listed to find "data").
  v->refreshLoaded();
  EXPECT_EQ(remote_->counts().list, 1u);
  remote_->resetCounts();
  // A directory below it is found by listing (directories have no HEAD).
  const InodeId deep = mustLookup(*v, data, "deep");
  EXPECT_NE(deep, 0u);
  EXPECT_EQ(remote_->counts().list, 1u);
}

TEST_F(VfsTest, FilesAreRevalidatedAfterTheTtl) {
  auto v = makeVfs();
  const InodeId ino = mustLookup(*v, kRootInode, "config.json");
  remote_->putFile("config.json", "{\"a\": 1}");
  remote_->resetCounts();
  EXPECT_EQ(v->lookup(kRootInode, "config.json")->size, 2u);  // within the TTL
  EXPECT_EQ(remote_->counts().stat, 0u);
  advance(std::chrono::seconds(10));
  auto fresh = v->lookup(kRootInode, "config.json");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->size, 8u);
  EXPECT_EQ(fresh->ino, ino);
  EXPECT_EQ(remote_->counts().stat, 1u);
  std::lock_guard<std::mutex> lock(sink_.mu);
  ASSERT_FALSE(sink_.inodes.empty());
  EXPECT_EQ(sink_.inodes.back(), (std::pair<InodeId, bool>{ino, true}));
}

TEST_F(VfsTest, RevalidationErrorsServeCachedMetadata) {
  auto v = makeVfs();
  mustLookup(*v, kRootInode, "config.json");
  advance(std::chrono::seconds(11));
  remote_->failAlways(FakeRemote::kStat | FakeRemote::kList, EIO);
  auto r = v->lookup(kRootInode, "config.json");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size, 2u);
}

TEST_F(VfsTest, MinimalTtlAsksTheRemoteOnEveryLookup) {
  VfsConfig c;
  c.metadata_ttl_minimal = true;
  auto v = makeVfs(c);
  mustLookup(*v, kRootInode, "config.json");
  remote_->resetCounts();
  for (int i = 0; i < 3; ++i) mustLookup(*v, kRootInode, "config.json");
  EXPECT_EQ(remote_->counts().stat, 3u);
}

TEST_F(VfsTest, OsJunkNames) {
  EXPECT_TRUE(isOsJunkName(".DS_Store"));
  EXPECT_TRUE(isOsJunkName("._model.safetensors"));
  EXPECT_TRUE(isOsJunkName("Thumbs.db"));
  EXPECT_TRUE(isOsJunkName("desktop.ini"));
  EXPECT_TRUE(isOsJunkName("__MACOSX"));
  EXPECT_TRUE(isOsJunkName(".Spotlight-V100"));
  EXPECT_TRUE(isOsJunkName(".Trashes"));
  EXPECT_TRUE(isOsJunkName(".fseventsd"));
  EXPECT_FALSE(isOsJunkName(".gitattributes"));
  EXPECT_FALSE(isOsJunkName("_model"));
  EXPECT_FALSE(isOsJunkName("DS_Store"));

  auto v = makeVfs();
  advance(std::chrono::seconds(11));  // the root listing would be stale
  remote_->resetCounts();
  EXPECT_EQ(v->lookup(kRootInode, "._README.md").error().code(), ENOENT);
  EXPECT_EQ(v->lookup(kRootInode, ".DS_Store").error().code(), ENOENT);
  EXPECT_EQ(remote_->counts().list + remote_->counts().stat, 0u);
  EXPECT_EQ(v->create(kRootInode, ".DS_Store", O_WRONLY | O_CREAT | O_TRUNC).error().code(),
            EACCES);
  EXPECT_EQ(v->mkdir(kRootInode, "__MACOSX").error().code(), EACCES);
  EXPECT_EQ(v->create(kRootInode, "ok.txt", O_WRONLY | O_CREAT | O_TRUNC).error().code(), EROFS);

  // A real remote file with such a name is still served, and the filter can be turned off.
  remote_->putFile(".DS_Store", "finder");
  VfsConfig c;
  c.filter_os_files = false;
  auto unfiltered = makeVfs(c);
  EXPECT_TRUE(unfiltered->lookup(kRootInode, ".DS_Store").ok());
  EXPECT_EQ(
      unfiltered->create(kRootInode, "Thumbs.db", O_WRONLY | O_CREAT | O_TRUNC).error().code(),
      EROFS);
}

TEST_F(VfsTest, EveryMutationIsReadOnly) {
  auto v = makeVfs();
  const InodeId f = mustLookup(*v, kRootInode, "README.md");
  EXPECT_EQ(v->open(f, O_WRONLY).error().code(), EROFS);
  EXPECT_EQ(v->open(f, O_RDWR).error().code(), EROFS);
  EXPECT_EQ(v->open(f, O_RDONLY | O_TRUNC).error().code(), EROFS);
  EXPECT_EQ(v->mkdir(kRootInode, "d").error().code(), EROFS);
  EXPECT_EQ(v->mknod(kRootInode, "n").error().code(), EROFS);
  EXPECT_EQ(v->unlink(kRootInode, "README.md").error().code(), EROFS);
  EXPECT_EQ(v->rmdir(kRootInode, "data").error().code(), EROFS);
  EXPECT_EQ(v->rename(kRootInode, "README.md", kRootInode, "b").error().code(), EROFS);
  EXPECT_EQ(v->symlink(kRootInode, "s", "target").error().code(), EROFS);
  EXPECT_EQ(v->link(f, kRootInode, "l").error().code(), EROFS);
  EXPECT_EQ(v->setattr(f).error().code(), EROFS);
  const uint8_t byte[1] = {'x'};
  EXPECT_EQ(v->write(1, 0, byte).error().code(), EROFS);
  EXPECT_EQ(v->open(kRootInode, O_RDONLY).error().code(), EISDIR);
  const InodeId readme = f;
  EXPECT_EQ(v->opendir(readme).error().code(), ENOTDIR);
}

TEST_F(VfsTest, ReadsAreByteIdenticalAcrossPrefetchBuffers) {
  const auto bytes = patternBytes(5 * 1024 * 1024 + 77, 99);
  remote_->putFile("big.bin", bytes);
  VfsConfig c;
  c.prefetch.initial_window = 64 * 1024;
  c.prefetch.max_window = 512 * 1024;
  c.prefetch.max_request = 100 * 1000;
  auto v = makeVfs(c);
  const InodeId ino = mustLookup(*v, kRootInode, "big.bin");
  EXPECT_EQ(readAll(*v, ino), bytes);
  // Random preads of random sizes.
  auto o = v->open(ino, O_RDONLY);
  ASSERT_TRUE(o.ok());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % bytes.size();
    std::vector<uint8_t> buf(1 + rng() % 300000);
    auto n = v->read(o->fh, off, buf);
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(*n, std::min<uint64_t>(buf.size(), bytes.size() - off));
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<long>(*n),
                           bytes.begin() + static_cast<long>(off)));
  }
  v->release(o->fh);
  EXPECT_EQ(v->openHandleCount(), 0u);
}

TEST_F(VfsTest, ConcurrentReadersOnOneFile) {
  const auto bytes = patternBytes(3 * 1024 * 1024, 11);
  remote_->putFile("shared.bin", bytes);
  auto v = makeVfs();
  const InodeId ino = mustLookup(*v, kRootInode, "shared.bin");
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      if (readAll(*v, ino) != bytes) bad++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(VfsTest, KeepCacheOnlyWhileTheVersionIsUnchanged) {
  auto v = makeVfs();
  ASSERT_TRUE(v->preloadRoot().ok());
  const InodeId ino = mustLookup(*v, kRootInode, "config.json");
  auto a = v->open(ino, O_RDONLY);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->keep_cache);
  v->release(a->fh);
  auto b = v->open(ino, O_RDONLY);
  EXPECT_TRUE(b->keep_cache);
  v->release(b->fh);
  remote_->putFile("config.json", "{\"v\":2}");
  advance(std::chrono::seconds(11));
  v->refreshLoaded();
  auto c = v->open(ino, O_RDONLY);
  EXPECT_FALSE(c->keep_cache);  // the kernel must drop the old pages
  v->release(c->fh);
}

TEST_F(VfsTest, RemoteChangeWhileOpen) {
  auto v = makeVfs();
  ASSERT_TRUE(v->preloadRoot().ok());
  const InodeId cfg = mustLookup(*v, kRootInode, "config.json");
  const InodeId readme = mustLookup(*v, kRootInode, "README.md");
  auto old_cfg = v->open(cfg, O_RDONLY);
  auto old_readme = v->open(readme, O_RDONLY);
  ASSERT_TRUE(old_cfg.ok());
  ASSERT_TRUE(old_readme.ok());
  remote_->putFile("config.json", "{\"v\":2}");
  remote_->removeFile("README.md");
  auto changes = v->refreshLoaded();
  EXPECT_EQ(changes.changed, std::vector<std::string>{"config.json"});
  EXPECT_EQ(changes.deleted, std::vector<std::string>{"README.md"});
  {
    // Open handles get attribute-only invalidations (never a page drop under a reader).
    std::lock_guard<std::mutex> lock(sink_.mu);
    std::set<std::pair<InodeId, bool>> got(sink_.inodes.begin(), sink_.inodes.end());
    EXPECT_TRUE(got.contains({cfg, false}));
    EXPECT_TRUE(got.contains({readme, false}));
  }
  std::vector<uint8_t> buf(100);
  // Replaced file: the old handle refuses to serve the old version (ESTALE).
  auto stale = v->read(old_cfg->fh, 0, buf);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), ESTALE);
  // Deleted file: the old handle keeps reading what it opened (unlink-while-open).
  auto kept = v->read(old_readme->fh, 0, buf);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + static_cast<long>(*kept)), "hello\n");
  // A new open sees the new version.
  auto fresh = readAll(*v, cfg);
  EXPECT_EQ(std::string(fresh.begin(), fresh.end()), "{\"v\":2}");
  v->release(old_cfg->fh);
  v->release(old_readme->fh);
}

TEST_F(VfsTest, ReadErrorsPassThroughAndTheVfsRecovers) {
  auto v = makeVfs();
  const InodeId ino = mustLookup(*v, kRootInode, "README.md");
  auto o = v->open(ino, O_RDONLY);
  ASSERT_TRUE(o.ok());
  remote_->failAlways(FakeRemote::kRead, EIO);
  std::vector<uint8_t> buf(16);
  auto failed = v->read(o->fh, 0, buf);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), EIO);
  remote_->clearFaults();
  auto ok = v->read(o->fh, 0, buf);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 6u);
  v->release(o->fh);
  EXPECT_EQ(v->read(o->fh, 0, buf).error().code(), EBADF);
}

TEST_F(VfsTest, AVanishedVersionReadsAsEio) {
  auto v = makeVfs();
  const InodeId ino = mustLookup(*v, kRootInode, "README.md");
  auto o = v->open(ino, O_RDONLY);
  ASSERT_TRUE(o.ok());
  remote_->failAlways(FakeRemote::kRead, ENOENT);
  std::vector<uint8_t> buf(16);
  auto r = v->read(o->fh, 0, buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), EIO);
  v->release(o->fh);
}

TEST_F(VfsTest, ListingErrorsAreReportedUnlessAnOlderListingExists) {
  auto v = makeVfs();
  const InodeId data = mustLookup(*v, kRootInode, "data");
  remote_->failAlways(FakeRemote::kList, EIO);
  auto first = v->opendir(data);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code(), EIO);
  remote_->clearFaults();
  EXPECT_EQ(listNames(*v, data).size(), 5u);
  advance(std::chrono::seconds(11));
  remote_->failAlways(FakeRemote::kList, EIO);
  EXPECT_EQ(listNames(*v, data).size(), 5u);  // stale but served
}

TEST_F(VfsTest, RawPrefixMatchesFromTheBucketApiAreFilteredOut) {
  remote_->putFile("hooks/pre-commit.sample", "s");
  remote_->putFile("hooks/pre-commit/real", "r");
  remote_->putFile("hooks/pre-commit.d/other", "o");
  remote_->setRawPrefixListing(true);
  auto v = makeVfs();
  const InodeId hooks = mustLookup(*v, kRootInode, "hooks");
  const InodeId pc = mustLookup(*v, hooks, "pre-commit");
  EXPECT_EQ(listNames(*v, pc), (std::vector<std::string>{".", "..", "real"}));
}

TEST_F(VfsTest, StatfsReportsALargeFixedCapacity) {
  auto v = makeVfs();
  auto s = v->statfs();
  EXPECT_EQ(s.block_size, 512u);
  EXPECT_EQ(s.blocks * 512, 42ull * 1000 * 1000 * 1000 * 1000 * 1000);
  EXPECT_EQ(s.blocks_available, s.blocks);
  EXPECT_EQ(s.name_max, 255u);
}

}  // namespace
}  // namespace hfm::vfs
