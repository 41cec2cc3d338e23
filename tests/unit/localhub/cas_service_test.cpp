// CasService end to end through handle(): uploads with validation, reconstruction v1/v2,
// signed fetches (raw and multipart), global dedup, tokens, and a restart on the same data dir.
#include "hfm/localhub/cas_service.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "hfm/xet/compression.h"
#include "hfm/xet/dedup_index.h"
#include "hfm/xet/hashing.h"
#include "hfm/xet/shard.h"
#include "hfm/xet/upload_session.h"
#include "hfm/xet/xorb.h"

namespace hfm::localhub {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using xet::MerkleHash;

int64_t nowSecs() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string str(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }
std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  // Half random, half repetitive, so LZ4 actually compresses some chunks.
  for (size_t i = 0; i < n; ++i)
    out[i] = (i / 4096) % 2 ? static_cast<uint8_t>(i % 7) : static_cast<uint8_t>(rng());
  return out;
}

// Bytes read back from a response body (strings and file slices).
std::string bodyBytes(const HttpResponse& r) {
  std::string out;
  for (const auto& piece : r.body) {
    if (const auto* s = std::get_if<std::string>(&piece)) {
      out += *s;
    } else {
      const auto& slice = std::get<FileSlice>(piece);
      std::ifstream in(slice.path, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(slice.offset));
      std::string buf(slice.length, '\0');
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      EXPECT_EQ(static_cast<uint64_t>(in.gcount()), slice.length);
      out += buf;
    }
  }
  return out;
}

// A xorb built from `data` cut into fixed-size chunks (the server does not check boundaries).
xet::SerializedXorb buildXorb(const std::vector<uint8_t>& data, size_t chunk_size) {
  xet::XorbBuilder builder(xet::CompressionScheme::kLz4);
  for (size_t off = 0; off < data.size(); off += chunk_size) {
    auto n = std::min(chunk_size, data.size() - off);
    EXPECT_TRUE(builder.add(std::span(data.data() + off, n)).ok());
  }
  return builder.finish();
}

struct TermSpec {
  const xet::SerializedXorb* xorb;
  uint32_t start, end;
};

// The shard entry a client writes for a file made of the given terms.
xet::ShardFile shardFile(const std::vector<TermSpec>& terms, bool with_sha,
                         std::vector<uint8_t>* content = nullptr) {
  xet::ShardFile file;
  std::vector<xet::ChunkInfo> leaves;
  std::vector<uint8_t> data;
  for (const auto& t : terms) {
    std::vector<MerkleHash> hashes;
    uint32_t from = t.start == 0 ? 0 : t.xorb->unpacked_chunk_offsets[t.start - 1];
    uint32_t to = t.xorb->unpacked_chunk_offsets[t.end - 1];
    for (uint32_t k = t.start; k < t.end; ++k) {
      hashes.push_back(t.xorb->chunks[k].hash);
      leaves.push_back(t.xorb->chunks[k]);
    }
    file.terms.push_back({t.xorb->hash, 0, to - from, t.start, t.end});
    file.verification.push_back(xet::verificationHash(hashes));
    // Decode this term's bytes to know the file content.
    std::vector<uint8_t> all;
    EXPECT_TRUE(xet::decodeChunks(t.xorb->body, all).ok());
    data.insert(data.end(), all.begin() + from, all.begin() + to);
  }
  file.file_hash = xet::fileHash(leaves);
  if (with_sha) {
    std::array<uint8_t, 32> digest{};
    SHA256(data.data(), data.size(), digest.data());
    file.sha256 = xet::sha256AsMerkleHash(digest);
  }
  if (content) *content = data;
  return file;
}

xet::ShardXorb shardXorb(const xet::SerializedXorb& x) {
  xet::ShardXorb sx;
  sx.hash = x.hash;
  uint32_t offset = 0;
  for (const auto& c : x.chunks) {
    sx.chunks.push_back({c.hash, offset, static_cast<uint32_t>(c.size), 0});
    offset += static_cast<uint32_t>(c.size);
  }
  sx.num_bytes_in_xorb = offset;
  sx.num_bytes_on_disk = static_cast<uint32_t>(x.body.size());
  return sx;
}

std::string uploadShardBody(const std::vector<xet::ShardFile>& files,
                            const std::vector<xet::ShardXorb>& xorbs) {
  xet::Shard shard;
  shard.files = files;
  shard.xorbs = xorbs;
  auto body = xet::serializeUploadShard(shard);
  EXPECT_TRUE(body.ok());
  return str(*body);
}

class CasServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cas-service-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    reopen();
    write_token_ = tokens_.issue("user", "bucket:user/b", true, nowSecs());
    read_token_ = tokens_.issue("user", "bucket:user/b", false, nowSecs());
  }
  void TearDown() override {
    cas_.reset();
    fs::remove_all(dir_);
  }
  void reopen(CasOptions options = {}) {
    cas_.reset();
    auto opened = CasService::open(dir_, &tokens_, options);
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    cas_ = std::move(opened).value();
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& token,
                    std::string body = {}, Headers headers = {}) {
    HttpRequest req;
    req.method = method;
    req.path = path;
    req.raw_path = path;
    req.headers = std::move(headers);
    req.headers["Host"] = "127.0.0.1:4242";
    if (!token.empty()) req.headers["Authorization"] = "Bearer " + token;
    req.body = std::move(body);
    auto r = cas_->handle(req);
    EXPECT_TRUE(r.has_value()) << method << " " << path;
    return r ? *r : HttpResponse::text(599, "no route");
  }

  HttpResponse postXorb(const xet::SerializedXorb& x, const std::string& token = {}) {
    return call("POST", "/v1/xorbs/default/" + x.hash.hex(), token.empty() ? write_token_ : token,
                str(x.body));
  }

  // Follows a signed URL: the request the client would make (no Authorization).
  HttpResponse fetchUrl(const std::string& url, const std::string& range, Headers extra = {}) {
    const std::string base = "http://127.0.0.1:4242";
    EXPECT_EQ(url.rfind(base, 0), 0u) << url;
    std::string rest = url.substr(base.size());
    HttpRequest req;
    req.method = "GET";
    auto q = rest.find('?');
    req.path = rest.substr(0, q);
    req.raw_path = req.path;
    std::string query = q == std::string::npos ? "" : rest.substr(q + 1);
    size_t pos = 0;
    while (pos < query.size()) {
      size_t amp = query.find('&', pos);
      std::string item = query.substr(pos, amp == std::string::npos ? amp : amp - pos);
      size_t eq = item.find('=');
      std::string value = item.substr(eq + 1), decoded;
      for (size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '%') {
          decoded += static_cast<char>(std::stoi(value.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          decoded += value[i];
        }
      }
      req.query.emplace(item.substr(0, eq), decoded);
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    req.headers = std::move(extra);
    if (!range.empty()) req.headers["Range"] = range;
    auto r = cas_->handle(req);
    EXPECT_TRUE(r.has_value());
    return r ? *r : HttpResponse::text(599, "no route");
  }

  // Parses a multipart/byteranges body back into (Content-Range, bytes) parts.
  static std::vector<std::pair<std::string, std::string>> parseMultipart(const HttpResponse& r) {
    std::vector<std::pair<std::string, std::string>> parts;
    auto ct = r.headers.at("Content-Type");
    auto b = ct.find("boundary=");
    EXPECT_NE(b, std::string::npos);
    std::string delim = "--" + ct.substr(b + 9);
    std::string body = "\r\n" + bodyBytes(r);
    size_t pos = body.find("\r\n" + delim);
    while (pos != std::string::npos) {
      pos += 2 + delim.size();
      if (body.compare(pos, 2, "--") == 0) break;
      EXPECT_EQ(body.compare(pos, 2, "\r\n"), 0);
      size_t headers_end = body.find("\r\n\r\n", pos);
      std::string headers = body.substr(pos + 2, headers_end - pos - 2);
      size_t next = body.find("\r\n" + delim, headers_end + 4);
      EXPECT_NE(next, std::string::npos);
      auto cr = headers.find("Content-Range: ");
      EXPECT_NE(headers.find("Content-Type: application/octet-stream"), std::string::npos);
      std::string content_range = headers.substr(cr + 15, headers.find("\r\n", cr) - cr - 15);
      parts.emplace_back(content_range, body.substr(headers_end + 4, next - headers_end - 4));
      pos = next;
    }
    return parts;
  }

  // Downloads bytes through a v2 reconstruction exactly like a client: fetch every entry with
  // its signed ranges, decode the chunks, assemble the terms, apply offset and length.
  std::string downloadV2(const MerkleHash& file, const std::string& range = {}) {
    Headers h;
    if (!range.empty()) h["Range"] = range;
    auto r = call("GET", "/v2/reconstructions/" + file.hex(), read_token_, {}, h);
    EXPECT_EQ(r.status, 200) << bodyBytes(r);
    json j = json::parse(bodyBytes(r));
    // (xorb, chunk index) → decoded chunk
    std::map<std::pair<std::string, uint32_t>, std::string> chunks;
    for (auto& [xorb, entries] : j["xorbs"].items()) {
      for (auto& entry : entries) {
        std::vector<std::pair<uint32_t, std::string>> payloads;  // (first chunk, bytes)
        std::string header = "bytes=";
        for (auto& rg : entry["ranges"]) {
          if (header.size() > 6) header += ",";
          header += std::to_string(rg["bytes"]["start"].get<uint64_t>()) + "-" +
                    std::to_string(rg["bytes"]["end"].get<uint64_t>());
        }
        auto fr = fetchUrl(entry["url"], header);
        EXPECT_EQ(fr.status, 206);
        if (entry["ranges"].size() == 1) {
          payloads.emplace_back(entry["ranges"][0]["chunks"]["start"].get<uint32_t>(),
                                bodyBytes(fr));
        } else {
          auto parts = parseMultipart(fr);
          EXPECT_EQ(parts.size(), entry["ranges"].size());
          for (size_t i = 0; i < parts.size(); ++i) {
            payloads.emplace_back(entry["ranges"][i]["chunks"]["start"].get<uint32_t>(),
                                  parts[i].second);
          }
        }
        for (auto& [first, payload] : payloads) {
          std::vector<uint8_t> out;
          auto sizes = xet::decodeChunks(bytes(payload), out);
          EXPECT_TRUE(sizes.ok()) << (sizes.ok() ? "" : sizes.error().message());
          if (!sizes.ok()) continue;
          size_t off = 0;
          for (size_t k = 0; k < sizes->size(); ++k) {
            chunks[{xorb, first + static_cast<uint32_t>(k)}] =
                std::string(out.begin() + static_cast<ptrdiff_t>(off),
                            out.begin() + static_cast<ptrdiff_t>(off + (*sizes)[k]));
            off += (*sizes)[k];
          }
        }
      }
    }
    std::string data;
    for (auto& t : j["terms"]) {
      std::string term;
      for (uint32_t k = t["range"]["start"]; k < t["range"]["end"].get<uint32_t>(); ++k) {
        term += chunks.at({t["hash"].get<std::string>(), k});
      }
      EXPECT_EQ(term.size(), t["unpacked_length"].get<size_t>());
      data += term;
    }
    return data.substr(std::min<size_t>(data.size(), j["offset_into_first_range"].get<size_t>()));
  }

  fs::path dir_;
  XetTokens tokens_{"test-secret", 3600};
  std::unique_ptr<CasService> cas_;
  std::string write_token_, read_token_;
};

TEST_F(CasServiceTest, UploadsAreValidatedIdempotentAndDownloadable) {
  auto data = randomBytes(300000, 1);
  auto x = buildXorb(data, 40000);
  auto r = postXorb(x);
  ASSERT_EQ(r.status, 200) << bodyBytes(r);
  EXPECT_EQ(json::parse(bodyBytes(r))["was_inserted"], true);
  r = postXorb(x);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(bodyBytes(r))["was_inserted"], false);

  std::vector<uint8_t> content;
  auto file = shardFile({{&x, 0, static_cast<uint32_t>(x.chunks.size())}}, true, &content);
  ASSERT_EQ(content, data);
  std::string shard = uploadShardBody({file}, {shardXorb(x)});
  r = call("POST", "/v1/shards", write_token_, shard);
  ASSERT_EQ(r.status, 200) << bodyBytes(r);
  EXPECT_EQ(json::parse(bodyBytes(r))["result"], 1);
  r = call("POST", "/v1/shards", write_token_, shard);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(bodyBytes(r))["result"], 0);

  EXPECT_EQ(downloadV2(file.file_hash), str(data));
  EXPECT_EQ(cas_->fileSize(file.file_hash), data.size());
  ASSERT_TRUE(file.sha256.has_value());
  EXPECT_EQ(cas_->fileHashForSha256(file.sha256->hex()), file.file_hash);
  auto part = cas_->readFileRange(file.file_hash, 12345, 100000);
  ASSERT_TRUE(part.ok()) << part.error().message();
  EXPECT_EQ(*part, str(data).substr(12345, 100000));
  EXPECT_EQ(*cas_->readFileRange(file.file_hash, 299990, 1000), str(data).substr(299990));

  // The stored blob is the stored form: uploaded chunks followed by a V1 footer.
  auto blob_path = dir_ / "cas" / "xorbs" / x.hash.hex().substr(0, 2) / (x.hash.hex() + ".xorb");
  HttpResponse whole;
  whole.body.emplace_back(FileSlice{blob_path.string(), 0, fs::file_size(blob_path)});
  std::string blob = bodyBytes(whole);
  auto parsed = xet::parseXorb(bytes(blob));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  ASSERT_TRUE(parsed->footer.has_value());
  EXPECT_EQ(parsed->hash, x.hash);
  EXPECT_EQ(blob.substr(0, x.body.size()), str(x.body));
}

