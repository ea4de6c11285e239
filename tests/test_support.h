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

#include "runtime/config.h"

namespace flashtts::test {

// A tiny random-weight Qwen2 policy and Qwen2 PRM written once per test
// process by flashtts-mkmodel: <dir>/policy and <dir>/prm.
std::filesystem::path tiny_models();

// A configuration of the whole pipeline on tiny_models(): actors over
// inproc://, clients over `client_endpoint`, short search defaults.
Config tiny_pipeline_config(const std::string& client_endpoint);

// A TCP port that was free a moment ago on 127.0.0.1.
int free_tcp_port();

}  // namespace flashtts::test
