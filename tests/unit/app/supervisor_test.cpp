#include "hfm/app/supervisor.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "temp_dir.h"

namespace hfm::app {
namespace {
namespace fs = std::filesystem;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(dir_ / "mnt");
    ::unsetenv("HF_TOKEN");
  }
  hfm::testing::TempDir temp_{"hfm-sup"};
  const fs::path& dir_ = temp_.path();
};

TEST_F(SupervisorTest, PlanTakesTheTokenOutOfArgv) {
  std::string error;
  int code = -1;
  const std::string mnt = (dir_ / "mnt").string();
  auto plan = planStart(
      {"--fuse", "--hf-token", "hf_abcdefgh", "--cache-dir", "/c", "bucket", "user/b", mnt}, false,
      error, code);
  ASSERT_TRUE(plan.has_value()) << error;
  EXPECT_TRUE(plan->fuse);
  EXPECT_EQ(plan->token, "hf_abcdefgh");
  for (const auto& a : plan->backend_args) EXPECT_EQ(a.find("hf_abcdefgh"), std::string::npos);
  EXPECT_EQ(plan->backend_args,
            (std::vector<std::string>{"--cache-dir", "/c", "bucket", "user/b", mnt}));
  EXPECT_EQ(plan->mountpoint, fs::canonical(dir_ / "mnt").string());
  EXPECT_EQ(plan->source_label, "bucket user/b");
}

TEST_F(SupervisorTest, PlanTakesTheTokenFromTheEnvironment) {
  ::setenv("HF_TOKEN", "hf_fromenvironment", 1);
  std::string error;
  int code = -1;
  auto plan = planStart({"--hf-token=hf_x1234", "bucket", "u/b", (dir_ / "mnt").string()}, true,
                        error, code);
  ASSERT_TRUE(plan.has_value()) << error;
  EXPECT_EQ(plan->token, "hf_x1234");  // the flag wins over the environment
  ::unsetenv("HF_TOKEN");
}

TEST_F(SupervisorTest, PlanRejectsUsageErrorsWithExitCode2) {
  std::string error;
  int code = -1;
  EXPECT_FALSE(planStart({"bucket", "u/b"}, true, error, code).has_value());
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(planStart({"--bogus", "bucket", "u/b", "/m"}, true, error, code).has_value());
  EXPECT_EQ(code, 2);
  const std::string mnt = (dir_ / "mnt").string();
  EXPECT_FALSE(planStart({"bucket", "no-namespace", mnt}, true, error, code).has_value());
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(planStart({"bucket", "u/b/../etc", mnt}, true, error, code).has_value());
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(
      planStart({"repo", "u/m", mnt, "--revision", "a..b"}, true, error, code).has_value());
  EXPECT_EQ(code, 2);
  EXPECT_TRUE(planStart({"repo", "datasets/u/d/sub", mnt}, true, error, code).has_value()) << error;
}

TEST_F(SupervisorTest, PlanRejectsBadMountPointsWithExitCode1) {
  std::string error;
  int code = -1;
  EXPECT_FALSE(
      planStart({"bucket", "u/b", (dir_ / "missing").string()}, true, error, code).has_value());
  EXPECT_EQ(code, 1);
  EXPECT_NE(error.find("does not exist"), std::string::npos);

  const fs::path file = dir_ / "file";
  { std::ofstream(file.string()) << "x"; }
  EXPECT_FALSE(planStart({"bucket", "u/b", file.string()}, true, error, code).has_value());
  EXPECT_NE(error.find("not a directory"), std::string::npos);

  EXPECT_FALSE(planStart({"bucket", "u/b", "/"}, true, error, code).has_value());
  EXPECT_NE(error.find("already mounted"), std::string::npos);

  EXPECT_FALSE(planStart({"--token-file", (dir_ / "nope").string(), "bucket", "u/b",
                          (dir_ / "mnt").string()},
                         true, error, code)
                   .has_value());
  EXPECT_NE(error.find("token file"), std::string::npos);
}

TEST_F(SupervisorTest, StatusWithNothingRunning) {
  ::setenv("HOME", dir_.c_str(), 1);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(runStatus(), 0);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "No running daemons\n");
}

TEST_F(SupervisorTest, StopWithoutADaemonFails) {
  ::setenv("HOME", dir_.c_str(), 1);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(runStop((dir_ / "mnt").string(), 1), 1);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("no running daemon"), std::string::npos);
}

// A backend that dies before reporting (here: before the supervisor even wrote the pid file,
// so its own guard could not remove it) must leave no pid file and no process behind.
TEST_F(SupervisorTest, FailedStartLeavesNoPidFile) {
  if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  const fs::path bin = dir_ / "bin";
  fs::create_directory(bin);
  {
    std::ofstream script(bin / "hf-mount-fuse");
    script << "#!/bin/sh\necho 'backend: refusing' >&2\nexit 3\n";
  }
  fs::permissions(bin / "hf-mount-fuse", fs::perms::owner_all);
  const char* old_path = std::getenv("PATH");
  const std::string saved_path = old_path != nullptr ? old_path : "";
  ::setenv("PATH", (bin.string() + ":" + saved_path).c_str(), 1);
  ::setenv("HOME", dir_.c_str(), 1);
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = runStart({"bucket", "u/b", (dir_ / "mnt").string()}, true);
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  ::setenv("PATH", saved_path.c_str(), 1);
  EXPECT_EQ(code, 1) << out << err;
  EXPECT_NE(out.find("failed"), std::string::npos) << out;
  EXPECT_NE(err.find("hf-mount start: "), std::string::npos) << err;
  std::error_code ec;
  size_t pid_files = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / ".hf-mount" / "pids", ec)) {
    ADD_FAILURE() << "left behind: " << entry.path();
    ++pid_files;
  }
  EXPECT_EQ(pid_files, 0U);
}

}  // namespace
}  // namespace hfm::app