TEST_F(CasServiceTest, ConcurrentIdenticalUploadsInsertOnce) {
  auto x = buildXorb(randomBytes(200000, 14), 50000);
  auto file = shardFile({{&x, 0, 4}}, true);
  const std::string shard = uploadShardBody({file}, {shardXorb(x)});
  std::atomic<int> inserted{0}, shard_new{0}, failures{0};
  std::vector<std::thread> threads;
  threads.reserve(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto r = postXorb(x);
      if (r.status != 200) {
        ++failures;
        return;
      }
      if (json::parse(bodyBytes(r))["was_inserted"] == true) ++inserted;
      r = call("POST", "/v1/shards", write_token_, shard);
      if (r.status != 200) {
        ++failures;
        return;
      }
      if (json::parse(bodyBytes(r))["result"] == 1) ++shard_new;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(inserted.load(), 1);
  EXPECT_EQ(shard_new.load(), 1);
  EXPECT_EQ(cas_->fileSize(file.file_hash), 200000u);
}

TEST_F(CasServiceTest, AcceptsXorbsSentWithAFooter) {
  // hf_xet clients may append the V1 footer; the stored blob is the same either way.
  auto data = randomBytes(90000, 15);
  auto x = buildXorb(data, 30000);
  auto stored = x.storedForm();
  auto r = call("POST", "/v1/xorbs/default/" + x.hash.hex(), write_token_, str(stored));
  ASSERT_EQ(r.status, 200) << bodyBytes(r);
  auto file = shardFile({{&x, 0, 3}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({file}, {shardXorb(x)})).status,
      200);
  EXPECT_EQ(downloadV2(file.file_hash), str(data));
  // A footer that disagrees with the chunks is refused.
  auto other = buildXorb(randomBytes(90000, 16), 30000);
  std::vector<uint8_t> mixed = other.body;
  mixed.insert(mixed.end(), stored.begin() + static_cast<ptrdiff_t>(x.body.size()), stored.end());
  EXPECT_EQ(call("POST", "/v1/xorbs/default/" + other.hash.hex(), write_token_, str(mixed)).status,
            400);
}

TEST_F(CasServiceTest, V2ShardStreamsFramesAndErrors) {
  auto x = buildXorb(randomBytes(50000, 2), 20000);
  ASSERT_EQ(postXorb(x).status, 200);
  auto file = shardFile({{&x, 0, 3}}, false);
  auto r = call("POST", "/v2/shards", write_token_, uploadShardBody({file}, {shardXorb(x)}));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["Content-Type"], "application/x-ndjson");
  std::string body = bodyBytes(r);
  std::vector<json> frames;
  for (size_t pos = 0, nl; (nl = body.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    frames.push_back(json::parse(body.substr(pos, nl - pos)));
  }
  ASSERT_GE(frames.size(), 2u);
  EXPECT_EQ(frames.front()["type"], "validating");
  EXPECT_EQ(frames.back()["type"], "result");

  auto missing = buildXorb(randomBytes(1000, 3), 1000);  // never uploaded
  auto bad = shardFile({{&missing, 0, 1}}, false);
  r = call("POST", "/v2/shards", write_token_, uploadShardBody({bad}, {}));
  ASSERT_EQ(r.status, 200);
  body = bodyBytes(r);
  json last = json::parse(body.substr(body.rfind('\n', body.size() - 2) == std::string::npos
                                          ? 0
                                          : body.rfind('\n', body.size() - 2) + 1));
  EXPECT_EQ(last["type"], "error");
  EXPECT_NE(last["message"].get<std::string>().find("not uploaded"), std::string::npos);
}

TEST_F(CasServiceTest, RejectsBadXorbs) {
  auto x = buildXorb(randomBytes(100000, 4), 30000);
  // Wrong hash in the path.
  auto other = buildXorb(randomBytes(10, 5), 10);
  auto r = call("POST", "/v1/xorbs/default/" + other.hash.hex(), write_token_, str(x.body));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(bodyBytes(r).find("invalid xorb"), std::string::npos);
  // Truncated.
  r = call("POST", "/v1/xorbs/default/" + x.hash.hex(), write_token_,
           str(x.body).substr(0, x.body.size() - 7));
  EXPECT_EQ(r.status, 400);
  // Corrupt payload byte (last byte of the body belongs to the last chunk's payload).
  std::string corrupt = str(x.body);
  corrupt[corrupt.size() / 2] = static_cast<char>(corrupt[corrupt.size() / 2] ^ 0x5a);
  r = call("POST", "/v1/xorbs/default/" + x.hash.hex(), write_token_, corrupt);
  EXPECT_EQ(r.status, 400);
  // Corrupt header (unknown compression scheme).
  corrupt = str(x.body);
  corrupt[4] = 7;
  r = call("POST", "/v1/xorbs/default/" + x.hash.hex(), write_token_, corrupt);
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/v1/xorbs/default/" + x.hash.hex(), write_token_, "");
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/v1/xorbs/default/not-a-hash", write_token_, str(x.body));
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/v1/xorbs/default/" + x.hash.hex(), write_token_,
           std::string(64u * 1024 * 1024 + 8192u * 8 + 1, '\0'));
  EXPECT_EQ(r.status, 413);
  r = call("POST", "/v1/xorbs/other/" + x.hash.hex(), write_token_, str(x.body));
  EXPECT_EQ(r.status, 400);
  // Nothing was stored.
  r = call("HEAD", "/v1/xorbs/default/" + x.hash.hex(), read_token_);
  EXPECT_EQ(r.status, 404);
}

