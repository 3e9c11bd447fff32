// SPDX-License-Identifier: Apache-2.0
#include "relay/users/device_tracker.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "relay/net/socket.h"
#include "relay/users/relay_user.h"

namespace shadowrelay::relay {
namespace {

using namespace std::chrono_literals;
using Admission = DeviceTracker::Admission;

/// A tracker on a clock the test moves.
struct ManualClock {
  DeviceTracker::Clock::time_point now{std::chrono::hours(1)};
  std::function<DeviceTracker::Clock::time_point()> fn() {
    return [this] { return now; };
  }
};

std::string deviceOf(const char* ip) {
  auto address = parseSocketAddress(ip, 4000);
  EXPECT_TRUE(address.ok()) << ip;
  return sourceKey(*address);
}

TEST(DeviceTrackerTest, KnownDevicesKeepWorkingANewOneBeyondTheLimitIsRefused) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  const std::string a = deviceOf("127.0.0.2"), b = deviceOf("127.0.0.3"), c = deviceOf("127.0.0.4");
  EXPECT_EQ(tracker.acquire(a, 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(b, 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(c, 2, 600s), Admission::Refused);
  // More sessions of the devices counted already are not new devices.
  EXPECT_EQ(tracker.acquire(a, 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(b, 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.count(600s), 2u);
  // A refused device left nothing behind.
  for (const DeviceTracker::Device& device : tracker.devices(600s)) EXPECT_NE(device.key, c);
}

TEST(DeviceTrackerTest, AnEndedDeviceCountsForTheWindowThenMakesRoom) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  const std::string a = deviceOf("10.0.0.1"), b = deviceOf("10.0.0.2");
  ASSERT_EQ(tracker.acquire(a, 1, 600s), Admission::Counted);
  clock.now += 5s;
  tracker.release(a);
  auto devices = tracker.devices(600s);
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_FALSE(devices[0].active);
  EXPECT_EQ(devices[0].since_seen, 0s);
  clock.now += 599s;  // still within the window: b is refused
  EXPECT_EQ(tracker.acquire(b, 1, 600s), Admission::Refused);
  devices = tracker.devices(600s);
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].since_seen, 599s);
  clock.now += 1s;  // a is past the window now
  EXPECT_EQ(tracker.count(600s), 0u);
  EXPECT_EQ(tracker.acquire(b, 1, 600s), Admission::Counted);
  // ... and a, coming back, is a new device beyond the limit.
  EXPECT_EQ(tracker.acquire(a, 1, 600s), Admission::Refused);
}

TEST(DeviceTrackerTest, AnActiveDeviceCountsLongerThanTheWindow) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  const std::string a = deviceOf("10.0.0.1"), b = deviceOf("10.0.0.2");
  ASSERT_EQ(tracker.acquire(a, 1, 60s), Admission::Counted);
  clock.now += 3600s;
  EXPECT_EQ(tracker.acquire(b, 1, 60s), Admission::Refused);
  auto devices = tracker.devices(60s);
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_TRUE(devices[0].active);
  // Two sessions of a: the device stays active until both ended.
  ASSERT_EQ(tracker.acquire(a, 1, 60s), Admission::Counted);
  tracker.release(a);
  EXPECT_TRUE(tracker.devices(60s)[0].active);
  tracker.release(a);
  EXPECT_FALSE(tracker.devices(60s)[0].active);
  // A window of zero: a device counts only while it is active.
  EXPECT_EQ(tracker.acquire(b, 1, 0s), Admission::Counted);
}

TEST(DeviceTrackerTest, AnIpv6DeviceIsItsSlash64AndAMappedIpv4IsTheIpv4) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  ASSERT_EQ(tracker.acquire(deviceOf("2001:db8:1:2::10"), 2, 600s), Admission::Counted);
  // Another address of the same /64: the same device.
  EXPECT_EQ(tracker.acquire(deviceOf("2001:db8:1:2:aaaa::1"), 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.count(600s), 1u);
  ASSERT_EQ(tracker.acquire(deviceOf("192.0.2.7"), 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(deviceOf("::ffff:192.0.2.7"), 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(deviceOf("2001:db8:1:3::10"), 2, 600s), Admission::Refused);
  std::vector<std::string> texts;
  for (const auto& device : tracker.devices(600s)) {
    texts.push_back(DeviceTracker::keyText(device.key));
  }
  std::sort(texts.begin(), texts.end());
  EXPECT_EQ(texts, (std::vector<std::string>{"192.0.2.7", "2001:db8:1:2::/64"}));
}

TEST(DeviceTrackerTest, WithoutALimitTheTrackerHoldsAtMostItsCapacity) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  auto keyOf = [](uint32_t i) { return std::string(reinterpret_cast<const char*>(&i), 4); };
  const size_t cap = DeviceTracker::kMinCapacity;
  // cap devices that ended, one a second: the oldest makes room for each new one.
  for (uint32_t i = 0; i < cap; ++i) {
    ASSERT_EQ(tracker.acquire(keyOf(i), 0, 3600s), Admission::Counted);
    tracker.release(keyOf(i));
    clock.now += 1s;
  }
  EXPECT_EQ(tracker.count(3600s), cap);
  ASSERT_EQ(tracker.acquire(keyOf(1000), 0, 3600s), Admission::Counted);
  EXPECT_EQ(tracker.count(3600s), cap);
  for (const auto& device : tracker.devices(3600s)) EXPECT_NE(device.key, keyOf(0));
  // All of them active: a new device is relayed but not counted (and its end changes nothing).
  for (uint32_t i = 1; i < cap; ++i) ASSERT_EQ(tracker.acquire(keyOf(i), 0, 3600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(keyOf(2000), 0, 3600s), Admission::Uncounted);
  EXPECT_EQ(tracker.count(3600s), cap);
  // A limit above the capacity raises it.
  DeviceTracker big(clock.fn());
  for (uint32_t i = 0; i < cap + 10; ++i) {
    ASSERT_EQ(big.acquire(keyOf(i), cap + 10, 600s), Admission::Counted) << i;
  }
  EXPECT_EQ(big.acquire(keyOf(5000), cap + 10, 600s), Admission::Refused);
}

TEST(DeviceTrackerTest, LeasesReleaseAndOutliveTheirUser) {
  ManualClock clock;
  auto user = std::make_unique<RelayUser>();
  user->live->devices = std::make_shared<DeviceTracker>(clock.fn());
  user->max_devices = 1;
  user->device_window = std::chrono::seconds(0);
  std::optional<DeviceLease> admitted = user->admitDevice(deviceOf("10.1.1.1"));
  ASSERT_TRUE(admitted.has_value());
  EXPECT_TRUE(admitted->held());
  DeviceLease first = *std::move(admitted);
  EXPECT_FALSE(user->admitDevice(deviceOf("10.1.1.2")).has_value());
  const std::shared_ptr<DeviceTracker> tracker = user->live->devices;
  user.reset();  // the table let go of the user; the lease keeps the tracker
  DeviceLease moved = std::move(first);
  EXPECT_EQ(tracker->count(std::chrono::seconds(0)), 1u);
  moved.reset();
  EXPECT_EQ(tracker->count(std::chrono::seconds(0)), 0u);
}

// Workers start and end sessions of their devices while the control API and the exporter read:
// the limit holds across threads and every lease comes back.
TEST(DeviceTrackerTest, WorkersAndReadersOnThreads) {
  auto tracker = std::make_shared<DeviceTracker>();
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  constexpr uint32_t kLimit = 3;
  std::atomic<bool> over_limit{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const uint32_t ip = 0x0A000000u + static_cast<uint32_t>((t * 7 + i) % 5);
        const std::string key(reinterpret_cast<const char*>(&ip), 4);
        switch (tracker->acquire(key, kLimit, std::chrono::seconds(0))) {
          case Admission::Counted:
            if (tracker->count(std::chrono::seconds(0)) > kLimit) over_limit = true;
            tracker->release(key);
            break;
          case Admission::Refused:
            ++refused;
            break;
          case Admission::Uncounted:
            over_limit = true;  // not with a limit
            break;
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (tracker->devices(std::chrono::seconds(0)).size() > kLimit) over_limit = true;
    }
  });
  for (std::thread& thread : threads) thread.join();
  EXPECT_FALSE(over_limit);
  EXPECT_EQ(tracker->count(std::chrono::seconds(0)), 0u);  // every session ended
}

// Issue 19 §2: the other replicas' devices (by id under the cluster's key) count against
// max_devices with this server's; a device they count already is no new device of the user.
TEST(DeviceTrackerTest, OtherReplicasDevicesCountAgainstTheLimit) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  const DeviceIdsPtr ids = DeviceIds::fromSecret("cluster");
  const std::string a = deviceOf("10.0.0.1"), b = deviceOf("10.0.0.2"), c = deviceOf("10.0.0.3");
  // Another replica has a and b.
  tracker.setRemote(ids, {ids->id(a), ids->id(b)});
  EXPECT_EQ(tracker.count(600s), 0u);  // this server's
  EXPECT_EQ(tracker.remoteOnly(600s), (std::vector<std::string>{std::min(ids->id(a), ids->id(b)),
                                                                std::max(ids->id(a), ids->id(b))}));
  // c would be the third device of the user: refused at 2, admitted at 3.
  EXPECT_EQ(tracker.acquire(c, 2, 600s), Admission::Refused);
  // a is counted elsewhere: admitted even at the limit (the user's devices stay a and b).
  EXPECT_EQ(tracker.acquire(a, 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.remoteOnly(600s), std::vector<std::string>{ids->id(b)});
  EXPECT_EQ(tracker.ids(ids, 600s), std::vector<std::string>{ids->id(a)});
  EXPECT_EQ(tracker.acquire(c, 2, 600s), Admission::Refused);
  EXPECT_EQ(tracker.acquire(c, 3, 600s), Admission::Counted);
  // Over the limit together (two replicas admitted at once, within one sync): the devices
  // counted keep working, a new one is refused.
  tracker.release(c);
  EXPECT_EQ(tracker.acquire(c, 2, 600s), Admission::Counted);
  EXPECT_EQ(tracker.acquire(deviceOf("10.0.0.4"), 2, 600s), Admission::Refused);
  // The other replica's devices ended: room again.
  tracker.setRemote(ids, {});
  EXPECT_TRUE(tracker.remoteOnly(600s).empty());
  EXPECT_EQ(tracker.acquire(deviceOf("10.0.0.4"), 3, 600s), Admission::Counted);
  // Without a limit the others' devices change nothing.
  tracker.setRemote(ids, {ids->id(deviceOf("10.0.0.9"))});
  EXPECT_EQ(tracker.acquire(deviceOf("10.0.0.5"), 0, 600s), Admission::Counted);
}

TEST(DeviceTrackerTest, PublishedIdsFollowTheWindowAndTheKey) {
  ManualClock clock;
  DeviceTracker tracker(clock.fn());
  const std::string a = deviceOf("10.0.0.1"), b = deviceOf("10.0.0.2");
  ASSERT_EQ(tracker.acquire(a, 0, 60s), Admission::Counted);
  ASSERT_EQ(tracker.acquire(b, 0, 60s), Admission::Counted);
  const DeviceIdsPtr first = DeviceIds::fromSecret("one");
  std::vector<std::string> want{first->id(a), first->id(b)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(tracker.ids(first, 60s), want);
  // b ended; past the window it is no longer published.
  tracker.release(b);
  clock.now += 59s;
  EXPECT_EQ(tracker.ids(first, 60s).size(), 2u);
  clock.now += 1s;
  EXPECT_EQ(tracker.ids(first, 60s), std::vector<std::string>{first->id(a)});
  // Another key (the cluster's replaced a per-process one): ids under it, none cached from the
  // old one.
  const DeviceIdsPtr second = DeviceIds::fromSecret("two");
  EXPECT_EQ(tracker.ids(second, 60s), std::vector<std::string>{second->id(a)});
  tracker.setRemote(second, {second->id(a)});
  EXPECT_TRUE(tracker.remoteOnly(60s).empty());  // a is this server's too
  // No key: nothing to compare with, the set is dropped.
  tracker.setRemote(nullptr, {"0123456789abcdef"});
  EXPECT_TRUE(tracker.remoteOnly(60s).empty());
  EXPECT_EQ(tracker.acquire(b, 1, 60s), Admission::Refused);  // a alone fills the limit
}

// The store's thread replaces the other replicas' devices and reads the ids while workers
// admit devices: the cluster's limit holds whenever the remote set is stable.
TEST(DeviceTrackerTest, RemoteSetsChangeWhileWorkersAdmit) {
  auto tracker = std::make_shared<DeviceTracker>();
  const DeviceIdsPtr ids = DeviceIds::fromSecret("cluster");
  auto keyOf = [](uint32_t i) { return std::string(reinterpret_cast<const char*>(&i), 4); };
  constexpr uint32_t kLimit = 3;
  std::atomic<bool> stop{false};
  std::atomic<bool> over_limit{false};
  // Two devices elsewhere, one of them also one of the workers' (key 1); set before the workers
  // start, then replaced by sets of the same shape.
  tracker->setRemote(ids, {ids->id(keyOf(1)), ids->id(keyOf(100))});
  std::thread store([&] {
    for (uint32_t round = 0; !stop; ++round) {
      tracker->setRemote(ids, {ids->id(keyOf(1)), ids->id(keyOf(100 + round % 3))});
      if (tracker->ids(ids, std::chrono::seconds(0)).size() > kLimit) over_limit = true;
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string key = keyOf(static_cast<uint32_t>((t + i) % 4));
        if (tracker->acquire(key, kLimit, std::chrono::seconds(0)) == Admission::Counted) {
          // Each remote set holds one device that is not the workers': at most two of theirs.
          if (tracker->count(std::chrono::seconds(0)) > kLimit - 1) over_limit = true;
          tracker->release(key);
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  stop = true;
  store.join();
  EXPECT_FALSE(over_limit);
  EXPECT_EQ(tracker->count(std::chrono::seconds(0)), 0u);
}

TEST(DeviceTrackerTest, KeyTextOfOtherSizesIsEmpty) {
  EXPECT_EQ(DeviceTracker::keyText(""), "");
  EXPECT_EQ(DeviceTracker::keyText(std::string(16, 'x')), "");
}

}  // namespace
}  // namespace shadowrelay::relay
