// What a mount reads from: a Storage Bucket, or a model/dataset/space repo at a revision,
// optionally narrowed to a subfolder. Parsing validates everything up front and says what is
// wrong (EINVAL), so the CLI can refuse bad input before spawning a backend.
//
// Accepted forms:
//   bucket: [hf://][buckets/]NS/NAME[/SUBDIR...]
//   repo:   [hf://][models/|datasets/|spaces/]NS/NAME[/SUBDIR...], or a legacy single-segment
//           NAME ("gpt2"), which has no subfolder form. No prefix means a model.
// Names follow the Hub's rules: 1-96 characters of [A-Za-z0-9_.-], not starting or ending with
// '-' or '.', without "--" or "..". Subfolders: trailing '/' trimmed; empty, "." and ".."
// segments rejected. Revisions: [A-Za-z0-9._/-]+ without "..", e.g. "main", "v1.0",
// "refs/pr/1" or a commit sha.
#pragma once

#include <string>
#include <string_view>

#include "hfm/util/result.h"

namespace hfm::hub {

enum class RepoType { kModel, kDataset, kSpace };

std::string_view repoTypeName(RepoType type);        // "model", "dataset", "space"
std::string_view repoTypeApiSegment(RepoType type);  // "models", "datasets", "spaces"
std::string_view repoTypeUrlPrefix(RepoType type);   // "", "datasets/", "spaces/"

struct SourceId {
  enum class Kind { kBucket, kRepo };

  Kind kind = Kind::kBucket;
  RepoType repo_type = RepoType::kModel;  // repos only
  std::string id;                         // "ns/name" (repos: or a legacy "name")
  std::string revision;                   // repos only
  std::string subdir;                     // "" or "a/b": no leading or trailing '/'

  bool isBucket() const { return kind == Kind::kBucket; }
  // "bucket ns/name/sub", "dataset ns/name@main", ... (for messages and logs).
  std::string display() const;
};

Result<SourceId> parseBucketId(std::string_view text);
Result<SourceId> parseRepoId(std::string_view text, std::string_view revision = "main");

Status validateName(std::string_view name, std::string_view what);
Status validateRevision(std::string_view revision);
// "a/b/" → "a/b"; "" → ""; rejects "a//b", "./a", "a/..".
Result<std::string> normalizeSubdir(std::string_view subdir);

}  // namespace hfm::hub
