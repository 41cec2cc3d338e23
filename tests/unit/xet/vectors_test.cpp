// Every published Xet conformance vector (spec §10) and every entry of testdata/xet/vectors.json,
// checked against the chunker, the hash functions and the incremental merkle builder. Expected
// values come from upstream sources (xet-core af1a3ff9: xet_data/src/deduplication/chunking.rs
// and xet_core_structures/src/merklehash/aggregated_hashes.rs tests; huggingface.js
// packages/xetchunk-wasm/tests/index.test.ts), never from this implementation's own output.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "hfm/util/hex.h"
#include "hfm/xet/chunker.h"
#include "hfm/xet/hashing.h"

namespace hfm::xet {
namespace {

std::vector<uint8_t> splitmix(uint64_t seed, size_t size) {
  std::vector<uint8_t> out(size);
  uint64_t state = seed;
  for (size_t i = 0; i < size; i += 8) {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    for (size_t b = 0; b < 8 && i + b < size; ++b) out[i + b] = static_cast<uint8_t>(z >> (8 * b));
  }
  return out;
}

std::vector<uint8_t> affine(size_t size, uint64_t a, uint64_t b) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>((i * a + b) & 0xff);
  return out;
}

std::string sha256Hex(const std::vector<uint8_t>& data) {
  std::array<uint8_t, SHA256_DIGEST_LENGTH> digest{};
  SHA256(data.data(), data.size(), digest.data());
  return util::toHex(digest);
}

MerkleHash hashOf(const std::string& hex) {
  auto parsed = MerkleHash::fromHex(hex);
  EXPECT_TRUE(parsed.has_value()) << hex;
  return parsed.value_or(MerkleHash{});
}

std::vector<uint64_t> streamedEnds(const std::vector<uint8_t>& data, size_t feed) {
  Chunker chunker;
  std::vector<uint64_t> ends;
  std::vector<size_t> cuts;
  for (size_t pos = 0; pos < data.size(); pos += feed) {
    const size_t n = std::min(feed, data.size() - pos);
    cuts.clear();
    chunker.update(std::span(data).subspan(pos, n), cuts);
    for (size_t cut : cuts) ends.push_back(pos + cut);
  }
  if (chunker.finish() > 0) ends.push_back(data.size());
  return ends;
}

std::vector<std::string> hexes(const std::vector<ChunkInfo>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) out.push_back(c.hash.hex());
  return out;
}

MerkleHash builderRoot(const std::vector<ChunkInfo>& chunks) {
  MerkleBuilder builder;
  for (const auto& c : chunks) builder.add(c);
  return builder.root();
}

// --- testdata/xet/vectors.json -------------------------------------------------------------

std::vector<uint8_t> generate(const nlohmann::json& input) {
  const std::string kind = input.at("kind");
  const std::string seed = input.at("seed");
  const auto size = input.at("size").get<size_t>();
  if (kind == "splitmix") return splitmix(std::stoull(seed), size);
  if (kind == "const") {
    std::vector<uint8_t> filled(size, static_cast<uint8_t>(std::stoul(seed)));
    return filled;
  }
  if (kind == "affine") {
    const size_t dash = seed.find('-');
    return affine(size, std::stoull(seed.substr(0, dash)), std::stoull(seed.substr(dash + 1)));
  }
  ADD_FAILURE() << "unknown input kind " << kind;
  return {};
}

TEST(VectorsJsonTest, EveryEntryMatches) {
  std::ifstream in(std::string(HFM_TESTDATA_DIR) + "/xet/vectors.json");
  ASSERT_TRUE(in.good()) << "missing " << HFM_TESTDATA_DIR << "/xet/vectors.json";
  const auto doc = nlohmann::json::parse(in);
  const auto& vectors = doc.at("vectors");
  ASSERT_GE(vectors.size(), 10u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.at("input").dump());
    const auto data = generate(v.at("input"));
    EXPECT_EQ(sha256Hex(data), v.at("sha256").get<std::string>());

    const auto ends = chunkEnds(data);
    EXPECT_EQ(ends, v.at("chunk_ends").get<std::vector<uint64_t>>());
    EXPECT_EQ(streamedEnds(data, 4093), ends);

    const auto chunks = chunkAndHash(data);
    EXPECT_EQ(hexes(chunks), v.at("chunk_hashes").get<std::vector<std::string>>());
    EXPECT_EQ(xorbHash(chunks).hex(), v.at("xorb_hash").get<std::string>());
    EXPECT_EQ(builderRoot(chunks).hex(), v.at("xorb_hash").get<std::string>());
    EXPECT_EQ(fileHash(chunks).hex(), v.at("file_hash").get<std::string>());

    const auto& range = v.at("range_hash_all_chunks");
    if (range.is_null()) {
      EXPECT_TRUE(chunks.empty());
    } else {
      std::vector<MerkleHash> hashes;
      for (const auto& c : chunks) hashes.push_back(c.hash);
      EXPECT_EQ(verificationHash(hashes).hex(), range.get<std::string>());
    }
  }
}

// --- §10: xet-core chunking.rs and huggingface.js xetchunk-wasm tests -----------------------

