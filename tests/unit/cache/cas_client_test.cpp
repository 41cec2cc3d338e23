// Tests of hfm::xet::CasClient against the scripted loopback server. (They live with the cache
// tests because this test binary links hfm_http and the fake server; xet_test does not.)
#include "hfm/xet/cas_client.h"

#include <gtest/gtest.h>

#include <atomic>

#include "fake_http_server.h"

namespace hfm::xet {
namespace {

using hfm::testing::FakeHttpServer;
using hfm::testing::FakeResponse;
using hfm::testing::RecordedRequest;

const std::string kFile = std::string(64, 'f');
const std::string kXorb = std::string(63, '0') + "9";

class FakeTokens : public http::XetTokenProvider {
 public:
  explicit FakeTokens(std::string cas_url) : cas_url_(std::move(cas_url)) {}
  Result<http::XetCredentials> get(bool force_refresh) override {
    if (force_refresh) ++refreshes_;
    return http::XetCredentials{cas_url_, "tok" + std::to_string(refreshes_.load() + 1), 0};
  }
  std::atomic<int> refreshes_{0};

 private:
  std::string cas_url_;
};

std::string planJson(const std::string& url) {
  return R"({"offset_into_first_range": 5,
    "terms": [{"hash": ")" +
         kXorb + R"(", "unpacked_length": 300, "range": {"start": 0, "end": 2}}],
    "xorbs": {")" +
         kXorb + R"(": [{"url": ")" + url + R"(", "ranges": [
      {"chunks": {"start": 0, "end": 2}, "bytes": {"start": 0, "end": 99}}]}]}})";
}

std::string planJsonV1(const std::string& url) {
  return R"({"offset_into_first_range": 0,
    "terms": [{"hash": ")" +
         kXorb + R"(", "unpacked_length": 300, "range": {"start": 0, "end": 2}}],
    "fetch_info": {")" +
         kXorb + R"(": [{"url": ")" + url + R"(",
      "range": {"start": 0, "end": 2}, "url_range": {"start": 0, "end": 99}}]}})";
}

struct Fixture {
  FakeHttpServer server;
  FakeTokens tokens{server.url()};
  http::HttpClient http{[] {
    http::ClientOptions o;
    o.retry.max_attempts = 1;
    return o;
  }()};
  CasClient cas{http, tokens};
  MerkleHash file = MerkleHash::fromHex(kFile).value();
};

TEST(CasClientTest, V2PlanCarriesAuthAndRange) {
  Fixture f;
  f.server.setHandler([&](const RecordedRequest& r) {
    if (r.path == "/v2/reconstructions/" + kFile)
      return FakeResponse::json(200, planJson("http://x"));
    return FakeResponse::text(404, "no");
  });
  auto plan = f.cas.getReconstruction(f.file, InclusiveByteRange{10, 99});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->version, 2);
  EXPECT_EQ(plan->offset_into_first_range, 5u);
  ASSERT_EQ(f.server.requestCount(), 1u);
  const auto req = f.server.requests()[0];
  EXPECT_EQ(req.header("authorization"), "Bearer tok1");
  EXPECT_EQ(req.header("range"), "bytes=10-99");
}

TEST(CasClientTest, FallsBackToV1AndRemembers) {
  Fixture f;
  f.server.setHandler([&](const RecordedRequest& r) {
    if (r.path == "/v1/reconstructions/" + kFile)
      return FakeResponse::json(200, planJsonV1("http://x"));
    return FakeResponse::text(r.path.rfind("/v2/", 0) == 0 ? 501 : 404, "no");
  });
  auto plan = f.cas.getReconstruction(f.file, std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->version, 1);
  EXPECT_EQ(f.server.requestCount(), 2u);
  EXPECT_TRUE(f.server.requests()[1].header("range").empty());
  ASSERT_TRUE(f.cas.getReconstruction(f.file, std::nullopt).ok());
  EXPECT_EQ(f.server.requestCount(), 3u);  // straight to V1
  EXPECT_EQ(f.server.requests()[2].path, "/v1/reconstructions/" + kFile);
}

TEST(CasClientTest, UnknownFileIsEnoentAfterBothVersions) {
  Fixture f;
  auto plan = f.cas.getReconstruction(f.file, std::nullopt);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code(), ENOENT);
  EXPECT_EQ(f.server.requestCount(), 2u);
}

