// SPDX-License-Identifier: Apache-2.0
// Device ids: a keyed hash of a device key, per process or, from a shared secret (the etcd
// store's device_key), the same in every process.
#include "relay/users/device_ids.h"

#include <string>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

TEST(DeviceIdsTest, SixteenHexDigitsStablePerKeyDifferentPerDevice) {
  const DeviceIdsPtr ids = DeviceIds::random();
  const std::string v4("\x7f\x00\x00\x02", 4), other("\x7f\x00\x00\x03", 4);
  const std::string id = ids->id(v4);
  EXPECT_EQ(id.size(), DeviceIds::kHexDigits);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_EQ(ids->id(v4), id);
  EXPECT_NE(ids->id(other), id);
  // The address is not in it.
  EXPECT_EQ(id.find("7f000002"), std::string::npos);
}

TEST(DeviceIdsTest, RandomKeysDifferASharedSecretIsTheSameEverywhere) {
  const std::string v6("\x20\x01\x0d\xb8\x00\x01\x00\x02", 8);
  EXPECT_NE(DeviceIds::random()->id(v6), DeviceIds::random()->id(v6));
  const DeviceIdsPtr a = DeviceIds::fromSecret("c2VjcmV0IG9mIHRoZSBjbHVzdGVy");
  const DeviceIdsPtr b = DeviceIds::fromSecret("c2VjcmV0IG9mIHRoZSBjbHVzdGVy");
  EXPECT_EQ(a->id(v6), b->id(v6));
  EXPECT_NE(a->id(v6), DeviceIds::fromSecret("another secret")->id(v6));
  // A secret of any bytes (an operator may have written anything there).
  EXPECT_EQ(DeviceIds::fromSecret(std::string("\0\xff", 2))->id(v6).size(), DeviceIds::kHexDigits);
}

}  // namespace
}  // namespace shadowrelay::relay
