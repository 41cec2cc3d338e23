// SignalWatcher: SIGTERM/SIGINT/SIGHUP sent to the process run the callback on the watcher's
// thread (never in a signal handler), and destruction stops the watcher without a signal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include "hfm/fuse/fuse_mount.h"

namespace hfm::fuse {
namespace {

TEST(SignalWatcherTest, RunsTheCallbackForEachStopSignal) {
  std::atomic<int> last{0};
  std::atomic<int> calls{0};
  std::atomic<bool> on_other_thread{true};
  const auto main_thread = std::this_thread::get_id();
  {
    SignalWatcher watcher([&](int sig) {
      if (std::this_thread::get_id() == main_thread) on_other_thread = false;
      last = sig;
      calls++;
    });
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      const int before = calls.load();
      ASSERT_EQ(::kill(::getpid(), sig), 0);  // process-directed, as `kill` from a shell
      for (int i = 0; i < 200 && calls.load() == before; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_EQ(calls.load(), before + 1);
      EXPECT_EQ(last.load(), sig);
    }
  }
  EXPECT_TRUE(on_other_thread.load());
  EXPECT_EQ(calls.load(), 3);
}

}  // namespace
}  // namespace hfm::fuse
