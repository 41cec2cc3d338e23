// HttpClient against FakeHttpServer: retries, server-requested delays, broken connections,
// truncated bodies, connection reuse, parallel range GETs and the status → errno mapping.
#include "hfm/http/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_http_server.h"

namespace hfm::http {
namespace {

using hfm::testing::FakeHttpServer;
using hfm::testing::FakeResponse;
using hfm::testing::RecordedRequest;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Millisecond delays keep the suite fast; the production defaults are seconds.
ClientOptions fastOptions() {
  ClientOptions options;
  options.connect_timeout = milliseconds(2000);
  options.request_timeout = milliseconds(5000);
  options.idle_timeout = milliseconds(5000);
  options.retry.max_attempts = 4;
  options.retry.initial_backoff = milliseconds(1);
  options.retry.max_backoff = milliseconds(5);
  options.retry.max_server_delay = milliseconds(5000);
  options.retry.max_total = milliseconds(10000);
  return options;
}

Request get(const FakeHttpServer& server, const std::string& path) {
  Request request;
  request.url = server.url() + path;
  return request;
}

int64_t msSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

std::string blob(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + (i * 7) % 26);
  return out;
}

TEST(HttpClientTest, GetReturnsBodyAndCaseInsensitiveHeaders) {
  FakeHttpServer server([](const RecordedRequest& r) {
    return FakeResponse::text(200, "hello " + r.path).withHeader("X-Thing", "v1");
  });
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/a/b"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello /a/b");
  EXPECT_EQ(response->header("x-thing"), "v1");
  EXPECT_EQ(response->header("X-THING"), "v1");
  EXPECT_EQ(response->attempts, 1);
}

TEST(HttpClientTest, SendsMethodHeadersAndBody) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(201, "made"); });
  HttpClient client(fastOptions());
  Request request = get(server, "/api/x");
  request.method = "POST";
  request.headers["Authorization"] = "Bearer hf_secret";
  request.headers["Content-Type"] = "application/x-ndjson";
  request.body = "{\"a\":1}\n{\"b\":2}\n";
  auto response = client.send(request);
  ASSERT_TRUE(response.ok()) << response.error().message();
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer hf_secret");
  EXPECT_EQ(seen[0].header("content-type"), "application/x-ndjson");
  EXPECT_EQ(seen[0].body, request.body);
  EXPECT_EQ(seen[0].header("expect"), "");
}

TEST(HttpClientTest, BodyViewIsSentWithoutCopy) {
  FakeHttpServer server([](const RecordedRequest& r) {
    return FakeResponse::json(200, "{\"got\":" + std::to_string(r.body.size()) + "}");
  });
  HttpClient client(fastOptions());
  const std::string payload = blob(3 << 20);
  Request request = get(server, "/v1/xorbs/default/abc");
  request.method = "POST";
  request.body = "ignored when body_view is set";
  request.body_view = payload;
  auto response = client.send(request);
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->body, "{\"got\":" + std::to_string(payload.size()) + "}");
  EXPECT_EQ(server.requests().at(0).body, payload);

  Request put = get(server, "/empty");
  put.method = "PUT";
  put.body_view = std::string_view();
  ASSERT_TRUE(client.send(put).ok());
  EXPECT_EQ(server.requests().at(1).method, "PUT");
  EXPECT_EQ(server.requests().at(1).header("content-length"), "0");

  Request post = get(server, "/empty-post");
  post.method = "POST";
  post.body_view = std::string_view();
  ASSERT_TRUE(client.send(post).ok());
  EXPECT_EQ(server.requests().at(2).method, "POST");
  EXPECT_EQ(server.requests().at(2).body, "");
}

TEST(HttpClientTest, HeadAndUnfollowedRedirect) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path == "/moved") {
      return FakeResponse::text(302, "").withHeader("Location", "/elsewhere");
    }
    return FakeResponse::text(200, "0123456789").withHeader("X-Linked-Size", "42");
  });
  HttpClient client(fastOptions());
  Request head = get(server, "/file");
  head.method = "HEAD";
  auto response = client.send(head);
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->header("X-Linked-Size"), "42");
  EXPECT_EQ(response->header("Content-Length"), "10");
  EXPECT_TRUE(response->body.empty());

  Request moved = get(server, "/moved");
  moved.method = "HEAD";
  moved.follow_redirects = false;
  auto redirect = client.send(moved);
  ASSERT_TRUE(redirect.ok()) << redirect.error().message();
  EXPECT_EQ(redirect->status, 302);
  EXPECT_EQ(redirect->header("Location"), "/elsewhere");
  EXPECT_EQ(server.requestCount(), 2u);
}

