// Range parsing, signed fetch URLs, multipart framing and reconstruction planning, without a
// server or storage.
#include "hfm/localhub/cas_http.h"

#include <gtest/gtest.h>

#include "hfm/localhub/cas_reconstruction.h"
#include "hfm/xet/hashing.h"

namespace hfm::localhub {
namespace {

using xet::MerkleHash;

TEST(CasRangeHeader, ParsesSingleMultiOpenAndSuffix) {
  auto r = parseRangeHeader("bytes=0-99, 200-299,300-");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], (ByteRangeSpec{0, 99, std::nullopt}));
  EXPECT_EQ((*r)[1], (ByteRangeSpec{200, 299, std::nullopt}));
  EXPECT_EQ((*r)[2], (ByteRangeSpec{300, std::nullopt, std::nullopt}));
  auto s = parseRangeHeader("bytes=-5");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->at(0).suffix, 5u);
}

TEST(CasRangeHeader, RejectsMalformed) {
  for (const char* bad : {"", "bytes", "items=0-1", "bytes=5-4", "bytes=a-b", "bytes=1-2,",
                          "bytes=-0", "bytes=99999999999999999999-1"}) {
    EXPECT_FALSE(parseRangeHeader(bad).ok()) << bad;
  }
}

HttpRequest fetchRequest(const std::string& query_string, const std::string& range) {
  HttpRequest req;
  req.method = "GET";
  // Decode the query the way the server does (only %XX escapes appear in signed URLs).
  size_t pos = 0;
  while (pos < query_string.size()) {
    size_t amp = query_string.find('&', pos);
    std::string item = query_string.substr(pos, amp == std::string::npos ? amp : amp - pos);
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
  if (!range.empty()) req.headers["Range"] = range;
  return req;
}

TEST(CasFetchSigner, AcceptsSignedRangesOnly) {
  FetchUrlSigner signer(std::string(32, 'k'));
  const std::string xorb(64, 'a');
  std::string q = signer.signQuery(xorb, {{0, 99}, {200, 299}}, 1000);
  using Ranges = std::vector<ByteRange>;
  auto ok_all = signer.authorize(fetchRequest(q, "bytes=0-99,200-299"), xorb, 999);
  ASSERT_TRUE(std::holds_alternative<Ranges>(ok_all));
  EXPECT_EQ(std::get<Ranges>(ok_all), (Ranges{{0, 99}, {200, 299}}));
  // One signed range alone is allowed (hf.js streams single terms that way).
  auto ok_one = signer.authorize(fetchRequest(q, "bytes=200-299"), xorb, 999);
  ASSERT_TRUE(std::holds_alternative<Ranges>(ok_one));

  auto status = [&](const HttpRequest& req, const std::string& x, int64_t now) {
    auto v = signer.authorize(req, x, now);
    return std::holds_alternative<Ranges>(v) ? 200 : std::get<FetchUrlSigner::Denied>(v).status;
  };
  EXPECT_EQ(status(fetchRequest(q, "bytes=0-100"), xorb, 999), 403);
  EXPECT_EQ(status(fetchRequest(q, "bytes=0-99,200-300"), xorb, 999), 403);
  EXPECT_EQ(status(fetchRequest(q, ""), xorb, 999), 403);
  EXPECT_EQ(status(fetchRequest(q, "bytes=0-99"), std::string(64, 'b'), 999), 403);
  EXPECT_EQ(status(fetchRequest(q, "bytes=0-99"), xorb, 1001), 403);  // expired
  auto with_auth = fetchRequest(q, "bytes=0-99");
  with_auth.headers["Authorization"] = "Bearer x";
  EXPECT_EQ(status(with_auth, xorb, 999), 403);
  // Tampered signed range.
  std::string tampered = q;
  tampered.replace(tampered.find("299"), 3, "399");
  EXPECT_EQ(status(fetchRequest(tampered, "bytes=0-99,200-399"), xorb, 999), 403);
  // Another key does not verify.
  FetchUrlSigner other(std::string(32, 'z'));
  auto v = other.authorize(fetchRequest(q, "bytes=0-99"), xorb, 999);
  EXPECT_TRUE(std::holds_alternative<FetchUrlSigner::Denied>(v));
}

TEST(CasMultipart, FramesPartsInOrderWithContentRange) {
  auto r = rangeResponse("/x", 1000, {{0, 9}, {20, 29}}, "BOUND");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.headers["Content-Type"], "multipart/byteranges; boundary=BOUND");
  ASSERT_EQ(r.body.size(), 5u);
  EXPECT_EQ(std::get<std::string>(r.body[0]),
            "--BOUND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-9/1000"
            "\r\n\r\n");
  EXPECT_EQ(std::get<FileSlice>(r.body[1]).offset, 0u);
  EXPECT_EQ(std::get<FileSlice>(r.body[1]).length, 10u);
  EXPECT_EQ(std::get<std::string>(r.body[2]),
            "\r\n--BOUND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes "
            "20-29/1000\r\n\r\n");
  EXPECT_EQ(std::get<FileSlice>(r.body[3]).offset, 20u);
  EXPECT_EQ(std::get<std::string>(r.body[4]), "\r\n--BOUND--\r\n");

  auto single = rangeResponse("/x", 1000, {{5, 6}}, "B");
  EXPECT_EQ(single.headers["Content-Range"], "bytes 5-6/1000");
  ASSERT_EQ(single.body.size(), 1u);
  EXPECT_EQ(std::get<FileSlice>(single.body[0]).length, 2u);
}

