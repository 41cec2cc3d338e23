// hf-local-hub's Hub half over real HTTP (server on 127.0.0.1:0, libcurl client): identity,
// buckets, batch, tree pagination and prefix boundaries, resolve with ranges, tokens, repos
// with commits/branches/tags, the LFS batch, bad input of every kind, and restart persistence.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <nlohmann/json.hpp>
#include <set>

#include "hfm/localhub/base64.h"
#include "hfm/util/hex.h"
#include "hub_test_support.h"

namespace hfm::localhub::testing {
namespace {

using nlohmann::json;

const std::string kHashA = "a1" + std::string(62, '0');
const std::string kHashB = "b2" + std::string(62, '0');
const std::string kZero(64, '0');

std::string sha256Hex(const std::string& s) {
  std::array<uint8_t, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return util::toHex(d);
}

std::string addLine(const std::string& path, const std::string& hash, int64_t mtime = 1000) {
  return json{{"type", "addFile"}, {"path", path}, {"xetHash", hash}, {"mtime", mtime}}.dump() +
         "\n";
}

class HubApiTest : public HubServerTest {
 protected:
  void SetUp() override {
    HubServerTest::SetUp();
    cas_.files[kHashA] = "hello world";
    cas_.files[kHashB] = std::string(1000, 'b');
  }
  void makeBucket(const std::string& id, bool priv = false) {
    auto r = post("/api/buckets/" + id, json{{"private", priv}}.dump(), {alice()});
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::set<std::string> treePaths(const std::string& url_path) {
    std::set<std::string> out;
    auto r = get(url_path, {alice()});
    EXPECT_EQ(r.status, 200) << r.body;
    for (const auto& e : json::parse(r.body)) out.insert(e["path"].get<std::string>());
    return out;
  }
};

TEST(XetTokensTest, IssuesAndVerifies) {
  XetTokens t("secret", 60);
  std::string tok = t.issue("alice", "bucket:alice/b", true, 1000);
  XetTokenClaims c;
  ASSERT_EQ(t.verify(tok, 1010, &c), TokenCheck::kValid);
  EXPECT_EQ(c.user, "alice");
  EXPECT_EQ(c.resource, "bucket:alice/b");
  EXPECT_TRUE(c.write);
  EXPECT_EQ(c.expires_at, 1060);
  EXPECT_EQ(t.verify(tok, 1060, &c), TokenCheck::kExpired);
  EXPECT_EQ(XetTokens("other", 60).verify(tok, 1010, &c), TokenCheck::kBadSignature);
  std::string tampered = tok;
  tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
  EXPECT_NE(t.verify(tampered, 1010, &c), TokenCheck::kValid);
  EXPECT_EQ(t.verify("garbage", 1010, &c), TokenCheck::kMalformed);
  EXPECT_EQ(t.verify("a.b!", 1010, &c), TokenCheck::kMalformed);
}

TEST(Base64Test, RoundTripsAndRejects) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(base64Decode(base64Encode(s)).value(), s);
    EXPECT_EQ(base64UrlDecode(base64UrlEncode(s)).value(), s);
  }
  EXPECT_EQ(base64Encode("hello"), "aGVsbG8=");
  EXPECT_FALSE(base64Decode("a$==").has_value());
  EXPECT_FALSE(base64Decode("a").has_value());
}

TEST(PathValidationTest, RejectsUnsafePaths) {
  EXPECT_FALSE(invalidFilePath("a/b.txt").has_value());
  EXPECT_FALSE(invalidFilePath("dir/.hidden/x").has_value());
  for (const std::string& bad : std::vector<std::string>{
           "", "/abs", "a/../b", "..", "./a", "a//b", "a/", std::string("a\0b", 3), "a\\b",
           std::string(1100, 'x'), "dir/" + std::string(300, 'y')}) {
    EXPECT_TRUE(invalidFilePath(bad).has_value()) << bad.substr(0, 20);
  }
  EXPECT_FALSE(invalidRepoName("my-model_1.0").has_value());
  for (const std::string& bad : std::vector<std::string>{"", "-a", "a-", ".a", "a..b", "a--b",
                                                         "a b", "a/b", std::string(97, 'a')}) {
    EXPECT_TRUE(invalidRepoName(bad).has_value()) << bad;
  }
}

TEST_F(HubApiTest, WhoamiNeedsAKnownToken) {
  auto ok = get("/api/whoami-v2", {alice()});
  ASSERT_EQ(ok.status, 200);
  auto j = json::parse(ok.body);
  EXPECT_EQ(j["name"], "alice");
  EXPECT_TRUE(j.contains("auth"));
  EXPECT_EQ(get("/api/whoami-v2").status, 401);
  auto bad = get("/api/whoami-v2", {"Authorization: Bearer hf_unknown"});
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(bad.header("x-error-message"), "Invalid credentials in Authorization header");
  // An unknown token is refused even on public reads.
  makeBucket("alice/pub");
  EXPECT_EQ(get("/api/buckets/alice/pub", {"Authorization: Bearer hf_unknown"}).status, 401);
}

TEST_F(HubApiTest, BucketLifecycle) {
  auto created = post("/api/buckets/me/data", "", {alice()});
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(json::parse(created.body)["url"], base_ + "/buckets/alice/data");
  EXPECT_EQ(post("/api/buckets/alice/data", "{}", {alice()}).status, 409);
  auto info = get("/api/buckets/alice/data");
  ASSERT_EQ(info.status, 200);
  auto j = json::parse(info.body);
  EXPECT_EQ(j["id"], "alice/data");
  EXPECT_EQ(j["private"], false);
  EXPECT_EQ(j["totalFiles"], 0);
  EXPECT_TRUE(j.contains("createdAt") && j.contains("updatedAt") && j.contains("size"));
  auto list = get("/api/buckets/me", {alice()});
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(json::parse(list.body).size(), 1u);
  EXPECT_EQ(http("DELETE", base_ + "/api/buckets/alice/data", "", {bob()}).status, 403);
  EXPECT_EQ(http("DELETE", base_ + "/api/buckets/alice/data", "", {alice()}).status, 200);
  auto gone = get("/api/buckets/alice/data", {alice()});
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.header("x-error-code"), "RepoNotFound");
}