TEST(SpecVectorsTest, SplitMixSeed0OneMegabyte) {
  const auto data = splitmix(0, 1000000);
  EXPECT_EQ(data[0], 175);
  EXPECT_EQ(data[127], 132);
  EXPECT_EQ(data[111111], 118);
  EXPECT_EQ(sha256Hex(data), "b3d0a1f7938cd4d8413a4dcffd4313e2e8ac0cb61cb1090eb140ea8e9154befb");
  const std::vector<uint64_t> expected_ends = {
      84493,  134421, 144853, 243318, 271793, 336457, 467529, 494581, 582000, 596735,
      616815, 653164, 678202, 724510, 815591, 827760, 958832, 991092, 1000000};
  EXPECT_EQ(chunkEnds(data), expected_ends);
  const std::vector<std::string> expected_hashes = {
      "6eca1e7dadaf08cca5d82d318c800f07c2ddcec115a7e8627e5edd9605b94b8d",
      "624ea34d72a06e5d43a1b8dd10763f0d22f165992c397ed97563899b27fdd88a",
      "4411d2ec847c6e3f451a7451ff3933adb4f1c31587421b9f730b698a78313b47",
      "6342bde97433e29e0779ad33eb8040d986679040361b3cc3a06230fe60dd6c9b",
      "405253fcf15bba751adc4f507d3453273daff81ed4d8acd71c521aa1cbddc0b5",
      "4482374af7f8bebfdb5c5df0299f80128d6c58886ad7b218c562b1d74064e4cb",
      "80acc8d39c853b4b8a8c6ad7b63bf2ea68f62c2226b92f06349f92cc84d213cc",
      "a7076d7d343f711fb20fe6cd023248d8d051e8fe7d44172596cd5c7ea7edaf65",
      "44755217bbb4dadc81ea7695765230a34a2e6cb3b55f373f1de35aeba79ae92c",
      "001adc1d302d5f039278325dcbd5ec3b194f4794f1629d6f962f9f4bb78a7bff",
      "f8460a337c186f07c2e225bb287a1d3d3d686dc69d0828e99640f7d8852c5b90",
      "c9bc3da29025dc1ba562d303d815151d9a937367abb766ae842a165e8493d9fe",
      "5044339dfd65e8163bdfe642614a6be604b04d6aeacf222cf219ad287bfc5cf1",
      "163622db0fe0da93f2ef964eed4c485f3c7a9c312f8e8e8a312ab4bb8141f13e",
      "e1730534a858aa0258ad8904ef12b829b8a123a1c611250275c9ca9471e4c650",
      "1fbc6854f9185caba1e1f55393f41f83b895b18f9c99245c029025ca48f1e14b",
      "8a27b66ccf05b864b6bef6fb5c970fe894f73d2330e8e98fe7841dcdbd9e9576",
      "bc70a33e7a9ec820cac24b87023469a57bdae1bf91cc3961b95806c64a525221",
      "03e5b5f5a088269ec4b329f1e04debfac4cb54b9c0facf038f7e8e0f054be7e2",
  };
  const auto chunks = chunkAndHash(data);
  EXPECT_EQ(hexes(chunks), expected_hashes);
  // Derived by the spec's validated reference model (§10), not published upstream.
  EXPECT_EQ(xorbHash(chunks).hex(),
            "6f2ce16ca5e317f0100ff0e7e5bf40a0de9032e9ee1ad04b6b8ff4e36cdfbf6c");
  EXPECT_EQ(fileHash(chunks).hex(),
            "3d17b2d7d64a0e011b6717a52d9a16bd2c3f05b743fa8adf52a7d75dafab6d89");
}

TEST(SpecVectorsTest, ConstantByte59CutsAtMaximum) {
  const std::vector<uint8_t> data(1000000, 59);
  const std::vector<uint64_t> expected = {131072, 262144, 393216, 524288,
                                          655360, 786432, 917504, 1000000};
  EXPECT_EQ(chunkEnds(data), expected);
  EXPECT_EQ(streamedEnds(data, 255), expected);
}

TEST(SpecVectorsTest, StreamingFeedsMatchOneShot) {
  const auto data = splitmix(1, 256000);
  const auto reference = chunkEnds(data);
  ASSERT_GE(reference.size(), 2u);
  for (size_t feed : std::vector<size_t>{1, 37, 255}) {
    SCOPED_TRACE(feed);
    EXPECT_EQ(streamedEnds(data, feed), reference);
  }
}

// xet-core `test_correctness_100kb_hitting_data`: a 128-byte pattern known to trigger the gear
// hash, followed by `pad` zero bytes, repeated to 64 KiB, for pad = 0..127.
struct HittingCase {
  uint8_t sample_at_11111;
  std::vector<uint64_t> ends;
};

const std::array<uint8_t, 128> kTriggerPattern = {
    154, 52,  42,  34,  159, 75,  126, 224, 70,  236, 12,  196, 79,  236, 178, 124, 127, 50,  99,
    178, 44,  176, 174, 126, 250, 235, 205, 174, 252, 122, 35,  10,  20,  101, 214, 69,  193, 8,
    115, 105, 158, 228, 120, 111, 136, 162, 198, 251, 211, 183, 253, 252, 164, 147, 63,  16,  186,
    162, 117, 23,  170, 36,  205, 187, 174, 76,  210, 174, 211, 175, 12,  173, 145, 59,  2,   70,
    222, 181, 159, 227, 182, 156, 189, 51,  226, 106, 24,  50,  183, 157, 140, 10,  8,   23,  212,
    70,  10,  234, 23,  33,  219, 254, 39,  236, 70,  49,  191, 116, 9,   115, 15,  101, 26,  159,
    165, 220, 15,  170, 56,  125, 92,  163, 94,  235, 38,  40,  49,  81,
};

