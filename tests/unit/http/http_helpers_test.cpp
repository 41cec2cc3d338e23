// Pure helpers of the http layer: Link parsing, server delays, encoding, error messages.
#include <gtest/gtest.h>

#include "hfm/http/http_client.h"

namespace hfm::http {
namespace {

using std::chrono::milliseconds;

TEST(HttpHelpersTest, NextLinkFindsRelNext) {
  EXPECT_EQ(nextLink(R"(<https://hub.example/api/x?cursor=eyJ%3D&limit=2>; rel="next")"),
            "https://hub.example/api/x?cursor=eyJ%3D&limit=2");
  EXPECT_EQ(nextLink(R"(<https://a/first>; rel="prev", <https://a/second>; rel="next")"),
            "https://a/second");
  EXPECT_EQ(nextLink("<https://a/n>; rel=next"), "https://a/n");
  EXPECT_EQ(nextLink(R"(<https://a/n>; rel="next last")"), "https://a/n");
  EXPECT_FALSE(nextLink(R"(<https://a/last>; rel="last")").has_value());
  EXPECT_FALSE(nextLink("").has_value());
  EXPECT_FALSE(nextLink(R"(<https://a/nextpage>; rel="prev")").has_value());
}

TEST(HttpHelpersTest, LinkWithRel) {
  const std::string header =
      R"(<https://hub.example/api/buckets/a/b/xet-read-token>; rel="xet-auth", <https://x/n>; rel="next")";
  EXPECT_EQ(linkWithRel(header, "xet-auth"), "https://hub.example/api/buckets/a/b/xet-read-token");
  EXPECT_EQ(linkWithRel(header, "next"), "https://x/n");
  EXPECT_FALSE(linkWithRel(header, "xet").has_value());
}

TEST(HttpHelpersTest, ServerRetryDelay) {
  Headers headers;
  EXPECT_FALSE(serverRetryDelay(headers).has_value());
  headers["Retry-After"] = "7";
  EXPECT_EQ(serverRetryDelay(headers), milliseconds(7000));
  headers["ratelimit"] = "\"api\";r=0;t=42";
  EXPECT_EQ(serverRetryDelay(headers), milliseconds(42000));
  Headers dated;
  dated["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT";  // in the past: retry now
  EXPECT_EQ(serverRetryDelay(dated), milliseconds(0));
  Headers junk;
  junk["Retry-After"] = "soon";
  EXPECT_FALSE(serverRetryDelay(junk).has_value());
}

TEST(HttpHelpersTest, PercentEncode) {
  EXPECT_EQ(percentEncode("dir/a b#c?.bin"), "dir/a%20b%23c%3F.bin");
  EXPECT_EQ(percentEncode("refs/pr/1", true), "refs%2Fpr%2F1");
  EXPECT_EQ(percentEncode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(percentEncode("A-Z_a.z~0"), "A-Z_a.z~0");
}

TEST(HttpHelpersTest, UrlForLogDropsQuery) {
  EXPECT_EQ(urlForLog("https://s3/x?X-Amz-Signature=abc"), "https://s3/x");
  EXPECT_EQ(urlForLog("https://h/p#frag"), "https://h/p");
  EXPECT_EQ(urlForLog("https://h/p"), "https://h/p");
}

TEST(HttpHelpersTest, ByteRangeHeader) {
  EXPECT_EQ((ByteRange{0, 99}).headerValue(), "bytes=0-99");
  EXPECT_EQ((ByteRange{5, std::nullopt}).headerValue(), "bytes=5-");
}

TEST(HttpHelpersTest, StatusErrorMessages) {
  Response response;
  response.status = 404;
  response.body = R"({"errors":[{"message":"no such bucket"}]})";
  response.headers["x-request-id"] = "req-1";
  Error error = statusError(response, "GET https://hub.example/api/buckets/a/b");
  EXPECT_EQ(error.code(), ENOENT);
  EXPECT_EQ(error.message(),
            "GET https://hub.example/api/buckets/a/b: HTTP 404: no such bucket [request id req-1]");

  Response plain;
  plain.status = 500;
  plain.body = "token hf_abcdefgh leaked";
  Error server_error = statusError(plain, "GET x");
  EXPECT_EQ(server_error.code(), EIO);
  EXPECT_EQ(server_error.message().find("hf_abcdefgh"), std::string::npos);
}

TEST(HttpHelpersTest, ErrnoForStatus) {
  EXPECT_EQ(errnoForStatus(404), ENOENT);
  EXPECT_EQ(errnoForStatus(401), EACCES);
  EXPECT_EQ(errnoForStatus(403), EACCES);
  EXPECT_EQ(errnoForStatus(416), kRangeNotSatisfiable);
  EXPECT_EQ(errnoForStatus(429), EAGAIN);
  EXPECT_EQ(errnoForStatus(507), ENOSPC);
  EXPECT_EQ(errnoForStatus(502), EIO);
}

}  // namespace
}  // namespace hfm::http