TEST_F(HubApiTest, BucketCreateRejectsBadInput) {
  EXPECT_EQ(post("/api/buckets/alice/bad..name", "{}", {alice()}).status, 400);
  EXPECT_EQ(post("/api/buckets/alice/-x", "{}", {alice()}).status, 400);
  EXPECT_EQ(post("/api/buckets/alice/" + std::string(97, 'n'), "{}", {alice()}).status, 400);
  EXPECT_EQ(post("/api/buckets/alice/ok", "{not json", {alice()}).status, 400);
  EXPECT_EQ(post("/api/buckets/alice/ok", R"({"private":"yes"})", {alice()}).status, 400);
  EXPECT_EQ(post("/api/buckets/alice/ok", "{}").status, 401);
  EXPECT_EQ(post("/api/buckets/alice/ok", "{}", {bob()}).status, 403);
  EXPECT_EQ(get("/api/buckets/alice/ok", {alice()}).status, 404);  // nothing was created
}

TEST_F(HubApiTest, PrivateBucketsAreHidden) {
  makeBucket("alice/secret", true);
  EXPECT_EQ(get("/api/buckets/alice/secret", {alice()}).status, 200);
  EXPECT_EQ(get("/api/buckets/alice/secret", {bob()}).status, 404);
  EXPECT_EQ(get("/api/buckets/alice/secret").status, 401);
  EXPECT_EQ(get("/api/buckets/alice/secret/tree").status, 401);
  EXPECT_EQ(get("/api/buckets/alice/secret/xet-read-token").status, 401);
  EXPECT_EQ(json::parse(get("/api/buckets/alice", {bob()}).body).size(), 0u);
}

