// Model-based test: seeded random sequences of remote mutations and filesystem operations,
// checked against what the FakeRemote holds. Invariants:
//  - every byte read through the Vfs belongs to a version that existed at that path, and a
//    whole-file read returns exactly one version (never a mix, never a short read);
//  - after a refresh (what the poller does) the namespace equals the remote's: lookups succeed
//    exactly for existing paths with the current size, and listings name exactly the children;
//  - lookup counts return to zero after forgetting every reference handed out.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "fake_remote.h"
#include "hfm/vfs/vfs.h"

namespace hfm::vfs {
namespace {

using hfm::testing::FakeRemote;
using hfm::testing::patternBytes;

const std::vector<std::string> kPaths = {"a.bin",     "b.txt",     "d/c.bin",
                                         "d/e/f.bin", "d/e/g.txt", "h/i.bin"};

class Model {
 public:
  explicit Model(uint64_t seed) : rng_(seed) {
    remote_ = std::make_shared<FakeRemote>();
    VfsConfig c;
    c.now = [this] { return Clock::time_point(std::chrono::milliseconds(clock_ms_)); };
    c.prefetch.initial_window = 16 * 1024;
    c.prefetch.max_window = 64 * 1024;
    c.prefetch.max_request = 24 * 1024;
    c.prefetch.retry_backoff = std::chrono::milliseconds(1);
    c.worker_threads = 2;
    for (const auto& p : kPaths) put(p);
    vfs_ = std::make_unique<Vfs>(remote_, c);
  }

  void put(const std::string& path) {
    auto bytes = patternBytes(rng_() % 150000, rng_());
    history_[path].insert(std::string(bytes.begin(), bytes.end()));
    current_[path] = std::string(bytes.begin(), bytes.end());
    remote_->putFile(path, std::move(bytes));
  }

  void remove(const std::string& path) {
    if (remote_->removeFile(path)) current_.erase(path);
  }

  // Resolves a path component by component; returns the inode or the errno.
  std::pair<InodeId, int> resolve(const std::string& path) {
    InodeId ino = kRootInode;
    size_t start = 0;
    while (start <= path.size()) {
      const size_t slash = path.find('/', start);
      const std::string name =
          path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      auto r = vfs_->lookup(ino, name);
      if (!r.ok()) return {0, r.error().code()};
      refs_[r->ino]++;
      ino = r->ino;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return {ino, 0};
  }

  void readAndCheck(const std::string& path) {
    auto [ino, err] = resolve(path);
    if (err != 0) return;
    auto o = vfs_->open(ino, O_RDONLY);
    ASSERT_TRUE(o.ok());
    std::string got;
    std::vector<uint8_t> buf(1 + rng_() % 40000);
    bool stale = false;
    for (uint64_t off = 0;;) {
      if (rng_() % 8 == 0) remote_->putFile("unrelated.txt", "noise");  // concurrent churn
      auto n = vfs_->read(o->fh, off, buf);
      if (!n.ok()) {
        ASSERT_EQ(n.error().code(), ESTALE) << path;  // replaced while open: refused, not mixed
        stale = true;
        break;
      }
      if (*n == 0) break;
      got.append(buf.begin(), buf.begin() + static_cast<long>(*n));
      off += *n;
    }
    vfs_->release(o->fh);
    if (!stale) {
      EXPECT_TRUE(history_[path].contains(got))
          << path << ": " << got.size() << " bytes that match no version";
    }
  }

  void checkConverged() {
    clock_ms_ += 31000;  // past the negative-cache TTL too
    vfs_->refreshLoaded();
    for (const auto& p : kPaths) {
      auto [ino, err] = resolve(p);
      if (current_.contains(p)) {
        ASSERT_EQ(err, 0) << p << " exists remotely";
        auto attr = vfs_->getattr(ino);
        ASSERT_TRUE(attr.ok());
        EXPECT_EQ(attr->size, current_[p].size()) << p;
      } else {
        EXPECT_TRUE(err == ENOENT || err == ENOTDIR) << p << " is gone remotely, got " << err;
      }
    }
    // The root listing names exactly the remote's top-level entries.
    std::set<std::string> want;
    for (const auto& [p, bytes] : current_) want.insert(p.substr(0, p.find('/')));
    auto fh = vfs_->opendir(kRootInode);
    ASSERT_TRUE(fh.ok());
    auto entries = vfs_->readdir(*fh, 2, 1000);
    ASSERT_TRUE(entries.ok());
    std::set<std::string> got;
    for (const auto& e : *entries) {
      if (e.name != "unrelated.txt") got.insert(e.name);
    }
    vfs_->releasedir(*fh);
    EXPECT_EQ(got, want);
  }

  void forgetAll() {
    for (const auto& [ino, n] : refs_) vfs_->forget(ino, n);
    for (const auto& [ino, n] : refs_) EXPECT_EQ(vfs_->lookupCount(ino), 0u);
    refs_.clear();
  }

  void run(int steps) {
    for (int i = 0; i < steps; ++i) {
      const std::string& path = kPaths[rng_() % kPaths.size()];
      switch (rng_() % 9) {
        case 0:
          put(path);
          break;
        case 1:
          remove(path);
          break;
        case 2:
        case 3:
          readAndCheck(path);
          break;
        case 4:
          (void)resolve(path);
          break;
        case 5:
          vfs_->refreshLoaded();
          break;
        case 6:
          clock_ms_ += static_cast<int64_t>(rng_() % 15000);
          break;
        case 7: {
          if (!refs_.empty() && rng_() % 2 == 0) {
            auto it = refs_.begin();
            std::advance(it, static_cast<long>(rng_() % refs_.size()));
            vfs_->forget(it->first, it->second);
            refs_.erase(it);
          }
          break;
        }
        case 8: {
          auto [ino, err] =
              resolve(path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/')));
          if (err == 0) {
            auto fh = vfs_->opendir(ino);
            if (fh.ok()) vfs_->releasedir(*fh);
          }
          break;
        }
      }
      if (::testing::Test::HasFatalFailure()) return;
    }
    checkConverged();
    forgetAll();
  }

 private:
  std::mt19937_64 rng_;
  std::shared_ptr<FakeRemote> remote_;
  std::unique_ptr<Vfs> vfs_;
  int64_t clock_ms_ = 1000000;
  std::map<std::string, std::set<std::string>> history_;
  std::map<std::string, std::string> current_;
  std::map<InodeId, uint64_t> refs_;
};

class VfsModelTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(VfsModelTest, RandomOperationsMatchTheRemote) {
  Model model(GetParam());
  model.run(400);
}

INSTANTIATE_TEST_SUITE_P(Seeds, VfsModelTest, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8));

}  // namespace
}  // namespace hfm::vfs