TEST_F(CasServiceTest, RejectsShardsThatDoNotMatchTheXorbs) {
  auto x = buildXorb(randomBytes(90000, 6), 30000);
  ASSERT_EQ(postXorb(x).status, 200);
  auto status = [&](const xet::ShardFile& f, const std::vector<xet::ShardXorb>& xs = {}) {
    auto r = call("POST", "/v1/shards", write_token_, uploadShardBody({f}, xs));
    return std::make_pair(r.status, bodyBytes(r));
  };
  auto good = shardFile({{&x, 0, 3}}, false);

  auto missing_xorb = buildXorb(randomBytes(500, 7), 500);
  EXPECT_EQ(status(shardFile({{&missing_xorb, 0, 1}}, false)).first, 400);
  EXPECT_EQ(status(good, {shardXorb(missing_xorb)}).first, 400);  // CAS section lists it

  auto bad_verification = good;
  bad_verification.verification[0] = xet::chunkHash(std::vector<uint8_t>{1});
  auto [s1, m1] = status(bad_verification);
  EXPECT_EQ(s1, 400);
  EXPECT_NE(m1.find("verification"), std::string::npos);

  auto bad_size = good;
  bad_size.terms[0].unpacked_bytes += 1;
  EXPECT_EQ(status(bad_size).first, 400);

  auto bad_range = good;
  bad_range.terms[0].chunk_end = 4;
  EXPECT_EQ(status(bad_range).first, 400);

  auto bad_hash = good;
  bad_hash.file_hash = xet::chunkHash(std::vector<uint8_t>{2});
  EXPECT_EQ(status(bad_hash).first, 400);

  auto bad_cas = shardXorb(x);
  bad_cas.chunks[1].hash = xet::chunkHash(std::vector<uint8_t>{3});
  EXPECT_EQ(status(good, {bad_cas}).first, 400);

  auto r = call("POST", "/v1/shards", write_token_, "not a shard");
  EXPECT_EQ(r.status, 400);
  // None of the rejected shards registered a file.
  EXPECT_FALSE(cas_->fileSize(good.file_hash).has_value());
  EXPECT_EQ(status(good).first, 200);
  EXPECT_EQ(cas_->fileSize(good.file_hash), 90000u);
}