TEST_F(HubApiTest, BatchAddsCopiesAndDeletes) {
  makeBucket("alice/b");
  std::string body = addLine("a.txt", kHashA, 1700000000123) + addLine("dir/b.bin", kHashB) +
                     addLine("empty", kZero);
  auto r =
      post("/api/buckets/alice/b/batch", body, {alice(), "Content-Type: application/x-ndjson"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["success"], true);
  EXPECT_EQ(j["processed"], 3);
  EXPECT_EQ(j["succeeded"], 3);

  auto info = json::parse(post("/api/buckets/alice/b/paths-info",
                               R"({"paths":["a.txt","dir/b.bin","nope","empty"]})", {alice()})
                              .body);
  ASSERT_EQ(info.size(), 3u);
  EXPECT_EQ(info[0]["size"], 11);
  EXPECT_EQ(info[0]["xetHash"], kHashA);
  EXPECT_EQ(info[0]["mtime"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(info[1]["size"], 1000);
  EXPECT_EQ(info[2]["size"], 0);

  // Copy from another bucket by hash, and a copy whose hash the source does not hold.
  makeBucket("alice/c");
  std::string copy = json{{"type", "copyFile"},
                          {"path", "copied.txt"},
                          {"xetHash", kHashA},
                          {"sourceRepoType", "bucket"},
                          {"sourceRepoId", "alice/b"}}
                         .dump() +
                     "\n" +
                     json{{"type", "copyFile"},
                          {"path", "nope.txt"},
                          {"xetHash", kHashB},
                          {"sourceRepoType", "bucket"},
                          {"sourceRepoId", "alice/c"}}
                         .dump();
  auto c = post("/api/buckets/alice/c/batch", copy, {alice()});
  ASSERT_EQ(c.status, 422) << c.body;
  auto cj = json::parse(c.body);
  EXPECT_EQ(cj["succeeded"], 1);
  ASSERT_EQ(cj["failed"].size(), 1u);
  EXPECT_EQ(cj["failed"][0]["path"], "nope.txt");
  EXPECT_EQ(treePaths("/api/buckets/alice/c/tree"), std::set<std::string>{"copied.txt"});

  auto del = post("/api/buckets/alice/b/batch",
                  R"({"type":"deleteFile","path":"a.txt"})"
                  "\n"
                  R"({"type":"deleteFile","path":"never-existed"})",
                  {alice()});
  EXPECT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(treePaths("/api/buckets/alice/b/tree?recursive=true"),
            (std::set<std::string>{"dir/b.bin", "empty"}));
  auto binfo = json::parse(get("/api/buckets/alice/b").body);
  EXPECT_EQ(binfo["totalFiles"], 2);
  EXPECT_EQ(binfo["size"], 1000);
}

TEST_F(HubApiTest, BatchRejectsBadInputAndStoresNothing) {
  makeBucket("alice/b");
  auto unknown =
      post("/api/buckets/alice/b/batch", addLine("x", "cd" + std::string(62, '1')), {alice()});
  EXPECT_EQ(unknown.status, 422);
  const std::vector<std::string> bad_bodies = {
      "not json\n",
      "[1,2]\n",
      addLine("ok.txt", kHashA) + R"({"type":"explode","path":"x"})",
      addLine("ok.txt", kHashA) + addLine("../escape", kHashA),
      addLine("/abs", kHashA),
      addLine("a//b", kHashA),
      addLine(std::string("nul\0byte", 8), kHashA),
      addLine(std::string(2000, 'p'), kHashA),
      addLine("ok.txt", "xyz"),
      R"({"type":"addFile","path":"ok.txt","xetHash":")" + kHashA + R"(","mtime":"yesterday"})",
      R"({"type":"addFile","xetHash":")" + kHashA + R"("})",
      "",
  };
  for (const auto& body : bad_bodies) {
    auto r = post("/api/buckets/alice/b/batch", body, {alice()});
    EXPECT_EQ(r.status, 400) << body.substr(0, 60) << " -> " << r.body;
    EXPECT_FALSE(r.header("x-error-message").empty());
    EXPECT_EQ(json::parse(r.body).contains("error"), true);
  }
  EXPECT_EQ(json::parse(get("/api/buckets/alice/b").body)["totalFiles"], 0);
  EXPECT_EQ(post("/api/buckets/alice/b/batch", addLine("x", kHashA)).status, 401);
  EXPECT_EQ(post("/api/buckets/alice/b/batch", addLine("x", kHashA), {bob()}).status, 403);
  EXPECT_EQ(post("/api/buckets/alice/nobucket/batch", addLine("x", kHashA), {alice()}).status, 404);
}

TEST_F(HubApiTest, OversizedBodyIs413) {
  makeBucket("alice/b");
  std::string huge(9 * 1024 * 1024, ' ');
  auto r = post("/api/buckets/alice/b/batch", huge, {alice()});
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(get("/api/buckets/alice/b").body)["totalFiles"], 0);
}

TEST_F(HubApiTest, TreeListsOneLevelAndMatchesPrefixOnBoundaries) {
  makeBucket("alice/t");
  std::string body;
  for (const char* p : {"a/b/file1", "a/b/sub/file2", "a/bc/file3", "a/b.txt", "a/b", "top.txt"}) {
    body += addLine(p, kHashA);
  }
  ASSERT_EQ(post("/api/buckets/alice/t/batch", body, {alice()}).status, 200);
  EXPECT_EQ(treePaths("/api/buckets/alice/t/tree?recursive=false"),
            (std::set<std::string>{"a", "top.txt"}));
  auto level = get("/api/buckets/alice/t/tree/a?recursive=false", {alice()});
  std::set<std::pair<std::string, std::string>> types;
  for (const auto& e : json::parse(level.body))
    types.insert({e["path"].get<std::string>(), e["type"].get<std::string>()});
  EXPECT_EQ(
      types,
      (std::set<std::pair<std::string, std::string>>{
          {"a/b", "file"}, {"a/b", "directory"}, {"a/b.txt", "file"}, {"a/bc", "directory"}}));
  // `a/b` (both a file and a folder here) never matches `a/bc` or `a/b.txt`.
  EXPECT_EQ(treePaths("/api/buckets/alice/t/tree/a/b?recursive=true"),
            (std::set<std::string>{"a/b", "a/b/file1", "a/b/sub/file2"}));
  EXPECT_EQ(treePaths("/api/buckets/alice/t/tree/a%2Fb?recursive=true"),
            (std::set<std::string>{"a/b", "a/b/file1", "a/b/sub/file2"}));
  EXPECT_EQ(treePaths("/api/buckets/alice/t/tree/missing?recursive=true"), std::set<std::string>{});
  EXPECT_EQ(get("/api/buckets/alice/t/tree/a/../x", {alice()}).status, 400);
  EXPECT_EQ(get("/api/buckets/alice/t/tree?limit=abc", {alice()}).status, 400);
  EXPECT_EQ(get("/api/buckets/alice/t/tree?cursor=%%%", {alice()}).status, 400);
  EXPECT_EQ(get("/api/buckets/alice/t/tree?cursor=bm9wZQ", {alice()}).status, 400);
  // A forged cursor pointing before the prefix cannot leak entries outside it.
  std::string forged = base64UrlEncode(json{{"k", ""}, {"i", true}}.dump());
  EXPECT_EQ(treePaths("/api/buckets/alice/t/tree/a/bc?recursive=true&cursor=" + forged),
            std::set<std::string>{"a/bc/file3"});
}

TEST_F(HubApiTest, TreePaginates2500FilesWithLinkCursor) {
  makeBucket("alice/many");
  for (int batch = 0; batch < 3; ++batch) {
    std::string body;
    for (int i = batch * 1000; i < std::min(2500, (batch + 1) * 1000); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "d%d/file-%05d.bin", i % 3, i);
      body += addLine(name, kHashA);
    }
    ASSERT_EQ(post("/api/buckets/alice/many/batch", body, {alice()}).status, 200);
  }
  std::set<std::string> seen;
  std::string url = base_ + "/api/buckets/alice/many/tree?recursive=true&limit=1000";
  int pages = 0;
  while (!url.empty()) {
    auto r = http("GET", url, "", {alice()});
    ASSERT_EQ(r.status, 200) << r.body;
    auto page = json::parse(r.body);
    EXPECT_LE(page.size(), 1000u);
    for (const auto& e : page) {
      EXPECT_EQ(e["type"], "file");
      EXPECT_TRUE(seen.insert(e["path"]).second) << "duplicate " << e["path"];
    }
    ++pages;
    std::string link = r.header("link");
    url.clear();
    if (!link.empty()) {
      ASSERT_EQ(link.front(), '<');
      auto close = link.find(">; rel=\"next\"");
      ASSERT_NE(close, std::string::npos) << link;
      url = link.substr(1, close - 1);
      EXPECT_EQ(url.rfind(base_ + "/api/buckets/alice/many/tree?", 0), 0u) << url;
    }
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen.size(), 2500u);
  // Non-recursive pages of 2 over the three synthesized folders.
  auto first = get("/api/buckets/alice/many/tree?recursive=false&limit=2", {alice()});
  EXPECT_EQ(json::parse(first.body).size(), 2u);
  EXPECT_FALSE(first.header("link").empty());
}

TEST_F(HubApiTest, ResolveServesHeadersRangesAndErrors) {
  makeBucket("alice/r");
  ASSERT_EQ(post("/api/buckets/alice/r/batch", addLine("dir/hello.txt", kHashA), {alice()}).status,
            200);
  auto head = http("HEAD", base_ + "/buckets/alice/r/resolve/dir/hello.txt");
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("x-xet-hash"), kHashA);
  EXPECT_EQ(head.header("x-linked-size"), "11");
  EXPECT_EQ(head.header("content-length"), "11");
  EXPECT_EQ(head.header("etag"), "\"" + kHashA + "\"");
  EXPECT_NE(head.header("link").find("<" + base_ +
                                     "/api/buckets/alice/r/xet-read-token>; rel=\"xet-auth\""),
            std::string::npos);
  EXPECT_NE(head.header("link").find("rel=\"xet-reconstruction-info\""), std::string::npos);
  EXPECT_FALSE(head.header("last-modified").empty());

  auto full = get("/buckets/alice/r/resolve/dir%2Fhello.txt");
  EXPECT_EQ(full.status, 200);
  EXPECT_EQ(full.body, "hello world");
  auto part = get("/buckets/alice/r/resolve/dir/hello.txt", {"Range: bytes=6-"});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, "world");
  EXPECT_EQ(part.header("content-range"), "bytes 6-10/11");
  auto suffix = get("/buckets/alice/r/resolve/dir/hello.txt", {"Range: bytes=-3"});
  EXPECT_EQ(suffix.body, "rld");
  auto past = get("/buckets/alice/r/resolve/dir/hello.txt", {"Range: bytes=50-60"});
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(past.header("content-range"), "bytes */11");
  auto cached =
      get("/buckets/alice/r/resolve/dir/hello.txt", {"If-None-Match: \"" + kHashA + "\""});
  EXPECT_EQ(cached.status, 304);
  auto fileinfo = get("/buckets/alice/r/resolve/dir/hello.txt",
                      {"Accept: application/vnd.xet-fileinfo+json, */*", "Range: bytes=0-0"});
  EXPECT_EQ(fileinfo.status, 200);
  EXPECT_EQ(fileinfo.header("x-xet-hash"), kHashA);
  auto missing = get("/buckets/alice/r/resolve/dir/nope.txt");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("x-error-code"), "EntryNotFound");
  EXPECT_EQ(get("/buckets/alice/r/resolve/dir/../../etc/passwd").status, 400);
  EXPECT_EQ(get("/buckets/alice/r/resolve/%2Fetc%2Fpasswd").status, 400);
  EXPECT_EQ(get("/buckets/alice/r/resolve/a%00b").status, 400);
  EXPECT_EQ(get("/buckets/alice/r/resolve/bad%zzescape").status, 400);
  EXPECT_EQ(get("/buckets/alice/r/resolve/bad%ff%feutf8").status, 400);
  EXPECT_EQ(get("/buckets/alice/r/resolve/caf%C3%A9").status, 404);  // valid UTF-8, absent
  EXPECT_EQ(get("/api/buckets/%ff%fe/x").status, 400);
  EXPECT_EQ(get("/buckets/alice/nobucket/resolve/x", {alice()}).status, 404);
}

