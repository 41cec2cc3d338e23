#include "hfm/util/buffer_pool.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace hfm::util {
namespace {

TEST(BufferPool, GivesAtLeastTheAskedSize) {
  BufferPool pool(2);
  auto b = pool.take(1000);
  ASSERT_TRUE(b);
  EXPECT_GE(b.capacity(), 1000u);
  b.data()[999] = 7;  // writable over the whole asked size
}

TEST(BufferPool, ReusesAReleasedBufferThatFits) {
  BufferPool pool(2);
  uint8_t* first = nullptr;
  {
    auto b = pool.take(4096);
    first = b.data();
  }
  EXPECT_EQ(pool.idleCount(), 1u);
  auto again = pool.take(3000);  // 4096 fits 3000 without wasting over half
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(again.capacity(), 4096u);
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST(BufferPool, DoesNotHandOutTooSmallOrWastefulBuffers) {
  BufferPool pool(2);
  { auto b = pool.take(4096); }
  auto bigger = pool.take(8192);  // idle one too small
  EXPECT_GE(bigger.capacity(), 8192u);
  auto tiny = pool.take(100);  // idle 4096 would waste over half
  EXPECT_EQ(tiny.capacity(), 100u);
  EXPECT_EQ(pool.idleCount(), 1u);
}

TEST(BufferPool, KeepsAtMostMaxIdle) {
  BufferPool pool(2);
  {
    std::vector<BufferPool::Buffer> held;
    for (int i = 0; i < 5; ++i) held.push_back(pool.take(1024));
  }
  EXPECT_EQ(pool.idleCount(), 2u);
}

TEST(BufferPool, MovedFromHandleReleasesNothing) {
  BufferPool pool(4);
  auto a = pool.take(64);
  BufferPool::Buffer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_TRUE(b);
  EXPECT_EQ(pool.idleCount(), 0u);
  b = BufferPool::Buffer();
  EXPECT_EQ(pool.idleCount(), 1u);
}

TEST(BufferPool, ConcurrentTakeAndReleaseStayBounded) {
  BufferPool pool(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 200; ++i) {
        auto b = pool.take(static_cast<size_t>(1024 + (i % 3) * 512));
        b.data()[0] = static_cast<uint8_t>(t);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(pool.idleCount(), 3u);
}

}  // namespace
}  // namespace hfm::util