const std::vector<HittingCase>& hittingCases() {
  static const std::vector<HittingCase> cases = {
      {236, {8256, 16448, 24640, 32832, 41024, 49216, 57408, 65536}},
      {50, {8320, 16576, 24832, 33088, 41344, 49600, 57856, 65536}},
      {36, {8254, 16574, 24894, 33214, 41534, 49854, 58174, 65536}},
      {116, {8317, 16570, 24823, 33076, 41329, 49582, 57835, 65536}},
      {126, {8248, 16564, 24880, 33196, 41512, 49828, 58144, 65536}},
      {145, {8310, 16556, 24802, 33048, 41294, 49540, 57786, 65536}},
      {235, {8238, 16546, 24854, 33162, 41470, 49778, 58086, 65536}},
      {228, {8299, 16534, 24769, 33004, 41239, 49474, 57709, 65536}},
      {70, {8224, 16520, 24816, 33112, 41408, 49704, 58000, 65536}},
      {178, {8284, 16504, 24724, 32944, 41164, 49384, 57604, 65536}},
      {173, {8206, 16486, 24766, 33046, 41326, 49606, 57886, 65536}},
      {0, {8265, 16466, 24667, 32868, 41069, 49270, 57471, 65536}},
      {252, {8324, 16584, 24844, 33104, 41364, 49624, 57884, 65536}},
      {159, {8242, 16561, 24880, 33199, 41518, 49837, 58156, 65536}},
      {69, {8300, 16536, 24772, 33008, 41244, 49480, 57716, 65536}},
      {219, {8215, 16509, 24803, 33097, 41391, 49685, 57979, 65536}},
      {126, {8272, 16480, 24688, 32896, 41104, 49312, 57520, 65536}},
      {10, {8329, 16594, 24859, 33124, 41389, 49654, 57919, 65536}},
      {124, {8240, 16562, 24884, 33206, 41528, 49850, 58172, 65536}},
      {24, {8296, 16528, 24760, 32992, 41224, 49456, 57688, 65536}},
      {196, {8204, 16492, 24780, 33068, 41356, 49644, 57932, 65536}},
      {106, {8259, 16454, 24649, 32844, 41039, 49234, 57429, 65536}},
      {196, {8314, 16564, 24814, 33064, 41314, 49564, 57814, 65536}},
      {183, {8218, 16523, 24828, 33133, 41438, 49743, 58048, 65536}},
      {124, {8272, 16480, 24688, 32896, 41104, 49312, 57520, 65536}},
      {70, {8326, 16588, 24850, 33112, 41374, 49636, 57898, 65536}},
      {126, {8226, 16542, 24858, 33174, 41490, 49806, 58122, 65536}},
      {191, {8279, 16494, 24709, 32924, 41139, 49354, 57569, 65536}},
      {69, {8332, 16600, 24868, 33136, 41404, 49672, 57940, 65536}},
      {163, {8228, 16549, 24870, 33191, 41512, 49833, 58154, 65536}},
      {252, {8280, 16496, 24712, 32928, 41144, 49360, 57576, 65536}},
      {0, {8332, 16600, 24868, 33136, 41404, 49672, 57940, 65536}},
      {173, {8224, 16544, 24864, 33184, 41504, 49824, 58144, 65536}},
      {42, {8275, 16486, 24697, 32908, 41119, 49330, 57541, 65536}},
      {70, {8326, 16588, 24850, 33112, 41374, 49636, 57898, 65536}},
      {174, {8214, 16527, 24840, 33153, 41466, 49779, 58092, 65536}},
      {235, {8264, 16464, 24664, 32864, 41064, 49264, 57464, 65536}},
      {186, {8314, 16564, 24814, 33064, 41314, 49564, 57814, 65536}},
      {0, {8198, 16498, 24798, 33098, 41398, 49698, 57998, 65536}},
      {157, {8247, 16597, 24947, 33297, 41647, 49997, 58347, 65536}},
      {126, {8296, 16528, 24760, 32992, 41224, 49456, 57688, 65536}},
      {49, {8345, 16626, 24907, 33188, 41469, 49750, 58031, 65536}},
      {36, {8224, 16554, 24884, 33214, 41544, 49874, 58204, 65536}},
      {0, {8272, 16480, 24688, 32896, 41104, 49312, 57520, 65536}},
      {236, {8320, 16576, 24832, 33088, 41344, 49600, 57856, 65536}},
      {105, {8195, 16499, 24803, 33107, 41411, 49715, 58019, 65536}},
      {0, {8242, 16594, 24946, 33298, 41650, 50002, 58354, 65536}},
      {24, {8289, 16514, 24739, 32964, 41189, 49414, 57639, 65536}},
      {126, {8336, 16608, 24880, 33152, 41424, 49696, 57968, 65536}},
      {0, {8206, 16525, 24844, 33163, 41482, 49801, 58120, 65536}},
      {70, {8252, 16618, 24984, 33350, 41716, 50082, 58448, 65536}},
      {236, {8298, 16532, 24766, 33000, 41234, 49468, 57702, 65536}},
      {0, {8344, 16624, 24904, 33184, 41464, 49744, 58024, 65536}},
      {12, {8209, 16535, 24861, 33187, 41513, 49839, 58165, 65536}},
      {236, {8254, 16626, 24998, 33370, 41742, 50114, 58486, 65536}},
      {0, {8299, 16534, 24769, 33004, 41239, 49474, 57709, 65536}},
      {173, {8344, 16624, 24904, 33184, 41464, 49744, 58024, 65536}},
      {196, {8204, 16529, 24854, 33179, 41504, 49829, 58154, 65536}},
      {0, {8248, 16618, 24988, 33358, 41728, 50098, 58468, 65536}},
      {159, {8292, 16520, 24748, 32976, 41204, 49432, 57660, 65536}},
      {178, {8336, 16608, 24880, 33152, 41424, 49696, 57968, 65536}},
      {0, {8380, 16696, 25012, 33328, 41644, 49960, 58276, 65536}},
      {10, {8234, 16594, 24954, 33314, 41674, 50034, 58394, 65536}},
      {101, {8277, 16490, 24703, 32916, 41129, 49342, 57555, 65536}},
      {0, {8320, 16576, 24832, 33088, 41344, 49600, 57856, 65536}},
      {15, {8363, 16662, 24961, 33260, 41559, 49858, 58157, 65536}},
      {147, {8212, 16554, 24896, 33238, 41580, 49922, 58264, 65536}},
      {0, {8254, 16639, 25024, 33409, 41794, 50179, 58564, 65536}},
      {0, {8296, 16528, 24760, 32992, 41224, 49456, 57688, 65536}},
      {227, {8338, 16612, 24886, 33160, 41434, 49708, 57982, 65536}},
      {126, {8380, 16696, 25012, 33328, 41644, 49960, 58276, 65536}},
      {0, {8223, 16581, 24939, 33297, 41655, 50013, 58371, 65536}},
      {101, {8264, 16464, 24664, 32864, 41064, 49264, 57464, 65536}},
      {186, {8305, 16546, 24787, 33028, 41269, 49510, 57751, 65536}},
      {52, {8346, 16628, 24910, 33192, 41474, 49756, 58038, 65536}},
      {0, {8387, 16710, 25033, 33356, 41679, 50002, 58325, 65536}},
      {70, {8224, 16588, 24952, 33316, 41680, 50044, 58408, 65536}},
      {228, {8264, 16464, 24664, 32864, 41064, 49264, 57464, 65536}},
      {0, {8304, 16544, 24784, 33024, 41264, 49504, 57744, 65536}},
      {0, {8344, 16624, 24904, 33184, 41464, 49744, 58024, 65536}},
      {50, {8384, 16704, 25024, 33344, 41664, 49984, 58304, 65536}},
      {214, {8215, 16575, 24935, 33295, 41655, 50015, 58375, 65536}},
      {0, {8254, 16654, 25054, 33454, 41854, 50254, 58654, 65536}},
      {0, {8293, 16522, 24751, 32980, 41209, 49438, 57667, 65536}},
      {50, {8332, 16600, 24868, 33136, 41404, 49672, 57940, 65536}},
      {69, {8371, 16678, 24985, 33292, 41599, 49906, 58213, 65536}},
      {0, {8196, 16542, 24888, 33234, 41580, 49926, 58272, 65536}},
      {0, {8234, 16619, 25004, 33389, 41774, 50159, 58544, 65536}},
      {70, {8272, 16480, 24688, 32896, 41104, 49312, 57520, 65536}},
      {136, {8310, 16556, 24802, 33048, 41294, 49540, 57786, 65536}},
      {0, {8348, 16632, 24916, 33200, 41484, 49768, 58052, 65536}},
      {0, {8386, 16708, 25030, 33352, 41674, 49996, 58318, 65536}},
      {101, {8204, 16564, 24924, 33284, 41644, 50004, 58364, 65536}},
      {36, {8241, 16639, 25037, 33435, 41833, 50231, 58629, 65536}},
      {196, {8278, 16492, 24706, 32920, 41134, 49348, 57562, 65536}},
      {0, {8315, 16566, 24817, 33068, 41319, 49570, 57821, 65536}},
      {0, {8352, 16640, 24928, 33216, 41504, 49792, 58080, 65536}},
      {24, {8389, 16714, 25039, 33364, 41689, 50014, 58339, 65536}},
      {8, {8200, 16562, 24924, 33286, 41648, 50010, 58372, 65536}},
      {0, {8236, 16635, 25034, 33433, 41832, 50231, 58630, 65536}},
      {0, {8272, 16480, 24688, 32896, 41104, 49312, 57520, 65536}},
      {125, {8308, 16552, 24796, 33040, 41284, 49528, 57772, 65536}},
      {173, {8344, 16624, 24904, 33184, 41464, 49744, 58024, 65536}},
      {126, {8380, 16696, 25012, 33328, 41644, 49960, 58276, 65536}},
      {0, {8416, 16768, 25120, 33472, 41824, 50176, 58528, 65536}},
      {0, {8219, 16607, 24995, 33383, 41771, 50159, 58547, 65536}},
      {159, {8254, 16678, 25102, 33526, 41950, 50374, 58798, 65536}},
      {210, {8289, 16514, 24739, 32964, 41189, 49414, 57639, 65536}},
      {178, {8324, 16584, 24844, 33104, 41364, 49624, 57884, 65536}},
      {0, {8359, 16654, 24949, 33244, 41539, 49834, 58129, 65536}},
      {0, {8394, 16724, 25054, 33384, 41714, 50044, 58374, 65536}},
      {170, {8429, 16794, 25159, 33524, 41889, 50254, 58619, 65536}},
      {173, {8224, 16624, 25024, 33424, 41824, 50224, 58624, 65536}},
      {235, {8258, 16452, 24646, 32840, 41034, 49228, 57422, 65536}},
      {0, {8292, 16520, 24748, 32976, 41204, 49432, 57660, 65536}},
      {0, {8326, 16588, 24850, 33112, 41374, 49636, 57898, 65536}},
      {0, {8360, 16656, 24952, 33248, 41544, 49840, 58136, 65536}},
      {24, {8394, 16724, 25054, 33384, 41714, 50044, 58374, 65536}},
      {228, {8428, 16792, 25156, 33520, 41884, 50248, 58612, 65536}},
      {0, {8215, 16613, 25011, 33409, 41807, 50205, 58603, 65536}},
      {0, {8248, 16680, 25112, 33544, 41976, 50408, 58840, 65536}},
      {0, {8281, 16498, 24715, 32932, 41149, 49366, 57583, 65536}},
      {101, {8314, 16564, 24814, 33064, 41314, 49564, 57814, 65536}},
      {174, {8347, 16630, 24913, 33196, 41479, 49762, 58045, 65536}},
      {126, {8380, 16696, 25012, 33328, 41644, 49960, 58276, 65536}},
      {0, {8413, 16762, 25111, 33460, 41809, 50158, 58507, 65536}},
      {0, {8192, 16574, 24956, 33338, 41720, 50102, 58484, 65536}},
      {0, {8224, 16639, 25054, 33469, 41884, 50299, 58714, 65536}},
  };
  return cases;
}