TEST_F(HubApiTest, XetTokensCarryAccessLevel) {
  makeBucket("alice/tk");
  auto w = get("/api/buckets/alice/tk/xet-write-token", {alice()});
  ASSERT_EQ(w.status, 200) << w.body;
  auto j = json::parse(w.body);
  EXPECT_EQ(j["casUrl"], base_);
  EXPECT_EQ(w.header("x-xet-cas-url"), base_);
  EXPECT_EQ(w.header("x-xet-access-token"), j["accessToken"]);
  XetTokenClaims claims;
  ASSERT_EQ(
      tokens_->verify(j["accessToken"].get<std::string>(), j["exp"].get<int64_t>() - 10, &claims),
      TokenCheck::kValid);
  EXPECT_TRUE(claims.write);
  EXPECT_EQ(claims.resource, "bucket:alice/tk");
  EXPECT_EQ(get("/api/buckets/alice/tk/xet-write-token").status, 401);
  EXPECT_EQ(get("/api/buckets/alice/tk/xet-write-token", {bob()}).status, 403);
  auto r = get("/api/buckets/alice/tk/xet-read-token");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(tokens_->verify(json::parse(r.body)["accessToken"].get<std::string>(),
                            json::parse(r.body)["exp"].get<int64_t>() - 10, &claims),
            TokenCheck::kValid);
  EXPECT_FALSE(claims.write);
}

