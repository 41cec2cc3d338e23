// XetTokenCache: the http::XetTokenProvider the Xet CAS client uses.
//
// Holds the last Xet token and fetches a new one when it is within `refresh_margin` of its
// `exp` (the margin shrinks to half the token's lifetime for short-lived tokens, so a 30 s
// token is not refreshed on every call). Concurrent callers that need a refresh share one
// fetch: the first becomes the fetcher, the rest wait for its result (single-flight). If a
// refresh fails while the old token has not actually expired yet, the old token is returned
// (and the next call tries again); otherwise the error is returned to every waiter.
// get(true) forces a new fetch (after a CAS 401), joining one already in flight.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "hfm/http/xet_credentials.h"
#include "hfm/hub/hub_client.h"

namespace hfm::hub {

class XetTokenCache : public http::XetTokenProvider {
 public:
  using Fetch = std::function<Result<http::XetCredentials>()>;
  using Clock = std::function<int64_t()>;  // unix seconds

  static constexpr std::chrono::seconds kDefaultMargin{60};

  explicit XetTokenCache(Fetch fetch, std::chrono::seconds refresh_margin = kDefaultMargin,
                         Clock now = systemNow);
  // Fetches through hub->fetchXetToken(access). `hub` must outlive the cache's use.
  static std::shared_ptr<XetTokenCache> forHub(
      std::shared_ptr<const HubClient> hub, XetAccess access,
      std::chrono::seconds refresh_margin = kDefaultMargin);

  Result<http::XetCredentials> get(bool force_refresh) override;

  // How many fetches were started (for tests and debug logs).
  uint64_t fetchCount() const;

  static int64_t systemNow();

 private:
  bool fresh(const http::XetCredentials& credentials, int64_t now) const;  // REQUIRES(mu_)

  const Fetch fetch_;
  const std::chrono::seconds margin_;
  const Clock now_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<http::XetCredentials> cached_;  // GUARDED_BY(mu_)
  int64_t fetched_at_ = 0;                      // GUARDED_BY(mu_)
  bool fetching_ = false;                       // GUARDED_BY(mu_)
  uint64_t generation_ = 0;                     // GUARDED_BY(mu_): completed fetches
  std::optional<Error> last_error_;             // GUARDED_BY(mu_): of the last fetch
  uint64_t fetches_started_ = 0;                // GUARDED_BY(mu_)
};

}  // namespace hfm::hub
