// Poller: the background loop that finds remote changes (--poll-interval-secs, default 30 s;
// 0 disables it) and applies them to the Vfs.
//
// Each round first asks Remote::revision() (bucket updatedAt / repo sha). An unchanged,
// non-empty token skips the round: one cheap call instead of one listing per visited
// directory (#164). Otherwise Vfs::refreshLoaded() re-lists every directory the user has
// visited, parents before children, and applies the differences; the Vfs hands the resulting
// kernel invalidations to its InvalidationSink (which, for FUSE, queues them to a dedicated
// notifier thread). A probe answering EACCES/EPERM (HTTP 401/403) doubles the pause, up to 64
// intervals (#163); a successful probe resets it.
//
// Thread-safety: one thread of its own; start()/stop() from one controlling thread; pollOnce()
// may be called directly (tests) while the thread is not running.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "hfm/vfs/remote.h"
#include "hfm/vfs/vfs.h"

namespace hfm::vfs {

class Poller {
 public:
  using Listener = std::function<void(const ChangeSet&)>;

  Poller(Vfs& vfs, std::shared_ptr<Remote> remote, std::chrono::milliseconds interval,
         Listener on_change = {});
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  void start();  // no-op when the interval is 0 or already running
  void stop();   // wakes the thread and joins it

  // One round. Returns nullopt when the round was skipped (revision unchanged, or backing
  // off after an authorization failure).
  std::optional<ChangeSet> pollOnce();

  uint64_t rounds() const;         // rounds that re-listed
  uint64_t skippedRounds() const;  // rounds skipped on an unchanged revision

 private:
  void run();

  Vfs& vfs_;
  const std::shared_ptr<Remote> remote_;
  const std::chrono::milliseconds interval_;
  const Listener on_change_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                     // Guarded by mu_.
  std::optional<std::string> last_revision_;  // Guarded by mu_.
  int backoff_exp_ = 0;                       // Guarded by mu_.
  uint64_t rounds_ = 0;                       // Guarded by mu_.
  uint64_t skipped_ = 0;                      // Guarded by mu_.
  std::thread thread_;
};

}  // namespace hfm::vfs