TEST_F(HubApiTest, CasRoutesGoToTheCas) {
  EXPECT_EQ(get("/v1/fake-ping").body, "pong");
  EXPECT_EQ(get("/v2/unknown").status, 404);
}

TEST_F(HubApiTest, RepoCommitsBranchesTagsAndResolve) {
  auto created = post(
      "/api/repos/create",
      json{{"name", "m"},
           {"type", "model"},
           {"files",
            {{{"path", "README.md"}, {"encoding", "base64"}, {"content", base64Encode("# hi\n")}}}}}
          .dump(),
      {alice()});
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(post("/api/repos/create", R"({"name":"m"})", {alice()}).status, 409);
  EXPECT_EQ(post("/api/repos/create", R"({"name":"m","organization":"alice"})", {bob()}).status,
            403);
  EXPECT_EQ(post("/api/repos/create", R"({"name":"bad name"})", {alice()}).status, 400);
  EXPECT_EQ(post("/api/repos/create", R"({"name":"x","type":"bucket"})", {alice()}).status, 400);

  // The weights are "uploaded" to the fake CAS, which maps their sha256 to a xet hash.
  std::string weights = cas_.files[kHashB];
  std::string weights_sha = sha256Hex(weights);
  cas_.by_sha256[weights_sha] = kHashB;

  auto pre = post("/api/models/alice/m/preupload/main",
                  json{{"files",
                        {{{"path", "w.bin"}, {"size", 1000}, {"sample", base64Encode("\x01\x00")}},
                         {{"path", "notes.txt"}, {"size", 5}, {"sample", base64Encode("notes")}}}}}
                      .dump(),
                  {alice()});
  ASSERT_EQ(pre.status, 200) << pre.body;
  auto pj = json::parse(pre.body);
  EXPECT_EQ(pj["files"][0]["uploadMode"], "lfs");
  EXPECT_EQ(pj["files"][1]["uploadMode"], "regular");

  auto lfs = post(
      "/alice/m.git/info/lfs/objects/batch",
      json{{"operation", "upload"},
           {"transfers", {"basic", "multipart", "xet"}},
           {"objects",
            {{{"oid", weights_sha}, {"size", 1000}}, {{"oid", std::string(64, 'e')}, {"size", 7}}}}}
          .dump(),
      {alice(), "Content-Type: application/vnd.git-lfs+json"});
  ASSERT_EQ(lfs.status, 200) << lfs.body;
  auto lj = json::parse(lfs.body);
  EXPECT_EQ(lj["transfer"], "xet");
  EXPECT_FALSE(lj["objects"][0].contains("actions"));  // already known to the CAS
  auto action = lj["objects"][1]["actions"]["upload"];
  EXPECT_EQ(action["header"]["X-Xet-Cas-Url"], base_);
  EXPECT_EQ(action["href"], base_ + "/api/models/alice/m/xet-write-token/main");

  std::string ndjson =
      json{{"key", "header"}, {"value", {{"summary", "add weights"}}}}.dump() + "\n" +
      json{{"key", "lfsFile"},
           {"value", {{"path", "w.bin"}, {"algo", "sha256"}, {"size", 1000}, {"oid", weights_sha}}}}
          .dump() +
      "\n" +
      json{{"key", "file"},
           {"value",
            {{"path", "notes.txt"}, {"content", base64Encode("notes")}, {"encoding", "base64"}}}}
          .dump();
  auto commit = post("/api/models/alice/m/commit/main", ndjson,
                     {alice(), "Content-Type: application/x-ndjson"});
  ASSERT_EQ(commit.status, 200) << commit.body;
  std::string sha1 = json::parse(commit.body)["commitOid"];
  ASSERT_EQ(sha1.size(), 40u);

  auto info = json::parse(get("/api/models/alice/m").body);
  EXPECT_EQ(info["sha"], sha1);
  EXPECT_EQ(info["siblings"].size(), 4u);  // .gitattributes, README.md, w.bin, notes.txt
  EXPECT_EQ(json::parse(get("/api/models/alice/m/revision/main").body)["sha"], sha1);
  EXPECT_EQ(get("/api/models/alice/m/revision/nope").header("x-error-code"), "RevisionNotFound");

  auto tree = json::parse(get("/api/models/alice/m/tree/main?recursive=true&expand=true").body);
  bool saw_lfs = false;
  for (const auto& e : tree) {
    if (e["path"] == "w.bin") {
      saw_lfs = true;
      EXPECT_EQ(e["xetHash"], kHashB);
      EXPECT_EQ(e["lfs"]["oid"], weights_sha);
      EXPECT_EQ(e["size"], 1000);
      EXPECT_EQ(e["lastCommit"]["id"], sha1);
    }
  }
  EXPECT_TRUE(saw_lfs);

  // Tag the commit, branch from it, move main on: both refs keep the old tree.
  ASSERT_EQ(post("/api/models/alice/m/tag/main", R"({"tag":"v1"})", {alice()}).status, 200);
  EXPECT_EQ(post("/api/models/alice/m/tag/main", R"({"tag":"v1"})", {alice()}).status, 409);
  ASSERT_EQ(post("/api/models/alice/m/branch/dev", "{}", {alice()}).status, 200);
  EXPECT_EQ(post("/api/models/alice/m/branch/dev", "{}", {alice()}).status, 409);
  EXPECT_EQ(post("/api/models/alice/m/branch/bad..name", "{}", {alice()}).status, 400);
  std::string del = json{{"key", "header"}, {"value", {{"summary", "rm"}}}}.dump() + "\n" +
                    json{{"key", "deletedFile"}, {"value", {{"path", "notes.txt"}}}}.dump();
  auto c2 = post("/api/models/alice/m/commit/main", del, {alice()});
  ASSERT_EQ(c2.status, 200) << c2.body;
  EXPECT_EQ(get("/alice/m/resolve/main/notes.txt").status, 404);
  for (const std::string& rev : std::vector<std::string>{"v1", "dev", sha1, "refs%2Ftags%2Fv1"}) {
    auto r = get("/alice/m/resolve/" + rev + "/notes.txt");
    EXPECT_EQ(r.status, 200) << rev;
    EXPECT_EQ(r.body, "notes");
    EXPECT_EQ(r.header("x-repo-commit"), sha1);
  }
  auto refs = json::parse(get("/api/models/alice/m/refs").body);
  EXPECT_EQ(refs["branches"].size(), 2u);
  EXPECT_EQ(refs["tags"][0]["targetCommit"], sha1);
  auto commits = get("/api/models/alice/m/commits/main");
  EXPECT_EQ(json::parse(commits.body).size(), 3u);
  EXPECT_EQ(commits.header("x-total-count"), "3");

  // Regular file: git blob etag and ranges; xet file: xet headers, bytes, raw pointer.
  auto readme = get("/alice/m/resolve/main/README.md", {"Range: bytes=0-0"});
  EXPECT_EQ(readme.status, 206);
  EXPECT_EQ(readme.body, "#");
  EXPECT_EQ(readme.header("content-range"), "bytes 0-0/5");
  auto whead = http("HEAD", base_ + "/alice/m/resolve/main/w.bin");
  EXPECT_EQ(whead.header("x-xet-hash"), kHashB);
  EXPECT_EQ(whead.header("x-linked-size"), "1000");
  EXPECT_EQ(whead.header("x-linked-etag"), "\"" + weights_sha + "\"");
  EXPECT_NE(whead.header("link").find("/api/models/alice/m/xet-read-token/"), std::string::npos);
  EXPECT_EQ(get("/alice/m/resolve/main/w.bin").body, weights);
  auto raw = get("/alice/m/raw/main/w.bin");
  EXPECT_NE(raw.body.find("oid sha256:" + weights_sha), std::string::npos);
  auto missing = get("/alice/m/resolve/main/none.bin");
  EXPECT_EQ(missing.header("x-error-code"), "EntryNotFound");
  EXPECT_FALSE(missing.header("x-repo-commit").empty());

  auto paths =
      json::parse(post("/api/models/alice/m/paths-info/main", "paths=w.bin&paths=nope&expand=true",
                       {"Content-Type: application/x-www-form-urlencoded"})
                      .body);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0]["xetHash"], kHashB);

  auto rt = get("/api/models/alice/m/xet-read-token/" + sha1);
  EXPECT_EQ(rt.status, 200);
  EXPECT_EQ(get("/api/models/alice/m/xet-write-token/main").status, 401);
  EXPECT_EQ(http("DELETE", base_ + "/api/repos/delete", R"({"name":"m"})", {alice()}).status, 200);
  EXPECT_EQ(get("/api/models/alice/m", {alice()}).status, 404);
}

