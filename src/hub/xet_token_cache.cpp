#include "hfm/hub/xet_token_cache.h"

#include <algorithm>

#include "hfm/util/log.h"

namespace hfm::hub {

XetTokenCache::XetTokenCache(Fetch fetch, std::chrono::seconds refresh_margin, Clock now)
    : fetch_(std::move(fetch)), margin_(refresh_margin), now_(std::move(now)) {}

std::shared_ptr<XetTokenCache> XetTokenCache::forHub(std::shared_ptr<const HubClient> hub,
                                                     XetAccess access,
                                                     std::chrono::seconds refresh_margin) {
  return std::make_shared<XetTokenCache>(
      [hub = std::move(hub), access] { return hub->fetchXetToken(access); }, refresh_margin);
}

int64_t XetTokenCache::systemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool XetTokenCache::fresh(const http::XetCredentials& credentials, int64_t now) const {
  const int64_t lifetime = std::max<int64_t>(0, credentials.expires_at - fetched_at_);
  const int64_t margin = std::min<int64_t>(margin_.count(), lifetime / 2);
  return now < credentials.expires_at - margin;
}

uint64_t XetTokenCache::fetchCount() const {
  std::lock_guard lock(mu_);
  return fetches_started_;
}

Result<http::XetCredentials> XetTokenCache::get(bool force_refresh) {
  std::unique_lock lock(mu_);
  if (!force_refresh && !fetching_ && cached_ && fresh(*cached_, now_())) return *cached_;

  if (fetching_) {
    // Join the fetch in flight rather than starting another.
    const uint64_t waiting_for = generation_ + 1;
    cv_.wait(lock, [&] { return generation_ >= waiting_for; });
    if (cached_ && now_() < cached_->expires_at && (!last_error_ || !force_refresh))
      return *cached_;
    if (last_error_) return *last_error_;
  }

  fetching_ = true;
  ++fetches_started_;
  lock.unlock();
  auto fetched = fetch_();  // no lock held: the network call may take seconds
  const int64_t now = now_();
  lock.lock();
  fetching_ = false;
  ++generation_;
  if (fetched) {
    cached_ = fetched.value();
    fetched_at_ = now;
    last_error_.reset();
  } else {
    last_error_ = fetched.error();
  }
  cv_.notify_all();
  if (fetched) return fetched;
  if (cached_ && now < cached_->expires_at && !force_refresh) {
    spdlog::warn("xet token refresh failed ({}); the current token is still valid for {} s",
                 fetched.error().message(), cached_->expires_at - now);
    return *cached_;
  }
  return fetched.error();
}

}  // namespace hfm::hub
