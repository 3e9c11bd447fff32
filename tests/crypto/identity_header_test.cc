// SPDX-License-Identifier: Apache-2.0
// SIP023 identity headers against PROTOCOL.md §2.8 (vectors.txt "SIP023 EIH (aes-128)"):
// iPSK = PSK16 = 000102..0f, uPSK = fffefd..f0, TCP salt 101112..1f, UDP separate header
// 0102030405060708 | packet ID 0.
#include "crypto/identity_header.h"

#include <array>

#include "gtest/gtest.h"
#include "tests/crypto/vectors2022.h"
#include "tests/testing/hex.h"
#include "tests/testing/providers.h"

namespace shadowrelay::crypto {
namespace {

using testing::allProviders;
using testing::hex;
using testing::range;
using testing::unhex;

const std::vector<uint8_t>& kIpsk = testing::kPsk16;
const std::vector<uint8_t>& kUpsk = testing::kUpsk16;
const std::vector<uint8_t> kSalt = range(0x10, 16);
const std::vector<uint8_t> kSeparateHeader = unhex("01020304050607080000000000000000");

UserHash hashOf(const std::string& hex_text) {
  UserHash h{};
  const std::vector<uint8_t> bytes = unhex(hex_text);
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

IdentityBlock block(const std::vector<uint8_t>& bytes) { return IdentityBlock(bytes.data(), 16); }

TEST(IdentityHeaderTest, TcpIdentityHeaderSharedVector) {
  const UserHash user = userHash(kUpsk);
  ASSERT_EQ(hex(user), "9b4a4b2e89211e24036becf02bed2372");
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    std::array<uint8_t, 16> eih{};
    ASSERT_TRUE(sealTcpIdentityHeader(*p, kIpsk, kSalt, user, eih));
    EXPECT_EQ(hex(eih), "5ab8fe05371fe01e73004fda29f18e1c");
    const std::optional<UserHash> back = openTcpIdentityHeader(*p, kIpsk, kSalt, eih);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, user);
    // Another salt or another iPSK reads another hash.
    EXPECT_NE(*openTcpIdentityHeader(*p, kIpsk, range(0x11, 16), eih), user);
    EXPECT_NE(*openTcpIdentityHeader(*p, kUpsk, kSalt, eih), user);
  }
}

TEST(IdentityHeaderTest, UdpIdentityHeaderSharedVector) {
  const UserHash user = hashOf("9b4a4b2e89211e24036becf02bed2372");
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    BlockCipherPtr ipsk = p->createAes(kIpsk);
    ASSERT_NE(ipsk, nullptr);
    std::array<uint8_t, 16> eih{};
    ASSERT_TRUE(sealUdpIdentityHeader(*ipsk, block(kSeparateHeader), user, eih));
    EXPECT_EQ(hex(eih), "fc75266e5be59a6ca2ff5517b80bad7d");
    const std::optional<UserHash> back = openUdpIdentityHeader(*ipsk, block(kSeparateHeader), eih);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, user);
    // The separate header is mixed in: another packet ID reads another hash.
    std::vector<uint8_t> other = kSeparateHeader;
    other[15] = 1;
    EXPECT_NE(*openUdpIdentityHeader(*ipsk, block(other), eih), user);
  }
}

TEST(IdentityHeaderTest, UserKeyTableFindsByHash) {
  UserKeyTable table;
  EXPECT_EQ(table.add(kUpsk), hashOf("9b4a4b2e89211e24036becf02bed2372"));
  const UserHash other = table.add(range(0x80, 16));
  EXPECT_EQ(table.add(kUpsk), userHash(kUpsk));  // again: kept once
  EXPECT_EQ(table.size(), 2u);
  const std::span<const uint8_t> found = table.userKey(userHash(kUpsk));
  EXPECT_EQ(std::vector<uint8_t>(found.begin(), found.end()), kUpsk);
  EXPECT_EQ(hex(table.userKey(other)), hex(range(0x80, 16)));
  EXPECT_TRUE(table.userKey(userHash(kIpsk)).empty());
}

}  // namespace
}  // namespace shadowrelay::crypto
