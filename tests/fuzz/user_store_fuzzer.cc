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

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "api/users/user_store.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

namespace users = api::users;

/// `body` in the store's file format, with the SHA-256 of its compact text as the store
/// computes it; the body as is when it is not a JSON object.
std::string wrap(absl::string_view body_text) {
  const auto body = nlohmann::json::parse(body_text.begin(), body_text.end(), nullptr, false);
  if (body.is_discarded()) return std::string(body_text);
  std::string canonical;
  try {
    canonical = body.dump();
  } catch (const nlohmann::json::exception&) {  // invalid UTF-8
    return std::string(body_text);
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

/// A store file as the input describes it: its text as is, or a body that gets the file format
/// and its true checksum around it (so that the fuzzer gets past the checksum: a random file
/// never has the right one).
struct FileSpec {
  std::string text;
  bool wrapped = false;

  /// The file, with every `from` in `text` replaced by `to` first (before wrapping).
  std::string materialize(absl::string_view from = "", absl::string_view to = "") const {
    const std::string t = from.empty() ? text : absl::StrReplaceAll(text, {{from, to}});
    return wrapped ? wrap(t) : t;
  }
};

/// The passwords and keys of the users in `text` that a plain text replacement can change
/// without touching anything else: printable, no JSON escapes, at least 6 bytes, and found in
/// the text only where a password or key holds it.
std::vector<std::string> replaceableSecrets(const std::string& text) {
  const auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  std::vector<std::string> secrets;
  const auto walk = [&](const nlohmann::json& j, const auto& self, bool in_user) -> void {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (in_user && (it.key() == "password" || it.key() == "key") && it->is_string()) {
          secrets.push_back(it->get<std::string>());
        } else {
          self(*it, self, false);
        }
      }
    } else if (j.is_array()) {
      for (const auto& e : j) self(e, self, true);  // an array's objects may be users
    }
  };
  if (!doc.is_discarded()) walk(doc, walk, false);
  std::vector<std::string> out;
  for (const std::string& secret : secrets) {
    const bool plain = secret.size() >= 6 && std::all_of(secret.begin(), secret.end(), [](char c) {
                         return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
                       });
    if (!plain) continue;
    size_t in_text = 0;
    for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 1)) {
      ++in_text;
    }
    if (in_text == static_cast<size_t>(std::count(secrets.begin(), secrets.end(), secret))) {
      out.push_back(secret);
    }
  }
  return out;
}

/// Another secret of the same kind and length (letters ROT13, digits + 5): base64 stays base64
/// of the same length, a password stays a password.
std::string canary(const std::string& secret) {
  std::string out = secret;
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>('a' + (c - 'a' + 13) % 26);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>('A' + (c - 'A' + 13) % 26);
    if (c >= '0' && c <= '9') c = static_cast<char>('0' + (c - '0' + 5) % 10);
  }
  return out;
}

/// No password or key of `files` leaks into the message `message_of` makes of them (an error or
/// a warning the server logs). A message may contain a secret's text for another reason (a
/// password "start with no users" is in the loader's advice), so a suspect is replaced by a
/// canary of its kind: a message that quotes secrets quotes the canary.
template <typename MessageOf>
void checkNoLeak(const std::vector<const FileSpec*>& files, MessageOf message_of) {
  std::vector<std::string> texts;
  for (const FileSpec* f : files) texts.push_back(f->materialize());
  const std::string message = message_of(texts);
  for (const FileSpec* f : files) {
    for (const std::string& secret : replaceableSecrets(f->text)) {
      const std::string other = canary(secret);
      if (message.find(secret) == std::string::npos || other == secret) continue;
      std::vector<std::string> replaced;
      for (const FileSpec* g : files) replaced.push_back(g->materialize(secret, other));
      SR_FUZZ_CHECK(message_of(replaced).find(other) == std::string::npos);
    }
  }
}

std::string decodeMessage(const std::vector<std::string>& texts) {
  const absl::StatusOr<users::StoreContents> c = users::decodeStore(texts[0]);
  return c.ok() ? "" : std::string(c.status().message());
}

/// decode(encode(x)) == x for what decoded.
void checkRoundTrip(const users::StoreContents& contents) {
  const absl::StatusOr<std::string> text = users::encodeStore(contents);
  if (!text.ok()) return;  // a string that is not UTF-8 cannot be written: an error, not a crash
  const absl::StatusOr<users::StoreContents> back = users::decodeStore(*text);
  SR_FUZZ_CHECK(back.ok());
  SR_FUZZ_CHECK(*back == contents);
}

/// A file from the input: missing, wrapped or as is.
std::optional<FileSpec> readFile(FuzzInput& in) {
  const size_t kind = in.pick(3);
  if (kind == 0) return std::nullopt;
  const std::span<const uint8_t> bytes = in.piece(4096);
  return FileSpec{std::string(bytes.begin(), bytes.end()), kind == 1};
}

/// A state directory of this process.
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

/// UserStore::load() of a state directory holding `main` (users.json) and `prev`
/// (users.json.prev), each when given.
absl::StatusOr<users::UserStore::Loaded> load(const std::optional<std::string>& main,
                                              const std::optional<std::string>& prev,
                                              uint64_t* generation) {
  const std::string& dir = stateDir();
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::filesystem::remove(entry.path());
  }
  // 0600 as the store writes them (a file others can read is made 0600 with a warning).
  const auto put = [&dir](absl::string_view name, const std::optional<std::string>& text) {
    if (!text) return;
    const std::string path = dir + "/" + std::string(name);
    std::ofstream(path, std::ios::binary) << *text;
    std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
  };
  put(users::UserStore::kFileName, main);
  put(users::UserStore::kPreviousFileName, prev);
  auto store = users::UserStore::open(dir);
  SR_FUZZ_CHECK(store.ok());
  auto loaded = (*store)->load();
  *generation = (*store)->generation();
  return loaded;
}

void checkLoad(FuzzInput& in) {
  const std::optional<FileSpec> main_spec = readFile(in);
  const std::optional<FileSpec> prev_spec = readFile(in);
  const auto text = [](const std::optional<FileSpec>& f) {
    return f ? std::optional(f->materialize()) : std::nullopt;
  };
  const std::optional<std::string> main = text(main_spec);
  const std::optional<std::string> prev = text(prev_spec);
  uint64_t generation = 0;
  const absl::StatusOr<users::UserStore::Loaded> loaded = load(main, prev, &generation);

  const auto decoded = [](const std::optional<std::string>& t) {
    return t ? std::optional(users::decodeStore(*t)) : std::nullopt;
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
  if (loaded.ok()) SR_FUZZ_CHECK(generation == loaded->contents.generation);

  std::vector<const FileSpec*> present;
  for (const auto* f : {&main_spec, &prev_spec}) {
    if (*f) present.push_back(&**f);
  }
  checkNoLeak(present, [&](const std::vector<std::string>& texts) {
    // texts[] holds the present files in order: main first when there is one.
    std::optional<std::string> m;
    std::optional<std::string> p;
    if (main_spec) m = texts[0];
    if (prev_spec) p = texts[main_spec ? 1 : 0];
    uint64_t unused = 0;
    const auto l = load(m, p, &unused);
    return l.ok() ? l->warning : std::string(l.status().message());
  });
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
  const FileSpec file{std::string(rest.begin(), rest.end()), mode == 1};
  const absl::StatusOr<users::StoreContents> contents = users::decodeStore(file.materialize());
  if (contents.ok()) {
    checkRoundTrip(*contents);
  } else {
    checkNoLeak({&file}, decodeMessage);
  }
}
