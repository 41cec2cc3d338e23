// Token precedence and rotation through --token-file.
#include "hfm/hub/credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace hfm::hub {
namespace {

namespace fs = std::filesystem;

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hfm-cred-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& contents) {
    fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << contents;
    return path;
  }

  EnvLookup env() const {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }

  fs::path dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(CredentialsTest, AnonymousWhenNothingIsConfigured) {
  env_["HOME"] = (dir_ / "home").string();  // no token file there
  auto credentials = Credentials::resolve({}, env());
  EXPECT_FALSE(credentials.token().has_value());
  EXPECT_EQ(credentials.describeSource(), "anonymous");
  EXPECT_FALSE(Credentials::anonymous().token().has_value());
}

TEST_F(CredentialsTest, PrecedenceOrder) {
  const fs::path token_file = write("secret/token", "hf_file\n");
  write("home/.cache/huggingface/token", "hf_home");
  write("xdg/huggingface/token", "hf_xdg");
  write("hfhome/token", "hf_hfhome");
  const fs::path token_path = write("explicit-path", "  hf_tokenpath  \n");

  env_["HOME"] = (dir_ / "home").string();
  EXPECT_EQ(Credentials::resolve({}, env()).token(), "hf_home");
  env_["XDG_CACHE_HOME"] = (dir_ / "xdg").string();
  EXPECT_EQ(Credentials::resolve({}, env()).token(), "hf_xdg");
  env_["HF_HOME"] = (dir_ / "hfhome").string();
  EXPECT_EQ(Credentials::resolve({}, env()).token(), "hf_hfhome");
  env_["HF_TOKEN_PATH"] = token_path.string();
  EXPECT_EQ(Credentials::resolve({}, env()).token(), "hf_tokenpath");
  env_["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy";
  EXPECT_EQ(Credentials::resolve({}, env()).token(), "hf_legacy");
  env_["HF_TOKEN"] = "hf_env";
  auto from_env = Credentials::resolve({}, env());
  EXPECT_EQ(from_env.token(), "hf_env");
  EXPECT_EQ(from_env.describeSource(), "HF_TOKEN");

  CredentialOptions options;
  options.hf_token = "hf_flag";
  EXPECT_EQ(Credentials::resolve(options, env()).token(), "hf_flag");
  options.token_file = token_file;
  auto from_file = Credentials::resolve(options, env());
  EXPECT_EQ(from_file.token(), "hf_file");
  EXPECT_EQ(from_file.describeSource(), "--token-file " + token_file.string());
  EXPECT_EQ(from_file.describeSource().find("hf_file"), std::string::npos);
}

TEST_F(CredentialsTest, EmptyValuesFallThrough) {
  env_["HF_TOKEN"] = "   ";
  env_["HF_HOME"] = (dir_ / "hfhome").string();
  write("hfhome/token", "hf_default");
  CredentialOptions options;
  options.hf_token = "";
  options.token_file = write("empty", "\n\n");
  EXPECT_EQ(Credentials::resolve(options, env()).token(), "hf_default");
}

TEST_F(CredentialsTest, TokenFileIsReReadOnEveryUse) {
  const fs::path token_file = write("rotating", "hf_first");
  CredentialOptions options;
  options.hf_token = "hf_flag";
  options.token_file = token_file;
  auto credentials = Credentials::resolve(options, env());
  EXPECT_EQ(credentials.token(), "hf_first");
  write("rotating", "hf_second\n");
  EXPECT_EQ(credentials.token(), "hf_second");
  // A file being replaced (briefly absent or empty) falls back instead of going anonymous.
  fs::remove(token_file);
  EXPECT_EQ(credentials.token(), "hf_flag");
  write("rotating", "hf_third");
  EXPECT_EQ(credentials.token(), "hf_third");
}

TEST_F(CredentialsTest, DefaultTokenFileIsAlsoReRead) {
  env_["HF_HOME"] = (dir_ / "hfhome").string();
  auto credentials = Credentials::resolve({}, env());
  EXPECT_FALSE(credentials.token().has_value());
  write("hfhome/token", "hf_login");
  EXPECT_EQ(credentials.token(), "hf_login");
}

}  // namespace
}  // namespace hfm::hub
