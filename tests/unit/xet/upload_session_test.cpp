#include "hfm/xet/upload_session.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "hfm/xet/chunker.h"
#include "hfm/xet/hashing.h"

namespace hfm::xet {
namespace {

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) out[i + k] = static_cast<uint8_t>(v >> (8 * k));
  }
  return out;
}

// An in-memory CAS that validates like the real one: xorb hashes recomputed from the data,
// shard terms checked against stored xorbs (ranges, sizes, verification hashes).
class FakeCas : public CasWriter {
 public:
  Result<bool> uploadXorb(const MerkleHash& hash, std::span<const uint8_t> body) override {
    std::lock_guard lock(mu_);
    if (fail_xorbs_) return Error::io("injected xorb failure");
    auto parsed = verifyXorb(body, hash);
    if (!parsed) return parsed.error();
    uploaded_bytes_ += body.size();
    return xorbs_.emplace(hash, std::move(parsed).value()).second;
  }

  Status uploadShard(std::span<const uint8_t> bytes) override {
    std::lock_guard lock(mu_);
    if (fail_shards_) return Error::io("injected shard failure");
    HFM_ASSIGN_OR_RETURN(Shard shard, parseShard(bytes));
    for (const auto& file : shard.files) {
      if (file.verification.size() != file.terms.size()) return Error::invalid("verification");
      std::vector<uint8_t> data;
      for (size_t t = 0; t < file.terms.size(); ++t) {
        const auto& term = file.terms[t];
        auto it = xorbs_.find(term.xorb_hash);
        if (it == xorbs_.end()) return Error::invalid("shard references a missing xorb");
        const auto& x = it->second;
        if (term.chunk_end > x.chunks.size() || term.chunk_start >= term.chunk_end) {
          return Error::invalid("bad chunk range");
        }
        std::vector<MerkleHash> hashes;
        const uint64_t begin =
            term.chunk_start == 0 ? 0 : x.unpacked_chunk_offsets[term.chunk_start - 1];
        const uint64_t end = x.unpacked_chunk_offsets[term.chunk_end - 1];
        for (uint32_t c = term.chunk_start; c < term.chunk_end; ++c)
          hashes.push_back(x.chunks[c].hash);
        if (verificationHash(hashes) != file.verification[t])
          return Error::invalid("verification hash");
        if (end - begin != term.unpacked_bytes) return Error::invalid("unpacked bytes");
        data.insert(data.end(), x.data.begin() + static_cast<ptrdiff_t>(begin),
                    x.data.begin() + static_cast<ptrdiff_t>(end));
      }
      files_[file.file_hash] = std::move(data);
    }
    ++shards_;
    return okStatus();
  }

  Result<std::optional<Shard>> queryDedup(const MerkleHash& chunk_hash) override {
    std::lock_guard lock(mu_);
    ++queries_;
    if (!answer_dedup_) return std::optional<Shard>();
    for (const auto& [hash, x] : xorbs_) {
      for (const auto& c : x.chunks) {
        if (c.hash != chunk_hash) continue;
        Shard shard;
        ShardXorb record{hash, 0, {}, 0, 0};
        uint32_t start = 0;
        for (const auto& cc : x.chunks) {
          record.chunks.push_back({cc.hash, start, static_cast<uint32_t>(cc.size), 0});
          start += static_cast<uint32_t>(cc.size);
        }
        record.num_bytes_in_xorb = start;
        shard.xorbs.push_back(record);
        StoredShardOptions options;
        options.hmac_key = MerkleHash::fromHex(std::string(63, '1') + "7").value();
        HFM_ASSIGN_OR_RETURN(auto bytes, serializeStoredShard(shard, options));
        HFM_ASSIGN_OR_RETURN(Shard parsed, parseShard(bytes));
        return std::optional<Shard>(std::move(parsed));
      }
    }
    return std::optional<Shard>();
  }

  std::optional<std::vector<uint8_t>> file(const MerkleHash& h) {
    std::lock_guard lock(mu_);
    auto it = files_.find(h);
    if (it == files_.end()) return std::nullopt;
    return it->second;
  }
  uint64_t uploadedBytes() {
    std::lock_guard lock(mu_);
    return uploaded_bytes_;
  }

  std::mutex mu_;
  std::map<MerkleHash, ParsedXorb> xorbs_;
  std::map<MerkleHash, std::vector<uint8_t>> files_;
  uint64_t uploaded_bytes_ = 0;
  int shards_ = 0;
  int queries_ = 0;
  bool fail_xorbs_ = false;
  bool fail_shards_ = false;
  bool answer_dedup_ = true;
};

UploadOptions fastOptions() {
  UploadOptions o;
  o.compression = CompressionScheme::kNone;
  return o;
}

