#include "hfm/nfs/handle_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <thread>

namespace hfm::nfs {
namespace {

class HandleTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("hfm-handles-" + std::to_string(::getpid()) +
                                                     "-" + std::to_string(std::random_device()()));
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
};

TEST_F(HandleTableTest, IdsAreStableAcrossReopen) {
  uint64_t epoch = 0, a = 0, b = 0, c = 0, odd = 0;
  {
    auto t = HandleTable::open(dir_, "bucket ns/x");
    ASSERT_TRUE(t->persistent());
    epoch = t->epoch();
    EXPECT_NE(epoch, 0u);
    EXPECT_EQ(t->idFor("", true), kRootHandleId);
    a = t->idFor("a.txt", false);
    b = t->idFor("dir", true);
    c = t->idFor("dir/b c%\n.txt", false);  // needs escaping
    odd = t->idFor("a.txt", true);          // same path, other kind: another id
    EXPECT_EQ(t->idFor("a.txt", false), a);
    EXPECT_NE(odd, a);
    EXPECT_EQ(t->size(), 5u);
  }
  auto t = HandleTable::open(dir_, "bucket ns/x");
  EXPECT_EQ(t->epoch(), epoch);
  EXPECT_EQ(t->idFor("a.txt", false), a);
  EXPECT_EQ(t->idFor("dir", true), b);
  EXPECT_EQ(t->idFor("dir/b c%\n.txt", false), c);
  auto rec = t->find(c);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->path, "dir/b c%\n.txt");
  EXPECT_FALSE(rec->is_dir);
  EXPECT_TRUE(t->find(odd)->is_dir);
  const uint64_t fresh = t->idFor("new", false);
  EXPECT_GT(fresh, std::max({a, b, c, odd}));  // never reuses an id
  EXPECT_FALSE(t->find(9999).has_value());
}

TEST_F(HandleTableTest, TornTailIsDroppedAndOtherSourcesStartFresh) {
  uint64_t epoch = 0, a = 0;
  {
    auto t = HandleTable::open(dir_, "k");
    epoch = t->epoch();
    a = t->idFor("a", false);
  }
  const auto file = dir_ / HandleTable::fileNameFor("k");
  {
    std::ofstream out(file, std::ios::app);
    out << "00000000000000ff f half-writ";  // no newline: a crash mid-append
  }
  {
    auto t = HandleTable::open(dir_, "k");
    EXPECT_EQ(t->epoch(), epoch);
    EXPECT_EQ(t->find(a)->path, "a");
    EXPECT_FALSE(t->find(0xff).has_value());
    EXPECT_EQ(t->idFor("b", false), a + 1);
  }
  {
    auto t = HandleTable::open(dir_, "k");
    EXPECT_EQ(t->find(a + 1)->path, "b");  // the record after the repaired tail is intact
  }
  // Same file name but another key stored inside (as after a hash collision): fresh epoch.
  {
    std::fstream f(file, std::ios::in | std::ios::out);
    f.seekp(0);
    f << "hfm-nfs-handles 1 0000000000000001 other-key\n";
  }
  auto t = HandleTable::open(dir_, "k");
  EXPECT_NE(t->epoch(), epoch);
  EXPECT_FALSE(t->find(a).has_value());
}

TEST_F(HandleTableTest, ASecondMountOfTheSameSourceFallsBackToMemory) {
  auto first = HandleTable::open(dir_, "k");
  ASSERT_TRUE(first->persistent());
  auto second = HandleTable::open(dir_, "k");
  EXPECT_FALSE(second->persistent());
  EXPECT_NE(second->epoch(), first->epoch());
  auto memory = HandleTable::open({}, "k");
  EXPECT_FALSE(memory->persistent());
  EXPECT_EQ(memory->idFor("x", false), kRootHandleId + 1);
}

