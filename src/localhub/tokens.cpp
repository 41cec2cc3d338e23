#include "hfm/localhub/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <nlohmann/json.hpp>
#include <utility>

#include "hfm/localhub/base64.h"

namespace hfm::localhub {
namespace {

std::string hmacSha256(const std::string& key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &out_len);
  return {reinterpret_cast<const char*>(out.data()), out_len};
}

}  // namespace

XetTokens::XetTokens(std::string secret, int64_t ttl_secs)
    : secret_(std::move(secret)), ttl_secs_(ttl_secs) {}

std::string XetTokens::issue(const std::string& user, const std::string& resource, bool write,
                             int64_t now) const {
  nlohmann::json payload = {{"u", user}, {"r", resource}, {"w", write}, {"e", now + ttl_secs_}};
  std::string encoded = base64UrlEncode(payload.dump());
  return encoded + "." + base64UrlEncode(hmacSha256(secret_, encoded));
}

TokenCheck XetTokens::verify(std::string_view token, int64_t now, XetTokenClaims* claims) const {
  auto dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= token.size()) {
    return TokenCheck::kMalformed;
  }
  std::string_view encoded = token.substr(0, dot);
  auto mac = base64UrlDecode(token.substr(dot + 1));
  auto payload_text = base64UrlDecode(encoded);
  if (!mac || !payload_text) return TokenCheck::kMalformed;
  std::string expected = hmacSha256(secret_, encoded);
  if (mac->size() != expected.size() ||
      CRYPTO_memcmp(mac->data(), expected.data(), expected.size()) != 0) {
    return TokenCheck::kBadSignature;
  }
  auto payload = nlohmann::json::parse(*payload_text, nullptr, /*allow_exceptions=*/false);
  if (!payload.is_object() || !payload.contains("u") || !payload["u"].is_string() ||
      !payload.contains("r") || !payload["r"].is_string() || !payload.contains("w") ||
      !payload["w"].is_boolean() || !payload.contains("e") || !payload["e"].is_number_integer()) {
    return TokenCheck::kMalformed;
  }
  int64_t exp = payload["e"].get<int64_t>();
  if (now >= exp) return TokenCheck::kExpired;
  if (claims != nullptr) {
    claims->user = payload["u"].get<std::string>();
    claims->resource = payload["r"].get<std::string>();
    claims->write = payload["w"].get<bool>();
    claims->expires_at = exp;
  }
  return TokenCheck::kValid;
}

}  // namespace hfm::localhub
