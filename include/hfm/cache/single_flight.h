// SingleFlight: concurrent requests for one key share one computation.
//
// The first caller to join a key becomes its leader and must eventually call complete() (or
// use run(), which does it); callers that join while the key is in flight get the same
// shared future and block in wait() until the leader completes. A completed key is forgotten
// at once, so a later request starts a new flight (results are not cached here: the chunk
// cache does that). Thread-safe; mu_ is held only to look up or erase the flight map, never
// while the leader computes.
#pragma once

#include <functional>
#include <future>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "hfm/util/result.h"

namespace hfm::cache {

template <typename Key, typename Value, typename Hash = std::hash<Key>>
class SingleFlight {
 public:
  using Future = std::shared_future<Result<Value>>;

  struct Ticket {
    Future future;
    bool leader = false;
  };

  // Joins the flight for `key`, creating it (and making the caller leader) if none runs.
  Ticket join(const Key& key) {
    std::lock_guard lock(mu_);
    auto it = flights_.find(key);
    if (it != flights_.end()) return {it->second.future, false};
    std::promise<Result<Value>> promise;
    Future future = promise.get_future().share();
    flights_.emplace(key, Flight{std::move(promise), future});
    return {future, true};
  }

  // Leader only: publishes the result to every waiter and ends the flight.
  void complete(const Key& key, Result<Value> result) {
    std::promise<Result<Value>> promise;
    {
      std::lock_guard lock(mu_);
      auto it = flights_.find(key);
      if (it == flights_.end()) return;
      promise = std::move(it->second.promise);
      flights_.erase(it);
    }
    promise.set_value(std::move(result));
  }

  // Runs `fn` once for all concurrent callers with the same key.
  Result<Value> run(const Key& key, const std::function<Result<Value>()>& fn) {
    Ticket ticket = join(key);
    if (ticket.leader) complete(key, fn());
    return ticket.future.get();
  }

  size_t inFlight() const {
    std::lock_guard lock(mu_);
    return flights_.size();
  }

 private:
  struct Flight {
    std::promise<Result<Value>> promise;
    Future future;
  };

  mutable std::mutex mu_;
  std::unordered_map<Key, Flight, Hash> flights_;  // Guarded by mu_
};

}  // namespace hfm::cache
