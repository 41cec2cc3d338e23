// HubClient against FakeHttpServer playing the Hub: URLs and bodies it sends, what it parses,
// pagination, subfolder handling and error mapping.
#include "hfm/hub/hub_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fake_http_server.h"
#include "hfm/hub/xet_token_cache.h"

namespace hfm::hub {
namespace {

using hfm::testing::FakeHttpServer;
using hfm::testing::FakeResponse;
using hfm::testing::RecordedRequest;
using nlohmann::json;
using std::chrono::milliseconds;

const std::string kHashA(64, 'a');
const std::string kHashB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::shared_ptr<http::HttpClient> fastHttp() {
  http::ClientOptions options;
  options.retry.max_attempts = 3;
  options.retry.initial_backoff = milliseconds(1);
  options.retry.max_backoff = milliseconds(2);
  options.request_timeout = milliseconds(5000);
  return std::make_shared<http::HttpClient>(options);
}

std::shared_ptr<const Credentials> tokenCredentials(const std::string& token) {
  CredentialOptions options;
  options.hf_token = token;
  return std::make_shared<const Credentials>(
      Credentials::resolve(options, [](const std::string&) { return std::nullopt; }));
}

HubClient bucketClient(
    const FakeHttpServer& server, const std::string& id = "ns/b",
    std::shared_ptr<const Credentials> credentials = tokenCredentials("hf_test")) {
  HubOptions options;
  options.endpoint = server.url() + "/";  // trailing '/' is trimmed
  return {options, parseBucketId(id).value(), std::move(credentials), fastHttp()};
}

HubClient repoClient(const FakeHttpServer& server, const std::string& id, const std::string& rev) {
  HubOptions options;
  options.endpoint = server.url();
  return {options, parseRepoId(id, rev).value(), tokenCredentials("hf_test"), fastHttp()};
}

TEST(HubClientTest, BucketInfo) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.method == "GET" && r.path == "/api/buckets/ns/b") {
      return FakeResponse::json(200,
                                R"({"id":"ns/b","private":true,"createdAt":"2024-01-01T00:00:00Z",
        "updatedAt":"2024-05-06T07:08:09.250Z","size":1234,"totalFiles":7})");
    }
    return FakeResponse::text(404, "");
  });
  auto info = bucketClient(server).info();
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->id, "ns/b");
  EXPECT_TRUE(info->is_private);
  EXPECT_EQ(info->size, 1234u);
  EXPECT_EQ(info->total_files, 7u);
  EXPECT_EQ(info->last_modified_ms, parseIsoTimeMs("2024-05-06T07:08:09.250Z"));
  EXPECT_FALSE(info->sha.has_value());
  EXPECT_EQ(server.requests().at(0).header("authorization"), "Bearer hf_test");
}

TEST(HubClientTest, RepoInfoResolvesRevisionToCommit) {
  const std::string sha = "0123456789abcdef0123456789abcdef01234567";
  FakeHttpServer server([&](const RecordedRequest& r) {
    if (r.raw_path == "/api/datasets/ns/d/revision/refs%2Fpr%2F3") {
      return FakeResponse::json(
          200, R"({"id":"ns/d","sha":")" + sha +
                   R"(","lastModified":"2023-02-03T04:05:06.000Z","private":false})");
    }
    return FakeResponse::text(404, "");
  });
  auto client = repoClient(server, "datasets/ns/d", "refs/pr/3");
  auto info = client.info();
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->sha, sha);
  EXPECT_EQ(info->last_modified_ms, parseIsoTimeMs("2023-02-03T04:05:06Z"));

  // Pinned to the commit, later calls address it rather than the moving ref.
  const HubClient pinned = client.atRevision(*info->sha);
  EXPECT_EQ(pinned.source().revision, sha);
  EXPECT_EQ(client.source().revision, "refs/pr/3");
  EXPECT_EQ(pinned.resolveUrl("a.txt"), server.url() + "/datasets/ns/d/resolve/" + sha + "/a.txt");
  EXPECT_EQ(pinned.xetTokenUrl(XetAccess::kRead),
            server.url() + "/api/datasets/ns/d/xet-read-token/" + sha);
}

