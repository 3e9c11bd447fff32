// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a TCP session asks of the worker that owns it, beyond WorkerContext: its id, its
// release at close, and the loop iteration's batched I/O. Loop-thread only.

#include <cstdint>

#include "relay/context/worker_context.h"

namespace shadowrelay::relay {

class SessionIoBatch;
class TcpSession;

class SessionHost : public WorkerContext {
 public:
  /// Unique across the workers of a process.
  virtual uint64_t nextSessionId() = 0;
  /// Called by a session from close(): unregisters it and frees it after the event batch.
  virtual void releaseSession(TcpSession& session) = 0;
  /// The relay phase's reads and writes of this loop iteration.
  virtual SessionIoBatch& ioBatch() = 0;
};

}  // namespace shadowrelay::relay
