#include "hfm/nfs/handle_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>

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

}  // namespace
}  // namespace hfm::nfs
