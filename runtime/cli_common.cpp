#include <iostream>

#include "runtime/cli.h"

namespace flashtts::cli {

int fail(const std::string& cmd, const std::string& message) {
  std::cerr << "flashtts " << cmd << ": error: " << message << "\n";
  return 1;
}

void EngineFlags::add(CLI::App* sub) {
  sub->add_option("--threads", threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  sub->add_option("--kv-mb", kv_mb, "KV cache budget in MiB")->check(CLI::PositiveNumber);
  sub->add_option("--block-size", block_size, "tokens per KV block")->check(CLI::Range(1, 1024));
}

EngineOptions EngineFlags::options() const {
  EngineOptions o;
  o.kv_bytes = (size_t)(kv_mb * (1 << 20));
  o.block_size = block_size;
  o.n_threads = threads;
  return o;
}

}  // namespace flashtts::cli
