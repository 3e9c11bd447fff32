// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead2022.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

// PROTOCOL.md §2.4: reject when |now - ts| > 30 s.
TEST(Aead2022Test, TimestampWindowIsThirtySecondsEitherWay) {
  const uint64_t ts = 1700000000;
  EXPECT_TRUE(timestampFresh(ts, ts));
  EXPECT_TRUE(timestampFresh(ts, ts + 30));
  EXPECT_TRUE(timestampFresh(ts, ts - 30));
  EXPECT_FALSE(timestampFresh(ts, ts + 31));
  EXPECT_FALSE(timestampFresh(ts, ts - 31));
  EXPECT_FALSE(timestampFresh(0, ts));
  EXPECT_FALSE(timestampFresh(UINT64_MAX, ts));
  EXPECT_TRUE(timestampFresh(UINT64_MAX, UINT64_MAX - 30));
  EXPECT_TRUE(timestampFresh(0, 30));
}

TEST(Aead2022Test, BigEndianHelpers) {
  uint8_t b[8];
  storeBe64(b, 1700000000);
  EXPECT_EQ(b[4], 0x65);
  EXPECT_EQ(b[5], 0x53);
  EXPECT_EQ(b[6], 0xf1);
  EXPECT_EQ(b[7], 0x00);
  EXPECT_EQ(b[0] | b[1] | b[2] | b[3], 0);
  EXPECT_EQ(loadBe64(b), 1700000000u);
  storeBe16(b, 0x0123);
  EXPECT_EQ(b[0], 0x01);
  EXPECT_EQ(b[1], 0x23);
  EXPECT_EQ(loadBe16(b), 0x0123);
}

TEST(Aead2022Test, EveryStatusHasItsOwnName) {
  std::set<std::string> names;
  for (int s = static_cast<int>(Status2022::Ok); s <= static_cast<int>(Status2022::CryptoError);
       ++s) {
    const std::string name(statusName(static_cast<Status2022>(s)));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(names.size(), 10u);
}

}  // namespace
}  // namespace shadowrelay::crypto
