// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/reference_client.h"

#include "crypto/udp_codec.h"

namespace shadowrelay::relay::testing {

crypto::SocksAddress loopbackTarget(uint16_t port) {
  return crypto::SocksAddress::ipv4({127, 0, 0, 1}, port);
}

std::vector<uint8_t> addressBytes(const crypto::SocksAddress& address) {
  std::vector<uint8_t> out(address.size());
  out.resize(crypto::writeAddress(address, out));
  return out;
}

std::vector<uint8_t> concat(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::vector<uint8_t> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

size_t chunkWireSize(const crypto::MethodInfo& method, size_t payload, bool first) {
  return (first ? method.salt_size : 0) + crypto::kLengthUnitSize + payload + crypto::kTagSize;
}

ReferenceStream::ReferenceStream(const crypto::MethodInfo& method,
                                 const crypto::AeadProvider& provider,
                                 std::span<const uint8_t> master, std::span<const uint8_t> salt)
    : encoder_(method, provider, master, salt), decoder_(method, provider, master) {}

std::vector<uint8_t> ReferenceStream::seal(std::span<const uint8_t> plain) {
  std::vector<uint8_t> out(encoder_.maxEncodedSize(plain.size()));
  crypto::CodecProgress progress;
  if (!encoder_.encode(plain, out, &progress) || progress.consumed != plain.size()) return {};
  out.resize(progress.produced);
  return out;
}

std::vector<uint8_t> ReferenceStream::seal(const std::string& plain) {
  return seal({reinterpret_cast<const uint8_t*>(plain.data()), plain.size()});
}

bool ReferenceStream::open(std::span<const uint8_t> wire) {
  if (failed_) return false;
  unopened_.insert(unopened_.end(), wire.begin(), wire.end());
  std::vector<uint8_t> out(unopened_.size());
  crypto::CodecProgress progress;
  if (decoder_.decode(unopened_, out, &progress) != crypto::DecodeStatus::Ok) {
    failed_ = true;
    return false;
  }
  opened_.insert(opened_.end(), out.begin(), out.begin() + progress.produced);
  unopened_.erase(unopened_.begin(), unopened_.begin() + progress.consumed);
  return true;
}

std::vector<uint8_t> sealDatagram(const crypto::MethodInfo& method,
                                  const crypto::AeadProvider& provider,
                                  std::span<const uint8_t> master, std::span<const uint8_t> plain) {
  crypto::UdpCodec codec(method, provider);
  std::vector<uint8_t> out(plain.size() + codec.overhead());
  out.resize(codec.seal(master, plain, out));
  return out;
}

std::optional<std::vector<uint8_t>> openDatagram(const crypto::MethodInfo& method,
                                                 const crypto::AeadProvider& provider,
                                                 std::span<const uint8_t> master,
                                                 std::span<const uint8_t> packet) {
  crypto::UdpCodec codec(method, provider);
  std::vector<uint8_t> out(packet.size());
  auto n = codec.open(master, packet, out);
  if (!n) return std::nullopt;
  out.resize(*n);
  return out;
}

}  // namespace shadowrelay::relay::testing
