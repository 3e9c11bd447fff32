// SPDX-License-Identifier: Apache-2.0
// The JSON config file (relay/config): parseConfig for a role picked by the input, with `-c`
// naming a file that holds the rest of the input. Bad files are errors naming the field, never
// a crash. What parses also goes through validateConfig, and then through describe() and the
// --check-config report, which must not depend on any secret: the same config with every
// password and key replaced by another value gives the same text (so neither can leak one).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "relay/config.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

/// The file -c names: an in-memory file rewritten for each input.
class ConfigFile {
 public:
  ConfigFile() : fd_(::memfd_create("config.json", MFD_CLOEXEC)) {
    SR_FUZZ_CHECK(fd_ >= 0);
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& write(std::span<const uint8_t> text) {
    SR_FUZZ_CHECK(::ftruncate(fd_, 0) == 0);
    SR_FUZZ_CHECK(::pwrite(fd_, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()));
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

/// Another value of the same kind: empty stays empty (a secret's presence may show).
std::string replaced(const std::string& secret) { return secret.empty() ? "" : secret + "~x"; }

relay::Config withOtherSecrets(relay::Config c) {
  c.password = replaced(c.password);
  c.key = replaced(c.key);
  for (relay::ConfigUser& u : c.users) {
    u.password = replaced(u.password);
    u.key = replaced(u.key);
  }
  return c;
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  static ConfigFile file;
  const relay::Role roles[] = {relay::Role::Server, relay::Role::Local, relay::Role::Tunnel};
  const relay::Role role = roles[in.pick(3)];
  const std::string& path = file.write(in.rest());
  const char* argv[] = {"-c", path.c_str()};
  const absl::StatusOr<relay::Config> config = relay::parseConfig(role, 2, argv);
  if (!config.ok()) {
    SR_FUZZ_CHECK(!config.status().message().empty());
    return;
  }
  SR_FUZZ_CHECK(config->role == role);
  (void)relay::validateConfig(*config);
  const relay::Config other = withOtherSecrets(*config);
  SR_FUZZ_CHECK(relay::describe(*config) == relay::describe(other));
  SR_FUZZ_CHECK(relay::checkReport(*config) == relay::checkReport(other));
}