TEST(HubClientTest, NotFoundCarriesTheHubMessage) {
  FakeHttpServer server([](const RecordedRequest&) {
    return FakeResponse::json(404, R"({"error":"Repository not found"})")
        .withHeader("X-Error-Code", "RepoNotFound")
        .withHeader("X-Error-Message", "Bucket ns/b does not exist");
  });
  auto info = bucketClient(server).info();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code(), ENOENT);
  EXPECT_NE(info.error().message().find("Bucket ns/b does not exist"), std::string::npos)
      << info.error().message();
  EXPECT_NE(info.error().message().find("RepoNotFound"), std::string::npos);
  EXPECT_NE(info.error().message().find("bucket ns/b"), std::string::npos);
}

TEST(HubClientTest, BucketThatIsARepoSaysSo) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path == "/api/datasets/ns/b") return FakeResponse::json(200, R"({"id":"ns/b"})");
    return FakeResponse::text(404, "").withHeader("X-Error-Code", "RepoNotFound");
  });
  auto info = bucketClient(server).info();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code(), ENOENT);
  EXPECT_NE(info.error().message().find("exists as a dataset"), std::string::npos);
  EXPECT_NE(info.error().message().find("repo datasets/ns/b"), std::string::npos);
}

TEST(HubClientTest, UnauthorizedIsEacces) {
  FakeHttpServer server([](const RecordedRequest&) {
    return FakeResponse::json(401, R"({"error":"Invalid credentials in Authorization header"})");
  });
  auto listing = bucketClient(server).listDirectory("");
  ASSERT_FALSE(listing.ok());
  EXPECT_EQ(listing.error().code(), EACCES);
  EXPECT_NE(listing.error().message().find("Invalid credentials"), std::string::npos);
  EXPECT_EQ(listing.error().message().find("hf_test"), std::string::npos);
  EXPECT_EQ(listing.error().message().find("no Hub token"), std::string::npos);

  auto anonymous =
      bucketClient(server, "ns/b", std::make_shared<const Credentials>(Credentials::anonymous()));
  auto refused = anonymous.listDirectory("");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EACCES);
  EXPECT_NE(refused.error().message().find("no Hub token"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(server.requests().back().header("authorization"), "");
}

TEST(HubClientTest, RateLimitIsRetriedThenEagain) {
  FakeHttpServer server([](const RecordedRequest&) {
    return FakeResponse::text(429, "").withHeader("RateLimit", "\"api\";r=0;t=0");
  });
  auto listing = bucketClient(server).listDirectory("x");
  ASSERT_FALSE(listing.ok());
  EXPECT_EQ(listing.error().code(), EAGAIN);
  EXPECT_EQ(server.requestCount(), 3u);

  FakeHttpServer recovering([](const RecordedRequest&) { return FakeResponse::json(200, "[]"); });
  recovering.enqueue(FakeResponse::text(429, "").withHeader("Retry-After", "0"));
  auto ok = bucketClient(recovering).listDirectory("x");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(recovering.requestCount(), 2u);
}

TEST(HubClientTest, TreePaginationFollowsLinkCursor) {
  std::string base;
  FakeHttpServer server([&](const RecordedRequest& r) {
    EXPECT_EQ(r.path, "/api/buckets/ns/b/tree/dir");
    EXPECT_EQ(r.queryParam("recursive"), "false");
    EXPECT_EQ(r.queryParam("limit"), "5000");
    const std::string cursor = r.queryParam("cursor");
    if (cursor.empty()) {
      return FakeResponse::json(200, R"([{"type":"file","path":"dir/a.bin","size":10,"xetHash":")" +
                                         kHashA + R"(","mtime":"2024-01-01T00:00:00Z"},
               {"type":"directory","path":"dir/sub","uploadedAt":"2024-01-02T00:00:00Z"}])")
          .withHeader(
              "Link",
              "<" + base +
                  "/api/buckets/ns/b/tree/dir?recursive=false&limit=5000&cursor=p2>; rel=\"next\"");
    }
    if (cursor == "p2") {
      return FakeResponse::json(200, R"([{"type":"file","path":"dir/b.bin","size":20}])")
          .withHeader(
              "Link",
              "</api/buckets/ns/b/tree/dir?recursive=false&limit=5000&cursor=p3>; rel=\"next\"");
    }
    return FakeResponse::json(200, R"([{"type":"file","path":"dir/c.bin","size":30}])");
  });
  base = server.url();
  std::vector<std::size_t> page_sizes;
  auto client = bucketClient(server);
  std::vector<TreeEntry> entries;
  auto status = client.listTree("dir/", false, [&](std::vector<TreeEntry>&& page) {
    page_sizes.push_back(page.size());
    for (auto& e : page) entries.push_back(std::move(e));
    return okStatus();
  });
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ(page_sizes, (std::vector<std::size_t>{2, 1, 1}));
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].path, "dir/a.bin");
  EXPECT_FALSE(entries[0].is_directory);
  EXPECT_EQ(entries[0].size, 10u);
  EXPECT_EQ(entries[0].xet_hash, kHashA);
  EXPECT_EQ(entries[0].mtime_ms, parseIsoTimeMs("2024-01-01T00:00:00Z"));
  EXPECT_TRUE(entries[1].is_directory);
  EXPECT_EQ(entries[1].path, "dir/sub");
  EXPECT_TRUE(entries[1].uploaded_at_ms.has_value());
  EXPECT_EQ(entries[3].path, "dir/c.bin");
  EXPECT_EQ(server.requestCount(), 3u);
  EXPECT_EQ(server.requests()[2].queryParam("cursor"), "p3");
}

