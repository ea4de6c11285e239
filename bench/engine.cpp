// Engine throughput on the CPU backend, side by side in one run:
//  - prefill tokens/s, and decode tokens/s at several batch sizes, for each
//    weight dtype asked for (the folder's weights converted), each decode next
//    to its memory roofline: the bytes a step must read (weights in their
//    dtype + KV) over the read bandwidth measured right before each round of
//    steps (median of the rounds);
//  - the matrix products of a decode step at the largest batch and of the
//    prefill, on the model's own shapes: our batch-invariant kernels
//    (gpu/cpu/matmul.h) against OpenBLAS's sgemm, interleaved, best of several.
//
//   flashtts-bench-engine --model DIR [--dtypes f32,bf16] [--batches 1,32]
//                         [--prompt 64] [--steps 32] [--prefill 512] [--threads N]
//
// Make a model with e.g.
//   flashtts-mkmodel --out /tmp/bench-model --arch qwen2 --hidden 512 --layers 8
//     --heads 8 --kv-heads 2 --intermediate 1536 --vocab 8192   (one command line)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include <immintrin.h>

#include "gpu/cpu/matmul.h"
#include "gpu/cpu/thread_pool.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"

#if defined(FLASHTTS_BENCH_OPENBLAS)
#include <cblas.h>
extern "C" void openblas_set_num_threads(int num_threads);
#endif

using namespace flashtts;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Sums a[0..n) as fast as plain loads go: eight streams at once (eight
// parts of the buffer, a 64-byte line of each per step, as the kernels' 1 x 8
// tiles read eight weight rows), each fetched into L2 1 KiB ahead. On the
// project's VM this reads faster than one stream per thread does.
__attribute__((target("avx2"))) float stream_sum_avx2(const float* a, size_t n) {
  constexpr int kStreams = 8;
  const size_t part = n / kStreams / 16 * 16;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  for (size_t i = 0; i + 16 <= part; i += 16)
    for (int k = 0; k < kStreams; ++k) {
      const float* p = a + k * part + i;
      _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T1);
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + 8));
    }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(s0, s1));
  return out[0] + out[7];
}

float stream_sum(const float* a, size_t n) {
  if (__builtin_cpu_supports("avx2")) return stream_sum_avx2(a, n);
  float acc[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l];
  return acc[0] + acc[7];
}

// Read bandwidth in bytes/s with `threads` threads streaming one large buffer
// (a decode step mostly reads: weights and KV), best of `passes`.
double read_bandwidth(const std::vector<float>& a, int threads, int passes) {
  const size_t n = a.size();
  std::vector<double> sums(threads);
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    auto t = Clock::now();
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k)
      pool.emplace_back([&, k] {
        const size_t begin = n * k / threads, end = n * (k + 1) / threads;
        sums[k] = stream_sum(a.data() + begin, end - begin);
      });
    for (auto& th : pool) th.join();
    best = std::max(best, n * sizeof(float) / seconds_since(t));
  }
  return best + (sums[0] == -1.0);  // keep the sums observable
}

DType parse_dtype(const std::string& s) {
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  return DType::F32;
}

ModelWeights convert(const ModelWeights& w, DType dt) {
  ModelWeights c = w;
  auto cv = [dt](WeightMatrix& m) {
    if (!m.empty()) m = m.converted(dt);
  };
  cv(c.tok_embd), cv(c.lm_head), cv(c.prm.w1), cv(c.prm.w2);
  for (LayerWeights& L : c.layers) cv(L.wq), cv(L.wk), cv(L.wv), cv(L.wo), cv(L.w_gate), cv(L.w_up), cv(L.w_down);
  return c;
}

// Bytes a decode step reads of the weights: all of them but an untied
// embedding, of which only a few rows are read.
double step_weight_bytes(const ModelConfig& c, const ModelWeights& w) {
  double b = (double)w.bytes();
  if (!c.tie_embeddings) b -= (double)w.tok_embd.bytes();
  return b;
}

// The (out, in) shapes of one forward pass's products, with how often each runs.
struct Shape {
  int64_t out, in, count;
};
std::vector<Shape> product_shapes(const ModelConfig& c) {
  const int64_t h = c.hidden_size, f = c.intermediate_size, q = int64_t(c.n_heads) * c.head_dim,
                kv = int64_t(c.n_kv_heads) * c.head_dim, L = c.n_layers;
  return {{q, h, L}, {kv, h, 2 * L}, {h, q, L}, {f, h, 2 * L}, {h, f, L}, {c.vocab_size, h, 1}};
}

struct Engines {
  DType dtype;
  std::unique_ptr<Engine> engine;
  double weight_bytes;
};

