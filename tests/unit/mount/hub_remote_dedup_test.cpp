// Dedup from reconstructions, against a real hf-local-hub with global dedup turned off: a file
// another client uploaded is edited by a second client (its own HubRemote, cache and dedup
// index), which read it whole (as staging does), changed 1 % and uploaded it again. With
// learnBase() the hub stores about the changed bytes only; without it, all of them again.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "hfm/mount/mount_context.h"
#include "local_hub_process.h"
#include "temp_dir.h"

namespace hfm::mount {
namespace {
namespace fs = std::filesystem;
using hfm::testing::LocalHubProcess;
using hfm::testing::TempDir;

constexpr size_t kFileSize = 8u << 20;
constexpr const char* kBucket = "tester/dedup";

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t b = 0; b < 8 && i + b < n; ++b) out[i + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  return out;
}

// One client of the bucket: a mount's context (HubRemote, fetcher, cache, dedup index).
std::unique_ptr<MountContext> openClient(const LocalHubProcess& hub, const fs::path& cache) {
  app::MountOptions options;
  options.hub_endpoint = hub.url();
  options.hf_token = LocalHubProcess::kToken;
  options.cache_dir = cache.string();
  options.advanced_writes = true;
  app::MountSource source{app::SourceKind::kBucket, kBucket, "/unused", "main"};
  auto ctx = MountContext::open(options, source, std::nullopt);
  EXPECT_TRUE(ctx.ok()) << (ctx.ok() ? "" : ctx.error().message());
  return ctx.ok() ? std::move(ctx).value() : nullptr;
}

Status uploadAs(vfs::Remote& remote, const std::string& path, std::span<const uint8_t> data) {
  HFM_ASSIGN_OR_RETURN(auto upload, remote.beginUpload());
  for (size_t at = 0; at < data.size(); at += 1 << 20) {
    HFM_TRY(upload->write(data.subspan(at, std::min<size_t>(1 << 20, data.size() - at))));
  }
  HFM_ASSIGN_OR_RETURN(auto content, upload->finish());
  const std::vector<vfs::RemoteAdd> adds = {{path, content.xet_hash, 1'700'000'000'000}};
  return remote.commitFiles(adds, {});
}

Result<std::vector<uint8_t>> readWhole(vfs::Remote& remote, const vfs::RemoteEntry& entry) {
  std::vector<uint8_t> out(entry.size);
  for (uint64_t at = 0; at < entry.size;) {
    HFM_ASSIGN_OR_RETURN(const size_t n, remote.read(entry, at, std::span(out).subspan(at)));
    if (n == 0) return Error::io("short read");
    at += n;
  }
  return out;
}

class HubRemoteDedupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string auth =
        std::string("-H 'Authorization: Bearer ") + LocalHubProcess::kToken + "'";
    ASSERT_EQ(std::system(("curl -sf -o /dev/null -X POST " + auth + " " + hub_.url() +
                           "/api/buckets/" + kBucket)
                              .c_str()),
              0);
    writer_ = openClient(hub_, dir_.path() / "writer");
    ASSERT_NE(writer_, nullptr);
    ASSERT_TRUE(uploadAs(*writer_->remote, "ckpt.bin", original_).ok());
  }

  // Another client stages ckpt.bin (reads it whole), changes 1 % in the middle and uploads it
  // under `path`, learning the base first if `learn`. Returns the hub's growth in bytes.
  uint64_t editAs(const std::string& cache, const std::string& path, bool learn,
                  std::vector<uint8_t>& edited) {
    auto editor = openClient(hub_, dir_.path() / cache);
    EXPECT_NE(editor, nullptr);
    if (editor == nullptr) return 0;
    auto base = editor->remote->stat("ckpt.bin");
    EXPECT_TRUE(base.ok());
    if (!base.ok()) return 0;
    auto staged = readWhole(*editor->remote, *base);
    EXPECT_TRUE(staged.ok() && *staged == original_);
    edited = original_;
    const auto patch = randomBytes(kFileSize / 100, 77);
    std::copy(patch.begin(), patch.end(), edited.begin() + kFileSize / 2);

    const uint64_t before = hub_.storedXorbBytes();
    if (learn) editor->remote->learnBase(*base);
    const Status uploaded = uploadAs(*editor->remote, path, edited);
    EXPECT_TRUE(uploaded.ok()) << (uploaded.ok() ? "" : uploaded.error().message());
    const uint64_t growth = hub_.storedXorbBytes() - before;

    // Whoever reads it back gets the edited bytes.
    auto entry = writer_->remote->stat(path);
    EXPECT_TRUE(entry.ok());
    if (entry.ok()) {
      auto back = readWhole(*writer_->remote, *entry);
      EXPECT_TRUE(back.ok() && *back == edited) << path << " does not read back as written";
    }
    return growth;
  }

  LocalHubProcess hub_{{"--no-global-dedup"}};
  TempDir dir_;
  const std::vector<uint8_t> original_ = randomBytes(kFileSize, 5);
  std::unique_ptr<MountContext> writer_;
};