TEST(HubClientTest, PageCallbackErrorStopsListing) {
  FakeHttpServer server([&](const RecordedRequest&) {
    return FakeResponse::json(200, R"([{"type":"file","path":"a","size":1}])")
        .withHeader("Link", "</api/buckets/ns/b/tree?cursor=again2>; rel=\"next\"");
  });
  auto status = bucketClient(server).listTree(
      "", true, [](std::vector<TreeEntry>&&) { return Status(Error(EINTR, "stop")); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), EINTR);
  EXPECT_EQ(server.requestCount(), 1u);
}

TEST(HubClientTest, SubfolderIsPrependedAndStrippedAndPrefixesFiltered) {
  FakeHttpServer server([](const RecordedRequest& r) {
    EXPECT_EQ(r.path, "/api/buckets/ns/b/tree/data/logs");
    EXPECT_EQ(r.queryParam("recursive"), "true");
    return FakeResponse::json(200, R"([
      {"type":"file","path":"data/logs/a.txt","size":1},
      {"type":"file","path":"data/logs/deep/b.txt","size":2},
      {"type":"file","path":"data/logs_old/c.txt","size":3},
      {"type":"file","path":"data/logsfoo.txt","size":4},
      {"type":"directory","path":"data/logs"}])");
  });
  auto listing = bucketClient(server, "ns/b/data/").listRecursive("logs");
  ASSERT_TRUE(listing.ok()) << listing.error().message();
  ASSERT_EQ(listing->size(), 2u);
  EXPECT_EQ((*listing)[0].path, "logs/a.txt");
  EXPECT_EQ((*listing)[1].path, "logs/deep/b.txt");
}