Result<UploadedFile> writeFile(UploadSession& session, std::span<const uint8_t> data,
                               size_t piece = 100'003) {
  auto writer = session.beginFile();
  for (size_t at = 0; at < data.size(); at += piece) {
    HFM_TRY(writer->write(data.subspan(at, std::min(piece, data.size() - at))));
  }
  return writer->finish();
}

TEST(UploadSessionTest, RoundTripsFilesOfManySizes) {
  FakeCas cas;
  UploadSession session(cas, fastOptions());
  std::vector<std::pair<UploadedFile, std::vector<uint8_t>>> written;
  for (size_t size : {size_t{0}, size_t{1}, size_t{8191}, size_t{100'000}, size_t{3'000'017}}) {
    auto data = randomBytes(size, static_cast<uint32_t>(size));
    auto file = writeFile(session, data, 4099);
    ASSERT_TRUE(file.ok()) << file.error().message();
    EXPECT_EQ(file->size, size);
    // The streamed hash equals the one-shot chunk-and-hash of the same bytes.
    EXPECT_EQ(file->file_hash, fileHash(chunkAndHash(data)));
    written.emplace_back(*file, std::move(data));
  }
  ASSERT_TRUE(session.commit().ok());
  for (const auto& [file, data] : written) {
    auto stored = cas.file(file.file_hash);
    ASSERT_TRUE(stored.has_value()) << file.size;
    EXPECT_EQ(*stored, data);
  }
  EXPECT_TRUE(written.front().first.file_hash.isZero());  // empty file
  EXPECT_EQ(written.front().first.sha256Hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(UploadSessionTest, LargeFileSpansSeveralXorbs) {
  FakeCas cas;
  UploadSession session(cas, fastOptions());
  auto data = randomBytes(70u << 20, 7);
  auto file = writeFile(session, data, 1 << 20);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(session.commit().ok());
  EXPECT_EQ(session.stats().xorbs_uploaded, 2U);
  EXPECT_EQ(cas.file(file->file_hash), data);
}

TEST(UploadSessionTest, IdenticalAndSimilarFilesUploadOnlyNewChunks) {
  FakeCas cas;
  UploadSession session(cas, fastOptions());
  auto a = randomBytes(20u << 20, 11);
  ASSERT_TRUE(writeFile(session, a).ok());
  ASSERT_TRUE(session.commit().ok());
  const uint64_t first = cas.uploadedBytes();

  ASSERT_TRUE(writeFile(session, a).ok());  // identical copy: nothing new
  auto b = a;
  for (size_t i = 5'000'000; i < 5'200'000; ++i) b[i] ^= 0x5a;  // 1% of the bytes, one region
  auto fb = writeFile(session, b);
  ASSERT_TRUE(fb.ok());
  ASSERT_TRUE(session.commit().ok());
  const uint64_t growth = cas.uploadedBytes() - first;
  EXPECT_LT(growth, b.size() / 20) << "second upload grew the CAS by " << growth;
  EXPECT_EQ(cas.file(fb->file_hash), b);
}

TEST(UploadSessionTest, GlobalDedupAcrossSessions) {
  FakeCas cas;
  auto a = randomBytes(8u << 20, 21);
  {
    UploadSession first(cas, fastOptions());
    ASSERT_TRUE(writeFile(first, a).ok());
    ASSERT_TRUE(first.commit().ok());
  }
  const uint64_t before = cas.uploadedBytes();
  UploadSession second(cas, fastOptions());
  auto file = writeFile(second, a);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(second.commit().ok());
  EXPECT_EQ(cas.uploadedBytes(), before);  // the first chunk's dedup answer covers the xorb
  EXPECT_GE(second.stats().dedup_query_hits, 1U);
  EXPECT_EQ(second.stats().new_chunks, 0U);
  EXPECT_EQ(cas.file(file->file_hash), a);
}

TEST(UploadSessionTest, SharedIndexDedupsLaterSessionsWithoutQueries) {
  FakeCas cas;
  auto index = std::make_shared<DedupIndex>();
  auto a = randomBytes(12u << 20, 23);
  MerkleHash first_hash;
  {
    UploadSession first(cas, fastOptions(), index);
    auto file = writeFile(first, a);
    ASSERT_TRUE(file.ok());
    first_hash = file->file_hash;
    ASSERT_TRUE(first.commit().ok());
    EXPECT_GE(first.stats().xorbs_uploaded, 1U);
  }
  EXPECT_GE(index->size(), a.size() / (128u << 10));  // every chunk of the committed xorb
  const uint64_t before = cas.uploadedBytes();
  const int queries_before = cas.queries_;

  // The unchanged rewrite: all chunks from the index, no query, no xorb.
  {
    UploadSession again(cas, fastOptions(), index);
    auto file = writeFile(again, a, 65'537);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE(again.commit().ok());
    EXPECT_EQ(file->file_hash, first_hash);
    EXPECT_EQ(again.stats().new_chunks, 0U);
    EXPECT_EQ(again.stats().dedup_queries, 0U);
    EXPECT_EQ(again.stats().xorbs_uploaded, 0U);
    EXPECT_EQ(cas.uploadedBytes(), before);
    EXPECT_EQ(cas.queries_, queries_before);
    EXPECT_EQ(cas.file(file->file_hash), a);
  }

  // 1 % changed in scattered places: only the edited chunks are new.
  auto b = a;
  for (size_t e = 0; e < 3; ++e) {
    for (size_t i = 0; i < 40'000; ++i) b[1'000'000 + e * 4'000'000 + i] ^= 0xa5;
  }
  cas.answer_dedup_ = false;  // the index alone must do it
  UploadSession third(cas, fastOptions(), index);
  auto fb = writeFile(third, b);
  ASSERT_TRUE(fb.ok());
  ASSERT_TRUE(third.commit().ok());
  const uint64_t growth = cas.uploadedBytes() - before;
  EXPECT_LT(growth, b.size() / 20) << "the 1 % edit uploaded " << growth << " bytes";
  EXPECT_GE(growth, 3u * 40'000u);
  EXPECT_EQ(cas.file(fb->file_hash), b);
}

TEST(UploadSessionTest, SharedIndexLearnsOnlyCommittedXorbs) {
  FakeCas cas;
  auto index = std::make_shared<DedupIndex>();
  auto a = randomBytes(3u << 20, 24);
  cas.fail_shards_ = true;
  {
    UploadSession session(cas, fastOptions(), index);
    ASSERT_TRUE(writeFile(session, a).ok());
    EXPECT_FALSE(session.commit().ok());
  }
  EXPECT_EQ(index->size(), 0U);  // xorbs stored but never registered: not referenced
}

TEST(UploadSessionTest, ConcurrentWritersAllLand) {
  FakeCas cas;
  UploadSession session(cas, fastOptions());
  std::vector<std::thread> threads;
  std::vector<std::vector<uint8_t>> data(4);
  std::vector<Result<UploadedFile>> results(4, Error::io("not run"));
  for (size_t t = 0; t < 4; ++t) {
    data[t] = randomBytes(2'000'000 + t * 12'345, static_cast<uint32_t>(100 + t));
    threads.emplace_back([&, t] { results[t] = writeFile(session, data[t], 65'537); });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(session.commit().ok());
  for (size_t t = 0; t < 4; ++t) {
    ASSERT_TRUE(results[t].ok());
    EXPECT_EQ(cas.file(results[t]->file_hash), data[t]);
  }
}

TEST(UploadSessionTest, FailedShardUploadKeepsFilesForTheNextCommit) {
  FakeCas cas;
  UploadSession session(cas, fastOptions());
  auto data = randomBytes(300'000, 5);
  auto file = writeFile(session, data);
  ASSERT_TRUE(file.ok());
  cas.fail_shards_ = true;
  EXPECT_FALSE(session.commit().ok());
  EXPECT_FALSE(cas.file(file->file_hash).has_value());
  cas.fail_shards_ = false;
  ASSERT_TRUE(session.commit().ok());
  EXPECT_EQ(cas.file(file->file_hash), data);
}

TEST(UploadSessionTest, FailedXorbUploadIsReportedNotSwallowed) {
  FakeCas cas;
  cas.fail_xorbs_ = true;
  UploadSession session(cas, fastOptions());
  ASSERT_TRUE(writeFile(session, randomBytes(100'000, 9)).ok());
  auto st = session.commit();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("injected xorb failure"), std::string::npos);
  EXPECT_FALSE(writeFile(session, randomBytes(10, 1)).ok());  // sticky
}

TEST(UploadSessionTest, ShardFramesAreInterpreted) {
  EXPECT_TRUE(parseShardUploadFrames("{\"type\":\"validating\",\"verified\":1,\"total\":2}\n"
                                     "{\"type\":\"committing\",\"stage\":\"uploading\"}\n"
                                     "{\"type\":\"result\"}\n")
                  .ok());
  auto err = parseShardUploadFrames("{\"type\":\"error\",\"message\":\"bad verification\"}\n");
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.error().message().find("bad verification"), std::string::npos);
  EXPECT_EQ(parseShardUploadFrames("{\"type\":\"error\",\"retryable\":true}").error().code(),
            EAGAIN);
  EXPECT_FALSE(parseShardUploadFrames("{\"type\":\"validating\"}\n").ok());  // no result
  EXPECT_FALSE(parseShardUploadFrames("not json\n").ok());
  EXPECT_TRUE(parseShardUploadFrames("{\"type\":\"future-frame\"}\n{\"type\":\"result\"}").ok());
}

}  // namespace
}  // namespace hfm::xet
