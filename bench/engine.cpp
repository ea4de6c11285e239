// Engine throughput on the CPU backend: prefill tokens/s, and decode tokens/s
// at several batch sizes, each next to its memory-bandwidth roofline (bytes a
// decode step must read ÷ the read bandwidth measured in the same run).
//
//   flashtts-bench-engine --model DIR [--batches 1,32] [--prompt 64] [--steps 32]
//                         [--prefill 512] [--threads N]
//
// Make a model with e.g.
//   flashtts-mkmodel --out /tmp/bench-model --arch qwen2 --hidden 512 --layers 8
//     --heads 8 --kv-heads 2 --intermediate 1536 --vocab 8192   (one command line)
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "gpu/engine.h"
#include "gpu/model_loader.h"

using namespace flashtts;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Read bandwidth in bytes/s with `threads` threads streaming one large buffer
// (a decode step mostly reads: weights and KV), best of a few passes.
double read_bandwidth(int threads) {
  const size_t n = (512ull << 20) / sizeof(float);
  std::vector<float> a(n, 1.0f);
  std::vector<double> sums(threads);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    auto t = Clock::now();
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k)
      pool.emplace_back([&, k] {
        float acc[8] = {};
        for (size_t i = n * k / threads; i + 8 <= n * (k + 1) / threads; i += 8)
          for (int l = 0; l < 8; ++l) acc[l] += a[i + l];
        sums[k] = acc[0] + acc[7];
      });
    for (auto& th : pool) th.join();
    best = std::max(best, n * sizeof(float) / seconds_since(t));
  }
  return best + (sums[0] == -1.0);  // keep the sums observable
}

// f32 bytes a decode step reads: every tensor the loader lists
// (model_tensor_slots), except an untied embedding, of which only a few rows are read.
size_t weight_bytes(const ModelConfig& c) {
  size_t n = 0;
  for (const TensorSlot& t : model_tensor_slots(c, nullptr)) {
    if (t.name == "model.embed_tokens.weight" && !c.tie_embeddings) continue;
    size_t numel = 1;
    for (int64_t d : t.shape) numel *= (size_t)d;
    n += numel;
  }
  return 4 * n;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flashtts-bench-engine: CPU prefill and decode throughput vs the memory roofline"};
  std::string model;
  std::vector<int> batches = {1, 32};
  int prompt = 64, steps = 32, prefill = 512, threads = 0;
  app.add_option("--model", model, "Hugging Face model folder")->required();
  app.add_option("--batches", batches, "decode batch sizes")->delimiter(',');
  app.add_option("--prompt", prompt, "prompt tokens per sequence before decoding");
  app.add_option("--steps", steps, "decode steps timed");
  app.add_option("--prefill", prefill, "tokens in the timed prefill");
  app.add_option("--threads", threads, "CPU threads (0 = all)");
  CLI11_PARSE(app, argc, argv);

  auto loaded = load_model(model);
  if (!loaded) return std::fprintf(stderr, "bench: %s\n", loaded.error().message.c_str()), 1;
  const ModelConfig cfg = loaded->config;
  int max_batch = *std::max_element(batches.begin(), batches.end());
  EngineOptions eo;
  eo.n_threads = threads;
  eo.kv_bytes = kv_bytes_per_token_f32(cfg) * (size_t)std::max(max_batch * (prompt + steps + 32), prefill + 32);
  auto engine = Engine::create(cfg, std::move(loaded->weights), eo);
  if (!engine) return std::fprintf(stderr, "bench: %s\n", engine.error().message.c_str()), 1;
  Engine& e = **engine;

  const int n_threads = threads > 0 ? threads : (int)std::thread::hardware_concurrency();
  const double bw = read_bandwidth(n_threads);
  const double wbytes = (double)weight_bytes(cfg);
  std::printf("model %s: %d layers, hidden %d, vocab %d, %.1f MB f32 weights\n", model.c_str(), cfg.n_layers,
              cfg.hidden_size, cfg.vocab_size, wbytes / 1e6);
  std::printf("read bandwidth %.1f GB/s (%d threads)\n", bw / 1e9, n_threads);

  std::mt19937 rng(1);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = (int32_t)(rng() % cfg.vocab_size);
    return t;
  };
  int64_t next_id = 0;
  RunResult r;

  // Prefill: one sequence, one chunk.
  {
    int64_t id = next_id++;
    auto toks = random_tokens(prefill);
    if (!e.add_sequence(id, toks, false)) return 1;
    RunItem it{id, RowSelect::Last, 0, {}};
    auto t = Clock::now();
    if (!e.run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok()) return 1;
    double s = seconds_since(t);
    std::printf("prefill  %5d tokens: %8.1f tokens/s\n", prefill, prefill / s);
    e.release(id);
  }

  for (int b : batches) {
    std::vector<RunItem> items;
    for (int i = 0; i < b; ++i) {
      int64_t id = next_id++;
      if (!e.add_sequence(id, random_tokens(prompt), false)) return 1;
      items.push_back({id, RowSelect::Last, 0, {}});
    }
    if (!e.run(items, OutputKind::Logits, &r).ok()) return 1;  // prefill, not timed
    double kv_read = 0;
    auto t = Clock::now();
    for (int s = 0; s < steps; ++s) {
      for (auto& it : items) {
        int32_t tok = (int32_t)(rng() % cfg.vocab_size);
        e.append(it.seq, std::span<const int32_t>(&tok, 1));
        kv_read += (double)kv_bytes_per_token_f32(cfg) * e.tokens(it.seq).size();
      }
      if (!e.run(items, OutputKind::Logits, &r).ok() || !r.starved.empty()) return 1;
    }
    double sec = seconds_since(t);
    double tps = (double)b * steps / sec;
    // Roofline: every step reads all weights once plus each sequence's KV.
    double roof_sec = (steps * wbytes + kv_read) / bw;
    std::printf("decode batch %3d: %8.1f tokens/s  (%.1f ms/step; roofline %.1f ms/step; %.0f%% of roofline)\n", b,
                tps, 1e3 * sec / steps, 1e3 * roof_sec / steps, 100.0 * roof_sec / sec);
    for (auto& it : items) e.release(it.seq);
  }
  return 0;
}
