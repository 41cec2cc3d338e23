#include "hfm/hub/credentials.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace hfm::hub {
namespace {

std::optional<std::string> nonEmpty(std::optional<std::string> value) {
  if (!value) return std::nullopt;
  std::string& s = *value;
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return std::nullopt;
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

}  // namespace

std::optional<std::string> processEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read-only use
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::optional<std::string> readTokenFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream contents;
  contents << in.rdbuf();
  return nonEmpty(contents.str());
}

Credentials Credentials::resolve(const CredentialOptions& options, const EnvLookup& env) {
  Credentials credentials;
  if (options.token_file && !options.token_file->empty())
    credentials.token_file_ = *options.token_file;
  if (auto token = nonEmpty(options.hf_token)) {
    credentials.fixed_token_ = std::move(token);
    credentials.fixed_source_ = "--hf-token";
  } else if (auto from_env = nonEmpty(env("HF_TOKEN"))) {
    credentials.fixed_token_ = std::move(from_env);
    credentials.fixed_source_ = "HF_TOKEN";
  } else if (auto legacy = nonEmpty(env("HUGGING_FACE_HUB_TOKEN"))) {
    credentials.fixed_token_ = std::move(legacy);
    credentials.fixed_source_ = "HUGGING_FACE_HUB_TOKEN";
  }
  if (auto path = nonEmpty(env("HF_TOKEN_PATH"))) {
    credentials.default_file_ = std::filesystem::path(*path);
  } else if (auto hf_home = nonEmpty(env("HF_HOME"))) {
    credentials.default_file_ = std::filesystem::path(*hf_home) / "token";
  } else if (auto xdg = nonEmpty(env("XDG_CACHE_HOME"))) {
    credentials.default_file_ = std::filesystem::path(*xdg) / "huggingface" / "token";
  } else if (auto home = nonEmpty(env("HOME"))) {
    credentials.default_file_ = std::filesystem::path(*home) / ".cache" / "huggingface" / "token";
  }
  return credentials;
}

std::optional<std::string> Credentials::token() const {
  if (token_file_) {
    if (auto token = readTokenFile(*token_file_)) return token;
  }
  if (fixed_token_) return fixed_token_;
  if (default_file_) return readTokenFile(*default_file_);
  return std::nullopt;
}

std::string Credentials::describeSource() const {
  if (token_file_ && readTokenFile(*token_file_)) return "--token-file " + token_file_->string();
  if (fixed_token_) return fixed_source_;
  if (default_file_ && readTokenFile(*default_file_)) return default_file_->string();
  return "anonymous";
}

}  // namespace hfm::hub
