// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/uot.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

namespace uot {

namespace {

// UoT frame address types, and the SOCKS5 ones they stand for.
constexpr uint8_t kUotIpv4 = 0x00;
constexpr uint8_t kUotIpv6 = 0x01;
constexpr uint8_t kUotDomain = 0x02;
constexpr size_t kMaxAddress = 1 + 1 + 255 + 2;

/// Parses a UoT-typed address by mapping its type byte to SOCKS5's and reusing that parser.
crypto::AddressParse parseUotAddress(std::span<const uint8_t> in, crypto::SocksAddress* out,
                                     size_t* consumed) {
  if (in.empty()) return crypto::AddressParse::NeedMore;
  std::array<uint8_t, kMaxAddress> socks{};
  const size_t n = std::min(in.size(), socks.size());
  std::memcpy(socks.data(), in.data(), n);
  switch (in[0]) {
    case kUotIpv4:
      socks[0] = static_cast<uint8_t>(crypto::SocksAddress::Type::IPv4);
      break;
    case kUotIpv6:
      socks[0] = static_cast<uint8_t>(crypto::SocksAddress::Type::IPv6);
      break;
    case kUotDomain:
      socks[0] = static_cast<uint8_t>(crypto::SocksAddress::Type::Domain);
      break;
    default:
      return crypto::AddressParse::Invalid;
  }
  return crypto::parseAddress({socks.data(), n}, out, consumed);
}

uint8_t uotType(crypto::SocksAddress::Type type) {
  switch (type) {
    case crypto::SocksAddress::Type::IPv4:
      return kUotIpv4;
    case crypto::SocksAddress::Type::IPv6:
      return kUotIpv6;
    case crypto::SocksAddress::Type::Domain:
      return kUotDomain;
  }
  return kUotIpv4;
}

uint16_t readBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

int versionOf(const crypto::SocksAddress& target) {
  if (target.type != crypto::SocksAddress::Type::Domain) return 0;
  if (target.host == kMagicV2) return 2;
  if (target.host == kMagicV1) return 1;
  return 0;
}

crypto::SocksAddress magicTarget(int version) {
  return crypto::SocksAddress::domain(std::string(version == 1 ? kMagicV1 : kMagicV2), 0);
}

Parse parseRequest(std::span<const uint8_t> in, Request* out, size_t* consumed) {
  if (in.empty()) return Parse::NeedMore;
  size_t address_size = 0;
  switch (crypto::parseAddress(in.subspan(1), &out->destination, &address_size)) {
    case crypto::AddressParse::NeedMore:
      return Parse::NeedMore;
    case crypto::AddressParse::Invalid:
      return Parse::Invalid;
    case crypto::AddressParse::Ok:
      break;
  }
  out->connect = in[0] != 0;
  *consumed = 1 + address_size;
  return Parse::Ok;
}

size_t writeRequest(const Request& request, std::span<uint8_t> out) {
  if (out.empty()) return 0;
  const size_t address = crypto::writeAddress(request.destination, out.subspan(1));
  if (address == 0) return 0;
  out[0] = request.connect ? 1 : 0;
  return 1 + address;
}

Parse parseFrame(std::span<const uint8_t> in, bool connect, Frame* out) {
  size_t at = 0;
  if (!connect) {
    switch (parseUotAddress(in, &out->address, &at)) {
      case crypto::AddressParse::NeedMore:
        return Parse::NeedMore;
      case crypto::AddressParse::Invalid:
        return Parse::Invalid;
      case crypto::AddressParse::Ok:
        break;
    }
  }
  if (in.size() < at + 2) return Parse::NeedMore;
  const size_t length = readBe16(in.data() + at);
  at += 2;
  if (in.size() < at + length) return Parse::NeedMore;
  out->payload = in.subspan(at, length);
  out->size = at + length;
  return Parse::Ok;
}

bool appendFrame(bool connect, const crypto::SocksAddress& address,
                 std::span<const uint8_t> payload, std::string* out) {
  if (payload.size() > kMaxPayload) return false;
  uint8_t header[kMaxAddress + 2];
  size_t n = 0;
  if (!connect) {
    n = crypto::writeAddress(address, {header, kMaxAddress});
    if (n == 0) return false;
    header[0] = uotType(address.type);
  }
  header[n++] = static_cast<uint8_t>(payload.size() >> 8);
  header[n++] = static_cast<uint8_t>(payload.size());
  out->append(reinterpret_cast<const char*>(header), n);
  out->append(reinterpret_cast<const char*>(payload.data()), payload.size());
  return true;
}

}  // namespace uot

namespace {
// Reads land here with the carried-over partial frame in front; a frame is at most
// 2 + 259 + 2 + 65535 bytes, so every read takes at least 64 KiB.
constexpr size_t kReadBuffer = 256 << 10;
constexpr int kReadsPerEvent = 8;

uint8_t* readBuffer() {
  thread_local std::unique_ptr<uint8_t[]> buffer =
      std::make_unique_for_overwrite<uint8_t[]>(kReadBuffer);
  return buffer.get();
}
}  // namespace

std::unique_ptr<UotChannel> UotChannel::server(EventLoop& loop, Fd stream, int version,
                                               DatagramFn on_datagram, ClosedFn on_closed) {
  // v1 has no request: non-connect frames from the first byte.
  return std::unique_ptr<UotChannel>(new UotChannel(loop, std::move(stream), version == 1,
                                                    std::move(on_datagram),
                                                    std::move(on_closed)));
}

std::unique_ptr<UotChannel> UotChannel::client(EventLoop& loop, Fd stream,
                                               const uot::Request& request,
                                               DatagramFn on_datagram, ClosedFn on_closed) {
  std::unique_ptr<UotChannel> channel(new UotChannel(
      loop, std::move(stream), /*have_request=*/true, std::move(on_datagram),
      std::move(on_closed)));
  channel->request_ = request;
  uint8_t header[1 + 1 + 1 + 255 + 2];
  const size_t n = uot::writeRequest(request, header);
  channel->out_.append(reinterpret_cast<const char*>(header), n);
  // Written with the first datagram: the request never travels alone.
  return channel;
}

UotChannel::UotChannel(EventLoop& loop, Fd stream, bool have_request, DatagramFn on_datagram,
                       ClosedFn on_closed)
    : loop_(loop),
      stream_(std::move(stream)),
      watcher_(loop, stream_.get(), kReadable, [this](uint32_t events) { onEvents(events); }),
      on_datagram_(std::move(on_datagram)),
      on_closed_(std::move(on_closed)),
      have_request_(have_request) {}

UotChannel::~UotChannel() {
  watcher_.willCloseFd();
  if (budget_ != nullptr) budget_->give(charged_);
}

bool UotChannel::send(const crypto::SocksAddress& address, std::span<const uint8_t> payload) {
  if (failed_ || queuedBytes() + payload.size() > kMaxQueued) return false;
  const size_t before = out_.size();
  if (!uot::appendFrame(request_.connect, address, payload, &out_)) return false;
  if (budget_ != nullptr) {
    // Charged before the write is tried, given back by flush() for what went: a frame that
    // goes out at once costs nothing for long, one that waits is held against the budget.
    const size_t frame = out_.size() - before;
    if (!budget_->take(frame)) {
      out_.resize(before);
      if (dropped_memory_ != nullptr) ++*dropped_memory_;
      return false;
    }
    charged_ += frame;
  }
  return flush();
}

void UotChannel::onEvents(uint32_t events) {
  if ((events & kWritable) && !flush()) return;
  if (events & (kReadable | kClosed)) readSome();
}

bool UotChannel::flush() {
  while (out_sent_ < out_.size()) {
    const ssize_t n = ::send(stream_.get(), out_.data() + out_sent_, out_.size() - out_sent_,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      fail();
      return false;
    }
    out_sent_ += static_cast<size_t>(n);
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
    watcher_.enableWrite(false);
  } else {
    if (out_sent_ > (64 << 10)) {  // keep the queue from creeping: drop what went
      out_.erase(0, out_sent_);
      out_sent_ = 0;
    }
    watcher_.enableWrite(true);
  }
  if (budget_ != nullptr && charged_ > queuedBytes()) {
    budget_->give(charged_ - queuedBytes());
    charged_ = queuedBytes();
  }
  return true;
}

bool UotChannel::readSome() {
  uint8_t* buf = readBuffer();
  for (int i = 0; i < kReadsPerEvent; ++i) {
    const size_t carried = in_.size();
    std::memcpy(buf, in_.data(), carried);
    const ssize_t n = ::recv(stream_.get(), buf + carried, kReadBuffer - carried, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) {
      fail();
      return false;
    }
    std::span<const uint8_t> data(buf, carried + static_cast<size_t>(n));
    while (!data.empty()) {
      if (!have_request_) {
        size_t used = 0;
        const uot::Parse parsed = uot::parseRequest(data, &request_, &used);
        if (parsed == uot::Parse::NeedMore) break;
        if (parsed == uot::Parse::Invalid) {
          fail();
          return false;
        }
        have_request_ = true;
        data = data.subspan(used);
        continue;
      }
      uot::Frame frame;
      const uot::Parse parsed = uot::parseFrame(data, request_.connect, &frame);
      if (parsed == uot::Parse::NeedMore) break;
      if (parsed == uot::Parse::Invalid) {  // no resynchronisation in a stream: it ends here
        fail();
        return false;
      }
      on_datagram_(request_.connect ? request_.destination : frame.address, frame.payload);
      if (failed_) return false;
      data = data.subspan(frame.size);
    }
    in_.assign(reinterpret_cast<const char*>(data.data()), data.size());
  }
  return true;
}

void UotChannel::fail() {
  if (failed_) return;
  failed_ = true;
  watcher_.setInterest(0);
  // Reported from the end of the loop iteration, so that the owner may destroy the channel
  // in on_closed without pulling it from under a caller.
  loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.lock() || !on_closed_) return;
    ClosedFn on_closed = std::move(on_closed_);  // it may destroy this channel
    on_closed();
  });
}

}  // namespace shadowrelay::relay