TEST(HubClientTest, RepoTreeEntries) {
  FakeHttpServer server([](const RecordedRequest& r) {
    EXPECT_EQ(r.raw_path, "/api/models/ns/m/tree/refs%2Fpr%2F1/sub%20dir");
    EXPECT_EQ(r.queryParam("limit"), "1000");
    return FakeResponse::json(
        200, R"([
      {"type":"file","oid":"abc","size":133,"path":"sub dir/w.safetensors",
       "lfs":{"oid":"deadbeef","size":5000000000,"pointerSize":133},"xetHash":")" +
                 kHashB.substr(0, 32) + std::string(32, 'F') + R"("},
      {"type":"file","oid":"def","size":10,"path":"sub dir/gated.bin","xetHash":")" +
                 std::string(64, '*') +
                 R"(","lastCommit":{"id":"c","title":"t","date":"2022-01-01T00:00:00.000Z"}},
      {"type":"directory","oid":"tree1","path":"sub dir/nested"}])");
  });
  auto listing = repoClient(server, "ns/m", "refs/pr/1").listDirectory("sub dir");
  ASSERT_TRUE(listing.ok()) << listing.error().message();
  ASSERT_EQ(listing->size(), 3u);
  const TreeEntry& weights = (*listing)[0];
  EXPECT_EQ(weights.size, 5000000000u);  // lfs.size wins
  EXPECT_EQ(weights.lfs_sha256, "deadbeef");
  EXPECT_EQ(weights.oid, "abc");
  EXPECT_EQ(weights.xet_hash, kHashB.substr(0, 32) + std::string(32, 'f'));  // lowercased
  EXPECT_EQ((*listing)[1].xet_hash, "");                                     // masked
  EXPECT_EQ((*listing)[1].last_commit_ms, parseIsoTimeMs("2022-01-01T00:00:00Z"));
  EXPECT_TRUE((*listing)[2].is_directory);
}

TEST(HubClientTest, MalformedListingIsEio) {
  FakeHttpServer server(
      [](const RecordedRequest&) { return FakeResponse::json(200, "{not json"); });
  auto listing = bucketClient(server).listDirectory("");
  ASSERT_FALSE(listing.ok());
  EXPECT_EQ(listing.error().code(), EIO);
  EXPECT_NE(listing.error().message().find("malformed"), std::string::npos);
}

TEST(HubClientTest, PathsInfoBucketAndRepo) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path == "/api/buckets/ns/b/paths-info") {
      EXPECT_EQ(r.header("content-type"), "application/json");
      const auto body = json::parse(r.body);
      EXPECT_EQ(body["paths"], json({"sub/a.txt", "sub/x/y.bin"}));
      return FakeResponse::json(200, R"([{"type":"file","path":"sub/a.txt","size":5}])");
    }
    if (r.path == "/api/spaces/ns/s/paths-info/main") {
      EXPECT_EQ(r.header("content-type"), "application/x-www-form-urlencoded");
      EXPECT_EQ(r.body, "paths=a%2Fb.txt&paths=c.txt&expand=false");
      return FakeResponse::json(200, R"([{"type":"file","path":"c.txt","size":3,"oid":"x"}])");
    }
    return FakeResponse::text(404, "");
  });
  const std::vector<std::string> bucket_paths = {"a.txt", "x/y.bin"};
  auto bucket = bucketClient(server, "ns/b/sub").pathsInfo(bucket_paths);
  ASSERT_TRUE(bucket.ok()) << bucket.error().message();
  ASSERT_EQ(bucket->size(), 1u);
  EXPECT_EQ((*bucket)[0].path, "a.txt");
  EXPECT_EQ((*bucket)[0].size, 5u);

  const std::vector<std::string> repo_paths = {"a/b.txt", "c.txt"};
  auto repo = repoClient(server, "spaces/ns/s", "main").pathsInfo(repo_paths);
  ASSERT_TRUE(repo.ok()) << repo.error().message();
  ASSERT_EQ(repo->size(), 1u);
  EXPECT_EQ((*repo)[0].path, "c.txt");
}

