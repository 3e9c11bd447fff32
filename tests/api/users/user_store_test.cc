// SPDX-License-Identifier: Apache-2.0
#include "api/users/user_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::api::users {
namespace {

using shadowrelay::testing::readText;
using shadowrelay::testing::TempDir;
using shadowrelay::testing::writeText;

User makeUser(const std::string& name, uint16_t port) {
  User u;
  u.name = name;
  u.method = "aes-256-gcm";
  u.password = "secret-" + name;
  u.port = port;
  u.enabled = true;
  u.limits = {10, 1 << 20};
  u.created = absl::FromUnixNanos(1700000000123456789);
  u.traffic = {1, 2, 3, 4};
  u.source = UserSource::Api;
  return u;
}

StoreContents sample() {
  StoreContents c;
  c.default_method = "aes-128-gcm";
  c.users.push_back(makeUser("alice", 0));
  User bob = makeUser("bob", 9000);
  bob.password.clear();
  bob.method = "aes-128-gcm";
  bob.key = "AAECAwQFBgcICQoLDA0ODw==";  // 16 bytes
  bob.enabled = false;
  bob.limits = {};
  bob.traffic = {uint64_t{1} << 62, 0, 0, 0};
  bob.plugin = "obfs-server";
  bob.plugin_opts = "obfs=http;obfs-host=example.com";
  c.users.push_back(bob);
  return c;
}

std::unique_ptr<UserStore> openStore(const std::string& dir) {
  auto store = UserStore::open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// Saves `count` generations: generation g holds g users.
void saveGenerations(const std::string& dir, int count) {
  auto store = openStore(dir);
  ASSERT_TRUE(store->load().ok());
  for (int g = 1; g <= count; ++g) {
    StoreContents c;
    for (int i = 0; i < g; ++i) {
      c.users.push_back(makeUser(absl::StrCat("user", i), 0));
    }
    ASSERT_TRUE(store->save(c).ok());
  }
}

TEST(UserStoreTest, EncodeDecodeRoundTrip) {
  StoreContents c = sample();
  c.generation = 7;
  auto text = encodeStore(c);
  ASSERT_TRUE(text.ok()) << text.status();
  auto back = decodeStore(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
}

TEST(UserStoreTest, RoundTripWith2022UsersAndIdentityKeys) {
  StoreContents c = sample();
  User carol = makeUser("carol", 0);
  carol.method = "2022-blake3-aes-128-gcm";
  carol.password = "EBESExQVFhcYGRobHB0eHw==";  // the uPSK
  c.users.push_back(carol);
  User dave = makeUser("dave", 9100);
  dave.method = "2022-blake3-aes-256-gcm";
  dave.password.clear();
  dave.key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  c.users.push_back(dave);
  c.default_method = "2022-blake3-aes-128-gcm";
  c.identity_keys.push_back(
      {9100, "2022-blake3-aes-256-gcm", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", ""});
  c.identity_keys.push_back({0, "2022-blake3-aes-128-gcm", "", std::string(32, 'a')});
  auto text = encodeStore(c);
  ASSERT_TRUE(text.ok()) << text.status();
  auto back = decodeStore(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
}

// A store written before identity keys existed (no "identity_keys" in its body) loads as it
// was; a store without identity keys is still written in that form.
TEST(UserStoreTest, StoresWithoutIdentityKeysKeepTheirFormat) {
  const std::string old_file = R"({
  "body": {"default_method": "aes-256-gcm", "generation": 3, "users": [{
    "created": "2023-11-14T22:13:20+00:00", "enabled": true,
    "limits": {"data_quota_bytes": 0, "max_connections": 0}, "method": "aes-256-gcm",
    "name": "alice", "password": "secret-alice", "port": 0,
    "traffic": {"bytes_down": 2, "bytes_up": 1, "tcp_connections": 3, "udp_packets": 4}}]},
  "format": "shadowrelay-users",
  "sha256": "2667a650e7a8abe347a767f4d2fbe20e0c0ad687e3d29d91972677dd3ec9186b",
  "version": 1
})";
  auto loaded = decodeStore(old_file);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->generation, 3u);
  EXPECT_EQ(loaded->default_method, "aes-256-gcm");
  ASSERT_EQ(loaded->users.size(), 1u);
  EXPECT_EQ(loaded->users[0].password, "secret-alice");
  EXPECT_EQ(loaded->users[0].traffic, (TrafficCounters{1, 2, 3, 4}));
  EXPECT_TRUE(loaded->identity_keys.empty());
  auto again = encodeStore(*loaded);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(absl::StrContains(*again, "identity_keys"));
  EXPECT_EQ(*decodeStore(*again), *loaded);
}

// max_devices is written only when set, so stores of users without it keep their text, and a
// store written before it (StoresWithoutIdentityKeysKeepTheirFormat's file) loads it as 0.
TEST(UserStoreTest, MaxDevicesRoundTripsAndIsOptional) {
  StoreContents c = sample();
  c.users[0].limits.max_devices = 3;
  auto text = encodeStore(c);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(absl::StrContains(*text, "\"max_devices\": 3")) << *text;
  auto back = decodeStore(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(back->users[0].limits.max_devices, 3u);
  EXPECT_EQ(back->users[1].limits.max_devices, 0u);

  c.users[0].limits.max_devices = 0;
  text = encodeStore(c);
  ASSERT_TRUE(text.ok());
  EXPECT_FALSE(absl::StrContains(*text, "max_devices")) << *text;
}

// bytes_per_second (issue 18 §3) is written only when set, so that the users of a store that
// sets none keep their text, and is read back when present.
TEST(UserStoreTest, BytesPerSecondIsKeptAndWrittenOnlyWhenSet) {
  StoreContents c = sample();
  auto plain = encodeStore(c);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(absl::StrContains(*plain, "bytes_per_second"));
  c.users[0].limits.bytes_per_second = uint64_t{1} << 20;
  auto text = encodeStore(c);
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(absl::StrContains(*text, "\"bytes_per_second\": 1048576"));
  auto back = decodeStore(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(back->users[0].limits.bytes_per_second, uint64_t{1} << 20);
  EXPECT_EQ(back->users[1].limits.bytes_per_second, 0u);
}

TEST(UserStoreTest, BadIdentityKeysMakeTheFileBad) {
  const PortIdentityKey good{0, "2022-blake3-aes-128-gcm", "AAECAwQFBgcICQoLDA0ODw==", ""};
  struct Case {
    std::vector<PortIdentityKey> keys;
    const char* error;
  };
  const Case cases[] = {
      {{{0, "aes-128-gcm", good.key, ""}}, "identity_keys[0]: method: aes-128-gcm has no identity"},
      {{{0, "2022-blake3-chacha20-poly1305", good.key, ""}}, "has no identity headers"},
      {{{0, "2022-blake3-aes-256-gcm", good.key, ""}}, "identity_keys[0]: key: PSK: decodes to 16"},
      {{{0, good.method, "", ""}}, "give either key or key_hash"},
      {{{0, good.method, "", "ABC"}}, "key_hash: not 32 lower-case hex digits"},
      {{good, good}, "identity_keys[1]: a second key for its port"},
  };
  for (const Case& k : cases) {
    StoreContents c;
    c.identity_keys = k.keys;
    auto text = encodeStore(c);
    ASSERT_TRUE(text.ok());
    auto back = decodeStore(*text);
    ASSERT_FALSE(back.ok()) << k.error;
    EXPECT_TRUE(absl::StrContains(back.status().message(), k.error)) << back.status();
    EXPECT_FALSE(absl::StrContains(back.status().message(), good.key));  // no secret quoted
  }
}

TEST(UserStoreTest, ChecksumCatchesAnEditThatStillParses) {
  auto text = encodeStore(sample());
  ASSERT_TRUE(text.ok());
  std::string edited = *text;
  const size_t pos = edited.find("secret-alice");
  ASSERT_NE(pos, std::string::npos);
  edited[pos] = 'S';  // still valid JSON, different password
  auto back = decodeStore(edited);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(back.status().message(), "checksum")) << back.status();
  // The error never quotes a secret.
  EXPECT_FALSE(absl::StrContains(back.status().message(), "ecret-alice"));
}

TEST(UserStoreTest, DecodeRefusesTruncatedText) {
  auto text = encodeStore(sample());
  ASSERT_TRUE(text.ok());
  for (size_t len : {size_t{0}, size_t{1}, text->size() / 2, text->size() - 3}) {
    EXPECT_FALSE(decodeStore(text->substr(0, len)).ok()) << "length " << len;
  }
}

TEST(UserStoreTest, SaveAndLoadAcrossOpens) {
  TempDir dir;
  {
    auto store = openStore(dir.path());
    auto loaded = store->load();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_TRUE(loaded->contents.users.empty());  // first start
    EXPECT_TRUE(loaded->warning.empty());
    ASSERT_TRUE(store->save(sample()).ok());
    EXPECT_EQ(store->generation(), 1u);
    ASSERT_TRUE(store->save(sample()).ok());
    EXPECT_EQ(store->generation(), 2u);
  }
  auto store = openStore(dir.path());
  auto loaded = store->load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->warning.empty());
  StoreContents expected = sample();
  expected.generation = 2;
  EXPECT_EQ(loaded->contents, expected);
  // Secrets inside: owner-only file.
  struct stat st {};
  ASSERT_EQ(::stat(store->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The previous generation is kept next to it.
  auto prev = decodeStore(readText(store->previousPath()));
  ASSERT_TRUE(prev.ok()) << prev.status();
  EXPECT_EQ(prev->generation, 1u);
}

TEST(UserStoreTest, AStoreOthersCanReadIsMadeOwnerOnlyWithAWarning) {
  TempDir dir;
  saveGenerations(dir.path(), 2);
  const std::string path = absl::StrCat(dir.path(), "/", UserStore::kFileName);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto store = openStore(dir.path());
  auto loaded = store->load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->contents.users.size(), 2u);
  EXPECT_TRUE(absl::StrContains(loaded->warning, "readable by group or others (mode 0644)"))
      << loaded->warning;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(UserStoreTest, ASymbolicLinkInPlaceOfTheStoreIsRefused) {
  TempDir dir;
  TempDir elsewhere;
  saveGenerations(elsewhere.path(), 1);
  const std::string target = absl::StrCat(elsewhere.path(), "/", UserStore::kFileName);
  const std::string path = absl::StrCat(dir.path(), "/", UserStore::kFileName);
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  auto store = openStore(dir.path());
  auto loaded = store->load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), path)) << loaded.status();
}

TEST(UserStoreTest, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  auto first = openStore(dir.path());
  auto second = UserStore::open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(second.status().message(), dir.path()));
  first.reset();
  EXPECT_TRUE(UserStore::open(dir.path()).ok());  // the lock went with the first store
}

TEST(UserStoreTest, SaveBeforeLoadIsRefused) {
  TempDir dir;
  auto store = openStore(dir.path());
  EXPECT_EQ(store->save(sample()).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(UserStoreTest, TruncatedFileFallsBackToPreviousGeneration) {
  TempDir dir;
  saveGenerations(dir.path(), 3);
  const std::string main = dir.file("users.json");
  const std::string text = readText(main);
  writeText(main, text.substr(0, text.size() / 2));  // a torn write

  auto store = openStore(dir.path());
  auto loaded = store->load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->contents.generation, 2u);
  EXPECT_EQ(loaded->contents.users.size(), 2u);
  EXPECT_TRUE(absl::StrContains(loaded->warning, main)) << loaded->warning;
  EXPECT_TRUE(absl::StrContains(loaded->warning, "users.json.prev")) << loaded->warning;

  // The next save keeps the damaged file aside and never makes it "previous".
  StoreContents next;
  next.users.push_back(makeUser("carol", 0));
  ASSERT_TRUE(store->save(next).ok());
  EXPECT_EQ(store->generation(), 3u);
  EXPECT_EQ(readText(dir.file("users.json.corrupt")), text.substr(0, text.size() / 2));
  auto prev = decodeStore(readText(dir.file("users.json.prev")));
  ASSERT_TRUE(prev.ok());
  EXPECT_EQ(prev->generation, 2u);
  store.reset();
  auto again = openStore(dir.path())->load();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->warning.empty());
  ASSERT_EQ(again->contents.users.size(), 1u);
  EXPECT_EQ(again->contents.users[0].name, "carol");
}

TEST(UserStoreTest, CorruptFileFallsBackToPreviousGeneration) {
  TempDir dir;
  saveGenerations(dir.path(), 2);
  const std::string main = dir.file("users.json");
  std::string text = readText(main);
  const size_t pos = text.find("\"port\": 0");
  ASSERT_NE(pos, std::string::npos);
  text[pos + 8] = '7';  // bit rot that still parses
  writeText(main, text);
  auto loaded = openStore(dir.path())->load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->contents.generation, 1u);
  EXPECT_TRUE(absl::StrContains(loaded->warning, "checksum")) << loaded->warning;
}

