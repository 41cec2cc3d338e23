#include "hfm/cli/hash_command.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hfm/xet/chunker.h"
#include "hfm/xet/hashing.h"

namespace hfm::cli {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

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

class HashCommandTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hfm-hash-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::vector<uint8_t>& data) {
    std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    return path;
  }

  std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Runs a shell command line (killed after 120 s, so a hang fails instead of blocking the
  // suite); returns its exit status, stdout and stderr.
  struct Run {
    int status = -1;
    std::string out, err;
  };
  Run shell(const std::string& command) {
    const std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    std::string quoted = "'";
    for (char c : command) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "'";
    const int raw = std::system(("timeout 120 sh -c " + quoted + " >" + out + " 2>" + err).c_str());
    Run run;
    run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    run.out = slurp(out);
    run.err = slurp(err);
    return run;
  }

  fs::path dir_;
};

TEST_F(HashCommandTest, PipelineMatchesOneShotHashingForAnyBlockSize) {
  const std::vector<size_t> sizes = {0, 1, 8191, 8192, 131072, 131073, 1000000, 3 << 20};
  const std::vector<HashPipelineConfig> configs = {
      {4 << 20, 4}, {1000, 2}, {4096, 3}, {65537, 2}, {131072, 5}};
  for (size_t size : sizes) {
    const auto data = randomBytes(size, static_cast<uint32_t>(size));
    const auto path = write("f.bin", data);
    const auto expected_chunks = xet::chunkAndHash(data);
    const auto expected = xet::fileHash(expected_chunks);
    for (const auto& config : configs) {
      SCOPED_TRACE(testing::Message() << "size=" << size << " block=" << config.block_size);
      auto digest = hashPath(path, true, config);
      ASSERT_TRUE(digest.ok()) << digest.error().message();
      EXPECT_EQ(digest->size, size);
      EXPECT_EQ(digest->file_hash, expected);
      EXPECT_EQ(digest->chunk_count, expected_chunks.size());
      ASSERT_EQ(digest->chunks.size(), expected_chunks.size());
      uint64_t offset = 0;
      for (size_t i = 0; i < expected_chunks.size(); ++i) {
        EXPECT_EQ(digest->chunks[i],
                  (ChunkRecord{offset, expected_chunks[i].size, expected_chunks[i].hash}));
        offset += expected_chunks[i].size;
      }
    }
  }
}

TEST_F(HashCommandTest, SpecVectorFileHashes) {
  auto digest = hashPath(write("s.bin", splitmix(0, 1000000)), false);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->file_hash.hex(),
            "3d17b2d7d64a0e011b6717a52d9a16bd2c3f05b743fa8adf52a7d75dafab6d89");
  EXPECT_EQ(digest->chunk_count, 19u);
  EXPECT_TRUE(digest->chunks.empty());  // not asked for

  const std::string hello = "hello world";
  auto small = hashPath(write("h.txt", std::vector<uint8_t>(hello.begin(), hello.end())), false);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->file_hash.hex(),
            "f15edd43b7e85cfd25e2758ffe13b99fdd09dfa817e8d9f6548722a7a126db7f");

  auto empty = hashPath(write("e", {}), true);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->file_hash.isZero());
  EXPECT_EQ(empty->size, 0u);
  EXPECT_TRUE(empty->chunks.empty());
}

TEST_F(HashCommandTest, ReadsFromAPipe) {
  const auto data = randomBytes(700000, 3);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  bool wrote_all = true;
  std::thread writer([&] {
    // Small uneven writes: the reader sees many short reads before EOF.
    for (size_t pos = 0; pos < data.size() && wrote_all; pos += 7001) {
      const size_t n = std::min<size_t>(7001, data.size() - pos);
      wrote_all = ::write(fds[1], data.data() + pos, n) == static_cast<ssize_t>(n);
    }
    ::close(fds[1]);  // always: the reader waits for EOF
  });
  auto digest = hashFd(fds[0], "pipe", false);
  writer.join();
  ::close(fds[0]);
  ASSERT_TRUE(wrote_all);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->file_hash, xet::fileHash(xet::chunkAndHash(data)));
  EXPECT_EQ(digest->size, data.size());
}

TEST_F(HashCommandTest, UnreadablePathsAreClearErrors) {
  auto missing = hashPath((dir_ / "nope").string(), false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_NE(missing.error().message().find("nope"), std::string::npos);

  auto directory = hashPath(dir_.string(), false);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code(), EISDIR);
  EXPECT_NE(directory.error().message().find(dir_.string()), std::string::npos);

  EXPECT_FALSE(hashPath(write("x", {1, 2, 3}), false, {0, 4}).ok());  // bad pipeline config
}

