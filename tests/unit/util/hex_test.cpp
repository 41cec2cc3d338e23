#include "hfm/util/hex.h"

#include <gtest/gtest.h>

namespace hfm::util {
namespace {

TEST(HexTest, RoundTrips) {
  std::vector<uint8_t> bytes = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(toHex(bytes), "0001abff");
  EXPECT_EQ(fromHex("0001ABff"), bytes);
}

TEST(HexTest, RejectsMalformed) {
  EXPECT_FALSE(fromHex("abc").has_value());
  EXPECT_FALSE(fromHex("zz").has_value());
  EXPECT_TRUE(fromHex("").has_value());
}

}  // namespace
}  // namespace hfm::util
