#include "hfm/app/mount_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hfm/hub/hub_client.h"

namespace hfm::app {
namespace {

struct Parsed {
  MountOptions options;
  MountSource source;
};

Parsed parse(std::vector<std::string> args, Backend backend = Backend::kFuse) {
  Parsed p;
  CLI::App app{"test"};
  addMountCommandLine(app, p.options, p.source, backend);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  app.parse(reversed);
  return p;
}

TEST(MountOptionsTest, DefaultsMatchTheReference) {
  auto p = parse({"bucket", "user/b", "/mnt/data"});
  EXPECT_EQ(p.source.kind, SourceKind::kBucket);
  EXPECT_EQ(p.source.id, "user/b");
  EXPECT_EQ(p.source.mountpoint, "/mnt/data");
  // The command line and the hub client agree on the public Hub as the default endpoint.
  EXPECT_EQ(p.options.hub_endpoint, hub::HubOptions{}.endpoint);
  EXPECT_EQ(p.options.hub_endpoint.rfind("https://", 0), 0U);
  EXPECT_EQ(p.options.cache_dir, "/tmp/hf-mount-cache");
  EXPECT_EQ(p.options.cache_size, 10'000'000'000ULL);
  EXPECT_EQ(p.options.poll_interval_secs, 30U);
  EXPECT_EQ(p.options.metadata_ttl_ms, 10'000U);
  EXPECT_EQ(p.options.max_threads, 16U);
  EXPECT_EQ(p.options.flush_debounce_ms, 2'000U);
  EXPECT_EQ(p.options.flush_max_batch_window_ms, 30'000U);
  EXPECT_EQ(p.options.flush_shutdown_timeout_ms, 45'000U);
  EXPECT_FALSE(p.options.read_only);
  EXPECT_EQ(p.source.label(), "bucket user/b");
  EXPECT_EQ(p.options.cache_mode, CacheMode::kChunk);
  EXPECT_FALSE(p.options.no_fuse_passthrough);
}

TEST(MountOptionsTest, FileCacheModeAndPassthroughSwitch) {
  auto p = parse({"--cache-mode", "file", "--no-fuse-passthrough", "bucket", "user/b", "/m"});
  EXPECT_EQ(p.options.cache_mode, CacheMode::kFile);
  EXPECT_TRUE(p.options.no_fuse_passthrough);
  EXPECT_THROW(parse({"--cache-mode", "files", "bucket", "user/b", "/m"}), CLI::ParseError);
  // A FUSE-only switch: the NFS backend does not know it.
  EXPECT_THROW(parse({"--no-fuse-passthrough", "bucket", "user/b", "/m"}, Backend::kNfs),
               CLI::ParseError);
}

TEST(MountOptionsTest, OptionsBeforeSourceAndRevisionAfter) {
  auto p = parse({"--cache-dir", "/c", "--cache-size", "123", "--read-only", "--poll-interval-secs",
                  "0", "repo", "datasets/org/ds/sub", "/mnt/m", "--revision", "v1.0"});
  EXPECT_EQ(p.source.kind, SourceKind::kRepo);
  EXPECT_EQ(p.source.id, "datasets/org/ds/sub");
  EXPECT_EQ(p.source.revision, "v1.0");
  EXPECT_EQ(p.options.cache_dir, "/c");
  EXPECT_EQ(p.options.cache_size, 123U);
  EXPECT_TRUE(p.options.read_only);
  EXPECT_EQ(p.options.poll_interval_secs, 0U);
  EXPECT_EQ(p.source.label(), "repo datasets/org/ds/sub");
}

TEST(MountOptionsTest, RejectsBadUsage) {
  EXPECT_THROW(parse({"user/b", "/mnt"}), CLI::ParseError);    // no source
  EXPECT_THROW(parse({"bucket", "user/b"}), CLI::ParseError);  // no mountpoint
  EXPECT_THROW(parse({"--cache-size", "lots", "bucket", "a/b", "/m"}), CLI::ParseError);
  EXPECT_THROW(parse({"--no-such-flag", "bucket", "a/b", "/m"}), CLI::ParseError);
  EXPECT_THROW(parse({"--poll-listing-concurrency", "0", "bucket", "a/b", "/m"}), CLI::ParseError);
  // NFS-only flags are unknown to the FUSE backend and vice versa.
  EXPECT_THROW(parse({"--nfs-port", "2049", "bucket", "a/b", "/m"}, Backend::kFuse),
               CLI::ParseError);
  EXPECT_THROW(parse({"--direct-io", "bucket", "a/b", "/m"}, Backend::kNfs), CLI::ParseError);
  EXPECT_NO_THROW(
      parse({"--nfs-port", "2049", "--no-mount", "bucket", "a/b", "/m"}, Backend::kNfs));
}

TEST(MountOptionsTest, FinalizeTrimsEndpointAndChecksCombinations) {
  auto p = parse({"--hub-endpoint", "http://127.0.0.1:8080/", "bucket", "a/b", "/m"});
  EXPECT_EQ(finalizeMountOptions(p.options, p.source), std::nullopt);
  EXPECT_EQ(p.options.hub_endpoint, "http://127.0.0.1:8080");

  auto bad = parse({"--overlay", "--read-only", "bucket", "a/b", "/m"});
  EXPECT_NE(finalizeMountOptions(bad.options, bad.source), std::nullopt);
  auto scheme = parse({"--hub-endpoint", "ftp://x", "bucket", "a/b", "/m"});
  EXPECT_NE(finalizeMountOptions(scheme.options, scheme.source), std::nullopt);
}

TEST(MountOptionsTest, DescriptionNeverContainsTheToken) {
  auto p = parse({"--hf-token", "hf_secretsecret", "bucket", "a/b", "/m"});
  EXPECT_EQ(p.options.hf_token, "hf_secretsecret");
  const std::string text = describeMountOptions(p.options);
  EXPECT_EQ(text.find("hf_secretsecret"), std::string::npos);
  EXPECT_NE(text.find("token=***"), std::string::npos);
}

}  // namespace
}  // namespace hfm::app