TEST_F(HandleTableTest, RenamesMoveIdsAndDeletionsForgetThemAcrossReopen) {
  uint64_t file = 0, dir = 0, below = 0, deep = 0, target = 0, gone = 0, other = 0;
  {
    auto t = HandleTable::open(dir_, "bucket ns/r");
    file = t->idFor("a.txt", false);
    dir = t->idFor("d", true);
    below = t->idFor("d/x.txt", false);
    deep = t->idFor("d/sub/y.txt", false);
    other = t->idFor("dd/z.txt", false);  // shares a prefix with "d" but is not below it
    target = t->idFor("b.txt", false);
    gone = t->idFor("c.txt", false);

    t->rename("a.txt", "b.txt", false);  // replaces b.txt
    EXPECT_EQ(t->find(file)->path, "b.txt");
    EXPECT_FALSE(t->find(target).has_value());
    EXPECT_EQ(t->idFor("b.txt", false), file);

    t->rename("d", "e/f", true);
    EXPECT_EQ(t->find(dir)->path, "e/f");
    EXPECT_EQ(t->find(below)->path, "e/f/x.txt");
    EXPECT_EQ(t->find(deep)->path, "e/f/sub/y.txt");
    EXPECT_EQ(t->find(other)->path, "dd/z.txt");

    t->forget("c.txt", false);
    EXPECT_FALSE(t->find(gone).has_value());
  }
  auto t = HandleTable::open(dir_, "bucket ns/r");
  EXPECT_EQ(t->find(file)->path, "b.txt");
  EXPECT_FALSE(t->find(target).has_value());
  EXPECT_EQ(t->find(dir)->path, "e/f");
  EXPECT_EQ(t->find(below)->path, "e/f/x.txt");
  EXPECT_EQ(t->find(deep)->path, "e/f/sub/y.txt");
  EXPECT_EQ(t->find(other)->path, "dd/z.txt");
  EXPECT_FALSE(t->find(gone).has_value());
  // The old names get new ids when something appears there again.
  const uint64_t again = t->idFor("a.txt", false);
  EXPECT_GT(again, gone);
  EXPECT_NE(t->idFor("d/x.txt", false), below);
  EXPECT_NE(t->idFor("c.txt", false), gone);
  // A directory deletion forgets everything below it.
  t->forget("e/f", true);
  EXPECT_FALSE(t->find(dir).has_value());
  EXPECT_FALSE(t->find(deep).has_value());
  EXPECT_TRUE(t->find(other).has_value());
}

TEST_F(HandleTableTest, VersionOneTablesStillLoad) {
  std::filesystem::create_directories(dir_);
  const auto file = dir_ / HandleTable::fileNameFor("k1");
  {
    std::ofstream out(file);
    out << "hfm-nfs-handles 1 00000000000000ab k1\n0000000000000002 f a.txt\n";
  }
  auto t = HandleTable::open(dir_, "k1");
  EXPECT_EQ(t->epoch(), 0xabu);
  EXPECT_EQ(t->idFor("a.txt", false), 2u);
  t->rename("a.txt", "b.txt", false);
  t.reset();
  auto again = HandleTable::open(dir_, "k1");
  EXPECT_EQ(again->find(2)->path, "b.txt");
}

TEST_F(HandleTableTest, CreateVerifiersSurviveReopenFollowRenamesAndDieWithTheFile) {
  uint64_t kept = 0, moved = 0, removed = 0, dir = 0;
  {
    auto t = HandleTable::open(dir_, "bucket ns/v");
    kept = t->idFor("kept.txt", false);
    moved = t->idFor("old.txt", false);
    removed = t->idFor("removed.txt", false);
    dir = t->idFor("d", true);
    EXPECT_FALSE(t->find(kept)->create_verifier.has_value());
    t->setCreateVerifier(kept, 0x0102030405060708ULL);
    t->setCreateVerifier(moved, 0);  // zero is a verifier like any other
    t->setCreateVerifier(removed, 7);
    t->setCreateVerifier(dir, 9);    // directories are never created EXCLUSIVE: ignored
    t->setCreateVerifier(12345, 1);  // unknown id: ignored
    t->rename("old.txt", "new.txt", false);
    t->forget("removed.txt", false);
    EXPECT_EQ(t->find(kept)->create_verifier, 0x0102030405060708ULL);
    EXPECT_EQ(t->idOf("new.txt", false), moved);
    EXPECT_FALSE(t->idOf("old.txt", false).has_value());
    EXPECT_FALSE(t->idOf("nothing", false).has_value());
  }
  auto t = HandleTable::open(dir_, "bucket ns/v");
  EXPECT_EQ(t->find(kept)->create_verifier, 0x0102030405060708ULL);
  EXPECT_EQ(t->find(moved)->create_verifier, 0u);
  EXPECT_EQ(t->find(moved)->path, "new.txt");
  EXPECT_FALSE(t->find(removed).has_value());
  EXPECT_FALSE(t->find(dir)->create_verifier.has_value());
  // The name created again is another file: no verifier.
  const uint64_t again = t->idFor("removed.txt", false);
  EXPECT_FALSE(t->find(again)->create_verifier.has_value());
}

