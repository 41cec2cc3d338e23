#include "hfm/util/log.h"

#include <gtest/gtest.h>

namespace hfm::util {
namespace {

TEST(LogTest, ParsesPlainAndRustStyleLevels) {
  EXPECT_EQ(parseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(parseLogLevel("hf_mount=trace"), spdlog::level::trace);
  EXPECT_EQ(parseLogLevel("warn,hf_mount=debug"), spdlog::level::debug);
  EXPECT_EQ(parseLogLevel("other_crate=debug"), std::nullopt);
  EXPECT_EQ(parseLogLevel("nonsense"), std::nullopt);
}

TEST(LogTest, RedactsTokens) {
  EXPECT_EQ(redactToken("Authorization: Bearer hf_abcdEFGH1234"), "Authorization: Bearer hf_***");
  EXPECT_EQ(redactToken("no secrets here"), "no secrets here");
}

}  // namespace
}  // namespace hfm::util