TEST_F(HubRemoteDedupTest, AnEditedRemoteFileUploadsOnlyItsChangedChunks) {
  std::vector<uint8_t> edited;
  const uint64_t growth = editAs("editor", "ckpt.bin", true, edited);
  std::printf("edit of 1 %% of %zu bytes stored %llu new bytes\n", kFileSize,
              static_cast<unsigned long long>(growth));
  EXPECT_LT(growth, kFileSize / 20);
  EXPECT_GE(growth, kFileSize / 100);  // the changed bytes themselves are new
}

TEST_F(HubRemoteDedupTest, WithoutLearningTheBaseEveryChunkIsUploadedAgain) {
  // The control: the hub really answers no global dedup, so only learnBase() can avoid this.
  std::vector<uint8_t> edited;
  const uint64_t growth = editAs("editor", "copy.bin", false, edited);
  std::printf("without learning: %llu new bytes\n", static_cast<unsigned long long>(growth));
  EXPECT_GT(growth, kFileSize * 9 / 10);
}

TEST_F(HubRemoteDedupTest, ABaseIsLearnedOnceAndTheMountsOwnUploadsNeedNoLearning) {
  auto editor = openClient(hub_, dir_.path() / "editor");
  ASSERT_NE(editor, nullptr);
  auto base = editor->remote->stat("ckpt.bin");
  ASSERT_TRUE(base.ok());
  editor->remote->learnBase(*base);  // nothing cached yet: walks the file through the CAS
  const auto walked = editor->fetcher->stats();
  EXPECT_GT(walked.plan_requests, 0u);
  editor->remote->learnBase(*base);
  EXPECT_EQ(editor->fetcher->stats().plan_requests, walked.plan_requests);
  EXPECT_EQ(editor->fetcher->stats().fetches, walked.fetches);

  // The writer uploaded ckpt.bin itself: its chunks are indexed already.
  auto own = writer_->remote->stat("ckpt.bin");
  ASSERT_TRUE(own.ok());
  const auto before = writer_->fetcher->stats();
  writer_->remote->learnBase(*own);
  EXPECT_EQ(writer_->fetcher->stats().plan_requests, before.plan_requests);
}

TEST_F(HubRemoteDedupTest, ABaseThatCannotBeReadIsSkippedAndTheUploadWorks) {
  auto editor = openClient(hub_, dir_.path() / "editor");
  ASSERT_NE(editor, nullptr);
  vfs::RemoteEntry ghost;
  ghost.path = "ghost.bin";
  ghost.size = 1000;
  ghost.xet_hash = std::string(64, 'a');
  editor->remote->learnBase(ghost);
  const auto small = randomBytes(4096, 9);
  EXPECT_TRUE(uploadAs(*editor->remote, "small.bin", small).ok());
}

}  // namespace
}  // namespace hfm::mount
