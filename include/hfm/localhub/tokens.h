// Xet access tokens issued by hf-local-hub's Hub API and checked by its CAS API.
//
// Tokens are self-contained and signed (HMAC-SHA256 under a per-data-dir secret), so the CAS
// side validates them without a lookup: "<base64url(payload)>.<base64url(mac)>" where the
// payload names the user, the resource ("bucket:ns/name" or "model:ns/name@<commit>"), the
// access level and the expiry (unix seconds). verify() rejects bad signatures and expired
// tokens separately so the CAS can answer 401 for both and the log can say which.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hfm::localhub {

struct XetTokenClaims {
  std::string user;
  std::string resource;
  bool write = false;
  int64_t expires_at = 0;  // unix seconds
};

enum class TokenCheck { kValid, kMalformed, kBadSignature, kExpired };

class XetTokens {
 public:
  // `secret` signs tokens; `ttl_secs` is the lifetime of new tokens (--token-ttl-secs).
  XetTokens(std::string secret, int64_t ttl_secs);

  std::string issue(const std::string& user, const std::string& resource, bool write,
                    int64_t now) const;
  int64_t ttlSecs() const { return ttl_secs_; }

  // Checks signature and expiry at `now`; fills `claims` when valid.
  TokenCheck verify(std::string_view token, int64_t now, XetTokenClaims* claims) const;

 private:
  std::string secret_;
  int64_t ttl_secs_;
};

}  // namespace hfm::localhub