TEST_F(CasServiceTest, ReconstructionRangesAndEmptyFiles) {
  auto data = randomBytes(100000, 8);
  auto x = buildXorb(data, 10000);  // 10 chunks of 10000 bytes
  ASSERT_EQ(postXorb(x).status, 200);
  auto file = shardFile({{&x, 0, 10}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({file}, {shardXorb(x)})).status,
      200);
  const std::string path = "/v2/reconstructions/" + file.file_hash.hex();

  auto r = call("GET", path, read_token_, {}, {{"Range", "bytes=25000-44999"}});
  ASSERT_EQ(r.status, 200);
  json j = json::parse(bodyBytes(r));
  EXPECT_EQ(j["offset_into_first_range"], 5000);
  ASSERT_EQ(j["terms"].size(), 1u);
  EXPECT_EQ(j["terms"][0]["range"]["start"], 2);
  EXPECT_EQ(j["terms"][0]["range"]["end"], 5);
  EXPECT_EQ(j["terms"][0]["unpacked_length"], 30000);
  EXPECT_EQ(downloadV2(file.file_hash, "bytes=25000-44999").substr(0, 20000),
            str(data).substr(25000, 20000));
  // End clamped to the file size.
  EXPECT_EQ(downloadV2(file.file_hash, "bytes=99990-5000000"), str(data).substr(99990));
  // Start at or past the end.
  r = call("GET", path, read_token_, {}, {{"Range", "bytes=100000-100001"}});
  EXPECT_EQ(r.status, 416);
  r = call("GET", path, read_token_, {}, {{"Range", "bytes=abc"}});
  EXPECT_EQ(r.status, 400);

  // V1: one fetch_info entry per merged range, url_range matching the stored offsets.
  r = call("GET", "/v1/reconstructions/" + file.file_hash.hex(), read_token_, {},
           {{"Range", "bytes=0-0"}});
  ASSERT_EQ(r.status, 200);
  j = json::parse(bodyBytes(r));
  auto info = j["fetch_info"][x.hash.hex()][0];
  EXPECT_EQ(info["range"]["start"], 0);
  EXPECT_EQ(info["range"]["end"], 1);
  EXPECT_EQ(info["url_range"]["start"], 0);
  EXPECT_EQ(info["url_range"]["end"], x.chunk_boundary_offsets[0] - 1);
  auto fr = fetchUrl(info["url"], "bytes=0-" + std::to_string(x.chunk_boundary_offsets[0] - 1));
  EXPECT_EQ(fr.status, 206);
  EXPECT_EQ(bodyBytes(fr), str(x.body).substr(0, x.chunk_boundary_offsets[0]));

  // The empty file: hash all zeros, no terms, even without a shard.
  auto empty_hash = MerkleHash().hex();
  r = call("GET", "/v2/reconstructions/" + empty_hash, read_token_);
  ASSERT_EQ(r.status, 200);
  j = json::parse(bodyBytes(r));
  EXPECT_TRUE(j["terms"].empty());
  EXPECT_EQ(cas_->fileSize(MerkleHash()), 0u);
  r = call("GET", "/v2/reconstructions/" + empty_hash, read_token_, {}, {{"Range", "bytes=0-0"}});
  EXPECT_EQ(r.status, 416);
  r = call("GET", "/v2/reconstructions/" + buildXorb(randomBytes(5, 9), 5).hash.hex(), read_token_);
  EXPECT_EQ(r.status, 404);
}

TEST_F(CasServiceTest, BatchReconstructionCoversSeveralFiles) {
  auto x = buildXorb(randomBytes(40000, 17), 10000);  // 4 chunks
  ASSERT_EQ(postXorb(x).status, 200);
  auto f1 = shardFile({{&x, 0, 2}}, false);
  auto f2 = shardFile({{&x, 1, 4}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({f1, f2}, {shardXorb(x)})).status,
      200);
  HttpRequest req;
  req.method = "GET";
  req.path = "/v1/reconstructions";
  req.headers["Host"] = "127.0.0.1:4242";
  req.headers["Authorization"] = "Bearer " + read_token_;
  req.query.emplace("file_id", f1.file_hash.hex());
  req.query.emplace("file_id", f2.file_hash.hex());
  auto r = cas_->handle(req);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, 200) << bodyBytes(*r);
  json j = json::parse(bodyBytes(*r));
  EXPECT_EQ(j["files"][f1.file_hash.hex()][0]["range"]["end"], 2);
  EXPECT_EQ(j["files"][f2.file_hash.hex()][0]["range"]["start"], 1);
  // Overlapping chunk ranges of the two files merge into one fetch of chunks [0, 4).
  auto info = j["fetch_info"][x.hash.hex()];
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0]["range"]["start"], 0);
  EXPECT_EQ(info[0]["range"]["end"], 4);
  EXPECT_EQ(info[0]["url_range"]["end"], x.body.size() - 1);
  auto fr = fetchUrl(info[0]["url"], "bytes=0-" + std::to_string(x.body.size() - 1));
  EXPECT_EQ(bodyBytes(fr), str(x.body));

  req.query.emplace("file_id", "zz");
  EXPECT_EQ(cas_->handle(req)->status, 400);
  req.query.clear();
  EXPECT_EQ(cas_->handle(req)->status, 400);
}