// Churn: files created and renamed or deleted, leaving few live records among many dead ones.
void churn(HandleTable& t, int rounds, std::map<uint64_t, std::string>* live,
           std::map<uint64_t, uint64_t>* verifiers) {
  for (int i = 0; i < rounds; ++i) {
    const std::string name = "tmp/f" + std::to_string(i);
    const uint64_t id = t.idFor(name, false);
    t.rename(name, name + ".renamed", false);
    if (i % 10 == 0) {
      (*live)[id] = name + ".renamed";
      if (i % 20 == 0) {
        t.setCreateVerifier(id, static_cast<uint64_t>(i) + 1);
        (*verifiers)[id] = static_cast<uint64_t>(i) + 1;
      }
    } else {
      t.forget(name + ".renamed", false);
    }
  }
}

TEST_F(HandleTableTest, CompactionKeepsLiveMappingsVerifiersAndTheNextId) {
  std::map<uint64_t, std::string> live;
  std::map<uint64_t, uint64_t> verifiers;
  uint64_t last_id = 0;
  uint64_t dead_top = 0;
  uint64_t epoch = 0;
  uintmax_t grown = 0;
  HandleTableStats stats;
  {
    auto t = HandleTable::open(dir_, "bucket ns/c", HandleTableOptions{.compact_min_records = 200});
    epoch = t->epoch();
    live[t->idFor("tmp", true)] = "tmp";
    churn(*t, 1000, &live, &verifiers);
    last_id = t->idFor("tmp/f999.renamed", false);  // forgotten above: a new id
    live[last_id] = "tmp/f999.renamed";
    dead_top = t->idFor("dead-top", false);
    t->forget("dead-top", false);
    ASSERT_TRUE(t->compact().ok());
    t->idFor("tmp/f999.renamed", false);  // a no-op: the record exists
    stats = t->stats();
    EXPECT_GE(stats.compactions, 1u);
    // Without compaction the log would hold ~2.9 records per round.
    EXPECT_EQ(stats.log_records, stats.live_records);  // just compacted
    EXPECT_EQ(verifiers.size(), 50u);
    EXPECT_EQ(stats.live_records, live.size() + 50 + 1);  // ids, verifiers, the "n" record
    grown = std::filesystem::file_size(t->file());
    for (const auto& [id, path] : live) EXPECT_EQ(t->find(id)->path, path) << id;
  }
  EXPECT_LT(grown, 1000u * 30);  // ~ the live records, not 3000 records of churn
  EXPECT_FALSE(
      std::filesystem::exists(dir_ / (HandleTable::fileNameFor("bucket ns/c") + ".compact")));
  auto t = HandleTable::open(dir_, "bucket ns/c", HandleTableOptions{.compact_min_records = 200});
  for (const auto& [id, path] : live) {
    auto rec = t->find(id);
    ASSERT_TRUE(rec.has_value()) << path;
    EXPECT_EQ(rec->path, path);
    EXPECT_EQ(t->idFor(path, path == "tmp"), id);
    auto verifier = verifiers.find(id);
    if (verifier == verifiers.end()) {
      EXPECT_FALSE(rec->create_verifier.has_value()) << path;
    } else {
      EXPECT_EQ(rec->create_verifier, verifier->second) << path;
    }
  }
  EXPECT_EQ(t->epoch(), epoch);
  // Ids of forgotten files never come back, even those above the last live one.
  EXPECT_GT(t->idFor("brand-new", false), dead_top);
}

