// XetTokenCache: refresh ahead of expiry, forced refresh, failure handling, single-flight.
#include "hfm/hub/xet_token_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace hfm::hub {
namespace {

using std::chrono::seconds;

// A fake Hub token endpoint: token-<n> valid for `ttl` seconds from the fake clock.
struct FakeIssuer {
  std::atomic<int64_t> now{1'000'000};
  std::atomic<int> issued{0};
  int64_t ttl = 3600;
  std::atomic<bool> fail{false};
  std::chrono::milliseconds latency{0};

  XetTokenCache::Fetch fetch() {
    return [this]() -> Result<http::XetCredentials> {
      if (latency.count() > 0) std::this_thread::sleep_for(latency);
      if (fail) return Error(EAGAIN, "xet token: HTTP 429");
      const int n = ++issued;
      return http::XetCredentials{"http://cas.local", "token-" + std::to_string(n), now + ttl};
    };
  }
  XetTokenCache::Clock clock() {
    return [this] { return now.load(); };
  }
};

TEST(XetTokenCacheTest, CachesUntilTheRefreshMargin) {
  FakeIssuer issuer;
  XetTokenCache cache(issuer.fetch(), seconds(60), issuer.clock());
  auto first = cache.get(false);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->access_token, "token-1");
  EXPECT_EQ(first->cas_url, "http://cas.local");

  issuer.now += 3600 - 61;  // 61 s before exp: still fresh
  EXPECT_EQ(cache.get(false)->access_token, "token-1");
  EXPECT_EQ(cache.fetchCount(), 1u);

  issuer.now += 2;  // 59 s before exp: inside the margin, refreshed before it expires
  EXPECT_EQ(cache.get(false)->access_token, "token-2");
  EXPECT_EQ(cache.fetchCount(), 2u);
  EXPECT_EQ(cache.get(false)->access_token, "token-2");
}

TEST(XetTokenCacheTest, ShortLivedTokensUseHalfTheirLifetime) {
  FakeIssuer issuer;
  issuer.ttl = 30;  // shorter than the margin: refreshing every call would be wasteful
  XetTokenCache cache(issuer.fetch(), seconds(60), issuer.clock());
  EXPECT_EQ(cache.get(false)->access_token, "token-1");
  issuer.now += 14;
  EXPECT_EQ(cache.get(false)->access_token, "token-1");
  issuer.now += 2;
  EXPECT_EQ(cache.get(false)->access_token, "token-2");
}

TEST(XetTokenCacheTest, ForceRefreshFetchesANewToken) {
  FakeIssuer issuer;
  XetTokenCache cache(issuer.fetch(), seconds(60), issuer.clock());
  EXPECT_EQ(cache.get(false)->access_token, "token-1");
  EXPECT_EQ(cache.get(true)->access_token, "token-2");
  EXPECT_EQ(cache.get(false)->access_token, "token-2");
}

TEST(XetTokenCacheTest, FailedRefreshKeepsAStillValidToken) {
  FakeIssuer issuer;
  XetTokenCache cache(issuer.fetch(), seconds(60), issuer.clock());
  ASSERT_TRUE(cache.get(false).ok());
  issuer.now += 3600 - 30;  // inside the margin, not expired
  issuer.fail = true;
  auto kept = cache.get(false);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->access_token, "token-1");

  issuer.now += 31;  // now expired: the error surfaces
  auto expired = cache.get(false);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().code(), EAGAIN);

  issuer.fail = false;
  EXPECT_EQ(cache.get(false)->access_token, "token-2");
}

TEST(XetTokenCacheTest, FirstFetchFailureIsReported) {
  FakeIssuer issuer;
  issuer.fail = true;
  XetTokenCache cache(issuer.fetch(), seconds(60), issuer.clock());
  auto result = cache.get(false);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("429"), std::string::npos);
}

TEST(XetTokenCacheTest, ConcurrentCallersShareOneRefresh) {
  FakeIssuer issuer;
  issuer.latency = std::chrono::milliseconds(200);
  XetTokenCache cache(issuer.fetch(), seconds(60), issuer.clock());
  std::mutex mu;
  std::set<std::string> tokens;
  std::atomic<int> failures{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&] {
        auto credentials = cache.get(false);
        if (!credentials.ok()) {
          ++failures;
          return;
        }
        std::lock_guard lock(mu);
        tokens.insert(credentials->access_token);
      });
    }
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(cache.fetchCount(), 1u);
  EXPECT_EQ(issuer.issued.load(), 1);
  EXPECT_EQ(tokens, std::set<std::string>{"token-1"});

  // Near expiry, a burst again triggers exactly one refresh.
  issuer.now += 3600 - 10;
  tokens.clear();
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&] {
        auto credentials = cache.get(false);
        if (!credentials.ok()) return;
        std::lock_guard lock(mu);
        tokens.insert(credentials->access_token);
      });
    }
  }
  EXPECT_EQ(issuer.issued.load(), 2);
  EXPECT_EQ(tokens, std::set<std::string>{"token-2"});
}

}  // namespace
}  // namespace hfm::hub