TEST(CasClientTest, RefreshesCredentialsOn401) {
  Fixture f;
  f.server.enqueue(FakeResponse::text(401, "expired"));
  f.server.setHandler(
      [&](const RecordedRequest&) { return FakeResponse::json(200, planJson("http://x")); });
  auto plan = f.cas.getReconstruction(f.file, std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(f.tokens.refreshes_.load(), 1);
  ASSERT_EQ(f.server.requestCount(), 2u);
  EXPECT_EQ(f.server.requests()[1].header("authorization"), "Bearer tok2");
  // A second 401 after the refresh is an error, not a loop.
  f.server.setHandler([&](const RecordedRequest&) { return FakeResponse::text(401, "no"); });
  auto denied = f.cas.getReconstruction(f.file, std::nullopt);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code(), EACCES);
}

TEST(CasClientTest, RangePastEofIsEmptyPlanAndGarbageIsEio) {
  Fixture f;
  f.server.enqueue(FakeResponse::text(416, "range"));
  auto plan = f.cas.getReconstruction(f.file, InclusiveByteRange{1000, 2000});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->terms.empty());
  f.server.enqueue(FakeResponse::json(200, R"({"terms": 3})"));
  auto bad = f.cas.getReconstruction(f.file, std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EIO);
}

FakeResponse multipart(const std::string& boundary, std::string body) {
  FakeResponse r;
  r.status = 206;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "multipart/byteranges; boundary=" + boundary);
  return r;
}

FetchEntry twoRangeEntry(const std::string& url) {
  return FetchEntry{url, {{{0, 1}, {10, 19}}, {{3, 4}, {40, 47}}}};
}

TEST(CasClientTest, FetchSendsExactRangeWithoutAuthAndParsesMultipart) {
  Fixture f;
  const std::string a(10, 'a');
  const std::string b = "bbbbbbbb";
  const std::string body =
      "--SEP\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-19/100\r\n\r\n" +
      a + "\r\n--SEP\r\nContent-Range: bytes 40-47/100\r\n\r\n" + b + "\r\n--SEP--\r\n";
  f.server.setHandler([&](const RecordedRequest&) { return multipart("SEP", body); });
  auto parts = f.cas.fetch(twoRangeEntry(f.server.url() + "/xorb?sig=1"));
  ASSERT_TRUE(parts.ok()) << parts.error().message();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0], a);
  EXPECT_EQ((*parts)[1], b);
  const auto req = f.server.requests()[0];
  EXPECT_EQ(req.header("range"), "bytes=10-19,40-47");
  EXPECT_TRUE(req.header("authorization").empty()) << req.header("authorization");
  EXPECT_EQ(req.queryParam("sig"), "1");
}

TEST(CasClientTest, FetchSingleRangeAndErrors) {
  Fixture f;
  const FetchEntry one{f.server.url() + "/x", {{{0, 1}, {10, 19}}}};
  f.server.enqueue(
      FakeResponse::text(206, "0123456789").withHeader("Content-Range", "bytes 10-19/100"));
  auto parts = f.cas.fetch(one);
  ASSERT_TRUE(parts.ok()) << parts.error().message();
  EXPECT_EQ((*parts)[0], "0123456789");
  // Body shorter than its Content-Range.
  f.server.enqueue(FakeResponse::text(206, "01234").withHeader("Content-Range", "bytes 10-19/100"));
  EXPECT_EQ(f.cas.fetch(one).error().code(), EIO);
  // Wrong range answered.
  f.server.enqueue(
      FakeResponse::text(206, "0123456789").withHeader("Content-Range", "bytes 20-29/100"));
  EXPECT_EQ(f.cas.fetch(one).error().code(), EIO);
  // Multipart with a part cut short.
  f.server.enqueue(multipart("S", "--S\r\nContent-Range: bytes 10-19/100\r\n\r\n0123\r\n--S--"));
  EXPECT_EQ(f.cas.fetch(one).error().code(), EIO);
  // Expired URL.
  f.server.enqueue(FakeResponse::text(403, "expired"));
  auto expired = f.cas.fetch(one);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().code(), kFetchUrlExpired);
}

}  // namespace
}  // namespace hfm::xet