std::vector<uint8_t> triggeringData(size_t n, size_t pad) {
  std::vector<uint8_t> unit(kTriggerPattern.begin(), kTriggerPattern.end());
  unit.resize(unit.size() + pad, 0);
  std::vector<uint8_t> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = unit[i % unit.size()];
  return data;
}

TEST(SpecVectorsTest, HittingDataAllPaddings) {
  const auto& cases = hittingCases();
  ASSERT_EQ(cases.size(), 128u);
  EXPECT_EQ(cases[0].ends.front(), 8256u);
  EXPECT_EQ(cases[126].ends.front(), 8192u);
  for (size_t pad = 0; pad < cases.size(); ++pad) {
    SCOPED_TRACE(pad);
    const auto data = triggeringData(65536, pad);
    EXPECT_EQ(data[11111], cases[pad].sample_at_11111);  // the input itself is right
    EXPECT_EQ(chunkEnds(data), cases[pad].ends);
    EXPECT_EQ(streamedEnds(data, 1 + pad * 3), cases[pad].ends);
  }
}

// huggingface.js "Minimum chunk size regression": xorshift32 data; values from xet-core.
TEST(SpecVectorsTest, XorshiftMinimumChunkRegression) {
  std::vector<uint8_t> data(3 * 1024 * 1024);
  uint32_t state = 0x9e3779b9;
  for (auto& byte : data) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    byte = static_cast<uint8_t>(state & 0xff);
  }
  const auto chunks = chunkAndHash(data);
  ASSERT_EQ(chunks.size(), 52u);
  for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_GE(chunks[i].size, kMinChunkSize) << i;
  EXPECT_EQ(chunks[44].size, 131072u);
  EXPECT_EQ(chunks[44].hash.hex(),
            "8ee1833ff616a01e187888865c8e22f403c860b7a6c347ba28c4511995875086");
  for (size_t feed : std::vector<size_t>{4096, 1024 * 1024}) {
    EXPECT_EQ(streamedEnds(data, feed), chunkEnds(data));
  }
}

// huggingface.js "Hash functions (verified against Rust thin-wasm)": byte i = (i*a + b) & 0xff.
TEST(SpecVectorsTest, AffineXorbAndFileHashes) {
  const auto small = chunkAndHash(affine(200000, 7, 13));
  ASSERT_EQ(small.size(), 2u);
  EXPECT_EQ(xorbHash(small).hex(),
            "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74");
  EXPECT_EQ(fileHash(small).hex(),
            "d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723");
  const auto large = chunkAndHash(affine(1000000, 13, 37));
  ASSERT_EQ(large.size(), 8u);
  EXPECT_EQ(xorbHash(large).hex(),
            "7be289d851485c40dcde52dbcf37a7823a5ef0bfcdf1ca1c5a32ad9594c71571");
  EXPECT_EQ(fileHash(large).hex(),
            "041a50f3639f4a080a89237025d643e2a3e22935ca5d7dbc1a38f5c1e859f859");
  MerkleBuilder builder;
  for (const auto& c : large) builder.add(c);
  EXPECT_EQ(builder.fileHash().hex(),
            "041a50f3639f4a080a89237025d643e2a3e22935ca5d7dbc1a38f5c1e859f859");
}