TEST_F(HandleTableTest, ALongLogIsCompactedAtOpen) {
  std::map<uint64_t, std::string> live;
  uint64_t epoch = 0;
  {
    // A threshold the churn never reaches: the log only grows.
    auto t = HandleTable::open(dir_, "k", HandleTableOptions{.compact_min_records = 1u << 30});
    epoch = t->epoch();
    live[t->idFor("tmp", true)] = "tmp";
    std::map<uint64_t, uint64_t> verifiers;
    churn(*t, 300, &live, &verifiers);
    EXPECT_EQ(t->stats().compactions, 0u);
    EXPECT_GT(t->stats().log_records, 800u);
  }
  auto t = HandleTable::open(dir_, "k", HandleTableOptions{.compact_min_records = 100});
  EXPECT_EQ(t->stats().compactions, 1u);
  EXPECT_EQ(t->stats().log_records, t->stats().live_records);
  EXPECT_EQ(t->epoch(), epoch);
  for (const auto& [id, path] : live) EXPECT_EQ(t->find(id)->path, path);
  t.reset();
  // The compacted log is an ordinary log: appended to and reloaded like any other.
  t = HandleTable::open(dir_, "k");
  const uint64_t added = t->idFor("after", false);
  t.reset();
  t = HandleTable::open(dir_, "k");
  EXPECT_EQ(t->find(added)->path, "after");
  for (const auto& [id, path] : live) EXPECT_EQ(t->find(id)->path, path);
}

TEST_F(HandleTableTest, ALeftoverPartialCompactionIsIgnored) {
  uint64_t a = 0, b = 0, epoch = 0;
  std::filesystem::path file;
  {
    auto t = HandleTable::open(dir_, "k");
    epoch = t->epoch();
    a = t->idFor("a", false);
    b = t->idFor("d/b", false);
    file = t->file();
  }
  // A crash while writing the compacted copy: a truncated file next to the intact log.
  auto tmp = file;
  tmp += ".compact";
  {
    std::ofstream out(tmp);
    out << "hfm-nfs-handles 3 00000000000000ee k\n0000000000000002 f wrong\n00000000000";
  }
  auto t = HandleTable::open(dir_, "k");
  EXPECT_FALSE(std::filesystem::exists(tmp));
  EXPECT_EQ(t->epoch(), epoch);
  EXPECT_EQ(t->find(a)->path, "a");
  EXPECT_EQ(t->find(b)->path, "d/b");
  // And compaction still works afterwards (the copy is recreated from scratch).
  ASSERT_TRUE(t->compact().ok());
  t.reset();
  t = HandleTable::open(dir_, "k");
  EXPECT_EQ(t->find(a)->path, "a");
  EXPECT_EQ(t->find(b)->path, "d/b");
  EXPECT_GT(t->idFor("c", false), b);
}

TEST_F(HandleTableTest, RecordsAppendedDuringACompactionAreKept) {
  // Writers keep assigning, renaming and forgetting while compactions run on their threads
  // and on this one; afterwards the reloaded log must match the final in-memory mapping.
  std::vector<std::map<uint64_t, std::string>> live(4);
  {
    auto t = HandleTable::open(dir_, "k", HandleTableOptions{.compact_min_records = 64});
    std::atomic<bool> writing{true};
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&, w] {
        for (int i = 0; i < 400; ++i) {
          const std::string name = "w" + std::to_string(w) + "/" + std::to_string(i);
          const uint64_t id = t->idFor(name, false);
          if (i % 3 == 0) {
            t->rename(name, name + ".kept", false);
            live[static_cast<size_t>(w)][id] = name + ".kept";
          } else {
            t->forget(name, false);
          }
        }
      });
    }
    std::thread compactor([&] {
      for (int i = 0; i < 50 && writing.load(); ++i) {
        (void)t->compact();  // EBUSY when a writer's compaction is running: fine
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    for (auto& th : writers) th.join();
    writing = false;
    compactor.join();
    EXPECT_GE(t->stats().compactions, 1u);
  }
  auto t = HandleTable::open(dir_, "k");
  size_t total = 0;
  for (const auto& part : live) {
    for (const auto& [id, path] : part) {
      auto rec = t->find(id);
      ASSERT_TRUE(rec.has_value()) << path;
      EXPECT_EQ(rec->path, path);
      ++total;
    }
  }
  EXPECT_EQ(t->size(), total + 1);  // + the root
}

TEST_F(HandleTableTest, InMemoryTablesDoNotCompact) {
  auto t = HandleTable::open({}, "k");
  EXPECT_FALSE(t->compact().ok());
  t->setCreateVerifier(t->idFor("x", false), 5);
  EXPECT_EQ(t->find(kRootHandleId + 1)->create_verifier, 5u);
}

}  // namespace
}  // namespace hfm::nfs
