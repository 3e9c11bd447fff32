// SPDX-License-Identifier: Apache-2.0
// ThreadSanitizer annotations for abseil's Mutex, CondVar and Notification,
// linked into every binary of --config=tsan (.bazelrc: --custom_malloc, the one
// hook Bazel has for adding a library to every link).
//
// Why: Debian's libabsl is not built with -fsanitize=thread, so its Mutex (a
// futex and atomics inside the shared library) is invisible to TSan: every
// access that a Mutex orders looks like a race. Abseil annotates its own locks
// when it is compiled with TSan (ABSL_TSAN_MUTEX_* in mutex.cc); this file does
// the same from outside. The executable defines the public entry points (and
// exports them, -rdynamic), so every caller — our libraries, gRPC, abseil
// itself — lands here; each tells TSan what the call does and then calls the
// library's own function, found with dlsym(RTLD_NEXT).
#include <dlfcn.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace {

#define SR_STRINGIFY2(x) #x
#define SR_STRINGIFY(x) SR_STRINGIFY2(x)

/// The library's definition of a member of absl::<inline namespace>:: by the
/// rest of its mangled name (as `nm -D libabsl_synchronization.so` prints it
/// after "_ZN4absl<ns>").
template <typename Fn>
Fn real(const char* qualifier, const char* rest) {
  const std::string ns = SR_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      std::string(qualifier) + "4absl" +
      (ABSL_OPTION_USE_INLINE_NAMESPACE ? std::to_string(ns.size()) + ns : "") + rest;
  void* fn = ::dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found: %s\n", name.c_str(), ::dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

/// The library's function, looked up once per call site.
#define SR_REAL(type, qualifier, rest)                  \
  ([] {                                                 \
    static const auto fn = real<type>(qualifier, rest); \
    return fn;                                          \
  }())

constexpr unsigned kRead = __tsan_mutex_read_lock;

// Which calls are annotated. gRPC's own mutexes are not: gRPC manages the lifetime of the
// objects that hold them with its own (uninstrumented) reference counts, so TSan would see a
// mutex destroyed "concurrently" with its last use. Calls from gRPC's code run unannotated,
// like the rest of gRPC; our code's calls are annotated.
//
// And the library calls its own entry points too (Notification::WaitForNotification locks its
// mutex; LockWhenWithTimeout calls LockWhenWithDeadline), and those calls land here as well:
// only the outermost call on a thread is annotated, for what the whole call did.

/// The code of the libraries whose calls are not annotated (gRPC's), as address ranges.
class IgnoredCode {
 public:
  IgnoredCode() {
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* self) {
          const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
          if (std::strstr(name, "/libgrpc") == nullptr && std::strstr(name, "/libgpr") == nullptr) {
            return 0;
          }
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
            const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
            static_cast<IgnoredCode*>(self)->ranges_.push_back({begin, begin + ph.p_memsz});
          }
          return 0;
        },
        this);
  }
  bool contains(const void* address) const {
    const auto a = reinterpret_cast<uintptr_t>(address);
    for (const Range& r : ranges_) {
      if (a >= r.begin && a < r.end) return true;
    }
    return false;
  }

 private:
  struct Range {
    uintptr_t begin;
    uintptr_t end;
  };
  std::vector<Range> ranges_;
};

thread_local int depth = 0;

/// Whether this call is annotated: the outermost on its thread, from our code.
class Annotated {
 public:
  explicit Annotated(const void* caller)
      : annotated_(depth++ == 0 && !ignored().contains(caller)) {}
  ~Annotated() { --depth; }
  Annotated(const Annotated&) = delete;
  Annotated& operator=(const Annotated&) = delete;
  explicit operator bool() const { return annotated_; }

 private:
  static const IgnoredCode& ignored() {
    static const IgnoredCode code;  // the libraries are all loaded before main()
    return code;
  }
  bool annotated_;
};

/// The address a wrapper below returns to: who called it.
#define SR_CALLER __builtin_return_address(0)

