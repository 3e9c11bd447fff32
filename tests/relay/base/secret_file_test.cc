// SPDX-License-Identifier: Apache-2.0
#include "relay/base/secret_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::relay {
namespace {

using testing::TempDir;
using testing::writeText;

constexpr uid_t kNobody = 65534;

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

void writeWithMode(const std::string& path, const std::string& text, mode_t mode) {
  writeText(path, text);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

TEST(SecretFileTest, ReadsAFileOnlyItsOwnerCanRead) {
  TempDir dir;
  for (const mode_t mode : {0600, 0400, 0700}) {
    writeWithMode(dir.file("token"), "s3cret\n", mode);
    auto text = readSecretFile(dir.file("token"), "control-token-file");
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, "s3cret\n");
  }
}

TEST(SecretFileTest, RefusesOursWhenGroupOrOthersHaveAnyAccess) {
  TempDir dir;
  const std::string path = dir.file("token");
  for (const mode_t mode : {0640, 0604, 0644, 0610, 0601, 0660, 0666}) {
    writeWithMode(path, "s3cret", mode);
    auto text = readSecretFile(path, "metrics-token-file");
    ASSERT_FALSE(text.ok()) << std::oct << mode;
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(text.status().message());
    // Names the option and the file, says what is wrong and how to fix it; never the secret.
    EXPECT_TRUE(absl::StartsWith(message, "metrics-token-file " + path + ": permissions 0"))
        << message;
    EXPECT_TRUE(absl::StrContains(message, "too open")) << message;
    EXPECT_TRUE(absl::StrContains(message, "chmod 600 " + path)) << message;
    EXPECT_FALSE(absl::StrContains(message, "s3cret")) << message;
  }
}

TEST(SecretFileTest, AnotherOwnersFileIsTheirsToProtect) {
  TempDir dir;
  const std::string path = dir.file("token");
  writeWithMode(path, "from-kubernetes", 0644);
  if (::chown(path.c_str(), kNobody, static_cast<gid_t>(-1)) != 0) {
    GTEST_SKIP() << "cannot give a file to another user (not root)";
  }
  // A root-owned Kubernetes secret shared with the pod's fsGroup is read (as ssh would).
  auto text = readSecretFile(path, "control-token-file");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "from-kubernetes");
}

TEST(SecretFileTest, FollowsSymlinksAndJudgesTheTarget) {
  TempDir dir;
  writeWithMode(dir.file("real"), "linked", 0600);
  std::filesystem::create_symlink(dir.file("real"), dir.file("link"));
  auto text = readSecretFile(dir.file("link"), "control-token-file");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "linked");
  ASSERT_EQ(::chmod(dir.file("real").c_str(), 0644), 0);
  EXPECT_FALSE(readSecretFile(dir.file("link"), "control-token-file").ok());
}

TEST(SecretFileTest, RefusesMissingFilesDirectoriesAndHugeFiles) {
  TempDir dir;
  auto missing = readSecretFile(dir.file("missing"), "control-token-file");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), dir.file("missing")));
  auto directory = readSecretFile(dir.path(), "control-token-file");
  ASSERT_FALSE(directory.ok());
  EXPECT_TRUE(absl::StrContains(directory.status().message(), "not a regular file"));
  writeWithMode(dir.file("huge"), std::string(kMaxSecretFileBytes + 1, 'x'), 0600);
  auto huge = readSecretFile(dir.file("huge"), "control-token-file");
  ASSERT_FALSE(huge.ok());
  EXPECT_TRUE(absl::StrContains(huge.status().message(), "larger than"));
}

TEST(PrivateDirectoryTest, CreatesAMissingDirectoryAndItsParents0700) {
  TempDir dir;
  const std::string state = dir.file("a/b/state");
  auto note = makePrivateDirectory(state, "state_dir");
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(*note, "");
  EXPECT_EQ(modeOf(state), 0700u);
}

TEST(PrivateDirectoryTest, TightensAnExistingDirectoryOfOurs) {
  TempDir dir;
  const std::string state = dir.file("state");
  ASSERT_EQ(::mkdir(state.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(state.c_str(), 0755), 0);
  auto note = makePrivateDirectory(state, "state_dir");
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(modeOf(state), 0700u);
  EXPECT_EQ(*note, "state_dir " + state + ": mode 0755 changed to 0700");
  note = makePrivateDirectory(state, "state_dir");  // nothing left to say
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(*note, "");
}

TEST(PrivateDirectoryTest, LeavesAnotherOwnersDirectoryAndSaysSo) {
  TempDir dir;
  const std::string state = dir.file("state");
  ASSERT_EQ(::mkdir(state.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(state.c_str(), 0777), 0);
  if (::chown(state.c_str(), kNobody, static_cast<gid_t>(-1)) != 0) {
    GTEST_SKIP() << "cannot give a directory to another user (not root)";
  }
  auto note = makePrivateDirectory(state, "state_dir");
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(modeOf(state), 0777u);
  EXPECT_TRUE(absl::StrContains(*note, "belongs to uid 65534")) << *note;
}

TEST(PrivateDirectoryTest, AFileInTheWayIsAnError) {
  TempDir dir;
  writeText(dir.file("state"), "not a directory");
  auto note = makePrivateDirectory(dir.file("state"), "state_dir");
  ASSERT_FALSE(note.ok());
  EXPECT_TRUE(absl::StrContains(note.status().message(), "state_dir " + dir.file("state")));
}

}  // namespace
}  // namespace shadowrelay::relay