TEST(UserStoreTest, MissingFileWithPreviousGenerationLoadsIt) {
  TempDir dir;
  saveGenerations(dir.path(), 2);
  std::filesystem::remove(dir.file("users.json"));
  auto loaded = openStore(dir.path())->load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->contents.generation, 1u);
  EXPECT_TRUE(absl::StrContains(loaded->warning, "missing")) << loaded->warning;
}

TEST(UserStoreTest, BothGenerationsCorruptIsAnErrorNamingTheFile) {
  TempDir dir;
  saveGenerations(dir.path(), 2);
  writeText(dir.file("users.json"), "{\"format\": \"shadowrelay-users\", \"ver");
  writeText(dir.file("users.json.prev"), "garbage");
  auto loaded = openStore(dir.path())->load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), dir.file("users.json")))
      << loaded.status();
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), dir.file("users.json.prev")))
      << loaded.status();
}

TEST(UserStoreTest, CorruptFileWithoutPreviousGenerationIsAnError) {
  TempDir dir;
  saveGenerations(dir.path(), 1);  // one save: no previous generation yet
  ASSERT_FALSE(std::filesystem::exists(dir.file("users.json.prev")));
  writeText(dir.file("users.json"), "");
  auto loaded = openStore(dir.path())->load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), dir.file("users.json")))
      << loaded.status();
}