TEST(HubClientTest, HeadReadsXetMetadataWithoutFollowingRedirects) {
  FakeHttpServer server([&](const RecordedRequest& r) {
    if (r.raw_path == "/buckets/ns/b/resolve/dir/a%20b.bin") {
      return FakeResponse::text(302, "")
          .withHeader("Location", "https://cdn.example/x")
          .withHeader("X-Xet-Hash", kHashB)
          .withHeader("X-Linked-Size", "123456789")
          .withHeader("X-Linked-Etag", "\"sha256-etag\"")
          .withHeader("ETag", "W/\"git-etag\"")
          .withHeader("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
          .withHeader("Link", "<" + std::string(kPublicHubEndpoint) +
                                  "/api/buckets/ns/b/xet-read-token>; rel=\"xet-auth\"");
    }
    if (r.raw_path == "/datasets/ns/d/resolve/v1.0/small.txt") {
      return FakeResponse::text(200, "hello")
          .withHeader("ETag", "\"git-sha\"")
          .withHeader("X-Repo-Commit", "c0ffee");
    }
    return FakeResponse::text(404, "").withHeader("X-Error-Code", "EntryNotFound");
  });
  auto meta = bucketClient(server).head("dir/a b.bin");
  ASSERT_TRUE(meta.ok()) << meta.error().message();
  EXPECT_EQ(meta->status, 302);
  EXPECT_EQ(meta->xet_hash, kHashB);
  EXPECT_EQ(meta->size, 123456789u);
  EXPECT_EQ(meta->etag, "sha256-etag");
  EXPECT_EQ(meta->last_modified_ms, 1445412480000);
  // The public Hub's refresh route is rewritten to the configured endpoint.
  EXPECT_EQ(meta->xet_refresh_url, server.url() + "/api/buckets/ns/b/xet-read-token");
  EXPECT_EQ(server.requests()[0].method, "HEAD");
  EXPECT_EQ(server.requestCount(), 1u);  // the CDN redirect was not followed

  auto small = repoClient(server, "datasets/ns/d", "v1.0").head("small.txt");
  ASSERT_TRUE(small.ok()) << small.error().message();
  EXPECT_EQ(small->size, 5u);
  EXPECT_EQ(small->etag, "git-sha");
  EXPECT_EQ(small->commit, "c0ffee");
  EXPECT_EQ(small->xet_hash, "");

  auto missing = bucketClient(server).head("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_NE(missing.error().message().find("EntryNotFound"), std::string::npos);
}

TEST(HubClientTest, DownloadStreamsARange) {
  FakeHttpServer server([](const RecordedRequest& r) {
    EXPECT_EQ(r.header("range"), "bytes=2-5");
    return FakeResponse::text(206, "2345");
  });
  std::string got;
  auto response =
      repoClient(server, "ns/m", "main")
          .download("f.txt", http::ByteRange{2, 5}, [&](uint64_t, std::string_view data) {
            got.append(data);
            return true;
          });
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ(got, "2345");
  EXPECT_EQ(server.requests()[0].raw_path, "/ns/m/resolve/main/f.txt");
}

TEST(HubClientTest, BatchSendsNdjsonAddsBeforeDeletes) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::json(200, "{}"); });
  auto client = bucketClient(server, "ns/b/root");
  std::vector<BatchOp> ops = {
      BatchOp::deleteFile("old.txt"), BatchOp::addFile("new.txt", kHashA, 1700000000123),
      BatchOp::copyFile("copy.bin", kHashB, "model", "ns/m"), BatchOp::deleteFile("gone.txt")};
  ops[1].content_type = "text/plain";
  ASSERT_TRUE(client.batch(ops).ok());
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/api/buckets/ns/b/batch");
  EXPECT_EQ(seen[0].header("content-type"), "application/x-ndjson");
  std::vector<json> lines;
  std::size_t start = 0;
  const std::string& body = seen[0].body;
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(body.back(), '\n');
  while (start < body.size()) {
    const auto end = body.find('\n', start);
    lines.push_back(json::parse(body.substr(start, end - start)));
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], json({{"type", "addFile"},
                            {"path", "root/new.txt"},
                            {"xetHash", kHashA},
                            {"mtime", 1700000000123},
                            {"contentType", "text/plain"}}));
  EXPECT_EQ(lines[1], json({{"type", "copyFile"},
                            {"path", "root/copy.bin"},
                            {"xetHash", kHashB},
                            {"sourceRepoType", "model"},
                            {"sourceRepoId", "ns/m"}}));
  EXPECT_EQ(lines[2], json({{"type", "deleteFile"}, {"path", "root/old.txt"}}));
  EXPECT_EQ(lines[3], json({{"type", "deleteFile"}, {"path", "root/gone.txt"}}));
}

