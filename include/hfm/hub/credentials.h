// Hub credentials: which token (if any) each Hub request carries.
//
// Precedence (hf-mount's, extended with huggingface_hub's defaults):
//   1. --token-file PATH: re-read on every use, so a rotated token (CSI driver, secret
//      mounts) takes effect without a remount. Whitespace is trimmed; an empty or unreadable
//      file falls through to the next source.
//   2. --hf-token VALUE.
//   3. $HF_TOKEN, then the legacy $HUGGING_FACE_HUB_TOKEN.
//   4. The token file huggingface_hub writes: $HF_TOKEN_PATH, else $HF_HOME/token, where
//      HF_HOME defaults to $XDG_CACHE_HOME/huggingface, then ~/.cache/huggingface. Also
//      re-read on every use.
//   5. Nothing: anonymous (public buckets and repos still work).
// Tokens are secrets: nothing here logs them, and describeSource() names only where the
// token comes from. Thread-safe (token() only reads files).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace hfm::hub {

struct CredentialOptions {
  std::optional<std::string> hf_token;              // --hf-token
  std::optional<std::filesystem::path> token_file;  // --token-file
};

// Environment lookup, injectable for tests. Returns nullopt for unset variables.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
std::optional<std::string> processEnv(const std::string& name);

class Credentials {
 public:
  // Fixes the sources from the options and the environment (read once, here).
  static Credentials resolve(const CredentialOptions& options, const EnvLookup& env = processEnv);
  static Credentials anonymous() { return {}; }

  // The token to send now, or nullopt for anonymous requests.
  std::optional<std::string> token() const;
  // "--token-file /run/secret/token", "HF_TOKEN", "/home/u/.cache/huggingface/token", ...
  // for messages; names the source that token() would use right now, never the token.
  std::string describeSource() const;

 private:
  std::optional<std::filesystem::path> token_file_;  // (1)
  std::optional<std::string> fixed_token_;           // (2) or (3)
  std::string fixed_source_;
  std::optional<std::filesystem::path> default_file_;  // (4)
};

// Reads a token file: trimmed contents, or nullopt when missing, unreadable or blank.
std::optional<std::string> readTokenFile(const std::filesystem::path& path);

}  // namespace hfm::hub
