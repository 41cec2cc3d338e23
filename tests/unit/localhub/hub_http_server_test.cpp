// HttpServer (libmicrohttpd) on its own: body pieces and file slices, HEAD, percent-decoding
// and query parsing, request-body limits (with and without Content-Length), keep-alive, and
// each injected fault as a client sees it.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hub_test_support.h"

namespace hfm::localhub::testing {
namespace {

using nlohmann::json;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hfm-http-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = (dir_ / "data.bin").string();
    std::ofstream out(file_, std::ios::binary);
    for (int i = 0; i < 100000; ++i) out.put(static_cast<char>('a' + i % 26));
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start(const ServerOptions& options = {}) {
    auto s = HttpServer::start(options, [this](const HttpRequest& r) { return answer(r); });
    ASSERT_TRUE(s.ok()) << s.error().message();
    server_ = std::move(*s);
  }

  HttpResponse answer(const HttpRequest& r) {
    if (r.path == "/slice") {
      HttpResponse resp;
      resp.body.emplace_back(FileSlice{file_, 10, 50000});
      return resp;
    }
    if (r.path == "/pieces") {
      HttpResponse resp;
      resp.body.emplace_back(std::string("<"));
      resp.body.emplace_back(FileSlice{file_, 0, 26});
      resp.body.emplace_back(std::string("|"));
      resp.body.emplace_back(FileSlice{file_, 99990, 10});
      resp.body.emplace_back(std::string(">"));
      return resp;
    }
    json q = json::object();
    for (const auto& [k, v] : r.query) q[k] = v;
    return HttpResponse::json(200, json{{"method", r.method},
                                        {"path", r.path},
                                        {"raw", r.raw_path},
                                        {"query", q},
                                        {"body_size", r.body.size()}}
                                       .dump());
  }

  std::string url(const std::string& path) const { return server_->baseUrl() + path; }

  std::filesystem::path dir_;
  std::string file_;
  std::unique_ptr<HttpServer> server_;
};

std::string fileBytes(const std::string& path, size_t off, size_t len) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(off));
  std::string s(len, '\0');
  in.read(s.data(), static_cast<std::streamsize>(len));
  return s;
}

TEST_F(HttpServerTest, ServesFileSlicesAndPieces) {
  start();
  EXPECT_EQ(server_->baseUrl().rfind("http://127.0.0.1:", 0), 0u);
  EXPECT_NE(server_->port(), 0);
  auto slice = http("GET", url("/slice"));
  ASSERT_EQ(slice.status, 200);
  EXPECT_EQ(slice.body, fileBytes(file_, 10, 50000));
  auto pieces = http("GET", url("/pieces"));
  EXPECT_EQ(pieces.body, "<" + fileBytes(file_, 0, 26) + "|" + fileBytes(file_, 99990, 10) + ">");
  EXPECT_EQ(pieces.header("content-length"), "39");
  EXPECT_EQ(pieces.header("x-request-id").size(), 16u);
  EXPECT_NE(pieces.header("x-request-id"), slice.header("x-request-id"));
  auto head = http("HEAD", url("/slice"));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "50000");
  EXPECT_TRUE(head.body.empty());
}

TEST_F(HttpServerTest, DecodesPathAndQuery) {
  start();
  auto r = http("GET", url("/a%20b/c%2Fd?x=1&y=hello+world&z=%26%3D&flag&e[]=1"));
  auto j = json::parse(r.body);
  EXPECT_EQ(j["path"], "/a b/c/d");
  EXPECT_EQ(j["raw"], "/a%20b/c%2Fd");
  EXPECT_EQ(j["query"]["x"], "1");
  EXPECT_EQ(j["query"]["y"], "hello world");
  EXPECT_EQ(j["query"]["z"], "&=");
  EXPECT_EQ(j["query"]["flag"], "");
  EXPECT_EQ(j["query"]["e[]"], "1");
  EXPECT_EQ(http("GET", url("/bad%2")).status, 400);
  EXPECT_EQ(http("GET", url("/ok?x=%zz")).status, 400);
  auto post = http("POST", url("/p"), std::string(1000, 'x'));
  EXPECT_EQ(json::parse(post.body)["body_size"], 1000);
}

