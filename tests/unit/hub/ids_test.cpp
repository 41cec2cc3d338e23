// Source id parsing: the forms the CLI accepts and the mistakes it must refuse clearly.
#include "hfm/hub/ids.h"

#include <gtest/gtest.h>

#include <string>

namespace hfm::hub {
namespace {

TEST(IdsTest, BucketForms) {
  auto plain = parseBucketId("alice/photos");
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_TRUE(plain->isBucket());
  EXPECT_EQ(plain->id, "alice/photos");
  EXPECT_EQ(plain->subdir, "");

  auto uri = parseBucketId("hf://buckets/org-1/my_bucket.v2/a/b/");
  ASSERT_TRUE(uri.ok()) << uri.error().message();
  EXPECT_EQ(uri->id, "org-1/my_bucket.v2");
  EXPECT_EQ(uri->subdir, "a/b");
  EXPECT_EQ(uri->display(), "bucket org-1/my_bucket.v2/a/b");

  auto prefixed = parseBucketId("buckets/ns/b/sub");
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ(prefixed->id, "ns/b");
  EXPECT_EQ(prefixed->subdir, "sub");
}

TEST(IdsTest, BadBucketIds) {
  const char* bad[] = {"",         "alice",    "alice/",     "/alice/b",   "al ice/b",
                       "alice/-b", "alice/b.", "alice/a..b", "alice/a--b", "alice/b@main",
                       "a/b//c",   "a/b/../c", "a/b/./c",    "a/b/c\\d"};
  for (const char* text : bad) {
    auto parsed = parseBucketId(text);
    EXPECT_FALSE(parsed.ok()) << "accepted '" << text << "'";
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.error().code(), EINVAL);
      EXPECT_NE(parsed.error().message().find("bucket"), std::string::npos)
          << parsed.error().message();
    }
  }
  auto long_name = parseBucketId("ns/" + std::string(97, 'a'));
  ASSERT_FALSE(long_name.ok());
  EXPECT_NE(long_name.error().message().find("96"), std::string::npos);
  EXPECT_TRUE(parseBucketId("ns/" + std::string(96, 'a')).ok());
  EXPECT_NE(parseBucketId("alice/b@main").error().message().find("revision"), std::string::npos);
}

TEST(IdsTest, RepoForms) {
  auto model = parseRepoId("openai-community/gpt2");
  ASSERT_TRUE(model.ok()) << model.error().message();
  EXPECT_FALSE(model->isBucket());
  EXPECT_EQ(model->repo_type, RepoType::kModel);
  EXPECT_EQ(model->revision, "main");
  EXPECT_EQ(model->display(), "model openai-community/gpt2@main");

  auto dataset = parseRepoId("datasets/ns/data/train/shards/", "refs/pr/1");
  ASSERT_TRUE(dataset.ok()) << dataset.error().message();
  EXPECT_EQ(dataset->repo_type, RepoType::kDataset);
  EXPECT_EQ(dataset->id, "ns/data");
  EXPECT_EQ(dataset->subdir, "train/shards");
  EXPECT_EQ(dataset->revision, "refs/pr/1");

  auto space = parseRepoId("hf://spaces/ns/app");
  ASSERT_TRUE(space.ok());
  EXPECT_EQ(space->repo_type, RepoType::kSpace);

  auto models = parseRepoId("models/ns/m", "0123456789abcdef0123456789abcdef01234567");
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->repo_type, RepoType::kModel);
  EXPECT_EQ(models->id, "ns/m");

  auto legacy = parseRepoId("gpt2");
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->id, "gpt2");
  EXPECT_EQ(legacy->subdir, "");
}

TEST(IdsTest, BadRepoIds) {
  EXPECT_FALSE(parseRepoId("").ok());
  EXPECT_FALSE(parseRepoId("ns/").ok());
  EXPECT_FALSE(parseRepoId("datasets/").ok());
  EXPECT_FALSE(parseRepoId("ns/na%me").ok());
  EXPECT_FALSE(parseRepoId("ns/name/../etc").ok());
  auto at = parseRepoId("ns/name@v1");
  ASSERT_FALSE(at.ok());
  EXPECT_NE(at.error().message().find("--revision"), std::string::npos);
  auto bucket = parseRepoId("buckets/ns/b");
  ASSERT_FALSE(bucket.ok());
  EXPECT_NE(bucket.error().message().find("bucket ns/b"), std::string::npos);
}

TEST(IdsTest, Revisions) {
  EXPECT_TRUE(validateRevision("main").ok());
  EXPECT_TRUE(validateRevision("v1.0-rc_2").ok());
  EXPECT_TRUE(validateRevision("refs/convert/parquet").ok());
  EXPECT_FALSE(validateRevision("").ok());
  EXPECT_FALSE(validateRevision("a..b").ok());
  EXPECT_FALSE(validateRevision("a b").ok());
  EXPECT_FALSE(validateRevision("main?x").ok());
  auto bad = parseRepoId("ns/m", "../../etc");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_NE(bad.error().message().find("revision"), std::string::npos);
}

TEST(IdsTest, TypeNames) {
  EXPECT_EQ(repoTypeApiSegment(RepoType::kDataset), "datasets");
  EXPECT_EQ(repoTypeUrlPrefix(RepoType::kModel), "");
  EXPECT_EQ(repoTypeUrlPrefix(RepoType::kSpace), "spaces/");
  EXPECT_EQ(repoTypeName(RepoType::kModel), "model");
}

}  // namespace
}  // namespace hfm::hub
