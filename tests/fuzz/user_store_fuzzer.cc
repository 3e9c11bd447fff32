// SPDX-License-Identifier: Apache-2.0
// The user store (api/users/user_store): what --state-dir keeps. The input is
//  0 a file's text for decodeStore, as is;
//  1 a body, wrapped in the file format with its true checksum (so that the fuzzer reaches
//    the field checks behind the checksum: a random file never has the right one);
//  2 the two files the loader reads (users.json and users.json.prev, each missing, raw or
//    wrapped), loaded by UserStore::load() from a state directory.
// Invariants: whatever decodes encodes back to a file that decodes to the same contents
// (decode(encode(x)) == x); load() returns users.json when it decodes, else users.json.prev
// with a warning, else an error (and nothing on a first start), exactly as decodeStore judges
// each file; no error or warning quotes a user's password or key.
#include <openssl/evp.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "api/users/user_store.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

namespace users = api::users;

/// `body` in the store's file format, with the SHA-256 of its compact text as the store
/// computes it; the body as is when it is not a JSON object.
std::string wrap(std::span<const uint8_t> body_text) {
  const auto body = nlohmann::json::parse(body_text.begin(), body_text.end(), nullptr, false);
  if (body.is_discarded()) return std::string(body_text.begin(), body_text.end());
  std::string canonical;
  try {
    canonical = body.dump();
  } catch (const nlohmann::json::exception&) {  // invalid UTF-8
    return std::string(body_text.begin(), body_text.end());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SR_FUZZ_CHECK(
      EVP_Digest(canonical.data(), canonical.size(), digest, &len, EVP_sha256(), nullptr) == 1);
  nlohmann::json doc = {{"format", "shadowrelay-users"},
                        {"version", 1},
                        {"body", body},
                        {"sha256", absl::BytesToHexString(absl::string_view(
                                       reinterpret_cast<const char*>(digest), len))}};
  return doc.dump();
}

/// The passwords and keys of the users in a store file's text, as far as it parses. Short
/// ones, and ones that also appear in another string of the file (a name, a method), could be
/// in a message for another reason and are left out.
std::vector<std::string> secretsIn(absl::string_view text) {
  const auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  std::vector<std::string> strings;
  std::vector<std::string> secrets;
  const auto walk = [&](const nlohmann::json& j, const auto& self, bool in_user) -> void {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        strings.push_back(it.key());
        if (in_user && (it.key() == "password" || it.key() == "key") && it->is_string()) {
          secrets.push_back(it->get<std::string>());
          continue;
        }
        self(*it, self, false);
      }
    } else if (j.is_array()) {
      for (const auto& e : j) self(e, self, true);  // an array's objects may be users
    } else if (j.is_string()) {
      strings.push_back(j.get<std::string>());
    }
  };
  if (!doc.is_discarded()) walk(doc, walk, false);
  std::vector<std::string> out;
  for (const std::string& secret : secrets) {
    if (secret.size() < 12) continue;
    bool elsewhere = false;
    for (const std::string& s : strings) elsewhere = elsewhere || s.find(secret) != s.npos;
    if (!elsewhere) out.push_back(secret);
  }
  return out;
}

/// No secret of `file` appears in `message` (an error or a warning the caller logs).
void checkNoSecrets(absl::string_view file, absl::string_view message) {
  for (const std::string& secret : secretsIn(file)) {
    SR_FUZZ_CHECK(message.find(secret) == absl::string_view::npos);
  }
}

/// decode(encode(x)) == x for what decoded.
void checkRoundTrip(const users::StoreContents& contents) {
  const absl::StatusOr<std::string> text = users::encodeStore(contents);
  if (!text.ok()) return;  // a string that is not UTF-8 cannot be written: an error, not a crash
  const absl::StatusOr<users::StoreContents> back = users::decodeStore(*text);
  SR_FUZZ_CHECK(back.ok());
  SR_FUZZ_CHECK(*back == contents);
}

std::optional<std::string> readFile(FuzzInput& in) {
  switch (in.pick(3)) {
    case 0:
      return std::nullopt;
    case 1:
      return wrap(in.piece(4096));
    default: {
      const std::span<const uint8_t> raw = in.piece(4096);
      return std::string(raw.begin(), raw.end());
    }
  }
}

/// A state directory of this process, emptied for each input.
const std::string& stateDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string d = std::string(tmp != nullptr ? tmp : "/tmp") + "/user_store_fuzz." +
                    std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

void checkLoad(FuzzInput& in) {
  const std::optional<std::string> main = readFile(in);
  const std::optional<std::string> prev = readFile(in);
  const std::string& dir = stateDir();
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::filesystem::remove(entry.path());
  }
  const auto put = [&dir](absl::string_view name, const std::optional<std::string>& text) {
    if (!text) return;
    std::ofstream(dir + "/" + std::string(name), std::ios::binary) << *text;
  };
  put(users::UserStore::kFileName, main);
  put(users::UserStore::kPreviousFileName, prev);
  auto store = users::UserStore::open(dir);
  SR_FUZZ_CHECK(store.ok());
  const absl::StatusOr<users::UserStore::Loaded> loaded = (*store)->load();

  const auto decoded = [](const std::optional<std::string>& text) {
    return text ? std::optional(users::decodeStore(*text)) : std::nullopt;
  };
  const auto main_decoded = decoded(main);
  const auto prev_decoded = decoded(prev);
  if (main_decoded && main_decoded->ok()) {
    SR_FUZZ_CHECK(loaded.ok() && loaded->warning.empty() && loaded->contents == **main_decoded);
  } else if (!main && !prev) {
    SR_FUZZ_CHECK(loaded.ok() && loaded->warning.empty() && loaded->contents.users.empty());
  } else if (prev_decoded && prev_decoded->ok()) {
    SR_FUZZ_CHECK(loaded.ok() && !loaded->warning.empty() && loaded->contents == **prev_decoded);
  } else {
    SR_FUZZ_CHECK(!loaded.ok());
  }
  const absl::string_view message =
      loaded.ok() ? absl::string_view(loaded->warning) : loaded.status().message();
  for (const auto& file : {main, prev}) {
    if (file) checkNoSecrets(*file, message);
  }
  if (loaded.ok()) SR_FUZZ_CHECK((*store)->generation() == loaded->contents.generation);
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  const size_t mode = in.pick(3);
  if (mode == 2) {
    checkLoad(in);
    return;
  }
  const std::span<const uint8_t> rest = in.rest();
  const std::string text = mode == 1 ? wrap(rest) : std::string(rest.begin(), rest.end());
  const absl::StatusOr<users::StoreContents> contents = users::decodeStore(text);
  if (contents.ok()) {
    checkRoundTrip(*contents);
  } else {
    checkNoSecrets(text, contents.status().message());
  }
}
