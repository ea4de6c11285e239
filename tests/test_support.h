// Helpers shared by the GoogleTest programs: where the shared test data and
// the built programs are, and scratch folders.
//
// Thread contract: call from the test's main thread.
#pragma once

#include <filesystem>
#include <string>

namespace flashtts::test {

// ../shared/testdata, or an empty path when it is absent (then GTEST_SKIP).
std::filesystem::path testdata_dir();

// The CMake build folder (holds flashtts and the flashtts-* tools).
std::filesystem::path binary_dir();

// A fresh, empty folder under the system temp dir, unique per call.
std::filesystem::path scratch_dir(const std::string& tag);

// Runs a shell command; returns its exit status and appends stdout to *out.
int run_command(const std::string& cmd, std::string* out);

}  // namespace flashtts::test

#define FLASHTTS_REQUIRE_TESTDATA()                                             \
  do {                                                                          \
    if (flashtts::test::testdata_dir().empty())                                 \
      GTEST_SKIP() << "../shared/testdata is absent on this machine; skipped";  \
  } while (0)
