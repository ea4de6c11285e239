// flashtts-bench-tokenizer: encode throughput of the byte-level BPE
// tokenizer on all MATH-500 problems, repeated for about --seconds, once with
// a cold word cache (the first pass) and then warm. Reports tokens/s and MB/s.
//
//   flashtts-bench-tokenizer [--testdata DIR] [--seconds 1.0] [--threads 1]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gpu/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> read_problems(const std::string& file) {
  std::vector<std::string> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("problem").get<std::string>());
  return out;
}

struct Pass {
  double seconds = 0;
  size_t bytes = 0;
  size_t tokens = 0;
};

// Encodes every text once per round on each thread until `budget` seconds pass.
Pass run(const flashtts::Tokenizer& tok, const std::vector<std::string>& texts, double budget, int threads) {
  std::atomic<size_t> bytes{0}, tokens{0};
  const auto start = Clock::now();
  auto worker = [&] {
    size_t b = 0, t = 0;
    do {
      for (const auto& s : texts) {
        t += tok.encode(s).size();
        b += s.size();
      }
    } while (std::chrono::duration<double>(Clock::now() - start).count() < budget);
    bytes += b;
    tokens += t;
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  return {std::chrono::duration<double>(Clock::now() - start).count(), bytes, tokens};
}

void report(const char* name, const char* what, const Pass& p) {
  std::printf("%-8s %-22s %10.0f tokens/s %8.2f MB/s  (%zu tokens, %.2f MB, %.3f s)\n", name, what,
              p.tokens / p.seconds, p.bytes / p.seconds / 1e6, p.tokens, p.bytes / 1e6, p.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tokenizer encode throughput on MATH-500 problems"};
  std::string testdata = FLASHTTS_TESTDATA;
  double seconds = 1.0;
  int threads = 1;
  app.add_option("--testdata", testdata, "the shared test data folder");
  app.add_option("--seconds", seconds, "time budget per tokenizer (warm cache)");
  app.add_option("--threads", threads, "concurrent encoders sharing one tokenizer");
  CLI11_PARSE(app, argc, argv);

  const auto texts = read_problems(testdata + "/datasets/math500/test.jsonl");
  if (texts.empty()) {
    std::fprintf(stderr, "no MATH-500 problems under %s/datasets/math500/test.jsonl\n", testdata.c_str());
    return 1;
  }
  const std::pair<const char*, std::string> tokenizers[] = {
      {"qwen2", testdata + "/tokenizers/qwen3/tokenizer.json"},
      {"llama3", testdata + "/tokenizers/llama3/tokenizer.json"},
  };
  std::printf("%zu MATH-500 problems, %d thread(s)\n", texts.size(), threads);
  for (const auto& [name, path] : tokenizers) {
    const auto t0 = Clock::now();
    auto tok = flashtts::Tokenizer::load(path);
    if (!tok.ok()) {
      std::fprintf(stderr, "%s\n", tok.error().message.c_str());
      return 1;
    }
    std::printf("%-8s load %.2f s\n", name, std::chrono::duration<double>(Clock::now() - t0).count());
    report(name, "first pass (cold)", run(*tok, texts, 0.0, 1));
    report(name, "warm word cache", run(*tok, texts, seconds, threads));
  }
  return 0;
}