TEST_F(CasServiceTest, SignedUrlsAndMultiRangeFetches) {
  auto data = randomBytes(60000, 10);
  auto x = buildXorb(data, 10000);  // 6 chunks
  ASSERT_EQ(postXorb(x).status, 200);
  // Chunks 0-1 and 4-5 of the same xorb: two non-adjacent ranges behind one signed URL.
  auto file = shardFile({{&x, 0, 2}, {&x, 4, 6}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({file}, {shardXorb(x)})).status,
      200);
  auto r = call("GET", "/v2/reconstructions/" + file.file_hash.hex(), read_token_);
  json j = json::parse(bodyBytes(r));
  auto entry = j["xorbs"][x.hash.hex()][0];
  ASSERT_EQ(entry["ranges"].size(), 2u);
  std::string url = entry["url"];
  EXPECT_NE(url.find("X-Xet-Signed-Range="), std::string::npos);
  const uint64_t a0 = entry["ranges"][0]["bytes"]["start"], a1 = entry["ranges"][0]["bytes"]["end"];
  const uint64_t b0 = entry["ranges"][1]["bytes"]["start"], b1 = entry["ranges"][1]["bytes"]["end"];
  EXPECT_EQ(a0, 0u);
  EXPECT_EQ(a1, x.chunk_boundary_offsets[1] - 1u);
  EXPECT_EQ(b0, x.chunk_boundary_offsets[3]);
  EXPECT_EQ(b1, x.chunk_boundary_offsets[5] - 1u);
  const std::string both = "bytes=" + std::to_string(a0) + "-" + std::to_string(a1) + "," +
                           std::to_string(b0) + "-" + std::to_string(b1);

  auto fr = fetchUrl(url, both);
  ASSERT_EQ(fr.status, 206);
  auto parts = parseMultipart(fr);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].second, str(x.body).substr(a0, a1 - a0 + 1));
  EXPECT_EQ(parts[1].second, str(x.body).substr(b0, b1 - b0 + 1));
  EXPECT_EQ(parts[1].first.substr(0, parts[1].first.find('/')),
            "bytes " + std::to_string(b0) + "-" + std::to_string(b1));
  EXPECT_EQ(downloadV2(file.file_hash), str(data).substr(0, 20000) + str(data).substr(40000));

  // One of the signed ranges alone: raw bytes.
  fr = fetchUrl(url, "bytes=" + std::to_string(b0) + "-" + std::to_string(b1));
  ASSERT_EQ(fr.status, 206);
  EXPECT_EQ(bodyBytes(fr), str(x.body).substr(b0, b1 - b0 + 1));
  EXPECT_EQ(fr.body.size(), 1u);  // a lone FileSlice → sendfile

  EXPECT_EQ(fetchUrl(url, "bytes=0-" + std::to_string(b1)).status, 403);
  EXPECT_EQ(fetchUrl(url, "").status, 403);
  EXPECT_EQ(fetchUrl(url, both, {{"Authorization", "Bearer " + read_token_}}).status, 403);
  std::string forged = url;
  forged.replace(forged.find("X-Xet-Expires=") + 14, 1, "9");
  EXPECT_EQ(fetchUrl(forged, both).status, 403);

  // Expired URLs.
  CasOptions short_lived;
  short_lived.fetch_url_ttl_secs = -5;
  reopen(short_lived);
  r = call("GET", "/v2/reconstructions/" + file.file_hash.hex(), read_token_);
  j = json::parse(bodyBytes(r));
  EXPECT_EQ(fetchUrl(j["xorbs"][x.hash.hex()][0]["url"], both).status, 403);
}

TEST_F(CasServiceTest, GlobalDedupAnswersWithAKeyedShard) {
  auto x = buildXorb(randomBytes(70000, 11), 35000);
  ASSERT_EQ(postXorb(x).status, 200);
  const std::string first_chunk = "/v1/chunks/default/" + x.chunks[0].hash.hex();
  // Not indexed until a shard registers the xorb.
  EXPECT_EQ(call("GET", first_chunk, read_token_).status, 404);
  auto file = shardFile({{&x, 0, 2}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({file}, {shardXorb(x)})).status,
      200);
  for (const std::string prefix : {"default", "default-merkledb"}) {
    auto r = call("GET", "/v1/chunks/" + prefix + "/" + x.chunks[1].hash.hex(), write_token_);
    ASSERT_EQ(r.status, 200) << bodyBytes(r);
    std::string body = bodyBytes(r);
    auto shard = xet::parseShard(bytes(body));
    ASSERT_TRUE(shard.ok()) << shard.error().message();
    ASSERT_TRUE(shard->hasHmacKey());
    EXPECT_GT(shard->footer->shard_key_expiry, static_cast<uint64_t>(nowSecs()));
    ASSERT_EQ(shard->xorbs.size(), 1u);
    EXPECT_EQ(shard->xorbs[0].hash, x.hash);
    // Keyed, so the plain hash is not visible, but the index finds it.
    EXPECT_NE(shard->xorbs[0].chunks[0].hash, x.chunks[0].hash);
    xet::ShardChunkIndex index(*shard);
    auto loc = index.find(x.chunks[1].hash);
    ASSERT_TRUE(loc.has_value());
    EXPECT_EQ(loc->chunk, 1u);
    EXPECT_EQ(shard->xorbs[0].chunks[1].offset, 35000u);
    EXPECT_GT(shard->footer->file_lookup_offset, shard->footer->cas_info_offset);
  }
  EXPECT_EQ(call("GET", "/v1/chunks/default/" + MerkleHash().hex(), read_token_).status, 404);
  EXPECT_EQ(call("GET", "/v1/chunks/other/" + x.chunks[0].hash.hex(), read_token_).status, 404);
}

TEST_F(CasServiceTest, GlobalDedupTurnedOffAnswersNothing) {
  auto x = buildXorb(randomBytes(70000, 12), 35000);
  ASSERT_EQ(postXorb(x).status, 200);
  auto file = shardFile({{&x, 0, 2}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({file}, {shardXorb(x)})).status,
      200);
  const std::string chunk = "/v1/chunks/default/" + x.chunks[0].hash.hex();
  ASSERT_EQ(call("GET", chunk, read_token_).status, 200);
  CasOptions off;
  off.global_dedup = false;
  reopen(off);
  EXPECT_EQ(call("GET", chunk, read_token_).status, 404);
}

