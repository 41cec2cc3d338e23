#include "hfm/hub/ids.h"

#include <cctype>
#include <vector>

namespace hfm::hub {
namespace {

constexpr std::size_t kMaxNameLength = 96;

std::vector<std::string_view> splitSlash(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
}

std::string joinFrom(const std::vector<std::string_view>& parts, std::size_t first) {
  std::string out;
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i > first) out += '/';
    out += parts[i];
  }
  return out;
}

bool consumePrefix(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

}  // namespace

std::string_view repoTypeName(RepoType type) {
  switch (type) {
    case RepoType::kDataset:
      return "dataset";
    case RepoType::kSpace:
      return "space";
    case RepoType::kModel:
      break;
  }
  return "model";
}

std::string_view repoTypeApiSegment(RepoType type) {
  switch (type) {
    case RepoType::kDataset:
      return "datasets";
    case RepoType::kSpace:
      return "spaces";
    case RepoType::kModel:
      break;
  }
  return "models";
}

std::string_view repoTypeUrlPrefix(RepoType type) {
  switch (type) {
    case RepoType::kDataset:
      return "datasets/";
    case RepoType::kSpace:
      return "spaces/";
    case RepoType::kModel:
      break;
  }
  return "";
}

std::string SourceId::display() const {
  std::string out = isBucket() ? "bucket " : std::string(repoTypeName(repo_type)) + " ";
  out += id;
  if (!isBucket()) out += "@" + revision;
  if (!subdir.empty()) out += "/" + subdir;
  return out;
}

Status validateName(std::string_view name, std::string_view what) {
  // Appended rather than "'" + std::string(name) + "'": GCC 12 at -O3 reports a false
  // -Wrestrict on that form (GCC bug 105651), which breaks Release builds with -Werror.
  std::string quoted(1, '\'');
  quoted.append(name);
  quoted.push_back('\'');
  if (name.empty()) return Error::invalid(std::string(what) + " is empty");
  if (name.size() > kMaxNameLength) {
    return Error::invalid(std::string(what) + " " + quoted + " is longer than 96 characters");
  }
  for (const char c : name) {
    const bool allowed =
        std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    if (!allowed) {
      return Error::invalid(std::string(what) + " " + quoted +
                            " may only contain letters, digits, '_', '.' and '-'");
    }
  }
  if (name.front() == '-' || name.front() == '.' || name.back() == '-' || name.back() == '.') {
    return Error::invalid(std::string(what) + " " + quoted +
                          " must not start or end with '-' or '.'");
  }
  if (name.find("--") != std::string_view::npos || name.find("..") != std::string_view::npos) {
    return Error::invalid(std::string(what) + " " + quoted + " must not contain '--' or '..'");
  }
  return okStatus();
}

Status validateRevision(std::string_view revision) {
  if (revision.empty()) return Error::invalid("revision is empty");
  for (const char c : revision) {
    const bool allowed =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' || c == '-';
    if (!allowed) {
      return Error::invalid("revision '" + std::string(revision) +
                            "' may only contain letters, digits, '.', '_', '/' and '-'");
    }
  }
  if (revision.find("..") != std::string_view::npos) {
    return Error::invalid("revision '" + std::string(revision) + "' must not contain '..'");
  }
  return okStatus();
}

Result<std::string> normalizeSubdir(std::string_view subdir) {
  while (!subdir.empty() && subdir.back() == '/') subdir.remove_suffix(1);
  if (subdir.empty()) return std::string();
  if (subdir.front() == '/')
    return Error::invalid("subfolder '" + std::string(subdir) + "' starts with '/'");
  for (const auto segment : splitSlash(subdir)) {
    if (segment.empty())
      return Error::invalid("subfolder '" + std::string(subdir) + "' contains '//'");
    if (segment == "." || segment == "..") {
      return Error::invalid("subfolder '" + std::string(subdir) +
                            "' contains a '.' or '..' segment");
    }
    if (segment.find('\\') != std::string_view::npos ||
        segment.find('\0') != std::string_view::npos) {
      return Error::invalid("subfolder '" + std::string(subdir) + "' contains a backslash or NUL");
    }
  }
  return std::string(subdir);
}

Result<SourceId> parseBucketId(std::string_view text) {
  const std::string original(text);
  consumePrefix(text, "hf://");
  consumePrefix(text, "buckets/");
  if (text.find('@') != std::string_view::npos) {
    return Error::invalid("bucket '" + original +
                          "': buckets have no revision ('@' is not allowed)");
  }
  const auto parts = splitSlash(text);
  if (parts.size() < 2 || parts[1].empty()) {
    return Error::invalid("bucket '" + original + "' must look like NAMESPACE/NAME[/SUBFOLDER]");
  }
  if (auto s = validateName(parts[0], "bucket namespace"); !s)
    return s.error().withContext("bucket '" + original + "'");
  if (auto s = validateName(parts[1], "bucket name"); !s)
    return s.error().withContext("bucket '" + original + "'");
  auto subdir = normalizeSubdir(joinFrom(parts, 2));
  if (!subdir) return subdir.error().withContext("bucket '" + original + "'");
  SourceId source;
  source.kind = SourceId::Kind::kBucket;
  source.id = std::string(parts[0]) + "/" + std::string(parts[1]);
  source.subdir = std::move(subdir).value();
  return source;
}

Result<SourceId> parseRepoId(std::string_view text, std::string_view revision) {
  const std::string original(text);
  const std::string context = "repo '" + original + "'";
  consumePrefix(text, "hf://");
  SourceId source;
  source.kind = SourceId::Kind::kRepo;
  if (consumePrefix(text, "datasets/")) {
    source.repo_type = RepoType::kDataset;
  } else if (consumePrefix(text, "spaces/")) {
    source.repo_type = RepoType::kSpace;
  } else {
    if (text.starts_with("buckets/")) {
      return Error::invalid(context + " is a bucket path; use 'bucket " +
                            std::string(text.substr(8)) + "'");
    }
    consumePrefix(text, "models/");
    source.repo_type = RepoType::kModel;
  }
  if (text.find('@') != std::string_view::npos) {
    return Error::invalid(context + ": give the revision with --revision, not '@'");
  }
  const auto parts = splitSlash(text);
  if (parts.size() == 1) {
    // Legacy ids without a namespace ("gpt2"); the Hub resolves them to their canonical id.
    if (auto s = validateName(parts[0], "repo name"); !s) return s.error().withContext(context);
    source.id = std::string(parts[0]);
  } else {
    if (parts[1].empty())
      return Error::invalid(context + " must look like NAMESPACE/NAME[/SUBFOLDER]");
    if (auto s = validateName(parts[0], "repo namespace"); !s)
      return s.error().withContext(context);
    if (auto s = validateName(parts[1], "repo name"); !s) return s.error().withContext(context);
    source.id = std::string(parts[0]) + "/" + std::string(parts[1]);
    auto subdir = normalizeSubdir(joinFrom(parts, 2));
    if (!subdir) return subdir.error().withContext(context);
    source.subdir = std::move(subdir).value();
  }
  if (auto s = validateRevision(revision); !s) return s.error().withContext(context);
  source.revision = std::string(revision);
  return source;
}

}  // namespace hfm::hub