TEST_F(HashCommandTest, FormatsTextAndJson) {
  FileDigest digest;
  digest.size = 200000;
  digest.file_hash =
      *xet::MerkleHash::fromHex("d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723");
  digest.chunk_count = 2;
  digest.chunks = {{0, 131072,
                    *xet::MerkleHash::fromHex(
                        "118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882")},
                   {131072, 68928,
                    *xet::MerkleHash::fromHex(
                        "7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827")}};
  const std::string h = digest.file_hash.hex();
  EXPECT_EQ(formatDigest("a b.bin", digest, {}), h + "  a b.bin\n");
  EXPECT_EQ(formatDigest("we\\ird\nname", digest, {}), "\\" + h + "  we\\\\ird\\nname\n");
  HashOptions json;
  json.json = true;
  EXPECT_EQ(formatDigest("d/\"q\".bin", digest, json),
            "{\"path\": \"d/\\\"q\\\".bin\", \"size\": 200000, \"file_hash\": \"" + h + "\"}\n");
  json.chunks = true;
  EXPECT_EQ(formatDigest("x", digest, json),
            "{\"path\": \"x\", \"size\": 200000, \"file_hash\": \"" + h +
                "\", \"chunks\": [{\"offset\": 0, \"length\": 131072, \"hash\": "
                "\"118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882\"}, "
                "{\"offset\": 131072, \"length\": 68928, \"hash\": "
                "\"7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827\"}]}\n");
  HashOptions text_chunks;
  text_chunks.chunks = true;
  EXPECT_EQ(
      formatDigest("x", digest, text_chunks),
      h + "  x\n  118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882 0 131072\n"
          "  7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827 131072 68928\n");
}

TEST_F(HashCommandTest, RunContinuesPastFailuresAndReportsThem) {
  const auto good = write("good.bin", splitmix(0, 1000000));
  const auto missing = (dir_ / "missing.bin").string();
  HashOptions options;
  options.files = {missing, good};
  std::ostringstream out, err;
  EXPECT_EQ(runHash(options, out, err), 1);
  EXPECT_EQ(out.str(),
            "3d17b2d7d64a0e011b6717a52d9a16bd2c3f05b743fa8adf52a7d75dafab6d89  " + good + "\n");
  EXPECT_NE(err.str().find(missing), std::string::npos);

  options.files = {good};
  std::ostringstream out2, err2;
  EXPECT_EQ(runHash(options, out2, err2), 0);
  EXPECT_TRUE(err2.str().empty());
}

TEST_F(HashCommandTest, BinaryEndToEnd) {
  const std::string bin = std::string(HFM_BINARY_DIR) + "/src/bin/hf-mount";
  ASSERT_TRUE(fs::exists(bin)) << bin;
  const auto data = splitmix(0, 1000000);
  const auto file = write("s.bin", data);
  const std::string hash = "3d17b2d7d64a0e011b6717a52d9a16bd2c3f05b743fa8adf52a7d75dafab6d89";

  auto run = shell(bin + " hash " + file);
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, hash + "  " + file + "\n");

  run = shell(bin + " hash < " + file);  // no file: standard input
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(run.out, hash + "  -\n");
  run = shell("cat " + file + " | " + bin + " hash --json -");
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(run.out, "{\"path\": \"-\", \"size\": 1000000, \"file_hash\": \"" + hash + "\"}\n");

  run = shell(bin + " hash --json --chunks " + file);
  EXPECT_EQ(run.status, 0);
  EXPECT_NE(
      run.out.find("{\"offset\": 991092, \"length\": 8908, \"hash\": "
                   "\"03e5b5f5a088269ec4b329f1e04debfac4cb54b9c0facf038f7e8e0f054be7e2\"}]}\n"),
      std::string::npos)
      << run.out;

  run = shell(bin + " hash " + (dir_ / "missing").string() + " " + file);
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, hash + "  " + file + "\n");
  EXPECT_NE(run.err.find("missing"), std::string::npos);

  EXPECT_EQ(shell(bin + " --version").status, 0);
  EXPECT_EQ(shell(bin + " hash --help").status, 0);
  EXPECT_EQ(shell(bin + " hash --no-such-flag " + file).status, 2);
  EXPECT_EQ(shell(bin).status, 2);  // a subcommand is required
  EXPECT_EQ(shell(bin + " frobnicate").status, 2);
}

TEST_F(HashCommandTest, BinaryMemoryStaysBoundedOnALargeStream) {
  const std::string bin = std::string(HFM_BINARY_DIR) + "/src/bin/hf-mount";
  if (!fs::exists("/usr/bin/time")) GTEST_SKIP() << "needs /usr/bin/time to read the peak RSS";
  // 512 MiB of zeros: 4096 maximum-size chunks, all with the same hash.
  constexpr size_t kChunks = 4096;
  const std::vector<uint8_t> chunk(xet::kMaxChunkSize, 0);
  xet::MerkleBuilder merkle;
  const xet::ChunkInfo leaf{xet::chunkHash(chunk), chunk.size()};
  for (size_t i = 0; i < kChunks; ++i) merkle.add(leaf);

  const std::string rss = (dir_ / "rss").string();
  auto run = shell("head -c " + std::to_string(kChunks * chunk.size()) + " /dev/zero | " +
                   "/usr/bin/time -o " + rss + " -f %M " + bin + " hash --json");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "{\"path\": \"-\", \"size\": 536870912, \"file_hash\": \"" +
                         merkle.fileHash().hex() + "\"}\n");
  const long peak_kib = std::stol(slurp(rss));
  EXPECT_GT(peak_kib, 0);
  EXPECT_LT(peak_kib, 64 * 1024) << "peak RSS " << peak_kib << " KiB for a 512 MiB stream";
}

}  // namespace
}  // namespace hfm::cli