// A xorb of 4 chunks of 10, 20, 30, 40 bytes, serialized as 18, 28, 38, 48 bytes.
std::shared_ptr<const CasXorb> sampleXorb(uint8_t seed) {
  auto x = std::make_shared<CasXorb>();
  x->hash = xet::chunkHash(std::vector<uint8_t>{seed});
  uint32_t s = 0, u = 0;
  for (uint32_t k = 1; k <= 4; ++k) {
    s += 10 * k + 8;
    u += 10 * k;
    x->chunk_ends.push_back(s);
    x->unpacked_ends.push_back(u);
    x->chunk_hashes.push_back(xet::chunkHash(std::vector<uint8_t>{seed, static_cast<uint8_t>(k)}));
  }
  return x;
}

TEST(CasPlanning, TrimsTermsToTheRange) {
  auto a = sampleXorb(1), b = sampleXorb(2);
  XorbLookup lookup = [&](const MerkleHash& h) -> Result<std::shared_ptr<const CasXorb>> {
    if (h == a->hash) return a;
    if (h == b->hash) return b;
    return std::shared_ptr<const CasXorb>();
  };
  CasFile file;
  file.terms = {{a->hash, 1, 4, 90}, {b->hash, 0, 2, 30}};  // file bytes [0,90) and [90,120)
  file.size = 120;

  auto full = planReconstruction(file, 0, 119, lookup);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->offset_into_first_range, 0u);
  EXPECT_EQ(full->terms, (std::vector<PlannedTerm>{{a->hash, 1, 4, 90}, {b->hash, 0, 2, 30}}));

  // Bytes 25..94: chunk 1 of a covers [0,20), chunk 2 [20,50) → start at chunk 2, skip 5.
  auto mid = planReconstruction(file, 25, 94, lookup);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->offset_into_first_range, 5u);
  EXPECT_EQ(mid->terms, (std::vector<PlannedTerm>{{a->hash, 2, 4, 70}, {b->hash, 0, 1, 10}}));

  // Last byte only.
  auto tail = planReconstruction(file, 119, 119, lookup);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->offset_into_first_range, 19u);
  EXPECT_EQ(tail->terms, (std::vector<PlannedTerm>{{b->hash, 1, 2, 20}}));

  auto ranges = fetchRanges(*mid, lookup);
  ASSERT_TRUE(ranges.ok());
  EXPECT_EQ(ranges->at(a->hash), (std::vector<FetchRange>{{2, 4, 46, 131}}));
  EXPECT_EQ(ranges->at(b->hash), (std::vector<FetchRange>{{0, 1, 0, 17}}));

  CasFile empty;
  auto none = planReconstruction(empty, 0, 0, lookup);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->terms.empty());
}

TEST(CasPlanning, MergesOverlappingAndAdjacentChunkRanges) {
  auto a = sampleXorb(3);
  XorbLookup lookup = [&](const MerkleHash&) -> Result<std::shared_ptr<const CasXorb>> {
    return a;
  };
  ReconstructionPlan plan;
  plan.terms = {{a->hash, 2, 3, 30}, {a->hash, 0, 1, 10}, {a->hash, 1, 2, 20}, {a->hash, 0, 1, 10}};
  auto merged = fetchRanges(plan, lookup);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->at(a->hash), (std::vector<FetchRange>{{0, 3, 0, 83}}));
  plan.terms = {{a->hash, 3, 4, 40}, {a->hash, 0, 1, 10}};
  merged = fetchRanges(plan, lookup);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->at(a->hash), (std::vector<FetchRange>{{0, 1, 0, 17}, {3, 4, 84, 131}}));
}

TEST(CasPlanning, RejectsTermsThatDisagreeWithTheXorb) {
  auto a = sampleXorb(4);
  XorbLookup lookup = [&](const MerkleHash&) -> Result<std::shared_ptr<const CasXorb>> {
    return a;
  };
  CasFile file;
  file.terms = {{a->hash, 0, 2, 31}};
  file.size = 31;
  EXPECT_FALSE(planReconstruction(file, 0, 30, lookup).ok());
}

}  // namespace
}  // namespace hfm::localhub