TEST(UserStoreTest, SemanticallyInvalidUserMakesTheFileBad) {
  StoreContents c;
  User u = makeUser("alice", 0);
  u.method = "rc2-cfb";  // not a supported method
  c.users.push_back(u);
  auto text = encodeStore(c);
  ASSERT_TRUE(text.ok());
  auto back = decodeStore(*text);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(absl::StrContains(back.status().message(), "users[0]")) << back.status();
}

// Generation g holds (g % 5) + 1 users named "g<g>-<i>": a loaded file is complete only if its
// users match its own generation number.
StoreContents generationContents(uint64_t g) {
  StoreContents c;
  for (uint64_t i = 0; i < (g % 5) + 1; ++i) {
    User u = makeUser(absl::StrCat("g", g, "-", i), 0);
    u.traffic.bytes_up = g;
    c.users.push_back(u);
  }
  return c;
}

void expectComplete(const StoreContents& c) {
  if (c.generation == 0) {  // killed before its first save: still the empty first-start store
    EXPECT_TRUE(c.users.empty());
    return;
  }
  ASSERT_EQ(c.users.size(), (c.generation % 5) + 1) << "generation " << c.generation;
  for (size_t i = 0; i < c.users.size(); ++i) {
    EXPECT_EQ(c.users[i].name, absl::StrCat("g", c.generation, "-", i));
    EXPECT_EQ(c.users[i].traffic.bytes_up, c.generation);
  }
}