TEST_F(HubApiTest, RepoCommitRejectsBadInput) {
  ASSERT_EQ(post("/api/repos/create", R"({"name":"d","type":"dataset"})", {alice()}).status, 200);
  const std::string header = json{{"key", "header"}, {"value", {{"summary", "x"}}}}.dump() + "\n";
  const std::vector<std::pair<std::string, int>> cases = {
      {"garbage", 400},
      {header + R"({"key":"file","value":{"path":"../x","content":"aGk=","encoding":"base64"}})",
       400},
      {header + R"({"key":"file","value":{"path":"x","content":"!!!","encoding":"base64"}})", 400},
      {header + R"({"key":"mystery","value":{"path":"x"}})", 400},
      {R"({"key":"file","value":{"path":"x","content":"aGk=","encoding":"base64"}})", 400},
      {header + R"({"key":"lfsFile","value":{"path":"x","algo":"sha256","size":3,"oid":")" +
           std::string(64, 'c') + "\"}}",
       422},
  };
  for (const auto& [body, status] : cases) {
    auto r = post("/api/datasets/alice/d/commit/main", body, {alice()});
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
  }
  EXPECT_EQ(json::parse(get("/api/datasets/alice/d/commits/main").body).size(), 1u);
  // A file and a folder of the same name cannot coexist in a git tree.
  auto file_op = [](const std::string& path) {
    return json{{"key", "file"},
                {"value", {{"path", path}, {"content", "aGk="}, {"encoding", "base64"}}}}
               .dump() +
           "\n";
  };
  ASSERT_EQ(
      post("/api/datasets/alice/d/commit/main", header + file_op("x/y.txt"), {alice()}).status,
      200);
  EXPECT_EQ(post("/api/datasets/alice/d/commit/main", header + file_op("x"), {alice()}).status,
            400);
  EXPECT_EQ(
      post("/api/datasets/alice/d/commit/main", header + file_op("x/y.txt/z"), {alice()}).status,
      400);
  EXPECT_EQ(get("/datasets/alice/d/resolve/main/x/y.txt").body, "hi");
  EXPECT_EQ(get("/datasets/alice/d/raw/main/x/y.txt").body, "hi");
  EXPECT_EQ(json::parse(get("/api/datasets/alice/d/tree/main").body).size(),
            2u);  // .gitattributes, x
  EXPECT_EQ(get("/api/datasets/alice/d/tree/main/nope").header("x-error-code"), "EntryNotFound");
  EXPECT_EQ(post("/api/datasets/alice/d/commit/nobranch", header, {alice()}).status, 404);
  EXPECT_EQ(post("/api/datasets/alice/d/commit/main", header).status, 401);
  EXPECT_EQ(post("/api/datasets/alice/d/commit/main", header, {bob()}).status, 403);
  EXPECT_EQ(get("/api/datasets/bad..ns/d").status, 400);
  EXPECT_EQ(get("/api/datasets/alice/none", {alice()}).header("x-error-code"), "RepoNotFound");
}