TEST(HttpClientTest, FollowedRedirectKeepsTheFirstHopsHeaders) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path == "/resolve/f") {
      return FakeResponse::text(302, "")
          .withHeader("Location", "/cdn/f")
          .withHeader("X-Linked-Etag", "\"sha256\"");
    }
    return FakeResponse::text(200, "bytes").withHeader("ETag", "\"cdn-md5\"");
  });
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/resolve/f"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->body, "bytes");
  EXPECT_EQ(response->header("ETag"), "\"cdn-md5\"");
  EXPECT_EQ(response->header("X-Linked-Etag"), "");
  EXPECT_EQ(response->redirect_headers.at("x-linked-etag"), "\"sha256\"");
  EXPECT_EQ(response->effective_url, server.url() + "/cdn/f");

  auto direct = client.send(get(server, "/cdn/f"));
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(direct->redirect_headers.empty());
}

TEST(HttpClientTest, RetriesServerErrorsThenSucceeds) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(200, "ok"); });
  server.enqueue(FakeResponse::text(503, "busy"));
  server.enqueue(FakeResponse::text(500, "oops"));
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/r"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->body, "ok");
  EXPECT_EQ(response->attempts, 3);
  EXPECT_EQ(server.requestCount(), 3u);
}

TEST(HttpClientTest, DoesNotRetryOtherClientErrors) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(400, "bad"); });
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/r"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), EINVAL);
  EXPECT_EQ(server.requestCount(), 1u);
}

TEST(HttpClientTest, RetryAfterSecondsIsRespected) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(200, "ok"); });
  server.enqueue(FakeResponse::text(429, "slow down").withHeader("Retry-After", "1"));
  HttpClient client(fastOptions());
  const auto start = Clock::now();
  auto response = client.send(get(server, "/r"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  // The backoff alone would be ≤ 5 ms; the server asked for 1 s.
  EXPECT_GE(msSince(start), 950);
  EXPECT_EQ(response->attempts, 2);
}

TEST(HttpClientTest, RateLimitResetIsRespected) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(200, "ok"); });
  server.enqueue(FakeResponse::text(429, "").withHeader("RateLimit", "\"api\";r=0;t=1"));
  HttpClient client(fastOptions());
  const auto start = Clock::now();
  auto response = client.send(get(server, "/r"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_GE(msSince(start), 950);
}

TEST(HttpClientTest, ServerDelayIsCapped) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(200, "ok"); });
  server.enqueue(FakeResponse::text(503, "").withHeader("Retry-After", "3600"));
  ClientOptions options = fastOptions();
  options.retry.max_server_delay = milliseconds(20);
  HttpClient client(options);
  const auto start = Clock::now();
  auto response = client.send(get(server, "/r"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_LT(msSince(start), 2000);
}

TEST(HttpClientTest, TooManyRequestsAfterRetriesIsEagain) {
  FakeHttpServer server([](const RecordedRequest&) {
    return FakeResponse::text(429, "").withHeader("X-Error-Message", "rate limited");
  });
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/r"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), EAGAIN);
  EXPECT_NE(response.error().message().find("rate limited"), std::string::npos);
  EXPECT_NE(response.error().message().find("after 4 attempts"), std::string::npos);
  EXPECT_EQ(server.requestCount(), 4u);
}

TEST(HttpClientTest, TotalTimeBudgetStopsRetries) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(503, "down"); });
  ClientOptions options = fastOptions();
  options.retry.max_attempts = 1000;
  options.retry.initial_backoff = milliseconds(50);
  options.retry.max_backoff = milliseconds(50);
  options.retry.max_total = milliseconds(300);
  HttpClient client(options);
  const auto start = Clock::now();
  auto response = client.send(get(server, "/r"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), EIO);
  EXPECT_LT(msSince(start), 1500);
  EXPECT_GE(server.requestCount(), 3u);
  EXPECT_LT(server.requestCount(), 30u);
}

TEST(HttpClientTest, ConnectionClosedWithoutResponseIsRetried) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(200, "ok"); });
  FakeResponse reset;
  reset.fault = FakeResponse::Fault::kCloseBeforeResponse;
  server.enqueue(reset);
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/r"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->body, "ok");
  EXPECT_EQ(response->attempts, 2);
}

