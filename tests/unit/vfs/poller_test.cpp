#include "hfm/vfs/poller.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "fake_remote.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;

class CountingSink : public InvalidationSink {
 public:
  void invalidateInode(InodeId, bool) override { inodes++; }
  void invalidateEntry(InodeId, const std::string&) override { entries++; }
  std::atomic<int> inodes{0};
  std::atomic<int> entries{0};
};

TEST(PollerTest, ReportsAdditionsChangesAndDeletionsOfVisitedDirectories) {
  auto remote = std::make_shared<FakeRemote>();
  remote->putFile("a.txt", "a");
  remote->putFile("dir/b.txt", "b");
  remote->putFile("dir/sub/c.txt", "c");
  remote->putFile("unvisited/d.txt", "d");
  Vfs vfs(remote, VfsConfig{});
  CountingSink sink;
  vfs.setInvalidationSink(&sink);
  ASSERT_TRUE(vfs.preloadRoot().ok());
  auto dir = vfs.lookup(kRootInode, "dir");
  ASSERT_TRUE(dir.ok());
  auto fh = vfs.opendir(dir->ino);
  ASSERT_TRUE(fh.ok());
  vfs.releasedir(*fh);

  Poller poller(vfs, remote, std::chrono::milliseconds(0));
  // Nothing changed since the (primed) revision: the round is skipped.
  poller.start();  // interval 0: stays off
  auto first = poller.pollOnce();
  ASSERT_TRUE(first.has_value());  // not primed (start() was a no-op): a full round
  EXPECT_TRUE(first->empty());
  const auto lists = remote->counts().list;
  EXPECT_FALSE(poller.pollOnce().has_value());
  EXPECT_EQ(poller.skippedRounds(), 1u);
  EXPECT_EQ(remote->counts().list, lists);

  remote->putFile("a.txt", "changed");
  remote->putFile("dir/new.txt", "n");
  remote->removeFile("dir/b.txt");
  remote->removeFile("dir/sub/c.txt");  // dir/sub disappears (implicit directories)
  remote->putFile("unvisited/e.txt", "e");
  auto changes = poller.pollOnce();
  ASSERT_TRUE(changes.has_value());
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(changes->changed), std::vector<std::string>{"a.txt"});
  EXPECT_EQ(sorted(changes->added), std::vector<std::string>{"dir/new.txt"});
  EXPECT_EQ(sorted(changes->deleted), (std::vector<std::string>{"dir/b.txt", "dir/sub"}));
  EXPECT_GE(sink.inodes.load(), 3);
  EXPECT_GE(sink.entries.load(), 3);
  EXPECT_EQ(poller.rounds(), 2u);
  EXPECT_FALSE(vfs.inodeForPath("dir/b.txt").has_value());
  EXPECT_TRUE(vfs.inodeForPath("dir/new.txt").has_value());
}

TEST(PollerTest, ListingsRunConcurrentlyUpToTheLimit) {
  auto remote = std::make_shared<FakeRemote>();
  for (int i = 0; i < 12; ++i) remote->putFile("d" + std::to_string(i) + "/f.txt", "x");
  VfsConfig config;
  config.poll_listing_concurrency = 4;
  Vfs vfs(remote, config);
  ASSERT_TRUE(vfs.preloadRoot().ok());
  for (int i = 0; i < 12; ++i) {
    auto d = vfs.lookup(kRootInode, "d" + std::to_string(i));
    ASSERT_TRUE(d.ok());
    auto fh = vfs.opendir(d->ino);
    ASSERT_TRUE(fh.ok());
    vfs.releasedir(*fh);
  }
  remote->resetCounts();
  remote->setLatency(std::chrono::milliseconds(30));
  vfs.refreshLoaded();
  const auto c = remote->counts();
  EXPECT_EQ(c.list, 13u);  // the root, then its 12 subdirectories
  EXPECT_GT(c.max_concurrent_lists, 1u);
  EXPECT_LE(c.max_concurrent_lists, 4u);
}

TEST(PollerTest, UnauthorizedProbesBackOff) {
  auto remote = std::make_shared<FakeRemote>();
  remote->putFile("a.txt", "a");
  Vfs vfs(remote, VfsConfig{});
  Poller poller(vfs, remote, std::chrono::milliseconds(0));
  remote->failAlways(FakeRemote::kRevision, EACCES);
  EXPECT_FALSE(poller.pollOnce().has_value());
  EXPECT_EQ(remote->counts().list, 0u);
  remote->failAlways(FakeRemote::kRevision, EIO);  // other probe errors: full round
  EXPECT_TRUE(poller.pollOnce().has_value());
}

TEST(PollerTest, BackgroundThreadAppliesChangesAndStops) {
  auto remote = std::make_shared<FakeRemote>();
  remote->putFile("a.txt", "a");
  Vfs vfs(remote, VfsConfig{});
  ASSERT_TRUE(vfs.preloadRoot().ok());
  std::atomic<int> notified{0};
  Poller poller(vfs, remote, std::chrono::milliseconds(20),
                [&](const ChangeSet& c) { notified += static_cast<int>(c.added.size()); });
  poller.start();
  remote->putFile("b.txt", "b");
  for (int i = 0; i < 250 && notified.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  poller.stop();
  EXPECT_EQ(notified.load(), 1);
  EXPECT_TRUE(vfs.inodeForPath("b.txt").has_value());
}

}  // namespace
}  // namespace hfm::vfs