TEST_F(HubApiTest, BatchRequiresAddsBeforeDeletes) {
  makeBucket("alice/o");
  std::string body =
      std::string(R"({"type":"deleteFile","path":"old"})") + "\n" + addLine("new", kHashA);
  EXPECT_EQ(post("/api/buckets/alice/o/batch", body, {alice()}).status, 400);
  // A rename: add the new path, delete the old one, in one batch.
  ASSERT_EQ(post("/api/buckets/alice/o/batch", addLine("old", kHashA), {alice()}).status, 200);
  body = addLine("new", kHashA) + R"({"type":"deleteFile","path":"old"})";
  ASSERT_EQ(post("/api/buckets/alice/o/batch", body, {alice()}).status, 200);
  EXPECT_EQ(treePaths("/api/buckets/alice/o/tree"), std::set<std::string>{"new"});
}

TEST_F(HubApiTest, MovesBucketsAndRepos) {
  makeBucket("alice/from");
  ASSERT_EQ(post("/api/buckets/alice/from/batch", addLine("f.txt", kHashA), {alice()}).status, 200);
  makeBucket("alice/taken");
  auto move = [&](const std::string& type, const std::string& from, const std::string& to,
                  const std::string& auth) {
    return post("/api/repos/move", json{{"fromRepo", from}, {"toRepo", to}, {"type", type}}.dump(),
                {auth})
        .status;
  };
  EXPECT_EQ(move("bucket", "alice/from", "alice/taken", alice()), 409);
  EXPECT_EQ(move("bucket", "alice/from", "bob/stolen", alice()), 403);
  EXPECT_EQ(move("bucket", "alice/from", "alice/x", bob()), 403);
  EXPECT_EQ(move("bucket", "alice/nothing", "alice/x", alice()), 404);
  EXPECT_EQ(move("bucket", "alice/from", "alice/bad..", alice()), 400);
  ASSERT_EQ(move("bucket", "alice/from", "alice/to", alice()), 200);
  EXPECT_EQ(get("/api/buckets/alice/from", {alice()}).status, 404);
  EXPECT_EQ(treePaths("/api/buckets/alice/to/tree"), std::set<std::string>{"f.txt"});

  ASSERT_EQ(post("/api/repos/create", R"({"name":"r1"})", {alice()}).status, 200);
  ASSERT_EQ(move("model", "alice/r1", "alice/r2", alice()), 200);
  EXPECT_EQ(get("/api/models/alice/r1", {alice()}).status, 404);
  auto info = get("/api/models/alice/r2");
  ASSERT_EQ(info.status, 200);
  EXPECT_EQ(json::parse(info.body)["id"], "alice/r2");
  EXPECT_EQ(get("/alice/r2/resolve/main/.gitattributes").status, 200);
}

