// Test support for hf-local-hub's Hub half: a FakeCas standing in for the CAS service (known
// file hashes, sizes, sha256 mappings and bytes), a running server on 127.0.0.1:0 over a temp
// data directory, and a small libcurl client. The server is stopped and the directory removed
// when the fixture is destroyed, even after a failed assertion.
#pragma once

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "hfm/localhub/cas_service.h"
#include "hfm/localhub/http_server.h"
#include "hfm/localhub/hub_service.h"
#include "hfm/localhub/hub_store.h"
#include "hfm/localhub/tokens.h"

namespace hfm::localhub::testing {

class FakeCas : public CasService {
 public:
  std::optional<HttpResponse> handle(const HttpRequest& request) override {
    if (request.path == "/v1/fake-ping") return HttpResponse::text(200, "pong");
    return std::nullopt;
  }
  std::optional<uint64_t> fileSize(const xet::MerkleHash& h) override {
    auto it = files.find(h.hex());
    if (it == files.end()) return std::nullopt;
    return it->second.size();
  }
  std::optional<xet::MerkleHash> fileHashForSha256(const std::string& sha) override {
    auto it = by_sha256.find(sha);
    if (it == by_sha256.end()) return std::nullopt;
    return xet::MerkleHash::fromHex(it->second);
  }
  Result<std::string> readFileRange(const xet::MerkleHash& h, uint64_t off, uint64_t len) override {
    auto it = files.find(h.hex());
    if (it == files.end()) return Error::notFound("unknown file");
    if (off >= it->second.size()) return std::string();
    return it->second.substr(off, len);
  }

  std::map<std::string, std::string> files;      // xet hash hex -> bytes
  std::map<std::string, std::string> by_sha256;  // sha256 hex -> xet hash hex
};

struct Reply {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercased names
  std::string body;
  CURLcode curl = CURLE_OK;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

inline size_t collectBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

inline size_t collectHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

// One HTTP exchange; `url` is absolute.
inline Reply http(const std::string& method, const std::string& url, const std::string& body = {},
                  const std::vector<std::string>& headers = {}) {
  Reply r;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // send "/../" as is: the server must refuse it
  if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (method == "POST" || method == "PUT" || (method == "DELETE" && !body.empty())) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Expect:");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &collectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &collectHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  r.curl = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return r;
}

class HubServerTest : public ::testing::Test {
 protected:
  static constexpr const char* kAliceToken = "hf_alice_token";
  static constexpr const char* kBobToken = "hf_bob_token";

  void SetUp() override {
    char tmpl[] = "/tmp/hfm-hub-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    start();
  }
  void TearDown() override {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start(FaultOptions faults = {}) {
    auto store = HubStore::open(dir_);
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(*store);
    tokens_ = std::make_unique<XetTokens>(store_->secret(), 3600);
    HubOptions options;
    options.users_by_token = {{kAliceToken, "alice"}, {kBobToken, "bob"}};
    hub_ = std::make_unique<HubService>(store_.get(), &cas_, tokens_.get(), options);
    ServerOptions so;
    so.threads = 4;
    so.faults = faults;
    auto server = HttpServer::start(so, [this](const HttpRequest& r) { return hub_->handle(r); });
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    base_ = server_->baseUrl();
  }
  void stop() {
    if (server_) server_->stop();
    server_.reset();
    hub_.reset();
    tokens_.reset();
    store_.reset();
  }

  std::string alice() const { return std::string("Authorization: Bearer ") + kAliceToken; }
  std::string bob() const { return std::string("Authorization: Bearer ") + kBobToken; }
  Reply get(const std::string& path, const std::vector<std::string>& h = {}) {
    return http("GET", base_ + path, "", h);
  }
  Reply post(const std::string& path, const std::string& body,
             const std::vector<std::string>& h = {}) {
    return http("POST", base_ + path, body, h);
  }

  std::filesystem::path dir_;
  FakeCas cas_;
  std::unique_ptr<HubStore> store_;
  std::unique_ptr<XetTokens> tokens_;
  std::unique_ptr<HubService> hub_;
  std::unique_ptr<HttpServer> server_;
  std::string base_;
};

}  // namespace hfm::localhub::testing
