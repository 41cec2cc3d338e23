#include "hfm/localhub/cas_http.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>

#include "hfm/util/hex.h"
#include "hfm/xet/merkle_hash.h"

namespace hfm::localhub {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parseU64(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Result<std::vector<ByteRangeSpec>> parseRangeHeader(std::string_view value) {
  value = trim(value);
  constexpr std::string_view kPrefix = "bytes=";
  if (value.size() < kPrefix.size() ||
      !std::equal(kPrefix.begin(), kPrefix.end(), value.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return Error::invalid("Range header must start with \"bytes=\"");
  }
  value.remove_prefix(kPrefix.size());
  std::vector<ByteRangeSpec> out;
  while (true) {
    size_t comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      return Error::invalid("malformed range \"" + std::string(item) + "\"");
    }
    std::string_view a = trim(item.substr(0, dash));
    std::string_view b = trim(item.substr(dash + 1));
    ByteRangeSpec spec;
    if (a.empty()) {
      auto n = parseU64(b);
      if (!n || *n == 0)
        return Error::invalid("malformed suffix range \"" + std::string(item) + "\"");
      spec.suffix = *n;
    } else {
      auto first = parseU64(a);
      if (!first) return Error::invalid("malformed range \"" + std::string(item) + "\"");
      spec.first = *first;
      if (!b.empty()) {
        auto last = parseU64(b);
        if (!last || *last < *first) {
          return Error::invalid("malformed range \"" + std::string(item) + "\"");
        }
        spec.last = *last;
      }
    }
    out.push_back(spec);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

std::string formatRangeHeader(const std::vector<ByteRange>& ranges) {
  std::string out = "bytes=";
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ranges[i].first) + "-" + std::to_string(ranges[i].last);
  }
  return out;
}

std::string urlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string FetchUrlSigner::signature(const std::string& xorb_hex, const std::string& signed_range,
                                      const std::string& expires) const {
  // Keyed BLAKE3 is a MAC (a PRF under a secret key) and, unlike OpenSSL 3's HMAC(), costs no
  // algorithm fetch per call — this runs on every xorb fetch.
  std::string message = "GET\n" + xorb_hex + "\n" + signed_range + "\n" + expires;
  return util::toHex(
      xet::blake3Keyed(key_,
                       std::span(reinterpret_cast<const uint8_t*>(message.data()), message.size()))
          .span());
}

std::string FetchUrlSigner::signQuery(const std::string& xorb_hex,
                                      const std::vector<ByteRange>& ranges,
                                      int64_t expires_at) const {
  std::string range = formatRangeHeader(ranges);
  std::string expires = std::to_string(expires_at);
  return "X-Xet-Signed-Range=" + urlEncode(range) + "&X-Xet-Expires=" + expires +
         "&X-Xet-Signature=" + signature(xorb_hex, range, expires);
}

std::variant<std::vector<ByteRange>, FetchUrlSigner::Denied> FetchUrlSigner::authorize(
    const HttpRequest& request, const std::string& xorb_hex, int64_t now) const {
  if (request.headers.count("authorization")) {
    return Denied{403, "signed fetch URLs must be used without an Authorization header"};
  }
  std::string signed_range = request.queryParam("X-Xet-Signed-Range");
  std::string expires = request.queryParam("X-Xet-Expires");
  std::string sig = request.queryParam("X-Xet-Signature");
  if (signed_range.empty() || expires.empty() || sig.empty()) {
    return Denied{403, "fetch URL is not signed"};
  }
  std::string expected = signature(xorb_hex, signed_range, expires);
  if (sig.size() != expected.size() ||
      CRYPTO_memcmp(sig.data(), expected.data(), expected.size()) != 0) {
    return Denied{403, "bad fetch URL signature"};
  }
  auto expires_at = parseU64(expires);
  if (!expires_at || static_cast<int64_t>(*expires_at) < now) {
    return Denied{403, "fetch URL expired"};
  }
  auto allowed = parseRangeHeader(signed_range);
  if (!allowed) return Denied{403, "bad signed range"};
  std::string range_header = request.header("range");
  if (range_header.empty())
    return Denied{403, "Range header required (must match the signed range)"};
  auto requested = parseRangeHeader(range_header);
  if (!requested) return Denied{403, "Range header does not match the signed range"};
  std::vector<ByteRange> out;
  for (const auto& r : *requested) {
    bool found = !r.suffix && r.last &&
                 std::any_of(allowed->begin(), allowed->end(), [&](const ByteRangeSpec& a) {
                   return a.first == r.first && a.last == r.last;
                 });
    if (!found) return Denied{403, "Range header does not match the signed range"};
    out.push_back({r.first, *r.last});
  }
  return out;
}

HttpResponse rangeResponse(const std::string& path, uint64_t total,
                           const std::vector<ByteRange>& ranges, const std::string& boundary) {
  HttpResponse r;
  r.status = 206;
  auto content_range = [&](const ByteRange& range) {
    return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" +
           std::to_string(total);
  };
  if (ranges.size() == 1) {
    r.headers["Content-Type"] = "application/octet-stream";
    r.headers["Content-Range"] = content_range(ranges[0]);
    r.body.emplace_back(FileSlice{path, ranges[0].first, ranges[0].length()});
    return r;
  }
  r.headers["Content-Type"] = "multipart/byteranges; boundary=" + boundary;
  for (size_t i = 0; i < ranges.size(); ++i) {
    // The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    std::string head =
        (i == 0 ? "--" : "\r\n--") + boundary +
        "\r\nContent-Type: application/octet-stream\r\nContent-Range: " + content_range(ranges[i]) +
        "\r\n\r\n";
    r.body.emplace_back(std::move(head));
    r.body.emplace_back(FileSlice{path, ranges[i].first, ranges[i].length()});
  }
  r.body.emplace_back("\r\n--" + boundary + "--\r\n");
  return r;
}

}  // namespace hfm::localhub