// Our kernels vs OpenBLAS on every product of one forward pass of n rows:
// seconds for the whole set, best of `reps`, the two interleaved.
void compare_products(const ModelConfig& c, int64_t n, int threads, int reps) {
#if defined(FLASHTTS_BENCH_OPENBLAS)
  openblas_set_num_threads(threads);
  ThreadPool pool(threads);
  const cpu::Isa isa = cpu::best_isa();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  // Every product of the pass has weights of its own (as in the model), so
  // that one row reads them from memory, not from a cache.
  struct Case {
    Shape s;
    std::vector<float> x, y;
    WeightMatrix w32, w16;
  };
  std::vector<Case> cases;
  for (Shape s : product_shapes(c)) {
    const int64_t count = s.count;
    s.count = 1;
    for (int64_t copy = 0; copy < count; ++copy) {
    Case k{s, std::vector<float>(n * s.in), std::vector<float>(n * s.out), {}, {}};
    for (float& v : k.x) v = nd(rng);
    std::vector<float> w(s.out * s.in);
    for (float& v : w) v = nd(rng);
    k.w32 = WeightMatrix(std::move(w));
    k.w16 = k.w32.converted(DType::BF16);
    cases.push_back(std::move(k));
    }
  }
  double best_ours = 1e30, best_ours16 = 1e30, best_blas = 1e30;
  for (int r = 0; r < reps; ++r) {
    for (int side = 0; side < 3; ++side) {
      const int which = (side + r) % 3;  // rotate who goes first
      auto t = Clock::now();
      for (Case& k : cases)
        for (int64_t i = 0; i < k.s.count; ++i) {
          if (which == 0)
            cpu::matmul(isa, k.x.data(), cpu::view(k.w32, k.s.out, k.s.in), nullptr, k.y.data(), n, &pool);
          else if (which == 1)
            cpu::matmul(isa, k.x.data(), cpu::view(k.w16, k.s.out, k.s.in), nullptr, k.y.data(), n, &pool);
          else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k.s.out, (int)k.s.in, 1.0f, k.x.data(),
                        (int)k.s.in, k.w32.f32.data(), (int)k.s.in, 0.0f, k.y.data(), (int)k.s.out);
        }
      double s = seconds_since(t);
      double& best = which == 0 ? best_ours : which == 1 ? best_ours16 : best_blas;
      best = std::min(best, s);
    }
  }
  double flops = 0, bytes32 = 0;
  for (const Shape& s : product_shapes(c)) flops += 2.0 * n * s.out * s.in * s.count, bytes32 += 4.0 * s.out * s.in * s.count;
  if (n == 1)
    std::printf("products of    1 row: weights read at ours f32 %.1f GB/s, ours bf16 %.1f GB/s, OpenBLAS %.1f GB/s\n",
                bytes32 / best_ours / 1e9, bytes32 / 2 / best_ours16 / 1e9, bytes32 / best_blas / 1e9);
  std::printf("products of %4lld rows: ours f32 %7.2f ms (%5.1f GFLOP/s), ours bf16 %7.2f ms, OpenBLAS sgemm %7.2f ms"
              " (%5.1f GFLOP/s): ours f32 at %.2fx, bf16 at %.2fx OpenBLAS's speed\n",
              (long long)n, 1e3 * best_ours, flops / best_ours / 1e9, 1e3 * best_ours16, 1e3 * best_blas,
              flops / best_blas / 1e9, best_blas / best_ours, best_blas / best_ours16);
