// HTTP pieces of hf-local-hub's CAS that do not depend on storage: `Range` header parsing,
// signed fetch URLs and multipart/byteranges framing.
//
// Signed fetch URLs stand in for the Hub's presigned xorb URLs: `/v1/fetch/{xorb}` with query
// parameters `X-Xet-Signed-Range` (the exact `bytes=s-e[,s-e…]` value the client must send as
// its Range header), `X-Xet-Expires` (unix seconds) and `X-Xet-Signature` (hex MAC — keyed BLAKE3 —
// over xorb, signed range and expiry under a per-data-dir 32-byte secret). A fetch is authorised
// when the signature verifies, the URL has not expired, no Authorization header is sent, and every
// range of the request's Range header is one of the signed ranges (hf.js sends all of them at once,
// or a single one of them when it streams one term). Anything else is 403, like a CDN.
//
// Multipart answers follow RFC 7233 §4.1: one part per requested range, in request order,
// each with `Content-Type: application/octet-stream` and `Content-Range: bytes s-e/total`, the
// payload being a FileSlice of the stored xorb so the server can sendfile it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hfm/localhub/http_types.h"
#include "hfm/util/result.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::localhub {

// One range of a Range header: `last` is inclusive; nullopt = to the end ("bytes=S-").
// A suffix range "bytes=-N" is reported with `suffix` = N.
struct ByteRangeSpec {
  uint64_t first = 0;
  std::optional<uint64_t> last;
  std::optional<uint64_t> suffix;
  friend bool operator==(const ByteRangeSpec&, const ByteRangeSpec&) = default;
};

// Parses "bytes=a-b[,c-d…]" (whitespace tolerated around items). EINVAL on anything else,
// including last < first.
Result<std::vector<ByteRangeSpec>> parseRangeHeader(std::string_view value);

// An inclusive byte range [first, last].
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t length() const { return last - first + 1; }
  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

// "bytes=a-b,c-d".
std::string formatRangeHeader(const std::vector<ByteRange>& ranges);

class FetchUrlSigner {
 public:
  // `key` holds 32 bytes (the first 32 are used; shorter keys are zero-padded).
  explicit FetchUrlSigner(std::string_view key) {
    for (size_t i = 0; i < key_.size() && i < key.size(); ++i)
      key_[i] = static_cast<uint8_t>(key[i]);
  }

  // Query string (no leading '?') authorising `ranges` of `xorb_hex` until `expires_at`.
  std::string signQuery(const std::string& xorb_hex, const std::vector<ByteRange>& ranges,
                        int64_t expires_at) const;

  // Checks a fetch request for `xorb_hex` at `now`; returns the ranges to serve, in the order
  // the Range header lists them, or an error whose code is the HTTP status (403 or 400).
  struct Denied {
    int status;
    std::string message;
  };
  std::variant<std::vector<ByteRange>, Denied> authorize(const HttpRequest& request,
                                                         const std::string& xorb_hex,
                                                         int64_t now) const;

 private:
  std::string signature(const std::string& xorb_hex, const std::string& signed_range,
                        const std::string& expires) const;
  xet::MerkleHash::Bytes key_{};
};

// A 206 answer for `ranges` of the file at `path` (whose size is `total`): a lone FileSlice
// with Content-Range for one range, multipart/byteranges with `boundary` for several.
HttpResponse rangeResponse(const std::string& path, uint64_t total,
                           const std::vector<ByteRange>& ranges, const std::string& boundary);

// Percent-encodes a query component (RFC 3986 unreserved characters kept).
std::string urlEncode(std::string_view text);

}  // namespace hfm::localhub
