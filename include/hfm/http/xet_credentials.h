// Xet CAS credentials and the interface the Xet client uses to obtain them.
//
// The Hub issues short-lived Xet access tokens (`xet-read-token` / `xet-write-token`); the
// CAS client needs a fresh one for every request. It depends only on this interface, not on
// the hub layer: hfm::hub::XetTokenCache implements it (cached, refreshed ahead of `exp`,
// one refresh shared by concurrent callers); tests can supply their own.
#pragma once

#include <cstdint>
#include <string>

#include "hfm/util/result.h"

namespace hfm::http {

struct XetCredentials {
  std::string cas_url;       // e.g. "https://cas-server.xethub.hf.co" (no trailing '/')
  std::string access_token;  // send as "Authorization: Bearer <access_token>" to cas_url only
  int64_t expires_at = 0;    // unix seconds
};

class XetTokenProvider {
 public:
  virtual ~XetTokenProvider() = default;

  // Returns credentials valid for a while longer. `force_refresh` discards the cached token
  // first: call it after the CAS answered 401 (token expired or revoked early). Thread-safe.
  virtual Result<XetCredentials> get(bool force_refresh) = 0;
};

}  // namespace hfm::http