TEST(HubClientTest, BatchSplitsAndValidates) {
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::json(200, "{}"); });
  auto client = bucketClient(server);
  std::vector<BatchOp> many;
  for (int i = 0; i < 1500; ++i) many.push_back(BatchOp::deleteFile("f" + std::to_string(i)));
  ASSERT_TRUE(client.batch(many).ok());
  ASSERT_EQ(server.requestCount(), 2u);
  const auto seen = server.requests();
  EXPECT_EQ(std::count(seen[0].body.begin(), seen[0].body.end(), '\n'), 1000);
  EXPECT_EQ(std::count(seen[1].body.begin(), seen[1].body.end(), '\n'), 500);

  const std::vector<BatchOp> bad_hash = {BatchOp::addFile("x", "nothex", 0)};
  auto invalid = client.batch(bad_hash);
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.error().code(), EINVAL);
  auto on_repo = repoClient(server, "ns/m", "main").batch(many);
  ASSERT_FALSE(on_repo.ok());
  EXPECT_EQ(on_repo.error().code(), EROFS);
  EXPECT_EQ(server.requestCount(), 2u);
}

TEST(HubClientTest, XetTokenEndpoints) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path == "/api/buckets/ns/b/xet-read-token" ||
        r.path == "/api/buckets/ns/b/xet-write-token") {
      const std::string kind = r.path.ends_with("write-token") ? "write" : "read";
      return FakeResponse::json(200, R"({"accessToken":"xet_)" + kind +
                                         R"(","exp":1900000000,"casUrl":"http://cas.test/"})");
    }
    if (r.raw_path == "/api/datasets/ns/d/xet-read-token/refs%2Fpr%2F2") {
      // Older servers: headers only.
      return FakeResponse::json(200, "{}")
          .withHeader("X-Xet-Access-Token", "xet_hdr")
          .withHeader("X-Xet-Cas-Url", "http://cas.hdr")
          .withHeader("X-Xet-Token-Expiration", "1900000001");
    }
    return FakeResponse::text(404, "");
  });
  auto bucket = bucketClient(server);
  auto read = bucket.fetchXetToken(XetAccess::kRead);
  ASSERT_TRUE(read.ok()) << read.error().message();
  EXPECT_EQ(read->access_token, "xet_read");
  EXPECT_EQ(read->cas_url, "http://cas.test");
  EXPECT_EQ(read->expires_at, 1900000000);
  auto write = bucket.fetchXetToken(XetAccess::kWrite);
  ASSERT_TRUE(write.ok());
  EXPECT_EQ(write->access_token, "xet_write");

  auto repo = repoClient(server, "datasets/ns/d", "refs/pr/2");
  auto repo_read = repo.fetchXetToken(XetAccess::kRead);
  ASSERT_TRUE(repo_read.ok()) << repo_read.error().message();
  EXPECT_EQ(repo_read->access_token, "xet_hdr");
  EXPECT_EQ(repo_read->cas_url, "http://cas.hdr");
  EXPECT_EQ(repo_read->expires_at, 1900000001);
  EXPECT_EQ(repo.fetchXetToken(XetAccess::kWrite).error().code(), EROFS);
}

