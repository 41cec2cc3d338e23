#include "hfm/vfs/poller.h"

#include <algorithm>
#include <utility>

#include "hfm/util/log.h"

namespace hfm::vfs {

Poller::Poller(Vfs& vfs, std::shared_ptr<Remote> remote, std::chrono::milliseconds interval,
               Listener on_change)
    : vfs_(vfs),
      remote_(std::move(remote)),
      interval_(interval),
      on_change_(std::move(on_change)) {}

Poller::~Poller() { stop(); }

void Poller::start() {
  if (interval_.count() <= 0 || thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  // Prime the revision so the first round only re-lists if something changed since mount.
  auto rev = remote_->revision();
  if (rev.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    last_revision_ = *rev;
  }
  thread_ = std::thread([this] { run(); });
}

void Poller::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<ChangeSet> Poller::pollOnce() {
  auto rev = remote_->revision();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (rev.ok()) {
      backoff_exp_ = 0;
      if (!rev->empty() && last_revision_ && *last_revision_ == *rev) {
        skipped_++;
        return std::nullopt;
      }
    } else if (rev.error().code() == EACCES || rev.error().code() == EPERM) {
      backoff_exp_ = std::min(backoff_exp_ + 1, 6);
      spdlog::warn("poll: revision probe not authorized ({}); next poll in {}x the interval",
                   rev.error().message(), 1 << backoff_exp_);
      return std::nullopt;
    }
    // Any other probe error: fall through to a full round.
  }
  ChangeSet changes = vfs_.refreshLoaded();
  {
    std::lock_guard<std::mutex> lock(mu_);
    rounds_++;
    if (rev.ok()) last_revision_ = *rev;
  }
  if (!changes.empty()) {
    spdlog::info("poll: {} added, {} changed, {} deleted", changes.added.size(),
                 changes.changed.size(), changes.deleted.size());
    if (on_change_) on_change_(changes);
  }
  return changes;
}

void Poller::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto pause = interval_ * (1 << backoff_exp_);
      if (cv_.wait_for(lock, pause, [this] { return stopping_; })) return;
    }
    pollOnce();
  }
}

uint64_t Poller::rounds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rounds_;
}

uint64_t Poller::skippedRounds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_;
}

}  // namespace hfm::vfs