// xet-core aggregated_hashes.rs `test_correctness`: 18 cases of (leaves) → xorb hash, and the
// file hash under three salts each.
struct MerkleCase {
  std::vector<std::pair<const char*, uint64_t>> leaves;
  const char* xorb;
  std::array<std::pair<const char*, const char*>, 3> salted_file_hashes;
};

const std::vector<MerkleCase>& merkleCases() {
  static const std::vector<MerkleCase> cases = {
      {{},
       "0000000000000000000000000000000000000000000000000000000000000000",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000000"},
           {"c1cdea79b61cd4776c9f3f8e08767fd5f42e33f9cec8c13d01b947901fad1954",
            "0000000000000000000000000000000000000000000000000000000000000000"},
           {"8d948a82def8a5683477f953796702a015caa2fce6db8d692cef8853c20c6dd0",
            "0000000000000000000000000000000000000000000000000000000000000000"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
       },
       "0000000000000000000000000000000000000000000000000000000000000000",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "638a6bc391964a85939d48f008e8bdbae6a7975e7ca2d87a3ce2492f4e4d8a4c"},
           {"f4aa7219b7bc6145df344b930c1cf63680037e13236f4b3b8f439aba1520d443",
            "3e44e4a200e05a69afc979eb2e0507817e4f0ddff128a97e563c0e05fed3bd25"},
           {"51d15f80fa3c9b0c42673a3e27206741e6b8881ae902614a8dd45e6e0e4ab1d2",
            "7a6c58ad3831f6ac16727ebe8e1a4e7d9f509ba8e1f75f5f31c5e67c66a94486"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
       },
       "cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661"},
           {"285371a6a3c8c4e561469c97766c46f0b9799bd8ea51a4ad27a082df8c28b7da",
            "6c18994ed5e6a223aeff68a6e386dbba7b3c25de076245dc77892b4ad49ac978"},
           {"6e88acf8fc9f70ab609a46a58e93404f221bf6f1b95b4a12364032de9d3fbdf2",
            "c5af028b084ed1d7f9f131b60724547df167a149fdb39a7fcd6c92fbc777bbcb"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
       },
       "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715"},
           {"b286606709ef32a1cfede1e603a39f83fef56772d8234c0e35d8920071d80b69",
            "337f1f046e4cfc1057f0f3edbd87cf977fdfaf3c2b0c0031ca2d1d2a34aa2270"},
           {"20f7357cdb2f6d3727375656e4eaf464fa195094ff501edc08aaccfb1419a07b",
            "82c5359ad947e91e4da6a00034f94a9159bd3bf24d005ef167648b9d3ba77f8c"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
       },
       "89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "2cdba690d0e09563596e0cda626d43eb4c96ef1e994fe72d9b2f5a83cfcd36dd"},
           {"705cc0697edd49c5258951922f5df72e16deaa58f85e78c381a574c4e3c9ad94",
            "a3da5ccdbea87eafe6400ad30e45df94bcad053d72c246ff94a7934a5a35abdd"},
           {"8034daa5ecbb2747e07125153b27fd7fe80e0987a90ff35038e65ede487061fb",
            "39f759769aa24443a9e01d65e168790bbae126d604524d09d8f5bb27cc1f9a19"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
       },
       "90f8313ef12df385d237a067aded02562c35ded12116e32eba401dbc86c38031",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "284ea045e5a579e99c21ec597c20de1fc0c09e7168162aac00db8f61b3d82dbb"},
           {"d08d1b24938b34a558972c6fe99f6153ef502f064b74d8ca890cdfb8eb4f953c",
            "6812247dc5740215154ace7e4ffe271914da445524492677d36bdb6ec1282142"},
           {"210cfc75c396d665afc41376548e139fb62d3af883b94535506f30fe5e5af054",
            "adbce79dba197ed0f33290c11bb44ecd5bca689dd57997998e3fdaee60846acb"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
       },
       "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f"},
           {"fceabc1f6c6aaaa176bc53b2d6899a3ab99eaebd13b5f0cf36080e6f894bbbf5",
            "b70b051189a20b58d0c832111e0470396094518b6af8bd8c813c9ccb764ab602"},
           {"2bebd697343f19943b09f4d4f72e9b38e75cb77a484fd2b004f911b6ba747f4d",
            "7891a3024bab1566cd7d421b90c31ca51db694647f7541211a0adeb188f26f4d"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
       },
       "e1755c85be07fd6b7a8d7becc85e6d8c5f507f2a3d38b316bcb6f97855e72188",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "207caf24fce045ac6d873b4c6186a5a435d600d103e1ae345e55ddf1f4b7f7ef"},
           {"031f44db2e13e20c068a83d67c607b5134ddd0e627c2a4f9a6335feb0340625f",
            "5d343ba4d940ae1a7039774456702e1e45400d47f2a04ae987046984a440b2b5"},
           {"024d165e5cc2770217cbfe0af422666f4333f94f35faca6d4450be7eac3233ba",
            "5b7497691632f794a40d33908473770034a651fe76bd8036a4b1c1c2246b0bfe"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
       },
       "f36c6a6374a567efd36ed087aeb680b57e3af4e0b5b8e7be2593df4cb647a2de",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "ab2f46d31855e1133b3b5b70e78f841394a648710a208923b221c1a8a0572a1f"},
           {"80d0b5a2922c67f61ffdc2b9f6e9272a92542a3ab319ed0e6bfc40224b0e033f",
            "82505151e4e8ad313359150eaa7c13cff3130458e52cdc33c49a6199e47896d5"},
           {"a2ceedc3d08cd002198aca5ef67304f383bd25a159de0f440c19323f86675c1d",
            "79ff4e9e2c05800de3a15a1a450383f18458f772f5c0dc16b32e3f4f27006c4d"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
       },
       "e8660f81494ca836a58e395c1395ef97870ed71e2b113eec1fab6b3361f46dd6",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "274d92f7e2acebaa2b8d63c0b5e7a4fc15814a606e3e3825d55609e671bcc5d9"},
           {"b0fd0f1d42902c9e8156968aff956ace74cc286d5f4ad84b98865069175e3d1e",
            "1472e0ec0085c508d31759d0d2df6656e00080d83340130e28772d231bf5a8d7"},
           {"200519fb7604080db7f8806fe9f14ca6a4ebac59fc8c99ab678c0dfaccb42bc4",
            "4d9137d15623213a6feec629ac21a685a1abcfad348134305fcd1389e302c43f"},
       }}},
      {{
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
       },
       "73b9dc802ab03a0855c66823a18d95c2a785af594535756abf405038b6270cb8",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "c7d5be75ef5ec12888027ad305141e4109e599494477661177475c84e12de48b"},
           {"d255e7a939311ec686dc825070a5e603147539a80035999a4dcaa698afd4aa7f",
            "7c58c7b4130ac526c98fff562bb4317581846a04e6ba4f08fa8a829e1c033c78"},
           {"0ce9f480d557575949fd9d854b768b5de6b90c5875151bb8d2b58d341731fdff",
            "07fd7ff34d1d4e12b58be73d3736902bca11b37e82ab97b65cfa5b2950a4418a"},
       }}},
      {{
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
       },
       "2c1fd1eca47e284512fcb40fcf45a1874939f9b91c774d46aeba5d004d9d263d",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "0799ba7ee2c3fed173a8e8d832cd13970ddc16070ffbc8aa6dcd77476f66dc73"},
           {"498ba54b410ea8f05c4b92aa5a6f01165615f6a8d1ec1d7cee76a85fd800ba28",
            "c98a2a18e6df96f4d6dc5da396e17a2c22867b49b977ab6860de5b3241776baf"},
           {"d4386029ad5c96f5b8ba3ccac43498eed2ebe601a82448d9a570d851ff82d7ce",
            "242c0a9680a8df0894d5f2ab5cbeacf64178ec1ff01eb75cfb5dfec791ccabb1"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
       },
       "f62abe77e3fb9c954fe52b0028027ddc90c064c45951a4fd2211d87e5c0011db",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "d1b068be5bbdb38992269e8efe61f601881e39f7a7585fd76883cc6ea5c23b44"},
           {"6fb1cc393b130809e39c8073f96d9726364080a345a5af4978ab491e7d25faac",
            "eebe56be63552edcc6da65ff79f79262f83866236dd869f08a900674fc936ad3"},
           {"9a251cb6ea998277ec94eeba84850ca3b1a01b66719043938c9695f72457abb1",
            "8adf902c706ff117e38e10bbd076d5f139aaf6704159652d189d1350ac24b407"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
       },
       "6554007c9b5d0a5e7918f79596a1b68815c1407535585435f5735db761f21b88",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "a8640ab81d48854e00078e12b1ea8be5d90be0ffb5f73a15b7009981d093ddd8"},
           {"0c33b4f4788ad18fb7c5fbec8fa2ce3c3208e2737d8d0fd7c4a1ff97b2c0d866",
            "3e819808396e8c1960a11be2b952b3b824ab1f4c44a46ba7f753d54127fc1987"},
           {"a53474562b6b74982e2d73a9899d63c8e5f99c9fe331b7c1079e37d5e3f27224",
            "702d28c85f0c8d402436b14ad759850e8c439d382bcbf50578dd52a2a9879022"},
       }}},
      {{
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
       },
       "0a0123c1617921883b7e13902095fcb86676e77c49120c33b233003b0af0e0a6",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "53af4711fd1d5e5bdc7f931b6be932314d8d673cb16ad2482f6f5222eaf9e63d"},
           {"058034313dd012e3cdb618509708dda40488f573cefd0794b97926a431b60b86",
            "1b4aa28be3856b3c7a435622ddbcc4c4f81ef19702864a63ceb28653e52deeda"},
           {"9a5d9092dab617e2572cc23b4bababd96fd6744fb6682b42392b281386abdc17",
            "b71e783a51a19f07b62f386b60363a0b96e036bd9dc9e651b9373e0e94b4bf53"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
       },
       "e7fc30b73ec9930593f80fe777b334e9d3bb73e45e6a79fa5784b2603446158b",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "69e1af2fd6023ce133e0d1b90e32d1d42ef79f5a710f2b0accfc3a735e98de9d"},
           {"0d3ba68f70ce4c1f642b12ff526fefe28db27becb0bbf2ea181193f70f6c3f09",
            "fe45928c54aa340354af57c83cf6eb8056a2d2e623a1f73afdc3e777babe7ba1"},
           {"efc42bd1c8484ee777279eb0ea378508e1b3cb2d242664f43355bb971994f42f",
            "d640ee6a5ebc1975dcc4b860fe4377736c0c46a3d6060dcc3a937ab1866e0c8d"},
       }}},
      {{
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"0000000000000000000000000000000000000000000000000000000000000000", 0},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
           {"0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700},
       },
       "636c65db520ec16e8166f9ec7a0cf9f74b26369077ac60160ec0221c86bc9f77",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "6a90ad0d6f5246ac61f1de898c6944c03e14004a1368e6fb23387108c4d039e0"},
           {"9cf26338dd0a43d6b8ae238d197a558db083f42918b6abebe9c6008a982459fe",
            "7f14769cb2a682654aa7aa6b08845643b6973adb313b975fd319d34456bb9159"},
           {"d4a66ca34b2a86f1ef1f1bf25ab63b564deaccd1bd1a8d5c8c52524cc7abe32d",
            "26d4b962af66bacd758377a44cd7ea0d31defde460cdde494053e63456747e45"},
       }}},
      {{
           {"4bb8167baa56fe2e2c9bd231c17da8103d0e5880952f5f95ece4ba36f12f780e", 858993459200},
           {"264fa414472e8c6a7db4cf4d09e98b06b3dbadbc0b0a22998c37e5a3266cbaeb", 858993459300},
           {"0143189512fc8ff13863dd29cddfd27843fb33a1eb2d74bb1e88376ad314514d", 858993459400},
           {"5bd05c0a044e37de8dee2a661c006c4d38cbe2f52b7dfb7886c0e4fe643f1320", 858993459500},
           {"98b8f089d87826e97d9372589354df5b13d5c44128e42a107d81c2f5ca5b9935", 858993459600},
           {"41a664ad7bcde31caeb2326def866d21c3e6af93eea93c2e97341954a99645d5", 858993459700},
           {"1a07f38ecc220857e2ae8992c9dbf687b420b8e6b78ed18553db6107096e6674", 858993459800},
           {"3e284cd4c5d3742c9c2a30d38592da97db560db3f7b300ed99e2cf0f57493fc8", 858993459900},
           {"2876ca5532dfd7ee48cd45b397640454156d73a9d9eb8c495d1c946cec641b8d", 858993460000},
           {"f861844b7cc10d2cb9c8496ec38ab761610ac71494c96e914b477a86a13beee1", 858993460100},
           {"b90535aa19f785f289cd8a414b27f1eb2862c287ee5352412cfab21a5991d4d0", 858993460200},
           {"cba9e36df25bac3059e8c40e733365b51d28cff9fe8f2cfd0b8166a21880706e", 858993460300},
           {"0542bc8841498c90fc6c502cca431f455267fd55b70b57adab64562836c7cff9", 858993460400},
           {"a43c0a53ff26d2174d9124a6fdeac1ec56775993cf890a0e8a5f23ef0047936e", 858993460500},
           {"9acb79956803fabf3ad62f3509d472e2b854a0a603c2b1f4fad265bb2086efa6", 858993460600},
           {"32689cb7dca6b1168f98d627ce793a3fc0f2774ada4014be1ee4a64fb56287af", 858993460700},
           {"94fdf9880e23103cd1b271e49fa73e6863982772025080a2a33e566dd0ce92c8", 858993460800},
           {"c689977f4153226f41217ed8a4b2d4a8e77b0767fa3ce2c9aaaba88c852007a9", 858993460900},
           {"2cdc473fae65555c10cb8e0c8612c1ae7a98f315c63ef022dbc70e447767dd44", 858993461000},
           {"027717d5c1ead1d2b3794d5c0ff6271712be541c10d402232c2f14d64a03ffd3", 858993461100},
           {"a54d9bdf618c585ce4b841093a84efc90919ce42e465f30919957e34c144c3bb", 858993461200},
           {"bda4c65c7d357bcfb15e8de64adfee01bdac58941712b1f3dbd79d56dba2e9ab", 858993461300},
           {"ac6ced48dcb39ba66edcf2eef64b3e1056efc651babbc1942a8bc2c291a8d912", 858993461400},
           {"11e3670cb291e19455346923effb9af28e637b0d6bf5829c173b6a702df142d8", 858993461500},
           {"262cee84de1583b570f7c8ca62657d7bf6805dbd937e3b15899beede88e6d033", 858993461600},
           {"d7bf4b9589f88e27910726714bedbd3fdf8bc22d6dd5584cbe9e917d81d16d98", 858993461700},
           {"7746419c6931e1b71995d3b03a9757c0431886bf1e84b6353a8d6a8d4a6acf83", 858993461800},
           {"b64f118e4db3652e5d729b621c7e1810bcc3ccdd6fdaf11397a24cfe50a5cc0c", 858993461900},
           {"55a21c2a6c4b547e44abd598ab763af93553f84c7ecee06bb381a1e228a67c40", 858993462000},
           {"cc956735a3d3e6cbdb5c1f352b3047ba1d43cb0170fe56edef5b1883307d8544", 858993462100},
           {"ccbf9573bd67c4dcb2bb18faec1a5dcd9930ad7ac44c5fef343502213013d6eb", 858993462200},
           {"7addab5065154e0af972acdb3381e6dd1d74553ddd34c1aa7e1221e4b5b296b2", 858993462300},
           {"aa3bc51b8edc616972cda20e2e7c014530dcb32ec8692dc3cdad5f35a462bb96", 858993462400},
           {"9bdea725dacdbfdfb4e2044c5acceadf5d0c49485fcab89b6ef896d52a4a09d1", 858993462500},
           {"edde7b9880ec5303ccc8401cc9ec5e6a6a18c62353746da14da3b2bbdd524cad", 858993462600},
           {"9d15f7098eda6921ca6c26da00ede3d8fc6320aec400ff8b067a7be125602d6b", 858993462700},
           {"262f8c4fb624bea0a8beb3b95e911fe5050be9702a29319069f4afdbe0044105", 858993462800},
           {"22efff126110192a0ad352e44df8d2bb1b5e1b2aab20c4c046d8c290081814dc", 858993462900},
           {"39d72f71defd8cf7ec971c8367cbb89dc4042a5520978c139375fc60fc96c594", 858993463000},
           {"b99b719c74883275baa7ef5971d64e6ce897ad66ded1801a5a0cf3decae9feb7", 858993463100},
           {"19f4d995747b316f17e575c365884672345843b689b466a2419a7fe731d1ff33", 858993463200},
           {"e02df52e816323bbd259f2c98d99e07ddfba0170005915b09cca07ec46493dea", 858993463300},
           {"47cc8acc3eab9d7e57e3b4b36c452b29817d837ba0744233f66d5abb397066a7", 858993463400},
           {"eb586c3af09fbaa913969d5d221e79e94262729d7dc7424d4afa54c4ea41c798", 858993463500},
           {"58819a31ac66ea0e59def9fcdca5910811f9a8076402da15b879b2de6b58dca7", 858993463600},
           {"124a6d441350fdbf089656a5bc634aa3108013db2460283087c0b2f9698d064a", 858993463700},
           {"f54815a68307bd7999ca071138041449ac4a06403d1f882b159ca91b0fdb15eb", 858993463800},
           {"f9fd25cf5ed50d96051b2e093d3e7bffd95e4d8e5bab2bf0a4c0abd44b432e5d", 858993463900},
           {"f3a84473e24579a7d66abd673bf1c2799f6a7578d243d177a7a5ddec1def524e", 858993464000},
           {"8a9ef2d746f6a3ee37b03960d8aa04d345f13887d91b16944089f318c3a5db79", 858993464100},
           {"47d738e05820835e441ccefa363e3674766a8ed9d503d1ca1d088a4eadf81368", 858993464200},
           {"e72960cf3cb781e96a93cffaa17347a9de98b8ae8c44caf9a277155d26accc4b", 858993464300},
           {"d2a7a4ab1ca5aa155a4236b9cb70224fa71283787747f0e4c9b92bd353addaf5", 858993464400},
           {"da077b2eec352d6a06d3113421f29718f49067f4c7fefda0d1c92f02568a0c8d", 858993464500},
           {"348e59244d0c798ed5e948e53d0adb33b1a333ba742aa2629bc57634ec1c4145", 858993464600},
           {"c6d5b78963db3be2eb72d5f50e0863905f031a8153a0192014fc70deeffda18d", 858993464700},
           {"1e0270a4723d0b5137d32963bf698d8d75c6ddbc45b43012ead3d74df421b43a", 858993464800},
           {"3d9f4da6df392205a748f2dc805d9d528dded20fbeb8d8ee8b08ad98ad012772", 858993464900},
           {"03b41bc24a857342b05957bccf58c0a5f6ff6892ad0ff286d215dd7b78cb1916", 858993465000},
           {"79ff727cb6227413efdf3ef49e8b8da518aee0eb4981d0bb8e5121394ee97e8a", 858993465100},
           {"32453e5156a6e091e7e86a05c4771a84d7d44a1674015a6053f80e339a6f409f", 858993465200},
           {"9352139ebc1ee29a887c2c421b3b8f4f6a9c411e73856751a058153b90e11a2f", 858993465300},
           {"f252ef14829f0300aca6f722d2eb77e71bf103aacf5c5b66e1811336e7192697", 858993465400},
           {"1faa98fd5be526bf554f43bbe725faaa5efc290d6b2399526876a60377df1f0d", 858993465500},
           {"2f11884b48aec3bcccc12bdb150c2eb410643242d8575168c6a5ba75530053a3", 858993465600},
           {"e19626b6e8c662266d0b88b4e2d2c04b7985fd27a8c2080eddf1679482aede70", 858993465700},
           {"ef68559f9f949ebc30fbde3fdc5df52cee3babd722abb40e0fd1b19b26a6c5fd", 858993465800},
           {"4c0f078b5206b52b2c740810d74c31cf669f87145ecd6a866b53c0fdc92ed545", 858993465900},
           {"2ba6fbdc8531a945ce767db224542f4bdf68ea23a1d39d6660b93f0b4ac3c886", 858993466000},
           {"0ca69a8a1045003e23f30de516fd833ea1147e53c71125f6de680ae580bb0b2a", 858993466100},
           {"0d9ce05040f092adf4c48a8753558d1b003f2a64eef2fc24cdc6a065b42200eb", 858993466200},
           {"e41d9f14a678ceed00680679664ff7a95ef8e5e2a691b74c7493d36dcd5cce6e", 858993466300},
           {"fd5e47e45413eaa4ea4455c7e8a508beea9da2ff63e334f809964e5da1d35eb1", 858993466400},
           {"255fe31523e7f14e854a56a46492dff3fe0a92b13ecb8c5e3c41911cb9802df4", 858993466500},
           {"1baa420f0e1c2b5b79c05661fc7b15365321599b3cf28629410ba484f3a526be", 858993466600},
           {"4b904af6bb31a324998f5ed7f8c3961b3c6cfa2fb797a16e9427f32c57c45937", 858993466700},
           {"07b802a04568538068a9db24a0ce06794fa0ebd59f8b3c284f362b2d62abb6cf", 858993466800},
           {"915f764361e496714a26c1c314bfd4b3a1e1d5cf2cdb1fea3ce2a46c49d84bfc", 858993466900},
           {"515971f1ff66b929c173fd423aa17fa3a7f9f26239d5029dcad68a4b8140fdb4", 858993467000},
           {"e5a9e2625e21de37d2e6886640ef3a6a3d7b4b0f0f360653cc54d69d66f80b3b", 858993467100},
           {"41601754f8ef7dee3c248e981c3cd0590b6f413ee082b6fdbf678c15142f5e4d", 858993467200},
           {"693ba2c7b0930ac2d64464c4e33952a2e79866c38b70540b9671fdcc9be78f50", 858993467300},
           {"09eaefa1e2e8ed20344dfaeae186170cc0d76dc32b80997026609fb981a75ab2", 858993467400},
           {"6288ca28b610996253ffabd14b47870ef8c1c4c32fa96dabbee50b127dee2387", 858993467500},
           {"44aa1b86bfd96d5aaed4cf12b8562d4d126a33f33c48ae4513fb538bd397c8be", 858993467600},
           {"f1a6350bebd252c9413754d80df17a10f91ce7ec662e98f4cee1c82ba4fbede6", 858993467700},
           {"a1f557153593f38d94d7f6e24c01fc941d9567d17af67e8539f1b81bc51ee264", 858993467800},
           {"a18a395a1e5e7025f7f37f46f8aef8e0b32fa892b0f4e869b05c7f45c72cb064", 858993467900},
           {"51b39cb7f3e8b88067fcb4ed7fffd681516dfb55b383a8b413f4237fa773c4ce", 858993468000},
           {"05d80656464074580c40cfbac2e2e60d761c0600675862ee63701d7a5d3433a2", 858993468100},
           {"fa80e2c99389bcb0c43228a14b0035a2d885b05f04c3895c92dbb8ef8e00e29a", 858993468200},
           {"8968e28ce21a2507f55ab8ae865c669ca1d2104cdd911604f6f73927fb7b3d35", 858993468300},
           {"4a1fc357463fd231064bc5ee6eb32bcc749750072d85e81e2cfbebde4f7e0018", 858993468400},
           {"4f8fbbf4d8654203636f5f639ddf0c78f2f9575a825f00acbfba1552c6b91dca", 858993468500},
           {"b38a53037470a9f90fb0a3df72caf9cf58642ee8750bb7244d60efdeb598f79c", 858993468600},
           {"96dc535b16ea51143ed885e92d7e5e0e010b86e3f93c992ddf52af537e3c4f4c", 858993468700},
           {"4e6faa2b9c3c8f7075cb12d069ac2cb07f13cfc506239f715e9e8c071ecaf878", 858993468800},
           {"87ba523ddb6112bf72d5dcff817919312f2650cb4742f47b289ba2345da5daf6", 858993468900},
           {"34a7e7b01ef534717ac938a586f871a2549cf38adc776557e6d91cf0bf4046ad", 858993469000},
           {"32d60c12ce51cd05bbdd8d1a192963686523e638015ccbc68c2065eb54232934", 858993469100},
       },
       "c51247b5782028a5b8fd8191c855e46c02ba5923ceeed828b167614d47fb6686",
       {{
           {"0000000000000000000000000000000000000000000000000000000000000000",
            "4bacfd61a7f5401a3a55770234bf6ab0ce9a44446d81e9ce9977220fb9022406"},
           {"fc2ec3634962518fcccf69fa901b930a1e71bc859a0d877799fbd1d0dddc10d7",
            "b451a0e35458e1d21445735852844d3776cef13f255a875c4fa37fd76c7f2637"},
           {"9c9a3e2c77df0b1f4292d0c34b7c9752c01479bc6953656527aafef81fee6c45",
            "8ce603595da4bd4518ee33a0e58c28309f78ef5cce23f1b53ad048f360cd25e5"},
       }}},
  };
  return cases;
}

TEST(SpecVectorsTest, AggregatedHashesCorrectnessTable) {
  const auto& cases = merkleCases();
  ASSERT_EQ(cases.size(), 18u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    std::vector<ChunkInfo> leaves;
    for (const auto& [hex, size] : cases[i].leaves) leaves.push_back({hashOf(hex), size});
    EXPECT_EQ(xorbHash(leaves).hex(), cases[i].xorb);
    EXPECT_EQ(builderRoot(leaves).hex(), cases[i].xorb);
    for (const auto& [salt_hex, expected] : cases[i].salted_file_hashes) {
      const MerkleHash salt = hashOf(salt_hex);
      EXPECT_EQ(fileHash(leaves, salt.raw()).hex(), expected);
      MerkleBuilder builder;
      for (const auto& leaf : leaves) builder.add(leaf);
      EXPECT_EQ(builder.fileHash(salt.raw()).hex(), expected);
    }
  }
}

}  // namespace
}  // namespace hfm::xet