TEST_F(CasServiceTest, GlobalDedupAnswersWithEveryXorbOfTheRegisteringShard) {
  auto a = buildXorb(randomBytes(60000, 31), 20000);
  auto b = buildXorb(randomBytes(50000, 32), 25000);
  auto other = buildXorb(randomBytes(40000, 33), 20000);
  ASSERT_EQ(postXorb(a).status, 200);
  ASSERT_EQ(postXorb(b).status, 200);
  ASSERT_EQ(postXorb(other).status, 200);
  // One upload (shard) registers a and b for one file; another shard registers `other`.
  auto file = shardFile({{&a, 0, 3}, {&b, 0, 2}}, false);
  ASSERT_EQ(call("POST", "/v1/shards", write_token_,
                 uploadShardBody({file}, {shardXorb(a), shardXorb(b)}))
                .status,
            200);
  auto other_file = shardFile({{&other, 0, 2}}, false);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({other_file}, {shardXorb(other)}))
          .status,
      200);

  auto r = call("GET", "/v1/chunks/default/" + b.chunks[1].hash.hex(), write_token_);
  ASSERT_EQ(r.status, 200) << bodyBytes(r);
  std::string body = bodyBytes(r);
  auto shard = xet::parseShard(bytes(body));
  ASSERT_TRUE(shard.ok()) << shard.error().message();
  EXPECT_TRUE(shard->files.empty());
  ASSERT_EQ(shard->xorbs.size(), 2u);
  EXPECT_EQ(shard->xorbs[0].hash, b.hash);  // the queried chunk's xorb first
  EXPECT_EQ(shard->xorbs[1].hash, a.hash);
  xet::ShardChunkIndex index(*shard);
  for (size_t k = 0; k < a.chunks.size(); ++k) {
    auto loc = index.find(a.chunks[k].hash);
    ASSERT_TRUE(loc.has_value()) << k;
    EXPECT_EQ(loc->chunk, k);
    EXPECT_EQ(shard->xorbs[loc->xorb].hash, a.hash);
  }
  EXPECT_FALSE(index.find(other.chunks[0].hash).has_value());

  // A chunk of the other shard answers with that shard's xorb only.
  r = call("GET", "/v1/chunks/default/" + other.chunks[0].hash.hex(), write_token_);
  ASSERT_EQ(r.status, 200);
  body = bodyBytes(r);
  shard = xet::parseShard(bytes(body));
  ASSERT_TRUE(shard.ok());
  ASSERT_EQ(shard->xorbs.size(), 1u);
  EXPECT_EQ(shard->xorbs[0].hash, other.hash);
}

// An UploadSession's CAS: this service's own routes, called as CasWriteClient would.
class ServiceCasWriter final : public xet::CasWriter {
 public:
  using Call = std::function<HttpResponse(const std::string&, const std::string&, std::string)>;
  explicit ServiceCasWriter(Call call) : call_(std::move(call)) {}
  Result<bool> uploadXorb(const MerkleHash& hash, std::span<const uint8_t> body) override {
    auto r =
        call_("POST", "/v1/xorbs/default/" + hash.hex(), std::string(body.begin(), body.end()));
    if (r.status != 200) return Error::io("xorb upload: " + bodyBytes(r));
    return json::parse(bodyBytes(r))["was_inserted"].get<bool>();
  }
  Status uploadShard(std::span<const uint8_t> shard) override {
    auto r = call_("POST", "/v1/shards", std::string(shard.begin(), shard.end()));
    if (r.status != 200) return Error::io("shard upload: " + bodyBytes(r));
    return okStatus();
  }
  Result<std::optional<xet::Shard>> queryDedup(const MerkleHash& chunk_hash) override {
    auto r = call_("GET", "/v1/chunks/default/" + chunk_hash.hex(), {});
    if (r.status == 404) return std::optional<xet::Shard>();
    if (r.status != 200) return Error::io("dedup query: " + bodyBytes(r));
    const std::string body = bodyBytes(r);
    HFM_ASSIGN_OR_RETURN(auto shard, xet::parseShard(bytes(body)));
    return std::optional<xet::Shard>(std::move(shard));
  }

 private:
  Call call_;
};

Result<xet::UploadedFile> uploadOne(xet::UploadSession& session, const std::vector<uint8_t>& data) {
  auto writer = session.beginFile();
  for (size_t at = 0; at < data.size(); at += 1u << 20) {
    HFM_TRY(
        writer->write(std::span(data).subspan(at, std::min<size_t>(1u << 20, data.size() - at))));
  }
  HFM_ASSIGN_OR_RETURN(auto file, writer->finish());
  HFM_TRY(session.commit());
  return file;
}

