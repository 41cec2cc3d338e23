// HubClient against the project's own hf-local-hub (started per test on a free loopback port
// with a fresh data directory, and always killed): the Hub shapes we parse are the ones the
// server really sends.
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hfm/hub/hub_client.h"
#include "hfm/hub/xet_token_cache.h"

extern char** environ;

namespace hfm::hub {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

const std::string kEmptyHash(64, '0');  // the xet hash of an empty file
constexpr const char* kToken = "hf_test";

// Runs hf-local-hub; the destructor stops it (SIGTERM, then SIGKILL) and removes its data.
class LocalHub {
 public:
  explicit LocalHub(std::vector<std::string> extra_args = {}) {
    data_ = fs::temp_directory_path() /
            ("hfm-localhub-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(data_);
    fs::create_directories(data_);
    int fds[2];
    if (::pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    const std::string data = data_.string();
    const std::string token = std::string("user:") + kToken;
    std::vector<std::string> args = {HFM_LOCAL_HUB_BIN, "serve",  "--port", "0",       "--host",
                                     "127.0.0.1",       "--data", data,     "--token", token};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, HFM_LOCAL_HUB_BIN, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      pid_ = -1;
      ::close(fds[0]);
      return;
    }
    url_ = readUrl(fds[0]);
    ::close(fds[0]);
  }

  ~LocalHub() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(milliseconds(10));
      }
    }
    std::error_code ignored;
    fs::remove_all(data_, ignored);
  }

  LocalHub(const LocalHub&) = delete;
  LocalHub& operator=(const LocalHub&) = delete;

  const std::string& url() const { return url_; }

 private:
  // Waits (at most 20 s) for "hf-local-hub listening on http://HOST:PORT".
  static std::string readUrl(int fd) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
      const auto at = out.find("listening on ");
      if (at != std::string::npos) {
        const auto end = out.find('\n', at);
        if (end != std::string::npos) return out.substr(at + 13, end - at - 13);
      }
    }
    return {};
  }

  static inline int counter_ = 0;
  fs::path data_;
  pid_t pid_ = -1;
  std::string url_;
};

std::shared_ptr<http::HttpClient> httpClient(int attempts = 3) {
  http::ClientOptions options;
  options.retry.max_attempts = attempts;
  options.retry.initial_backoff = milliseconds(2);
  options.retry.max_backoff = milliseconds(10);
  options.request_timeout = milliseconds(10000);
  return std::make_shared<http::HttpClient>(options);
}

std::shared_ptr<const Credentials> credentials(const std::string& token) {
  CredentialOptions options;
  options.hf_token = token;
  return std::make_shared<const Credentials>(
      Credentials::resolve(options, [](const std::string&) { return std::nullopt; }));
}

class HubLocalHubTest : public ::testing::Test {
 protected:
  virtual std::vector<std::string> hubArgs() const { return {}; }
  virtual int attempts() const { return 3; }

  void SetUp() override {
    hub_ = std::make_unique<LocalHub>(hubArgs());
    http_ = httpClient(attempts());
    ASSERT_FALSE(hub_->url().empty()) << "hf-local-hub did not start";
  }

  // Bucket creation is not part of a mount's API: plain HTTP, as the reference's tests do.
  void createBucket(const std::string& id) {
    http::Request request;
    request.method = "POST";
    request.url = hub_->url() + "/api/buckets/" + id;
    request.headers["Authorization"] = std::string("Bearer ") + kToken;
    request.headers["Content-Type"] = "application/json";
    request.body = "{}";
    auto response = http_->exchange(request);
    ASSERT_TRUE(response.ok()) << response.error().message();
    // Creation is not idempotent: when an injected fault cut the answer to an attempt that
    // did create the bucket, the retry is told 409. Each test starts on an empty hub, so a
    // 409 after a retry is that lost answer; a 409 on the first attempt is a real failure.
    const bool created = response->status / 100 == 2;
    const bool lost_answer = response->status == 409 && response->attempts > 1;
    ASSERT_TRUE(created || lost_answer)
        << "creating " << id << ": HTTP " << response->status << " after " << response->attempts
        << " attempt(s): " << response->body;
  }

  HubClient bucket(const std::string& id, int page_size = 5000, const std::string& token = kToken) {
    HubOptions options;
    options.endpoint = hub_->url();
    options.bucket_tree_limit = page_size;
    return {options, parseBucketId(id).value(), credentials(token), http_};
  }

  std::unique_ptr<LocalHub> hub_;
  std::shared_ptr<http::HttpClient> http_;
};

// A quarter of all requests fail (5xx, reset without answer, truncated body); with 10
// attempts per request the chance that any request of this test exhausts them is ~1e-5.
class HubLocalHubFaultsTest : public HubLocalHubTest {
 protected:
  std::vector<std::string> hubArgs() const override {
    return {"--fault-rate", "0.25", "--faults", "5xx,reset,truncate"};
  }
  int attempts() const override { return 10; }
};

TEST_F(HubLocalHubTest, WhoamiAndBucketInfo) {
  createBucket("user/b");
  auto client = bucket("user/b");
  auto who = client.whoami();
  ASSERT_TRUE(who.ok()) << who.error().message();
  EXPECT_EQ(who->name, "user");
  auto info = client.info();
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->id, "user/b");
  EXPECT_TRUE(info->last_modified_ms.has_value());
}