TEST_F(HubApiTest, PrivateReposAreHidden) {
  ASSERT_EQ(post("/api/repos/create", R"({"name":"p","private":true})", {alice()}).status, 200);
  EXPECT_EQ(get("/api/models/alice/p", {alice()}).status, 200);
  EXPECT_EQ(get("/alice/p/resolve/main/.gitattributes", {alice()}).status, 200);
  for (const std::string& path :
       {std::string("/api/models/alice/p"), std::string("/alice/p/resolve/main/.gitattributes"),
        std::string("/api/models/alice/p/tree/main"),
        std::string("/api/models/alice/p/xet-read-token/main")}) {
    auto anon = get(path);
    EXPECT_EQ(anon.status, 401) << path;
    EXPECT_EQ(anon.header("x-error-code"), "RepoNotFound") << path;
    EXPECT_EQ(get(path, {bob()}).status, 404) << path;
  }
}

TEST_F(HubApiTest, DataSurvivesRestart) {
  makeBucket("alice/keep");
  ASSERT_EQ(post("/api/buckets/alice/keep/batch", addLine("k/v.txt", kHashA), {alice()}).status,
            200);
  ASSERT_EQ(post("/api/repos/create", R"({"name":"keep"})", {alice()}).status, 200);
  std::string ndjson =
      json{{"key", "header"}, {"value", {{"summary", "s"}}}}.dump() + "\n" +
      json{{"key", "file"},
           {"value",
            {{"path", "a.txt"}, {"content", base64Encode("persist")}, {"encoding", "base64"}}}}
          .dump();
  ASSERT_EQ(post("/api/models/alice/keep/commit/main", ndjson, {alice()}).status, 200);
  auto token = json::parse(get("/api/buckets/alice/keep/xet-read-token").body)["accessToken"];

  stop();
  start();
  EXPECT_EQ(treePaths("/api/buckets/alice/keep/tree?recursive=true"),
            std::set<std::string>{"k/v.txt"});
  EXPECT_EQ(get("/buckets/alice/keep/resolve/k/v.txt").body, "hello world");
  EXPECT_EQ(get("/alice/keep/resolve/main/a.txt").body, "persist");
  // The token secret persists too, so tokens issued before the restart still verify.
  XetTokenClaims claims;
  EXPECT_EQ(tokens_->verify(token.get<std::string>(), 0, &claims), TokenCheck::kValid);
}

}  // namespace
}  // namespace hfm::localhub::testing