// A child process rewrites the store in a tight loop and is killed with SIGKILL at random
// moments; after every kill the store must load a complete generation from users.json, never
// going backwards.
TEST(UserStoreTest, SurvivesKillNineDuringWrites) {
  TempDir dir;
  std::mt19937 rng(20240229);
  std::uniform_int_distribution<int> delay_us(0, 30000);
  uint64_t last_generation = 0;
  int kills_mid_run = 0;
  for (int round = 0; round < 20; ++round) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(ready[0]);
      auto store = UserStore::open(dir.path());
      if (!store.ok()) {
        ::_exit(10);
      }
      auto loaded = (*store)->load();
      if (!loaded.ok()) {
        ::_exit(11);
      }
      (void)!::write(ready[1], "x", 1);
      for (int i = 0; i < 100000; ++i) {  // bounded: the parent kills it long before
        if (!(*store)->save(generationContents((*store)->generation() + 1)).ok()) {
          ::_exit(12);
        }
      }
      ::_exit(0);
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "child failed to open the store";
    ::close(ready[0]);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      ++kills_mid_run;
    } else {
      ASSERT_TRUE(WIFEXITED(status));
      ASSERT_EQ(WEXITSTATUS(status), 0) << "child failed in round " << round;
    }

    auto store = UserStore::open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    auto loaded = (*store)->load();
    ASSERT_TRUE(loaded.ok()) << "round " << round << ": " << loaded.status();
    EXPECT_TRUE(loaded->warning.empty()) << loaded->warning;  // users.json itself was good
    expectComplete(loaded->contents);
    EXPECT_GE(loaded->contents.generation, last_generation);
    last_generation = loaded->contents.generation;
  }
  std::cerr << "kill -9 test: 20 kills, " << last_generation << " generations written\n";
  EXPECT_EQ(kills_mid_run, 20);
  EXPECT_GE(last_generation, 5u) << "the child hardly wrote: the test proved little";
}

}  // namespace
}  // namespace shadowrelay::api::users
