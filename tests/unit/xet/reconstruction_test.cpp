#include "hfm/xet/reconstruction.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "hfm/xet/compression.h"

namespace hfm::xet {
namespace {

const std::string kX1 = std::string(63, '1') + "a";
const std::string kX2 = std::string(63, '2') + "b";

std::string v2Json() {
  return R"({"offset_into_first_range": 10,
    "terms": [
      {"hash": ")" +
         kX1 + R"(", "unpacked_length": 1000, "range": {"start": 0, "end": 2}},
      {"hash": ")" +
         kX2 + R"(", "unpacked_length": 500, "range": {"start": 3, "end": 4}},
      {"hash": ")" +
         kX1 + R"(", "unpacked_length": 700, "range": {"start": 5, "end": 7}}],
    "xorbs": {
      ")" +
         kX1 + R"(": [{"url": "http://h/x1?sig=a", "ranges": [
          {"chunks": {"start": 0, "end": 2}, "bytes": {"start": 0, "end": 599}},
          {"chunks": {"start": 5, "end": 7}, "bytes": {"start": 900, "end": 1299}}]}],
      ")" +
         kX2 + R"(": [{"url": "http://h/x2", "ranges": [
          {"chunks": {"start": 3, "end": 4}, "bytes": {"start": 100, "end": 199}}]}]}})";
}

TEST(ReconstructionTest, ParsesV2) {
  auto plan = parseReconstruction(v2Json());
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->version, 2);
  EXPECT_EQ(plan->offset_into_first_range, 10u);
  ASSERT_EQ(plan->terms.size(), 3u);
  EXPECT_EQ(plan->terms[0].xorb.hex(), kX1);
  EXPECT_EQ(plan->terms[1].chunks, (ChunkRange{3, 4}));
  EXPECT_EQ(plan->terms[2].unpacked_length, 700u);
  EXPECT_EQ(plan->availableBytes(), 2190u);
  ASSERT_EQ(plan->sources.size(), 3u);
  EXPECT_EQ(plan->sources[0].range, 0u);
  EXPECT_EQ(plan->sources[2].range, 1u);
  EXPECT_EQ(plan->rangeFor(2).bytes, (InclusiveByteRange{900, 1299}));
  EXPECT_EQ(plan->entryFor(0).rangeHeader(), "bytes=0-599,900-1299");
  EXPECT_EQ(plan->entryFor(1).url, "http://h/x2");
}

TEST(ReconstructionTest, ParsesV1AsOneRangeEntries) {
  const std::string json = R"({"offset_into_first_range": 0,
    "terms": [{"hash": ")" +
                           kX1 + R"(", "unpacked_length": 300, "range": {"start": 1, "end": 3}}],
    "fetch_info": {")" + kX1 +
                           R"(": [
      {"range": {"start": 5, "end": 9}, "url": "http://other", "url_range": {"start": 0, "end": 99}},
      {"range": {"start": 0, "end": 4}, "url": "http://h/a", "url_range": {"start": 0, "end": 399}}]}})";
  auto plan = parseReconstruction(json);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->version, 1);
  EXPECT_EQ(plan->sources[0].entry, 1u);  // the first entry whose range contains the term
  EXPECT_EQ(plan->entryFor(0).rangeHeader(), "bytes=0-399");
}

TEST(ReconstructionTest, EmptyFilePlan) {
  auto plan = parseReconstruction(R"({"offset_into_first_range":0,"terms":[],"xorbs":{}})");
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->terms.empty());
  EXPECT_EQ(plan->availableBytes(), 0u);
}

