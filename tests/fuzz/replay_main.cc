// SPDX-License-Identifier: Apache-2.0
// The main() of a fuzz target when it is built as a test (gcc, every configuration of
// ./dev test) instead of a libFuzzer binary: it runs LLVMFuzzerTestOneInput over each file of
// the corpus directories given as arguments (the seeds and the regression inputs of crashes
// found), and over truncations of each, which a parser that reads past its input fails under
// ASan. Arguments starting with '-' are libFuzzer flags and are ignored.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// Every truncation of a short input, and this many evenly spaced ones of a longer one.
constexpr size_t kAllPrefixesUpTo = 512;
constexpr size_t kSpacedPrefixes = 64;

std::vector<size_t> prefixLengths(size_t size) {
  std::vector<size_t> out;
  if (size <= kAllPrefixesUpTo) {
    for (size_t n = 0; n < size; ++n) out.push_back(n);
  } else {
    for (size_t i = 0; i < kSpacedPrefixes; ++i) out.push_back(size * i / kSpacedPrefixes);
  }
  return out;
}

bool runFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  std::fprintf(stderr, "replaying %s\n", path.c_str());  // the last one named failed
  LLVMFuzzerTestOneInput(data.data(), data.size());
  for (size_t n : prefixLengths(data.size())) {
    // A copy of exactly n bytes, so that ASan sees a read past the end.
    const std::vector<uint8_t> prefix(data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
    LLVMFuzzerTestOneInput(prefix.data(), prefix.size());
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.starts_with("-")) continue;
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.push_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "no corpus inputs found in the arguments\n");
    return 1;
  }
  for (const auto& file : files) {
    if (!runFile(file)) return 1;
  }
  std::printf("replayed %zu inputs and their truncations\n", files.size());
  return 0;
}