TEST(HttpClientTest, ResetMidBodyIsDetectedAndRetried) {
  const std::string body = blob(200000);
  FakeHttpServer server([&](const RecordedRequest&) { return FakeResponse::text(200, body); });
  FakeResponse cut = FakeResponse::text(200, body);
  cut.fault = FakeResponse::Fault::kCloseMidBody;
  cut.truncate_at = 70000;
  server.enqueue(cut);
  HttpClient client(fastOptions());
  auto response = client.send(get(server, "/blob"));
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(response->body.size(), body.size());
  EXPECT_EQ(response->body, body);
  EXPECT_EQ(response->attempts, 2);
}

TEST(HttpClientTest, PersistentTruncationIsReportedAsEio) {
  const std::string body = blob(50000);
  FakeHttpServer server([&](const RecordedRequest&) {
    FakeResponse cut = FakeResponse::text(200, body);
    cut.fault = FakeResponse::Fault::kCloseMidBody;
    cut.truncate_at = 10000;
    return cut;
  });
  ClientOptions options = fastOptions();
  options.retry.max_attempts = 2;
  HttpClient client(options);
  auto response = client.send(get(server, "/blob"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), EIO);
  EXPECT_NE(response.error().message().find("truncated"), std::string::npos)
      << response.error().message();
  EXPECT_EQ(server.requestCount(), 2u);
}

TEST(HttpClientTest, StreamingRetryRedeliversFromOffsetZero) {
  const std::string body = blob(300000);
  FakeHttpServer server([&](const RecordedRequest&) { return FakeResponse::text(206, body); });
  FakeResponse cut = FakeResponse::text(206, body);
  cut.fault = FakeResponse::Fault::kCloseMidBody;
  cut.truncate_at = 100000;
  server.enqueue(cut);
  HttpClient client(fastOptions());
  std::string buffer(body.size(), '\0');
  int restarts = 0;
  uint64_t max_end = 0;
  Request request = get(server, "/xorb");
  request.range = ByteRange{1000, 300999};
  auto response = client.sendStreaming(request, [&](uint64_t offset, std::string_view data) {
    if (offset == 0) ++restarts;
    if (offset + data.size() > buffer.size()) return false;
    buffer.replace(offset, data.size(), data);
    max_end = std::max<uint64_t>(max_end, offset + data.size());
    return true;
  });
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_TRUE(response->body.empty());
  EXPECT_EQ(buffer, body);
  EXPECT_EQ(max_end, body.size());
  EXPECT_EQ(response->attempts, 2);
  EXPECT_GE(restarts, 1);
  for (const auto& seen : server.requests()) EXPECT_EQ(seen.header("range"), "bytes=1000-300999");
}

TEST(HttpClientTest, StreamingAbortIsNotRetried) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::text(200, blob(1000)); });
  HttpClient client(fastOptions());
  auto response =
      client.sendStreaming(get(server, "/x"), [](uint64_t, std::string_view) { return false; });
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), ECANCELED);
  EXPECT_EQ(server.requestCount(), 1u);
}

TEST(HttpClientTest, StreamingErrorKeepsErrorBody) {
  FakeHttpServer server(
      [](const RecordedRequest&) { return FakeResponse::json(403, R"({"error":"expired url"})"); });
  HttpClient client(fastOptions());
  bool called = false;
  auto response = client.sendStreaming(get(server, "/x"), [&](uint64_t, std::string_view) {
    called = true;
    return true;
  });
  ASSERT_FALSE(response.ok());
  EXPECT_FALSE(called);
  EXPECT_EQ(response.error().code(), EACCES);
  EXPECT_NE(response.error().message().find("expired url"), std::string::npos);
}

TEST(HttpClientTest, KeepAliveReusesOneConnection) {
  FakeHttpServer server([](const RecordedRequest& r) { return FakeResponse::text(200, r.path); });
  HttpClient client(fastOptions());
  for (int i = 0; i < 20; ++i) {
    auto response = client.send(get(server, "/n/" + std::to_string(i)));
    ASSERT_TRUE(response.ok()) << response.error().message();
    EXPECT_EQ(response->body, "/n/" + std::to_string(i));
  }
  EXPECT_EQ(server.connectionCount(), 1u);
  for (const auto& seen : server.requests()) EXPECT_EQ(seen.connection_id, 1u);
}