void expectBad(const std::string& json, const std::string& needle) {
  auto plan = parseReconstruction(json);
  ASSERT_FALSE(plan.ok()) << json;
  EXPECT_EQ(plan.error().code(), EIO);
  EXPECT_NE(plan.error().message().find(needle), std::string::npos) << plan.error().message();
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const size_t pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

TEST(ReconstructionTest, RejectsMalformedPlans) {
  const std::string good = v2Json();
  expectBad("not json", "not a JSON object");
  expectBad("[]", "not a JSON object");
  expectBad(replaced(good, R"("terms")", R"("trms")"), "terms missing");
  expectBad(replaced(good, kX2 + R"(", "unpacked)", "zz\", \"unpacked"), "hash");
  expectBad(replaced(good, R"("unpacked_length": 1000)", R"("unpacked_length": -5)"),
            "unpacked_length");
  expectBad(replaced(good, R"("unpacked_length": 1000)", R"("unpacked_length": 0)"), "impossible");
  expectBad(replaced(good, R"("unpacked_length": 500)", R"("unpacked_length": 999999)"),
            "impossible");
  expectBad(
      replaced(good, R"("offset_into_first_range": 10)", R"("offset_into_first_range": 1000)"),
      "outside the first term");
  expectBad(
      replaced(good, R"("range": {"start": 3, "end": 4})", R"("range": {"start": 4, "end": 4})"),
      "empty chunk range");
  // Term 3..4 of x2 no longer covered by the fetch range 3..4 → moved to 8..9.
  expectBad(replaced(good, R"({"chunks": {"start": 3, "end": 4})",
                     R"({"chunks": {"start": 8, "end": 9})"),
            "has no fetch range");
  expectBad(replaced(good, R"("bytes": {"start": 900, "end": 1299})",
                     R"("bytes": {"start": 500, "end": 1299})"),
            "overlap");
  expectBad(replaced(good, R"("bytes": {"start": 100, "end": 199})",
                     R"("bytes": {"start": 100, "end": 101})"),
            "impossible");
  expectBad(replaced(good, R"("bytes": {"start": 100, "end": 199})",
                     R"("bytes": {"start": 199, "end": 100})"),
            "inverted");
  expectBad(replaced(good, R"("url": "http://h/x2")", R"("url": 7)"), "url");
  expectBad(replaced(good, R"("xorbs")", R"("xorbz")"), "exactly one of");
  expectBad(R"({"offset_into_first_range":3,"terms":[],"xorbs":{}})", "offset without terms");
}

TEST(MultipartTest, Boundary) {
  EXPECT_EQ(multipartBoundary("multipart/byteranges; boundary=abc123"), "abc123");
  EXPECT_EQ(multipartBoundary("Multipart/ByteRanges;charset=x; Boundary=\"a b\""), "a b");
  EXPECT_EQ(multipartBoundary("multipart/byteranges"), std::nullopt);
  EXPECT_EQ(multipartBoundary("multipart/byteranges; boundary="), std::nullopt);
  EXPECT_EQ(multipartBoundary("application/octet-stream; boundary=x"), std::nullopt);
  EXPECT_EQ(multipartBoundary("multipart/byteranges; boundary=" + std::string(71, 'a')),
            std::nullopt);
}

std::string part(const std::string& boundary, uint64_t s, const std::string& data,
                 const std::string& total = "5000") {
  return "--" + boundary + "\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes " +
         std::to_string(s) + "-" + std::to_string(s + data.size() - 1) + "/" + total + "\r\n\r\n" +
         data + "\r\n";
}

TEST(MultipartTest, ParsesParts) {
  const std::string body = "preamble\r\n" + part("XB", 0, "hello") +
                           part("XB", 100, std::string("a\r\n--XB\0z", 9), "*") + "--XB--\r\n";
  auto parts = parseMultipartByteRanges(body, "XB");
  ASSERT_TRUE(parts.ok()) << parts.error().message();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].range, (InclusiveByteRange{0, 4}));
  EXPECT_EQ((*parts)[0].data, "hello");
  EXPECT_EQ((*parts)[1].range, (InclusiveByteRange{100, 108}));
  EXPECT_EQ((*parts)[1].data, std::string_view("a\r\n--XB\0z", 9));  // boundary-like data
  auto slice = sliceParts(*parts, {101, 103});
  ASSERT_TRUE(slice.ok());
  EXPECT_EQ(*slice, "\r\n-");
  EXPECT_FALSE(sliceParts(*parts, {4, 6}).ok());  // straddles parts
}

TEST(MultipartTest, RejectsMalformedBodies) {
  const std::string p1 = part("XB", 0, "hello");
  auto bad = [](const std::string& body, const std::string& boundary = "XB") {
    auto r = parseMultipartByteRanges(body, boundary);
    EXPECT_FALSE(r.ok()) << body;
    return r.ok() ? std::string() : r.error().message();
  };
  EXPECT_NE(bad(p1).find("truncated"), std::string::npos);  // no closing delimiter
  EXPECT_NE(bad(p1.substr(0, p1.size() - 4)).find("truncated"), std::string::npos);
  EXPECT_NE(bad(p1 + "--XB--", "YB").find("no opening"), std::string::npos);  // wrong boundary
  EXPECT_NE(bad("--XB\r\nContent-Type: x\r\n\r\nhello\r\n--XB--").find("without Content-Range"),
            std::string::npos);
  EXPECT_NE(bad("--XB\r\nContent-Range: bytes 5-1/10\r\n\r\nhello\r\n--XB--").find("bad Content"),
            std::string::npos);
  // Content-Range says 6 bytes, only 5 before the next delimiter.
  EXPECT_NE(bad("--XB\r\nContent-Range: bytes 0-5/10\r\n\r\nhello\r\n--XB--\r\n").find("disagrees"),
            std::string::npos);
  EXPECT_NE(bad("--XBjunk\r\n").find("malformed"), std::string::npos);
  EXPECT_NE(bad("--XB--").find("no parts"), std::string::npos);
  EXPECT_FALSE(parseMultipartByteRanges(p1 + "--XB--", "").ok());
}

TEST(MultipartTest, ContentRange) {
  EXPECT_EQ(parseContentRange("bytes 0-99/100"), (InclusiveByteRange{0, 99}));
  EXPECT_EQ(parseContentRange(" bytes 5-5/*"), (InclusiveByteRange{5, 5}));
  EXPECT_EQ(parseContentRange("bytes 0-100/100"), std::nullopt);  // end beyond total
  EXPECT_EQ(parseContentRange("bytes 9-1/100"), std::nullopt);
  EXPECT_EQ(parseContentRange("items 0-1/2"), std::nullopt);
  EXPECT_EQ(parseContentRange("bytes x-1/2"), std::nullopt);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 7 + seed) % 13);
  return v;
}

