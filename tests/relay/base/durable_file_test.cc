// SPDX-License-Identifier: Apache-2.0
#include "relay/base/durable_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::relay {
namespace {

using testing::readText;
using testing::TempDir;
using testing::writeText;

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::vector<std::string> filesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  return names;
}

TEST(DurableFileTest, WritesTheContentsWithMode0600AndNoTempFile) {
  TempDir dir;
  const std::string path = dir.file("secret");
  ASSERT_TRUE(writeFileDurably(path, "s3cret\n").ok());
  EXPECT_EQ(readText(path), "s3cret\n");
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(filesIn(dir.path()), std::vector<std::string>{"secret"});
}

TEST(DurableFileTest, ModeIsExactWhateverTheUmask) {
  TempDir dir;
  const mode_t old_umask = ::umask(077);
  const absl::Status s = writeFileDurably(dir.file("shared"), "x", 0644);
  ::umask(old_umask);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(modeOf(dir.file("shared")), 0644u);
}

TEST(DurableFileTest, ReplacesAnExistingFileAndItsMode) {
  TempDir dir;
  const std::string path = dir.file("users.json");
  writeText(path, "old contents, longer than the new ones");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(writeFileDurably(path, "new").ok());
  EXPECT_EQ(readText(path), "new");
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(filesIn(dir.path()), std::vector<std::string>{"users.json"});
}

TEST(DurableFileTest, ReplacesAStaleTempFileOfACrashedWriter) {
  TempDir dir;
  const std::string path = dir.file("f");
  writeText(path + ".tmp", "half a wri");
  ASSERT_EQ(::chmod((path + ".tmp").c_str(), 0666), 0);
  ASSERT_TRUE(writeFileDurably(path, "whole").ok());
  EXPECT_EQ(readText(path), "whole");
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// O_NOFOLLOW|O_EXCL: a symbolic link planted where the temporary file goes (by another user of
// a shared directory) is never written through.
TEST(DurableFileTest, ASymlinkInTheTempFilesPlaceIsNotFollowed) {
  TempDir dir;
  const std::string victim = dir.file("victim");
  writeText(victim, "untouched");
  const std::string path = dir.file("secret");
  std::filesystem::create_symlink(victim, path + ".tmp");
  ASSERT_TRUE(writeFileDurably(path, "new secret").ok());
  EXPECT_EQ(readText(victim), "untouched");
  EXPECT_EQ(readText(path), "new secret");
  EXPECT_FALSE(std::filesystem::is_symlink(path));
  EXPECT_EQ(modeOf(path), 0600u);
}

TEST(DurableFileTest, UnwritableDirectoryFailsNamingThePathAndLeavesNothing) {
  TempDir dir;
  std::string locked = dir.file("locked");
  ASSERT_TRUE(std::filesystem::create_directory(locked));
  writeText(locked + "/f", "old");
  ASSERT_EQ(::chmod(locked.c_str(), 0555), 0);
  const bool permissions_bind = ::access(locked.c_str(), W_OK) != 0;
  if (!permissions_bind) {
    // Root writes anywhere the mode bits forbid; sysfs refuses new files to root as well.
    locked = "/sys";
    if (::access("/sys", F_OK) != 0 || ::access("/sys/f.tmp", F_OK) == 0) {
      GTEST_SKIP() << "no directory this user cannot write to";
    }
  }
  const absl::Status s = writeFileDurably(locked + "/f", "new");
  if (permissions_bind) ::chmod(locked.c_str(), 0755);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(s.message(), locked + "/f.tmp")) << s;
  EXPECT_FALSE(std::filesystem::exists(locked + "/f.tmp"));
  if (permissions_bind) {
    EXPECT_EQ(filesIn(locked), std::vector<std::string>{"f"});
    EXPECT_EQ(readText(locked + "/f"), "old");
  }
}

TEST(DurableFileTest, MissingDirectoryFailsNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/f");
  const absl::Status s = writeFileDurably(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(s.message(), path)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "No such file")) << s;
}

// The temporary file exists when the rename fails (the path is a non-empty directory): it must
// go, and the directory must stay.
TEST(DurableFileTest, FailedRenameRemovesTheTempFile) {
  TempDir dir;
  const std::string path = dir.file("d");
  ASSERT_TRUE(std::filesystem::create_directory(path));
  writeText(path + "/keep", "k");
  const absl::Status s = writeFileDurably(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(s.message(), "cannot rename")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), path)) << s;
  EXPECT_EQ(filesIn(dir.path()), std::vector<std::string>{"d"});
  EXPECT_EQ(readText(path + "/keep"), "k");
}

// What tests/api/user_registry_test does to make saves fail: a directory in the temp file's
// place. It is not removed.
TEST(DurableFileTest, DirectoryInTheTempFilesPlaceFailsAndStays) {
  TempDir dir;
  const std::string path = dir.file("f");
  ASSERT_TRUE(std::filesystem::create_directory(path + ".tmp"));
  const absl::Status s = writeFileDurably(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(s.message(), path + ".tmp")) << s;
  EXPECT_TRUE(std::filesystem::is_directory(path + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(DurableFileTest, StagedFileIsRemovedUnlessCommitted) {
  TempDir dir;
  const std::string path = dir.file("f");
  writeText(path, "old");
  {
    auto staged = StagedFile::write(path, "new", 0600);
    ASSERT_TRUE(staged.ok()) << staged.status();
    EXPECT_EQ(readText(staged->tempPath()), "new");
    EXPECT_EQ(readText(path), "old");
  }
  EXPECT_EQ(filesIn(dir.path()), std::vector<std::string>{"f"});
  EXPECT_EQ(readText(path), "old");

  auto staged = StagedFile::write(path, "new", 0600);
  ASSERT_TRUE(staged.ok()) << staged.status();
  StagedFile moved = *std::move(staged);
  ASSERT_TRUE(moved.commit().ok());
  EXPECT_TRUE(moved.committed());
  EXPECT_TRUE(moved.commit().ok());  // a second commit does nothing
  EXPECT_EQ(readText(path), "new");
  EXPECT_EQ(filesIn(dir.path()), std::vector<std::string>{"f"});
}

TEST(DurableFileTest, BareFileNameSyncsTheCurrentDirectory) {
  TempDir dir;
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  const absl::Status s = writeFileDurably("plain", "p");
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(readText(dir.file("plain")), "p");
}

}  // namespace
}  // namespace shadowrelay::relay
