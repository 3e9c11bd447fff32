// SPDX-License-Identifier: Apache-2.0
#pragma once
// Loopback sockets for tests that drive the relay's loop on the test thread: everything is
// non-blocking, so the test peer is read and written between loop iterations (run_loop.h).

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "relay/net/socket.h"

namespace shadowrelay::relay::testing {

/// `ip` (a literal, default 127.0.0.1) and `port`.
SocketAddress loopbackAddress(uint16_t port, const char* ip = "127.0.0.1");
/// The local port of a socket.
uint16_t portOf(int fd);

/// A non-blocking TCP listener on 127.0.0.1, port 0.
Fd listenLoopback();
/// A non-blocking TCP socket connected to 127.0.0.1:`port` (the kernel completes a loopback
/// connect to a listener at once, before any accept). Invalid on error.
Fd connectLoopback(uint16_t port);
/// The same from source address `source` (another loopback address, "127.0.0.2").
Fd connectLoopbackFrom(const char* source, uint16_t port);
/// accept4 without waiting; invalid if nobody is queued.
Fd tryAccept(int listener);
/// A connected non-blocking AF_UNIX stream pair.
void streamPair(Fd* a, Fd* b);

/// A non-blocking UDP socket bound on `ip`, port 0.
Fd bindUdpLoopback(const char* ip = "127.0.0.1");

/// Sends all of `bytes` (small amounts: one call must take them). False otherwise.
bool sendBytes(int fd, std::span<const uint8_t> bytes);
bool sendText(int fd, const std::string& text);
/// sendto() of one datagram. False unless the whole datagram went.
bool sendDatagram(int fd, std::span<const uint8_t> bytes, const SocketAddress& to);

/// What a non-blocking stream socket has now: appended to `*out`. Returns false once the peer
/// closed (EOF or an error), true while the socket is open.
bool readAvailable(int fd, std::vector<uint8_t>* out);
/// One datagram if one is queued (its source in `*from` when given); empty otherwise.
std::vector<uint8_t> recvDatagram(int fd, SocketAddress* from = nullptr);
/// Whether a datagram is queued, without taking it.
bool datagramWaiting(int fd);

}  // namespace shadowrelay::relay::testing
