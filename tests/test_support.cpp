#include "tests/test_support.h"

#include <atomic>
#include <cstdio>
#include <unistd.h>

namespace flashtts::test {

std::filesystem::path testdata_dir() {
  std::filesystem::path p = FLASHTTS_TESTDATA;
  std::error_code ec;
  if (!std::filesystem::is_directory(p, ec)) return {};
  return p;
}

std::filesystem::path binary_dir() { return FLASHTTS_BINARY_DIR; }

std::filesystem::path scratch_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  auto p = std::filesystem::temp_directory_path() /
           ("flashtts-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

int run_command(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (out) out->append(buf, n);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace flashtts::test
