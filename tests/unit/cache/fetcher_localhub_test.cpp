// End to end: files uploaded to a real hf-local-hub (xorbs + shard over its CAS API) read back
// through CasClient + ChunkFetcher + the disk cache, byte for byte.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "hfm/cache/chunk_fetcher.h"
#include "hfm/http/http_client.h"
#include "hfm/xet/cas_client.h"
#include "hfm/xet/chunker.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/shard.h"
#include "hfm/xet/xorb.h"

namespace hfm::cache {
namespace {

namespace fs = std::filesystem;
using xet::MerkleHash;

constexpr const char* kToken = "hf_e2etoken";

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("hfm-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs hf-local-hub on an ephemeral loopback port; always stopped by the destructor.
class LocalHub {
 public:
  explicit LocalHub(const fs::path& data, const std::string& token_ttl_secs = "3600") {
    const std::string bin = std::string(HFM_BINARY_DIR) + "/src/bin/hf-local-hub";
    int out[2];
    if (::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      const std::string data_arg = data.string();
      const std::string token_arg = std::string("e2e:") + kToken;
      ::execl(bin.c_str(), bin.c_str(), "serve", "--data", data_arg.c_str(), "--port", "0",
              "--host", "127.0.0.1", "--token", token_arg.c_str(), "--token-ttl-secs",
              token_ttl_secs.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // Wait (bounded) for "hf-local-hub listening on http://...".
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    const size_t at = line.find("http://");
    if (at != std::string::npos) url_ = line.substr(at, line.find('\n', at) - at);
  }
  ~LocalHub() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  LocalHub(const LocalHub&) = delete;
  LocalHub& operator=(const LocalHub&) = delete;
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  std::string url_;
};

Result<http::XetCredentials> fetchToken(http::HttpClient& http, const std::string& hub,
                                        const std::string& op) {
  http::Request req;
  req.url = hub + "/api/buckets/e2e/data/" + op;
  req.headers["Authorization"] = std::string("Bearer ") + kToken;
  HFM_ASSIGN_OR_RETURN(http::Response resp, http.send(req));
  const auto j = nlohmann::json::parse(resp.body);
  return http::XetCredentials{j.at("casUrl").get<std::string>(),
                              j.at("accessToken").get<std::string>(), j.at("exp").get<int64_t>()};
}

class HubTokens : public http::XetTokenProvider {
 public:
  HubTokens(http::HttpClient& http, std::string hub) : http_(http), hub_(std::move(hub)) {}
  Result<http::XetCredentials> get(bool) override {
    return fetchToken(http_, hub_, "xet-read-token");
  }

 private:
  http::HttpClient& http_;
  std::string hub_;
};

// Keeps its token until asked to refresh, like the hub layer's cache.
class CachingHubTokens : public http::XetTokenProvider {
 public:
  CachingHubTokens(http::HttpClient& http, std::string hub) : http_(http), hub_(std::move(hub)) {}
  Result<http::XetCredentials> get(bool force_refresh) override {
    std::lock_guard lock(mu_);
    if (force_refresh) ++refreshes_;
    if (!cached_ || force_refresh) {
      HFM_ASSIGN_OR_RETURN(auto creds, fetchToken(http_, hub_, "xet-read-token"));
      cached_ = creds;
    }
    return *cached_;
  }
  int refreshes() {
    std::lock_guard lock(mu_);
    return refreshes_;
  }

 private:
  http::HttpClient& http_;
  std::string hub_;
  std::mutex mu_;
  std::optional<http::XetCredentials> cached_;  // Guarded by mu_
  int refreshes_ = 0;                           // Guarded by mu_
};

struct Uploaded {
  MerkleHash file;
  std::vector<uint8_t> data;
};

// Builds two xorbs from `seed` data and a file whose terms use xorb A twice around xorb B
// (so V2 plans carry several signed ranges for one URL), uploads them and the shard.
// POSTs to the CAS with a fresh write token (tests run hubs with very short token lifetimes).
Status casPost(http::HttpClient& http, const std::string& hub, const std::string& path,
               std::span<const uint8_t> body) {
  for (int attempt = 0;; ++attempt) {
    HFM_ASSIGN_OR_RETURN(http::XetCredentials w, fetchToken(http, hub, "xet-write-token"));
    http::Request post;
    post.method = "POST";
    post.url = w.cas_url + path;
    post.headers["Authorization"] = "Bearer " + w.access_token;
    post.body.assign(body.begin(), body.end());
    HFM_ASSIGN_OR_RETURN(http::Response resp, http.exchange(post));
    if (resp.ok()) return okStatus();
    if (resp.status != 401 || attempt == 3) return http::statusError(resp, "POST " + path);
  }
}

Result<Uploaded> upload(http::HttpClient& http, const std::string& hub, uint32_t seed) {
  std::mt19937 rng(seed);
  auto makeXorb = [&](size_t bytes)
      -> Result<std::pair<xet::SerializedXorb, std::vector<std::vector<uint8_t>>>> {
    std::vector<uint8_t> raw(bytes);
    for (size_t i = 0; i < raw.size(); ++i) {
      raw[i] = (i / 4096) % 2 == 0 ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(i % 251);
    }
    std::vector<std::vector<uint8_t>> chunks;
    uint64_t pos = 0;
    for (uint64_t end : xet::chunkEnds(raw)) {
      chunks.emplace_back(raw.begin() + static_cast<std::ptrdiff_t>(pos),
                          raw.begin() + static_cast<std::ptrdiff_t>(end));
      pos = end;
    }
    xet::XorbBuilder builder;
    for (const auto& c : chunks) HFM_TRY(builder.add(c));
    return std::make_pair(builder.finish(), std::move(chunks));
  };
  HFM_ASSIGN_OR_RETURN(auto a, makeXorb(1'500'000));
  HFM_ASSIGN_OR_RETURN(auto b, makeXorb(700'000));
  if (a.second.size() < 8) return Error::io("too few chunks for the test layout");
  const auto na = static_cast<uint32_t>(a.second.size());
  const auto nb = static_cast<uint32_t>(b.second.size());
  struct T {
    const std::pair<xet::SerializedXorb, std::vector<std::vector<uint8_t>>>* x;
    uint32_t start, end;
  };
  const std::vector<T> terms = {{&a, 0, 3}, {&b, 0, nb}, {&a, 5, na}, {&a, 1, 2}};

  xet::Shard shard;
  xet::ShardFile file;
  std::vector<xet::ChunkInfo> file_chunks;
  Uploaded out;
  for (const auto& t : terms) {
    xet::FileTerm ft;
    ft.xorb_hash = t.x->first.hash;
    ft.chunk_start = t.start;
    ft.chunk_end = t.end;
    std::vector<MerkleHash> hashes;
    for (uint32_t c = t.start; c < t.end; ++c) {
      const auto& chunk = t.x->second[c];
      ft.unpacked_bytes += static_cast<uint32_t>(chunk.size());
      out.data.insert(out.data.end(), chunk.begin(), chunk.end());
      file_chunks.push_back(t.x->first.chunks[c]);
      hashes.push_back(t.x->first.chunks[c].hash);
    }
    file.terms.push_back(ft);
    file.verification.push_back(xet::verificationHash(hashes));
  }
  file.file_hash = xet::fileHash(file_chunks);
  out.file = file.file_hash;
  shard.files.push_back(file);
  for (const auto* x : {&a.first, &b.first}) {
    xet::ShardXorb sx;
    sx.hash = x->hash;
    uint32_t off = 0;
    for (const auto& c : x->chunks) {
      sx.chunks.push_back({c.hash, off, static_cast<uint32_t>(c.size), 0});
      off += static_cast<uint32_t>(c.size);
    }
    sx.num_bytes_in_xorb = off;
    shard.xorbs.push_back(sx);
    HFM_TRY(casPost(http, hub, "/v1/xorbs/default/" + x->hash.hex(), x->body));
  }
  HFM_ASSIGN_OR_RETURN(auto shard_bytes, xet::serializeUploadShard(shard));
  HFM_TRY(casPost(http, hub, "/v1/shards", shard_bytes));
  return out;
}

Status createBucket(http::HttpClient& http, const std::string& hub) {
  http::Request create;
  create.method = "POST";
  create.url = hub + "/api/buckets/e2e/data";
  create.headers["Authorization"] = std::string("Bearer ") + kToken;
  create.headers["Content-Type"] = "application/json";
  create.body = "{}";
  HFM_TRY(http.send(create));
  return okStatus();
}

TEST(FetcherLocalHubTest, FullAndRandomRangedReadsMatchUploadedBytes) {
  TempDir dir;
  LocalHub hub(dir.path() / "hub");
  ASSERT_FALSE(hub.url().empty()) << "hf-local-hub did not start";
  http::HttpClient http;
  auto created = createBucket(http, hub.url());
  ASSERT_TRUE(created.ok()) << created.error().message();
  auto up = upload(http, hub.url(), 7);
  ASSERT_TRUE(up.ok()) << up.error().message();
  const auto& data = up->data;

  HubTokens tokens(http, hub.url());
  xet::CasClient cas(http, tokens);
  std::shared_ptr<ChunkCache> cache = openDiskChunkCache(dir.path() / "cache", 64 << 20).value();
  ChunkFetcher fetcher(cas, cache);

  std::vector<uint8_t> buf(data.size() + 10);
  auto n = fetcher.read(up->file, data.size(), 0, buf);
  ASSERT_TRUE(n.ok()) << n.error().message();
  ASSERT_EQ(*n, data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), buf.begin()));
  const auto fetches_after_full = fetcher.stats().fetches;
  EXPECT_GE(fetches_after_full, 2u);  // two xorbs

  // Cold random ranges through a second fetcher without a cache (every read hits the CAS).
  ChunkFetcher uncached(cas, nullptr);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 40; ++i) {
    const uint64_t off = rng() % data.size();
    const size_t len = 1 + rng() % 300'000;
    for (ChunkFetcher* f : {&fetcher, &uncached}) {
      std::vector<uint8_t> got(len);
      auto r = f->read(up->file, data.size(), off, got);
      ASSERT_TRUE(r.ok()) << r.error().message();
      const size_t want = static_cast<size_t>(std::min<uint64_t>(len, data.size() - off));
      ASSERT_EQ(*r, want);
      ASSERT_TRUE(std::equal(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(want),
                             data.begin() + static_cast<std::ptrdiff_t>(off)))
          << "off=" << off << " len=" << len;
    }
  }
  EXPECT_EQ(fetcher.stats().fetches, fetches_after_full);  // the cached fetcher stayed warm
  EXPECT_GT(uncached.stats().fetches, 40u);
}

TEST(FetcherLocalHubTest, ExpiredXetTokenIsRefreshedOn401) {
  TempDir dir;
  LocalHub hub(dir.path() / "hub", "2");  // Xet tokens live two seconds
  ASSERT_FALSE(hub.url().empty()) << "hf-local-hub did not start";
  http::HttpClient http;
  auto created = createBucket(http, hub.url());
  ASSERT_TRUE(created.ok()) << created.error().message();
  auto up = upload(http, hub.url(), 11);
  ASSERT_TRUE(up.ok()) << up.error().message();
  CachingHubTokens tokens(http, hub.url());
  xet::CasClient cas(http, tokens);
  ChunkFetcher fetcher(cas, makeMemoryChunkCache(64 << 20));
  std::vector<uint8_t> buf(1000);
  ASSERT_TRUE(fetcher.read(up->file, up->data.size(), 0, buf).ok());
  EXPECT_EQ(tokens.refreshes(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));  // the cached token expires
  auto n = fetcher.read(up->file, up->data.size(), 500'000, buf);
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), up->data.begin() + 500'000));
  EXPECT_EQ(tokens.refreshes(), 1);
}

}  // namespace
}  // namespace hfm::cache