TEST(HubClientTest, XetTokenCacheOverHub) {
  FakeHttpServer server([](const RecordedRequest&) {
    const int64_t exp = XetTokenCache::systemNow() + 3600;
    return FakeResponse::json(200, R"({"accessToken":"xet_1","exp":)" + std::to_string(exp) +
                                       R"(,"casUrl":"http://cas"})");
  });
  auto hub = std::make_shared<const HubClient>(bucketClient(server));
  std::shared_ptr<http::XetTokenProvider> provider = XetTokenCache::forHub(hub, XetAccess::kRead);
  for (int i = 0; i < 5; ++i) {
    auto credentials = provider->get(false);
    ASSERT_TRUE(credentials.ok()) << credentials.error().message();
    EXPECT_EQ(credentials->access_token, "xet_1");
  }
  EXPECT_EQ(server.requestCount(), 1u);
  ASSERT_TRUE(provider->get(true).ok());
  EXPECT_EQ(server.requestCount(), 2u);
}

TEST(HubClientTest, RotatedTokenFileIsUsedForTheNextRequest) {
  const auto path =
      std::filesystem::temp_directory_path() / ("hfm-hub-token-" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::trunc) << "hf_one\n";
  CredentialOptions options;
  options.token_file = path;
  auto credentials = std::make_shared<const Credentials>(
      Credentials::resolve(options, [](const std::string&) { return std::nullopt; }));
  FakeHttpServer server([](const RecordedRequest&) { return FakeResponse::json(200, "[]"); });
  auto client = bucketClient(server, "ns/b", credentials);
  ASSERT_TRUE(client.listDirectory("").ok());
  std::ofstream(path, std::ios::trunc) << "hf_two\n";
  ASSERT_TRUE(client.listDirectory("").ok());
  std::filesystem::remove(path);
  ASSERT_TRUE(client.listDirectory("").ok());
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].header("authorization"), "Bearer hf_one");
  EXPECT_EQ(seen[1].header("authorization"), "Bearer hf_two");
  EXPECT_EQ(seen[2].header("authorization"), "");  // anonymous
}

TEST(HubClientTest, Whoami) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path != "/api/whoami-v2") return FakeResponse::text(404, "");
    return FakeResponse::json(
        200, R"({"type":"user","name":"alice","orgs":[{"name":"acme"},{"name":"hf"}]})");
  });
  auto who = bucketClient(server).whoami();
  ASSERT_TRUE(who.ok()) << who.error().message();
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->type, "user");
  EXPECT_EQ(who->orgs, (std::vector<std::string>{"acme", "hf"}));
}

TEST(HubTimeTest, ParsesIsoAndHttpDates) {
  EXPECT_EQ(parseIsoTimeMs("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseIsoTimeMs("2015-10-21T07:28:00.5Z"), 1445412480500);
  EXPECT_EQ(parseIsoTimeMs("2015-10-21T09:28:00+02:00"), 1445412480000);
  EXPECT_EQ(parseIsoTimeMs("2015-10-21T07:28:00.123456789Z"), 1445412480123);
  EXPECT_FALSE(parseIsoTimeMs("2015-10-21").has_value());
  EXPECT_FALSE(parseIsoTimeMs("2015-13-21T07:28:00Z").has_value());
  EXPECT_FALSE(parseIsoTimeMs("2015-10-21T07:28:00Zjunk").has_value());
  EXPECT_EQ(parseHttpDateMs("Wed, 21 Oct 2015 07:28:00 GMT"), 1445412480000);
  EXPECT_FALSE(parseHttpDateMs("yesterday").has_value());
  EXPECT_TRUE(isValidXetHash(kHashB));
  EXPECT_FALSE(isValidXetHash(std::string(64, '*')));
  EXPECT_FALSE(isValidXetHash("abc"));
}

}  // namespace
}  // namespace hfm::hub