#else
  std::printf("products of %lld rows: OpenBLAS not found at build time, no comparison\n", (long long)n);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flashtts-bench-engine: CPU prefill and decode throughput vs the memory roofline and OpenBLAS"};
  std::string model;
  std::vector<std::string> dtypes = {"f32", "bf16"};
  std::vector<int> batches = {1, 32};
  int prompt = 64, steps = 32, prefill = 512, threads = 0, reps = 5, rounds = 5;
  app.add_option("--model", model, "Hugging Face model folder")->required();
  app.add_option("--dtypes", dtypes, "weight dtypes to run (the folder's weights converted)")
      ->delimiter(',')
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  app.add_option("--batches", batches, "decode batch sizes")->delimiter(',');
  app.add_option("--prompt", prompt, "prompt tokens per sequence before decoding");
  app.add_option("--steps", steps, "decode steps timed per round");
  app.add_option("--prefill", prefill, "tokens in the timed prefill");
  app.add_option("--threads", threads, "CPU threads (0 = all)");
  app.add_option("--reps", reps, "repetitions of the product comparison (best is kept)");
  app.add_option("--rounds", rounds, "decode rounds of --steps steps, each after a bandwidth pass (median kept)");
  CLI11_PARSE(app, argc, argv);

  auto isa = cpu::isa_from_env();
  if (!isa) return std::fprintf(stderr, "bench: %s\n", isa.error().message.c_str()), 1;
  auto loaded = load_model(model);
  if (!loaded) return std::fprintf(stderr, "bench: %s\n", loaded.error().message.c_str()), 1;
  const ModelConfig cfg = loaded->config;
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int n_threads = threads > 0 ? threads : (int)std::thread::hardware_concurrency();

  EngineOptions eo;
  eo.n_threads = n_threads;
  eo.kv_bytes = kv_bytes_per_token_f32(cfg) * (size_t)std::max(max_batch * (prompt + rounds * steps + 32), prefill + 32);
  std::vector<Engines> engines;
  for (const std::string& d : dtypes) {
    ModelWeights w = convert(loaded->weights, parse_dtype(d));
    const double wb = step_weight_bytes(cfg, w);
    auto e = Engine::create(cfg, std::move(w), eo);
    if (!e) return std::fprintf(stderr, "bench: %s\n", e.error().message.c_str()), 1;
    engines.push_back({parse_dtype(d), std::move(e).value(), wb});
  }
  loaded->weights = {};

  const std::vector<float> stream((256ull << 20) / sizeof(float), 1.0f);
  const double bw = read_bandwidth(stream, n_threads, 5);
  std::printf("model %s: %d layers, hidden %d, intermediate %d, vocab %d; kernels %s, %d threads\n", model.c_str(),
              cfg.n_layers, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cpu::isa_name(*isa), n_threads);
  std::printf("read bandwidth %.1f GB/s (%d threads)\n", bw / 1e9, n_threads);

  std::mt19937 rng(1);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = (int32_t)(rng() % cfg.vocab_size);
    return t;
  };
  int64_t next_id = 0;
  RunResult r;
  for (Engines& en : engines) {
    Engine& e = *en.engine;
    std::printf("-- weights %s: %.1f MB read per decode step\n", dtype_name(en.dtype), en.weight_bytes / 1e6);
    {  // Prefill: one sequence, one chunk; a warm-up, then the best of three.
      double best = 1e30;
      const std::vector<int32_t> toks = random_tokens(prefill);
      for (int rep = 0; rep < 4; ++rep) {
        int64_t id = next_id++;
        if (!e.add_sequence(id, toks, false)) return 1;
        RunItem it{id, RowSelect::Last, 0, {}};
        auto t = Clock::now();
        if (!e.run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok()) return 1;
        if (rep > 0) best = std::min(best, seconds_since(t));
        e.release(id);
      }
      std::printf("prefill  %5d tokens: %8.1f tokens/s (best of 3 after a warm-up)\n", prefill, prefill / best);
    }
    for (int b : batches) {
      std::vector<RunItem> items;
      for (int i = 0; i < b; ++i) {
        int64_t id = next_id++;
        if (!e.add_sequence(id, random_tokens(prompt), false)) return 1;
        items.push_back({id, RowSelect::Last, 0, {}});
      }
      if (!e.run(items, OutputKind::Logits, &r).ok()) return 1;  // prefill, not timed
      // Rounds of `steps` decode steps, each right after a bandwidth pass, so
      // that the ratio compares the two under the same machine conditions
      // (a shared VM drifts); the median round is reported.
      std::vector<double> tps, ratio, step_ms, roof_ms;
      for (int round = 0; round < rounds; ++round) {
        const double round_bw = read_bandwidth(stream, n_threads, 2);
        double kv_read = 0;
        auto t = Clock::now();
        for (int s = 0; s < steps; ++s) {
          for (auto& it : items) {
            int32_t tok = (int32_t)(rng() % cfg.vocab_size);
            e.append(it.seq, std::span<const int32_t>(&tok, 1));
            kv_read += (double)kv_bytes_per_token_f32(cfg) * e.tokens(it.seq).size();
          }
          if (!e.run(items, OutputKind::Logits, &r).ok() || !r.starved.empty())
            return std::fprintf(stderr, "bench: a decode step failed or ran out of KV blocks\n"), 1;
        }
        const double sec = seconds_since(t);
        // Roofline: every step reads all weights once plus each sequence's KV.
        const double roof_sec = (steps * en.weight_bytes + kv_read) / round_bw;
        tps.push_back((double)b * steps / sec);
        ratio.push_back(roof_sec / sec);
        step_ms.push_back(1e3 * sec / steps);
        roof_ms.push_back(1e3 * roof_sec / steps);
      }
      std::printf("decode batch %3d: %8.1f tokens/s  (%.2f ms/step; roofline %.2f ms/step; %.0f%% of roofline;"
                  " median of %d rounds, ratio range %.0f-%.0f%%)\n",
                  b, median(tps), median(step_ms), median(roof_ms), 100.0 * median(ratio), rounds,
                  100.0 * *std::min_element(ratio.begin(), ratio.end()),
                  100.0 * *std::max_element(ratio.begin(), ratio.end()));
      for (auto& it : items) e.release(it.seq);
    }
  }
  engines.clear();
  std::printf("-- matrix products of one forward pass, same shapes, same %d threads\n", n_threads);
  compare_products(cfg, 1, n_threads, reps);
  compare_products(cfg, max_batch, n_threads, reps);
  compare_products(cfg, prefill, n_threads, std::max(1, reps / 2));
  return 0;
}
