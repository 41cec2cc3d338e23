#include "hfm/util/result.h"

#include <gtest/gtest.h>

#include <string>

namespace hfm {
namespace {

Result<int> parsePositive(int v) {
  if (v <= 0) return Error::invalid("not positive: " + std::to_string(v));
  return v;
}

Result<int> doubled(int v) {
  HFM_ASSIGN_OR_RETURN(int x, parsePositive(v));
  return 2 * x;
}

Status check(int v) {
  HFM_TRY(parsePositive(v));
  return okStatus();
}

TEST(ResultTest, CarriesValueOrError) {
  auto good = doubled(4);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(bad.error().message(), "not positive: -1");
}

TEST(ResultTest, StatusPropagatesAndAddsContext) {
  EXPECT_TRUE(check(1).ok());
  auto st = check(0);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().withContext("parsing").message(), "parsing: not positive: 0");
  EXPECT_EQ(st.error().withContext("parsing").code(), EINVAL);
}

}  // namespace
}  // namespace hfm