TEST_F(HttpServerTest, LimitsRequestBodies) {
  start();
  EXPECT_EQ(maxBodyBytes("POST", "/v1/xorbs/default/ab"), 80ull << 20);
  EXPECT_EQ(maxBodyBytes("POST", "/api/buckets/a/b/batch"), 8ull << 20);
  auto big = http("POST", url("/api/x"), std::string((8 << 20) + 1, 'x'));
  EXPECT_EQ(big.status, 413);
  // Chunked upload (no Content-Length) is cut off while streaming.
  std::string chunked((8 << 20) + 100, 'y');
  auto r = http("POST", url("/api/x"), chunked, {"Transfer-Encoding: chunked"});
  EXPECT_EQ(r.status, 413);
  auto ok = http("POST", url("/api/x"), std::string(8 << 20, 'z'));
  EXPECT_EQ(ok.status, 200);
}

TEST_F(HttpServerTest, KeepsConnectionsAlive) {
  start();
  CURL* c = curl_easy_init();
  std::string sink;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &collectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  long connects = -1;
  for (int i = 0; i < 3; ++i) {
    curl_easy_setopt(c, CURLOPT_URL, url("/slice").c_str());
    ASSERT_EQ(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    if (i > 0) {
      EXPECT_EQ(connects, 0) << "request " << i << " opened a new connection";
    }
  }
  curl_easy_cleanup(c);
}

TEST_F(HttpServerTest, ListensOnIpv6Loopback) {
  ServerOptions o;
  o.host = "::1";
  auto s = HttpServer::start(o, [](const HttpRequest&) { return HttpResponse::text(200, "v6"); });
  if (!s.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << s.error().message();
  EXPECT_EQ((*s)->baseUrl().rfind("http://[::1]:", 0), 0u);
  EXPECT_EQ(http("GET", (*s)->baseUrl() + "/").body, "v6");
  (*s)->stop();
}

TEST_F(HttpServerTest, RejectsBadHostAndFaultSpecs) {
  ServerOptions o;
  o.host = "not-an-ip";
  EXPECT_FALSE(HttpServer::start(o, [](const HttpRequest&) { return HttpResponse{}; }).ok());
  EXPECT_FALSE(FaultOptions::parseKinds("5xx,boom", 0.5, 0).ok());
  EXPECT_FALSE(FaultOptions::parseKinds("5xx", 1.5, 0).ok());
  EXPECT_FALSE(FaultOptions::parseKinds("5xx", 0.5, -1).ok());
  auto all = FaultOptions::parseKinds("", 0.2, 0);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->error_5xx && all->reset && all->slow && all->truncate);
}

TEST_F(HttpServerTest, InjectsServerErrors) {
  ServerOptions o;
  o.faults = *FaultOptions::parseKinds("5xx", 1.0, 0);
  start(o);
  for (int i = 0; i < 10; ++i) {
    auto r = http("GET", url("/slice"));
    EXPECT_TRUE(r.status == 500 || r.status == 502 || r.status == 503) << r.status;
  }
}

TEST_F(HttpServerTest, InjectsResets) {
  ServerOptions o;
  o.faults = *FaultOptions::parseKinds("reset", 1.0, 0);
  start(o);
  auto r = http("GET", url("/slice"));
  EXPECT_EQ(r.curl, CURLE_GOT_NOTHING) << curl_easy_strerror(r.curl);
}

TEST_F(HttpServerTest, InjectsTruncatedBodies) {
  ServerOptions o;
  o.faults = *FaultOptions::parseKinds("truncate", 1.0, 0);
  start(o);
  auto r = http("GET", url("/slice"));
  EXPECT_EQ(r.curl, CURLE_PARTIAL_FILE) << curl_easy_strerror(r.curl);
  EXPECT_LT(r.body.size(), 50000u);
  EXPECT_EQ(r.header("content-length"), "50000");
}

TEST_F(HttpServerTest, AddsLatencyAndSlowAnswers) {
  ServerOptions o;
  o.faults = *FaultOptions::parseKinds("slow", 1.0, 100);
  start(o);
  auto t0 = std::chrono::steady_clock::now();
  auto r = http("GET", url("/slice"));
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(ms.count(), 300);  // 100 ms latency + at least 200 ms slow fault
}

}  // namespace
}  // namespace hfm::localhub::testing