TEST_F(CasServiceTest, SessionsSharingADedupIndexReuploadNothingAndReadBackIdentical) {
  ServiceCasWriter cas(
      [this](const std::string& method, const std::string& path, std::string body) {
        return call(method, path, write_token_, std::move(body));
      });
  auto index = std::make_shared<xet::DedupIndex>();
  xet::UploadOptions options;
  options.compression = xet::CompressionScheme::kNone;
  std::mt19937_64 rng(51);
  std::vector<uint8_t> a(10u << 20);
  for (auto& byte : a) byte = static_cast<uint8_t>(rng());

  xet::UploadSession first(cas, options, index);
  auto fa = uploadOne(first, a);
  ASSERT_TRUE(fa.ok()) << fa.error().message();
  const uint64_t stored = first.stats().xorb_bytes_uploaded;
  EXPECT_GE(stored, a.size());

  xet::UploadSession again(cas, options, index);
  auto fa2 = uploadOne(again, a);
  ASSERT_TRUE(fa2.ok()) << fa2.error().message();
  EXPECT_EQ(fa2->file_hash, fa->file_hash);
  EXPECT_EQ(again.stats().xorbs_uploaded, 0u);
  EXPECT_EQ(again.stats().dedup_queries, 0u);

  auto b = a;
  for (size_t e = 0; e < 2; ++e) {
    for (size_t i = 0; i < 50'000; ++i) b[2'000'000 + e * 5'000'000 + i] ^= 0x3c;
  }
  xet::UploadSession edited(cas, options, index);
  auto fb = uploadOne(edited, b);
  ASSERT_TRUE(fb.ok()) << fb.error().message();
  EXPECT_LT(edited.stats().xorb_bytes_uploaded, b.size() / 20);
  EXPECT_GE(edited.stats().xorb_bytes_uploaded, 100'000u);

  // Another mount (no shared index) finds the first upload through the CAS's dedup answer.
  xet::UploadSession other_mount(cas, options);
  auto fa3 = uploadOne(other_mount, a);
  ASSERT_TRUE(fa3.ok()) << fa3.error().message();
  EXPECT_EQ(other_mount.stats().xorbs_uploaded, 0u);
  EXPECT_GE(other_mount.stats().dedup_query_hits, 1u);

  EXPECT_EQ(downloadV2(fa->file_hash), str(a));
  EXPECT_EQ(downloadV2(fb->file_hash), str(b));
}

TEST_F(CasServiceTest, TokensAreChecked) {
  auto x = buildXorb(randomBytes(1000, 12), 1000);
  const std::string path = "/v1/xorbs/default/" + x.hash.hex();
  EXPECT_EQ(call("POST", path, "", str(x.body)).status, 401);
  EXPECT_EQ(call("POST", path, "garbage", str(x.body)).status, 401);
  XetTokens other("another-secret", 3600);
  EXPECT_EQ(call("POST", path, other.issue("u", "bucket:u/b", true, nowSecs()), str(x.body)).status,
            401);
  auto expired = tokens_.issue("u", "bucket:u/b", true, nowSecs() - 7200);
  EXPECT_EQ(call("POST", path, expired, str(x.body)).status, 401);
  EXPECT_EQ(call("GET", "/v2/reconstructions/" + MerkleHash().hex(), expired).status, 401);
  EXPECT_EQ(call("POST", path, read_token_, str(x.body)).status, 403);
  EXPECT_EQ(call("POST", "/v1/shards", read_token_, "x").status, 403);
  EXPECT_EQ(call("POST", "/v2/shards", read_token_, "x").status, 403);
  EXPECT_EQ(call("POST", path, write_token_, str(x.body)).status, 200);
  EXPECT_EQ(call("GET", "/v2/reconstructions/" + MerkleHash().hex(), "").status, 401);

  HttpRequest other_route;
  other_route.method = "GET";
  other_route.path = "/api/whoami-v2";
  EXPECT_FALSE(cas_->handle(other_route).has_value());
}

TEST_F(CasServiceTest, EverythingSurvivesARestart) {
  auto data = randomBytes(120000, 13);
  auto x = buildXorb(data, 25000);
  ASSERT_EQ(postXorb(x).status, 200);
  auto file = shardFile({{&x, 0, static_cast<uint32_t>(x.chunks.size())}}, true);
  ASSERT_EQ(
      call("POST", "/v1/shards", write_token_, uploadShardBody({file}, {shardXorb(x)})).status,
      200);
  auto before = call("GET", "/v2/reconstructions/" + file.file_hash.hex(), read_token_);
  std::string old_url = json::parse(bodyBytes(before))["xorbs"][x.hash.hex()][0]["url"];
  auto dedupKey = [&] {
    std::string body =
        bodyBytes(call("GET", "/v1/chunks/default/" + x.chunks[0].hash.hex(), read_token_));
    auto shard = xet::parseShard(bytes(body));
    EXPECT_TRUE(shard.ok());
    return shard.ok() && shard->footer ? shard->footer->chunk_hash_hmac_key : MerkleHash();
  };
  const MerkleHash key_before = dedupKey();
  EXPECT_FALSE(key_before.isZero());

  // A write cut short by a crash leaves a temp file; reopening removes it.
  auto stale =
      dir_ / "cas" / "xorbs" / x.hash.hex().substr(0, 2) / (x.hash.hex() + ".xorb.tmp.1.0");
  { std::ofstream(stale) << "partial"; }
  reopen();
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_EQ(downloadV2(file.file_hash), str(data));
  auto head = call("HEAD", "/v1/files/" + file.file_hash.hex(), read_token_);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["Content-Length"], std::to_string(data.size()));
  EXPECT_EQ(cas_->fileSize(file.file_hash), data.size());
  EXPECT_EQ(cas_->fileHashForSha256(file.sha256->hex()), file.file_hash);
  EXPECT_EQ(*cas_->readFileRange(file.file_hash, 0, data.size()), str(data));
  EXPECT_EQ(json::parse(bodyBytes(postXorb(x)))["was_inserted"], false);
  EXPECT_EQ(dedupKey(), key_before);
  // The URL signing key persists, so URLs handed out before the restart still work.
  auto fr = fetchUrl(old_url, "bytes=0-" + std::to_string(x.body.size() - 1));
  EXPECT_EQ(fr.status, 206);
  EXPECT_EQ(bodyBytes(fr), str(x.body));
}

}  // namespace
}  // namespace hfm::localhub