TEST(DecodeFetchedRangeTest, DecodesExactlyTheAnnouncedChunks) {
  std::vector<uint8_t> wire;
  const auto a = pattern(5000, 1);
  const auto b = pattern(3000, 2);
  appendSerializedChunk(a, CompressionScheme::kLz4, wire);
  appendSerializedChunk(b, CompressionScheme::kByteGrouping4Lz4, wire);
  const FetchRange range{{4, 6}, {1000, 1000 + wire.size() - 1}};
  auto chunks = decodeFetchedRange(wire, range);
  ASSERT_TRUE(chunks.ok()) << chunks.error().message();
  ASSERT_EQ(chunks->chunks.size(), 2u);
  EXPECT_TRUE(std::ranges::equal(chunks->chunks[0], a));
  EXPECT_TRUE(std::ranges::equal(chunks->chunks[1], b));

  // A chunk stored uncompressed is a view of the fetched bytes, not a copy.
  std::vector<uint8_t> plain_wire;
  const auto c = pattern(700, 3);
  appendSerializedChunk(c, CompressionScheme::kNone, plain_wire);
  appendSerializedChunk(a, CompressionScheme::kLz4, plain_wire);
  auto mixed = decodeFetchedRange(plain_wire, {{0, 2}, {0, plain_wire.size() - 1}});
  ASSERT_TRUE(mixed.ok()) << mixed.error().message();
  ASSERT_EQ(mixed->chunks.size(), 2u);
  EXPECT_EQ(mixed->chunks[0].data(), plain_wire.data() + kChunkHeaderSize);
  EXPECT_TRUE(std::ranges::equal(mixed->chunks[0], c));
  EXPECT_TRUE(std::ranges::equal(mixed->chunks[1], a));

  // Wrong chunk count, truncated bytes, trailing garbage, corrupt header: all EIO.
  EXPECT_FALSE(decodeFetchedRange(wire, {{4, 7}, range.bytes}).ok());
  EXPECT_FALSE(decodeFetchedRange(wire, {{4, 5}, range.bytes}).ok());
  std::vector<uint8_t> cut(wire.begin(), wire.end() - 1);
  EXPECT_FALSE(decodeFetchedRange(cut, {{4, 6}, {0, cut.size() - 1}}).ok());
  std::vector<uint8_t> longer = wire;
  longer.push_back(0);
  EXPECT_FALSE(decodeFetchedRange(longer, {{4, 6}, {0, longer.size() - 1}}).ok());
  std::vector<uint8_t> bad = wire;
  bad[0] = 7;  // version
  auto r = decodeFetchedRange(bad, range);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), EIO);
}

}  // namespace
}  // namespace hfm::xet