TEST_F(HubLocalHubTest, ErrorsMapToErrno) {
  auto missing = bucket("user/nope").info();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT) << missing.error().message();
  createBucket("user/b");
  auto bad_token = bucket("user/b", 5000, "hf_wrong").whoami();
  ASSERT_FALSE(bad_token.ok());
  EXPECT_EQ(bad_token.error().code(), EACCES) << bad_token.error().message();
}

TEST_F(HubLocalHubTest, BatchThenListWithPagination) {
  createBucket("user/b");
  auto client = bucket("user/b", 2);
  std::vector<BatchOp> ops;
  for (const char* path : {"dir/a", "dir/b", "dir/c", "dir/d", "dir/sub/e", "dir_old/f", "top"}) {
    ops.push_back(BatchOp::addFile(path, kEmptyHash, 1700000000000));
  }
  auto added = client.batch(ops);
  ASSERT_TRUE(added.ok()) << added.error().message();

  std::size_t pages = 0;
  std::vector<std::string> paths;
  auto status = client.listTree("dir", false, [&](std::vector<TreeEntry>&& page) {
    ++pages;
    for (const auto& entry : page) paths.push_back(entry.path + (entry.is_directory ? "/" : ""));
    return okStatus();
  });
  ASSERT_TRUE(status.ok()) << status.error().message();
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (std::vector<std::string>{"dir/a", "dir/b", "dir/c", "dir/d", "dir/sub/"}));
  EXPECT_GE(pages, 3u);  // 5 entries, 2 per page

  auto all = client.listRecursive("");
  ASSERT_TRUE(all.ok()) << all.error().message();
  EXPECT_EQ(all->size(), 7u);
  for (const auto& entry : *all) {
    EXPECT_FALSE(entry.is_directory);
    EXPECT_EQ(entry.xet_hash, kEmptyHash);
    EXPECT_EQ(entry.size, 0u);
  }

  // A client rooted at a subfolder sees paths relative to it.
  auto sub = bucket("user/b/dir");
  auto rooted = sub.listDirectory("");
  ASSERT_TRUE(rooted.ok()) << rooted.error().message();
  EXPECT_EQ(rooted->size(), 5u);
  const std::vector<std::string> wanted = {"a", "sub/e", "missing"};
  auto info = sub.pathsInfo(wanted);
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->size(), 2u);

  auto head = sub.head("a");
  ASSERT_TRUE(head.ok()) << head.error().message();
  EXPECT_EQ(head->xet_hash, kEmptyHash);
  EXPECT_EQ(head->size, 0u);
  EXPECT_FALSE(head->xet_refresh_url.empty());
  EXPECT_EQ(sub.head("nope").error().code(), ENOENT);

  // Rename = add + delete in one batch.
  const std::vector<BatchOp> rename = {BatchOp::deleteFile("a"),
                                       BatchOp::addFile("z", kEmptyHash, 1)};
  ASSERT_TRUE(sub.batch(rename).ok());
  auto after = sub.listDirectory("");
  ASSERT_TRUE(after.ok());
  std::vector<std::string> names;
  for (const auto& entry : *after) names.push_back(entry.path);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"b", "c", "d", "sub", "z"}));
}

TEST_F(HubLocalHubTest, XetTokensPointAtTheServersCas) {
  createBucket("user/b");
  auto client = std::make_shared<const HubClient>(bucket("user/b"));
  for (const XetAccess access : {XetAccess::kRead, XetAccess::kWrite}) {
    auto token = client->fetchXetToken(access);
    ASSERT_TRUE(token.ok()) << token.error().message();
    EXPECT_FALSE(token->access_token.empty());
    EXPECT_EQ(token->cas_url, hub_->url());
    EXPECT_GT(token->expires_at, XetTokenCache::systemNow());
  }
  auto cache = XetTokenCache::forHub(client, XetAccess::kRead);
  auto first = cache->get(false);
  auto second = cache->get(false);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->access_token, second->access_token);
  EXPECT_EQ(cache->fetchCount(), 1u);
}

TEST_F(HubLocalHubFaultsTest, RetriesHideInjectedFaults) {
  createBucket("user/b");
  auto client = bucket("user/b");
  std::vector<BatchOp> ops;
  for (int i = 0; i < 20; ++i)
    ops.push_back(BatchOp::addFile("f/" + std::to_string(i), kEmptyHash, 1));
  auto added = client.batch(ops);
  ASSERT_TRUE(added.ok()) << added.error().message();
  for (int round = 0; round < 20; ++round) {
    auto listing = client.listRecursive("f");
    ASSERT_TRUE(listing.ok()) << listing.error().message();
    EXPECT_EQ(listing->size(), 20u);
  }
  auto token = client.fetchXetToken(XetAccess::kRead);
  ASSERT_TRUE(token.ok()) << token.error().message();

  // The faults really happened: raw requests needed more attempts than requests.
  int attempts_total = 0;
  for (int i = 0; i < 40; ++i) {
    http::Request request;
    request.url = hub_->url() + "/api/buckets/user/b/tree?recursive=true";
    request.headers["Authorization"] = std::string("Bearer ") + kToken;
    auto response = http_->send(request);
    ASSERT_TRUE(response.ok()) << response.error().message();
    attempts_total += response->attempts;
  }
  EXPECT_GT(attempts_total, 40);
}

}  // namespace
}  // namespace hfm::hub