/// A call that returns with `mu` held.
template <typename Call>
auto locking(const void* caller, void* mu, unsigned flags, Call call) {
  Annotated outermost(caller);
  if (outermost) __tsan_mutex_pre_lock(mu, flags);
  auto result = call();
  if (outermost) __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

/// A call that may take `mu` (TryLock): held on return iff the call returned true.
template <typename Call>
bool tryLocking(const void* caller, void* mu, unsigned flags, Call call) {
  flags |= __tsan_mutex_try_lock;
  Annotated outermost(caller);
  if (outermost) __tsan_mutex_pre_lock(mu, flags);
  const bool locked = call();
  if (outermost) __tsan_mutex_post_lock(mu, flags | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

/// A call that gives `mu` up.
template <typename Call>
void unlocking(const void* caller, void* mu, unsigned flags, Call call) {
  Annotated outermost(caller);
  if (outermost) __tsan_mutex_pre_unlock(mu, flags);
  call();
  if (outermost) __tsan_mutex_post_unlock(mu, flags);
}

/// A wait that gives the held `mu` up and takes it back (Await, CondVar::Wait).
template <typename Call>
auto releasedDuring(const void* caller, void* mu, Call call) {
  Annotated outermost(caller);
  if (outermost) {
    __tsan_mutex_pre_unlock(mu, 0);
    __tsan_mutex_post_unlock(mu, 0);
    __tsan_mutex_pre_lock(mu, 0);
  }
  auto result = call();
  if (outermost) __tsan_mutex_post_lock(mu, 0, 0);
  return result;
}

/// A call that publishes (Notify): what came before it happens before an acquiring call.
template <typename Call>
void releasing(const void* caller, const void* addr, Call call) {
  Annotated outermost(caller);
  if (outermost) __tsan_release(const_cast<void*>(addr));
  call();
}

/// A wait that saw a publication when it returns true.
template <typename Call>
bool acquiring(const void* caller, const void* addr, Call call) {
  Annotated outermost(caller);
  const bool seen = call();
  if (outermost && seen) __tsan_acquire(const_cast<void*>(addr));
  return seen;
}

}  // namespace

// The other system libraries (gRPC, abseil's others, OpenSSL, libstdc++) are not built with TSan
// either, and gRPC orders its own threads with its own atomics. Their code is invisible to TSan
// but for the libc calls TSan intercepts (memcpy into a slice buffer on one gRPC thread, out of
// it on another; StrCat of a name gRPC handed over), which then look like races inside them.
// ignore_noninstrumented_modules makes those calls invisible too: each library becomes what an
// uninstrumented library should be, and every access our code makes is still checked.
extern "C" const char* __tsan_default_options() { return "ignore_noninstrumented_modules=1"; }

// gRPC's C++ API is partly templates in its headers (grpcpp/impl/call_op_set.h), compiled into
// our instrumented code, while the completion queue that orders them is in libgrpc: races in the
// batches of operations of a call (CallOpSet, its interceptor hooks) are gRPC's bookkeeping.
// Neither is on the stack of our handlers (gRPC calls them from CallbackUnaryHandler::RunHandler
// and fills the batch after they return), so our code stays checked. Nor is a race whose very
// access is in gRPC's code, or one in a client's completion callback (CallbackWithStatusTag:
// gRPC moved the callback to its thread; only the tests' clients have them).
// BLAKE3 1.3.1's C dispatcher (blake3_dispatch.c, get_cpu_features) caches the CPU's features
// in a plain global at the first hash: two threads hashing first at once both write the same
// value (later BLAKE3 versions made it atomic). Seen with device ids derived on the etcd
// store's two threads.
extern "C" const char* __tsan_default_suppressions() {
  return "race:grpc::internal::CallOpSet<\n"
         "race:grpc::internal::InterceptorBatchMethodsImpl::\n"
         "race_top:^grpc::\n"
         "race:grpc::internal::CallbackWithStatusTag::Run\n"
         "race_top:get_cpu_features\n";
}

namespace absl {
ABSL_NAMESPACE_BEGIN

// ---- Mutex ----

using Plain = void (*)(Mutex*);
using Try = bool (*)(Mutex*);
using When = void (*)(Mutex*, const Condition&);
using WhenTimeout = bool (*)(Mutex*, const Condition&, Duration);
using WhenDeadline = bool (*)(Mutex*, const Condition&, Time);

void Mutex::Lock() {
  locking(SR_CALLER, this, 0, [this] { return SR_REAL(Plain, "_ZN", "5Mutex4LockEv")(this), 0; });
}

void Mutex::ReaderLock() {
  locking(SR_CALLER, this, kRead,
          [this] { return SR_REAL(Plain, "_ZN", "5Mutex10ReaderLockEv")(this), 0; });
}

bool Mutex::TryLock() {
  return tryLocking(SR_CALLER, this, 0,
                    [this] { return SR_REAL(Try, "_ZN", "5Mutex7TryLockEv")(this); });
}

bool Mutex::ReaderTryLock() {
  return tryLocking(SR_CALLER, this, kRead,
                    [this] { return SR_REAL(Try, "_ZN", "5Mutex13ReaderTryLockEv")(this); });
}

void Mutex::Unlock() {
  unlocking(SR_CALLER, this, 0, [this] { SR_REAL(Plain, "_ZN", "5Mutex6UnlockEv")(this); });
}

void Mutex::ReaderUnlock() {
  unlocking(SR_CALLER, this, kRead, [this] {
    SR_REAL(Plain, "_ZN", "5Mutex12ReaderUnlockEv")(this);
  });
}

// The *When family returns with the mutex held, whether or not the condition became true.
void Mutex::LockWhen(const Condition& cond) {
  locking(SR_CALLER, this, 0,
          [&] { return SR_REAL(When, "_ZN", "5Mutex8LockWhenERKNS0_9ConditionE")(this, cond), 0; });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  locking(SR_CALLER, this, kRead, [&] {
    return SR_REAL(When, "_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE")(this, cond), 0;
  });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  return locking(SR_CALLER, this, 0, [&] {
    return SR_REAL(WhenTimeout, "_ZN",
                   "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE")(this, cond,
                                                                                  timeout);
  });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  return locking(SR_CALLER, this, 0, [&] {
    return SR_REAL(WhenDeadline, "_ZN", "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE")(
        this, cond, deadline);
  });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  return locking(SR_CALLER, this, kRead, [&] {
    return SR_REAL(WhenTimeout, "_ZN",
                   "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE")(this, cond,
                                                                                        timeout);
  });
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  return locking(SR_CALLER, this, kRead, [&] {
    return SR_REAL(WhenDeadline, "_ZN",
                   "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE")(this, cond,
                                                                                     deadline);
  });
}

// Await* are called with the mutex held (as a writer: the only way this code base and gRPC use
// them) and give it up while they wait.
void Mutex::Await(const Condition& cond) {
  releasedDuring(SR_CALLER, this, [&] {
    return SR_REAL(When, "_ZN", "5Mutex5AwaitERKNS0_9ConditionE")(this, cond), 0;
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  return releasedDuring(SR_CALLER, this, [&] {
    return SR_REAL(WhenTimeout, "_ZN", "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE")(
        this, cond, timeout);
  });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  return releasedDuring(SR_CALLER, this, [&] {
    return SR_REAL(WhenDeadline, "_ZN", "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE")(
        this, cond, deadline);
  });
}

Mutex::~Mutex() {
  if (Annotated outermost(SR_CALLER); outermost) __tsan_mutex_destroy(this, 0);
  SR_REAL(Plain, "_ZN", "5MutexD2Ev")(this);
}

// ReleasableMutexLock takes its mutex inline (in the caller's code) but Release() is the
// library's: it is the unlock of whoever took it.
void ReleasableMutexLock::Release() {
  static_assert(sizeof(ReleasableMutexLock) == sizeof(Mutex*), "holds only its Mutex*");
  Mutex* mu = *reinterpret_cast<Mutex**>(this);
  unlocking(SR_CALLER, mu, 0, [this] {
    SR_REAL(void (*)(ReleasableMutexLock*), "_ZN", "19ReleasableMutexLock7ReleaseEv")(this);
  });
}

// ---- CondVar: Wait* give the mutex up and take it back ----

void CondVar::Wait(Mutex* mu) {
  releasedDuring(SR_CALLER, mu, [&] {
    return SR_REAL(void (*)(CondVar*, Mutex*), "_ZN", "7CondVar4WaitEPNS0_5MutexE")(this, mu), 0;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  return releasedDuring(SR_CALLER, mu, [&] {
    return SR_REAL(bool (*)(CondVar*, Mutex*, Duration), "_ZN",
                   "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE")(this, mu, timeout);
  });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  return releasedDuring(SR_CALLER, mu, [&] {
    return SR_REAL(bool (*)(CondVar*, Mutex*, Time), "_ZN",
                   "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE")(this, mu, deadline);
  });
}

// ---- Notification: Notify happens before a wait that saw it ----

void Notification::Notify() {
  releasing(SR_CALLER, this, [this] {
    SR_REAL(void (*)(Notification*), "_ZN", "12Notification6NotifyEv")(this);
  });
}

void Notification::WaitForNotification() const {
  acquiring(SR_CALLER, this, [this] {
    return SR_REAL(void (*)(const Notification*), "_ZNK",
                   "12Notification19WaitForNotificationEv")(this),
           true;
  });
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  return acquiring(SR_CALLER, this, [&] {
    return SR_REAL(bool (*)(const Notification*, Duration), "_ZNK",
                   "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE")(this, timeout);
  });
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  return acquiring(SR_CALLER, this, [&] {
    return SR_REAL(bool (*)(const Notification*, Time), "_ZNK",
                   "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE")(this, deadline);
  });
}

ABSL_NAMESPACE_END
}  // namespace absl
