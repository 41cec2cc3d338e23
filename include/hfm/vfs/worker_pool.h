// WorkerPool: a fixed set of threads running submitted tasks in FIFO order.
//
// Used by the Vfs for background fetches (prefetch parts). Tasks must not block on other tasks
// of the same pool. The destructor stops accepting work, runs every task already queued and
// joins the threads, so a task may safely reference objects that outlive the pool.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hfm::vfs {

class WorkerPool {
 public:
  explicit WorkerPool(size_t threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`. Returns false (and drops the task) once shutdown has begun.
  bool submit(std::function<void()> task);

  size_t threadCount() const { return threads_.size(); }

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // Guarded by mu_.
  bool stopping_ = false;                    // Guarded by mu_.
  std::vector<std::thread> threads_;
};

}  // namespace hfm::vfs