TEST(HttpClientTest, ParallelRangeGets) {
  const std::string data = blob(64 * 1024);
  FakeHttpServer server([&](const RecordedRequest& r) {
    // "bytes=S-E"
    const std::string range = r.header("range");
    const auto dash = range.find('-');
    const std::size_t start = std::stoul(range.substr(6, dash - 6));
    const std::size_t end = std::stoul(range.substr(dash + 1));
    FakeResponse response = FakeResponse::text(206, data.substr(start, end - start + 1));
    response.delay = milliseconds(150);
    return response;
  });
  HttpClient client(fastOptions());
  std::vector<Request> requests;
  for (std::size_t i = 0; i < 8; ++i) {
    Request request = get(server, "/xorbs/x");
    request.range = ByteRange{i * 8192, i * 8192 + 8191};
    requests.push_back(request);
  }
  const auto start = Clock::now();
  auto results = client.sendAll(requests);
  const auto elapsed = msSince(start);
  ASSERT_EQ(results.size(), 8u);
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].error().message();
    EXPECT_EQ(results[i]->status, 206);
    EXPECT_EQ(results[i]->body, data.substr(i * 8192, 8192));
  }
  // Sequentially this would take ≥ 8 × 150 ms.
  EXPECT_LT(elapsed, 8 * 150 / 2);
  EXPECT_GE(server.connectionCount(), 2u);
}

TEST(HttpClientTest, ParallelCallersShareTheClient) {
  FakeHttpServer server([](const RecordedRequest& r) { return FakeResponse::text(200, r.path); });
  HttpClient client(fastOptions());
  std::vector<std::jthread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
        auto response = client.send(get(server, path));
        if (!response.ok() || response->body != path) ++failures;
      }
    });
  }
  threads.clear();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server.requestCount(), 40u);
  // Pooled handles keep their connections: at most one per concurrent caller.
  EXPECT_LE(server.connectionCount(), 4u);
}

TEST(HttpClientTest, StatusMapping) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path == "/404") {
      return FakeResponse::text(404, "")
          .withHeader("X-Error-Code", "RepoNotFound")
          .withHeader("X-Error-Message", "Repository not found");
    }
    if (r.path == "/401") return FakeResponse::json(401, R"({"error":"Invalid credentials"})");
    if (r.path == "/403") return FakeResponse::text(403, "forbidden");
    if (r.path == "/416") return FakeResponse::text(416, "");
    if (r.path == "/413") return FakeResponse::text(413, "");
    return FakeResponse::text(418, "teapot");
  });
  HttpClient client(fastOptions());
  auto not_found = client.send(get(server, "/404"));
  ASSERT_FALSE(not_found.ok());
  EXPECT_EQ(not_found.error().code(), ENOENT);
  EXPECT_NE(not_found.error().message().find("RepoNotFound"), std::string::npos);
  EXPECT_NE(not_found.error().message().find("Repository not found"), std::string::npos);
  EXPECT_NE(not_found.error().message().find("GET http://127.0.0.1"), std::string::npos);

  auto unauthorized = client.send(get(server, "/401"));
  EXPECT_EQ(unauthorized.error().code(), EACCES);
  EXPECT_NE(unauthorized.error().message().find("Invalid credentials"), std::string::npos);
  EXPECT_EQ(client.send(get(server, "/403")).error().code(), EACCES);
  EXPECT_EQ(client.send(get(server, "/416")).error().code(), kRangeNotSatisfiable);
  EXPECT_EQ(client.send(get(server, "/413")).error().code(), ENOSPC);
  EXPECT_EQ(client.send(get(server, "/418")).error().code(), EIO);

  auto raw = client.exchange(get(server, "/404"));
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->status, 404);
}

TEST(HttpClientTest, ConnectionRefusedIsEioAfterRetries) {
  std::string url;
  {
    FakeHttpServer closed;
    url = closed.url() + "/gone";
  }
  ClientOptions options = fastOptions();
  options.retry.max_attempts = 3;
  HttpClient client(options);
  Request request;
  request.url = url + "?sig=secret";
  auto response = client.send(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), EIO);
  EXPECT_NE(response.error().message().find("ECONNREFUSED"), std::string::npos)
      << response.error().message();
  EXPECT_NE(response.error().message().find("after 3 attempts"), std::string::npos);
  EXPECT_EQ(response.error().message().find("secret"), std::string::npos);
}

TEST(HttpClientTest, SlowResponseTimesOutAndIsRetried) {
  FakeHttpServer server([](const RecordedRequest&) {
    FakeResponse slow = FakeResponse::text(200, "late");
    slow.delay = milliseconds(600);
    return slow;
  });
  ClientOptions options = fastOptions();
  options.retry.max_attempts = 2;
  HttpClient client(options);
  Request request = get(server, "/slow");
  request.timeout = milliseconds(150);
  const auto start = Clock::now();
  auto response = client.send(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), EIO);
  EXPECT_NE(response.error().message().find("ETIMEDOUT"), std::string::npos)
      << response.error().message();
  EXPECT_LT(msSince(start), 1000);
  EXPECT_TRUE(server.waitForRequests(2, milliseconds(2000)));
}

}  // namespace
}  // namespace hfm::http
