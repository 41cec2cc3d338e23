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

}  // namespace
}  // namespace hfm::nfs
