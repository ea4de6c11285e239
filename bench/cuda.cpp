// Engine throughput on the CUDA backend: decode tokens/s at several batch
// sizes and prefill tokens/s, each next to its roofline measured in the same
// run on the same device: HBM bytes a step must move ÷ the device-to-device
// copy bandwidth (bytes read + written), and for prefill also the FLOPs ÷ a
// large bf16 cuBLAS product's rate.
//
//   flashtts-bench-cuda --model DIR [--batches 1,8,64,256] [--context 512]
//                       [--steps 32] [--prefill 2048] [--dtype bf16|f32]
//                       [--load] [--json FILE] [--overlap-with PRM_DIR]
//
// DIR is a Hugging Face folder (flashtts-mkmodel --preset qwen2.5-math-1.5b
// writes one with the real shapes). Its config.json gives the shapes; the
// weights are random values drawn here (the timing does not depend on them,
// and drawing is much faster than reading a 7B folder) unless --load.
// Decode steps are timed two ways: logits kept on the device and sampled
// there (the CUDA path), and logits copied to the host (what forward() does).
//
// --overlap-with PRM_DIR: how much of the device two models get at once, the
// question the simulated card answers with "not at all" (docs/sim.md, "The
// timeline"). A decode pass of --model at the largest --batches, and a
// prefill of --prefill tokens of the PRM (random weights too, on a stream
// and a thread of its own, as the generator and verifier actors run), each
// timed alone and then while the other runs back to back. The figure is
// the sum of the two rates beside each other as fractions of their rates
// alone: 1.0 = the passes serialize (what the simulator assumes), 2.0 = each
// runs as if alone.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#if defined(FLASHTTS_HAVE_CUDA)
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/sampling.h"
#include "gpu/model_loader.h"
#endif

#if !defined(FLASHTTS_HAVE_CUDA)
int main() {
  std::fprintf(stderr, "flashtts-bench-cuda: this build has no CUDA backend (configure with -DFLASHTTS_CUDA=ON)\n");
  return 2;
}
#else

using namespace flashtts;

namespace {

using Clock = std::chrono::steady_clock;

#define BENCH_CHECK(x)                                                                    \
  do {                                                                                   \
    auto&& r_ = (x);                                                                     \
    if (!r_.ok()) {                                                                      \
      std::fprintf(stderr, "flashtts-bench-cuda: %s\n", r_.error().message.c_str());     \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Device-to-device copy bandwidth, bytes read + written per second (median of 10).
double copy_bandwidth(cudaStream_t st) {
  const size_t bytes = 1ull << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemsetAsync(a, 1, bytes, st);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> t;
  for (int i = 0; i < 13; ++i) {
    cudaEventRecord(e0, st);
    cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, st);
    cudaEventRecord(e1, st);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 3) t.push_back(ms / 1e3);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / median(t);
}

// bf16 GEMM rate (FLOP/s) of an 8192^3 product with float32 accumulation, on random-ish data.
double gemm_rate(cudaStream_t st) {
  const int n = 8192;
  const size_t bytes = (size_t)n * n * 2;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess ||
      cudaMalloc(&c, (size_t)n * n * 4) != cudaSuccess)
    return 0;
  cudaMemsetAsync(a, 0x3c, bytes, st);  // 0x3c3c as bf16 is about 0.0115: not zeros
  cudaMemsetAsync(b, 0x3b, bytes, st);
  cublasHandle_t h;
  cublasCreate(&h);
  cublasSetStream(h, st);
  const float one = 1, zero = 0;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> t;
  for (int i = 0; i < 8; ++i) {
    cudaEventRecord(e0, st);
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &zero, c, CUDA_R_32F,
                 n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaEventRecord(e1, st);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2) t.push_back(ms / 1e3);
  }
  cublasDestroy(h);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return 2.0 * n * n * (double)n / median(t);
}

// Fills every tensor of the model with small pseudo-random values, in parallel.
ModelWeights random_weights(const ModelConfig& c) {
  ModelWeights w;
  w.layers.resize(c.n_layers);
  auto slots = model_tensor_slots(c, &w);
  std::vector<std::thread> pool;
  const unsigned n_threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned k = 0; k < n_threads; ++k)
    pool.emplace_back([&, k] {
      for (size_t s = k; s < slots.size(); s += n_threads) {
        size_t numel = 1;
        for (int64_t d : slots[s].shape) numel *= (size_t)d;
        const bool norm = slots[s].name.find("norm") != std::string::npos;
        std::vector<float> values(numel);
        uint64_t x = 0x9e3779b97f4a7c15ull * (s + 1);
        for (float& v : values) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          v = (norm ? 1.0f : 0.0f) + ((float)(x >> 40) / (float)(1 << 24) - 0.5f) * 0.04f;
        }
        if (slots[s].mat) *slots[s].mat = std::move(values);
        else *slots[s].vec = std::move(values);
      }
    });
  for (auto& t : pool) t.join();
  return w;
}

struct Row {
  std::string what;
  int batch;
  double tokens_per_s, step_ms, bytes_per_step, roofline_ratio;
};

// Median seconds of one pass of `pass`, over `n` after a warm-up one; with
// `until` set, goes on while now < *until (the other model's run lasts).
template <class Pass>
double time_passes(Pass&& pass, int n, const Clock::time_point* until = nullptr) {
  pass();
  std::vector<double> t;
  for (int i = 0; i < n || (until && Clock::now() < *until); ++i) {
    auto t0 = Clock::now();
    pass();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(t);
}

struct Overlap {
  double decode_alone_s = 0, decode_beside_s = 0, prefill_alone_s = 0, prefill_beside_s = 0;
  double together() const { return decode_alone_s / decode_beside_s + prefill_alone_s / prefill_beside_s; }
};

// --overlap-with: `decode` is one decode pass of the policy (on this
// thread's stream); the PRM gets a backend, a stream and a thread of its own.
template <class Decode>
Overlap measure_overlap(const DeviceContext& dev, const std::string& prm_dir, int prefill, int block, Decode&& decode) {
  auto c = load_model_config(prm_dir);
  BENCH_CHECK(c);
  const ModelConfig cfg = *c;
  if (cfg.prm.kind == PrmKind::None) {
    std::fprintf(stderr, "flashtts-bench-cuda: --overlap-with %s is not a PRM\n", prm_dir.c_str());
    std::exit(1);
  }
  const int n_seq = std::max(1, prefill / 512), len = std::min(512, prefill);
  const int blocks = (len + block - 1) / block;
  Overlap o;
  std::atomic<int> phase{0};  // the PRM thread: 1 = ready, 2 = alone timed; main: 3 = go together
  Clock::time_point until;
  std::thread prm([&] {
    auto st = cuda::Stream::create(dev);  // also makes the device current on this thread
    BENCH_CHECK(st);
    BackendOptions bo;
    bo.block_size = block;
    bo.n_blocks = n_seq * blocks;
    CudaBackendOptions co;
    co.max_tokens = std::max(2048, n_seq * len);
    auto be = make_cuda_backend(cfg, random_weights(cfg), bo, co, std::move(st).value());
    BENCH_CHECK(be);
    std::vector<std::vector<int32_t>> toks(n_seq, std::vector<int32_t>(len)), tables(n_seq);
    std::vector<int32_t> last = {len - 1};
    std::vector<BatchEntry> batch;
    for (int s = 0; s < n_seq; ++s) {
      for (int i = 0; i < len; ++i) toks[s][i] = (s * 7919 + i * 104729) % cfg.vocab_size;
      for (int k = 0; k < blocks; ++k) tables[s].push_back(s * blocks + k);
      batch.push_back({toks[s], 0, tables[s], last});
    }
    auto pass = [&] {
      ForwardOutput out;
      BENCH_CHECK((*be)->forward(batch, OutputKind::Score, &out));
    };
    phase = 1;
    o.prefill_alone_s = time_passes(pass, 10);
    phase = 2;
    while (phase != 3) std::this_thread::yield();
    o.prefill_beside_s = time_passes(pass, 10, &until);
  });
  while (phase != 1) std::this_thread::yield();  // the PRM's upload does not overlap the policy's timing
  while (phase != 2) std::this_thread::yield();
  o.decode_alone_s = time_passes(decode, 20);
  until = Clock::now() + std::chrono::seconds(3);
  phase = 3;
  o.decode_beside_s = time_passes(decode, 20, &until);
  prm.join();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CUDA engine throughput next to its measured rooflines"};
  std::string model, dtype = "bf16", json_path;
  std::vector<int> batches = {1, 8, 64, 256};
  int context = 512, steps = 32, prefill = 2048, block = 16;
  bool load = false;
  std::string overlap_with;
  app.add_option("--model", model, "Hugging Face folder (config.json gives the shapes)")->required();
  app.add_option("--overlap-with", overlap_with,
                 "a PRM folder: time --model's decode and this model's prefill alone and on two streams at once");
  app.add_option("--batches", batches, "decode batch sizes")->delimiter(',');
  app.add_option("--context", context, "tokens of context each sequence holds before decoding");
  app.add_option("--steps", steps, "timed decode steps per batch size");
  app.add_option("--prefill", prefill, "tokens per prefill pass (sequences of 512)");
  app.add_option("--dtype", dtype, "bf16|f32")->check(CLI::IsMember({"bf16", "f32"}));
  app.add_option("--json", json_path, "also write the rows as JSON here");
  app.add_flag("--load", load, "load the folder's weights instead of drawing random ones");
  CLI11_PARSE(app, argc, argv);

  auto dev = DeviceContext::open("cuda");
  BENCH_CHECK(dev);
  std::printf("device: %s\n", (*dev)->description().c_str());
  ModelConfig cfg;
  ModelWeights weights;
  if (load) {
    auto m = load_model(model);
    BENCH_CHECK(m);
    cfg = m->config;
    weights = std::move(m->weights);
  } else {
    auto c = load_model_config(model);
    BENCH_CHECK(c);
    cfg = *c;
    weights = random_weights(cfg);
  }
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int seq_len = context + steps + 8;
  const int blocks_per_seq = (seq_len + block - 1) / block;
  const int n_tables = std::max(max_batch, std::max(1, prefill / 512));  // sequences held at once

  auto stream = cuda::Stream::create(**dev);
  BENCH_CHECK(stream);
  const double bw = copy_bandwidth(stream->get());
  const double flops = gemm_rate(stream->get());
  std::printf("measured: copy %.0f GB/s (read+write), bf16 GEMM %.0f TFLOP/s\n", bw / 1e9, flops / 1e12);

  BackendOptions bo;
  bo.block_size = block;
  bo.n_blocks = n_tables * blocks_per_seq;
  CudaBackendOptions co;
  co.dtype = dtype == "f32" ? CudaDtype::F32 : CudaDtype::Bf16;
  co.max_tokens = std::max(2048, max_batch);
  co.logits_rows = std::max(256, max_batch);
  auto t_load = Clock::now();
  auto be = make_cuda_backend(cfg, std::move(weights), bo, co, std::move(stream).value());
  BENCH_CHECK(be);
  CudaBackend& b = **be;
  std::printf("model: %s, %d layers, h %d, %.2f GB of weights on the device (%s), KV %.2f GB; upload %.1f s\n",
              cfg.architecture.c_str(), cfg.n_layers, cfg.hidden_size, b.weight_bytes() / 1e9, dtype.c_str(),
              (double)bo.n_blocks * block * b.kv_bytes_per_token() / 1e9,
              std::chrono::duration<double>(Clock::now() - t_load).count());
  const bool prm = cfg.prm.kind != PrmKind::None;
  const OutputKind kind = prm ? OutputKind::Score : OutputKind::Logits;
  const double elem = dtype == "f32" ? 4.0 : 2.0;
  // Matrix bytes one pass reads (embedding rows aside), and its FLOPs per token.
  const double q = (double)cfg.n_heads * cfg.head_dim, kv = (double)cfg.n_kv_heads * cfg.head_dim;
  const double layer_params = cfg.hidden_size * (q + 2 * kv) + q * cfg.hidden_size +
                              3.0 * cfg.hidden_size * cfg.intermediate_size;
  const double head_params = prm ? 0.0 : (double)cfg.vocab_size * cfg.hidden_size;
  const double weight_bytes = (cfg.n_layers * layer_params + head_params) * elem;
  const double flop_per_token = 2.0 * (cfg.n_layers * layer_params + head_params);

  std::vector<Row> rows;
  std::vector<std::vector<int32_t>> tables(n_tables);
  for (int s = 0; s < n_tables; ++s)
    for (int k = 0; k < blocks_per_seq; ++k) tables[s].push_back(s * blocks_per_seq + k);

  // Prefill: sequences of 512 tokens, prefill/512 of them in one call.
  {
    const int n_seq = std::max(1, prefill / 512), len = std::min(512, prefill);
    std::vector<std::vector<int32_t>> toks(n_seq, std::vector<int32_t>(len));
    for (int s = 0; s < n_seq; ++s)
      for (int i = 0; i < len; ++i) toks[s][i] = (s * 7919 + i * 104729) % cfg.vocab_size;
    std::vector<int32_t> last = {len - 1};
    std::vector<BatchEntry> batch;
    for (int s = 0; s < n_seq; ++s) batch.push_back({toks[s], 0, tables[s], last});
    ForwardOutput out;
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
      auto t0 = Clock::now();
      BENCH_CHECK(b.forward(batch, kind, &out));
      if (i >= 1) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const double sec = median(t), tokens = (double)n_seq * len;
    const double kv_bytes = tokens * b.kv_bytes_per_token();
    const double bytes = weight_bytes + kv_bytes;
    rows.push_back({"prefill", n_seq, tokens / sec, sec * 1e3, bytes, bytes / bw / sec});
    std::printf("prefill %d x %d tokens: %.0f tokens/s, %.1f ms/pass, %.1f TFLOP/s = %.2f of the measured GEMM rate\n",
                n_seq, len, tokens / sec, sec * 1e3, flop_per_token * tokens / sec / 1e12,
                flop_per_token * tokens / sec / flops);
  }

  // Decode: each batch size fills `context` tokens, then times `steps` steps.
  auto sampler = cuda::GpuSampler::create(max_batch, cfg.vocab_size, b.stream());
  BENCH_CHECK(sampler);
  for (int B : batches) {
    std::vector<std::vector<int32_t>> ctx(B, std::vector<int32_t>(context));
    for (int s = 0; s < B; ++s)
      for (int i = 0; i < context; ++i) ctx[s][i] = (s * 31 + i * 17) % cfg.vocab_size;
    for (int s0 = 0; s0 < B; s0 += 4) {  // prefill the contexts, four sequences a pass
      std::vector<BatchEntry> batch;
      for (int s = s0; s < std::min(B, s0 + 4); ++s) batch.push_back({ctx[s], 0, tables[s], {}});
      ForwardOutput out;
      BENCH_CHECK(b.forward(batch, kind, &out));
    }
    std::vector<int32_t> next(B, 1), row0 = {0};
    std::vector<SamplingParams> params(B);
    std::vector<uint64_t> seqs(B), positions(B);
    for (int s = 0; s < B; ++s) seqs[s] = s, params[s].temperature = 0.7f, params[s].top_p = 0.95f;
    std::vector<double> t_dev, t_host;
    for (int step = 0; step < steps; ++step) {
      std::vector<BatchEntry> batch;
      for (int s = 0; s < B; ++s) {
        positions[s] = context + step;
        batch.push_back({std::span(&next[s], 1), context + step, tables[s], row0});
      }
      auto t0 = Clock::now();
      if (step % 2 == 0 || prm) {  // logits stay on the device; sampled there
        const float* d_out = nullptr;
        int32_t n = 0;
        BENCH_CHECK(b.forward_on_device(batch, kind, &d_out, &n));
        if (!prm) BENCH_CHECK(sampler->sample(d_out, n, params, seqs, positions, next.data()));
        else BENCH_CHECK(b.synchronize());
        if (step >= 4) t_dev.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      } else {  // forward(): logits to the host
        ForwardOutput out;
        BENCH_CHECK(b.forward(batch, kind, &out));
        if (step >= 4) t_host.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      for (int s = 0; s < B; ++s) next[s] = (next[s] + s) % cfg.vocab_size;
    }
    const double ctx_mid = context + steps / 2.0;
    const double bytes =
        weight_bytes + B * ctx_mid * b.kv_bytes_per_token() + (prm ? 0.0 : B * (double)cfg.vocab_size * 4);
    for (auto [what, t] :
         {std::pair{"decode (device sampling)", &t_dev}, std::pair{"decode (logits to host)", &t_host}}) {
      if (t->empty()) continue;
      const double sec = median(*t);
      rows.push_back({what, B, B / sec, sec * 1e3, bytes, bytes / bw / sec});
    }
  }
  std::printf("graphs captured %d, replays %lld\n\n", b.graphs_captured(), (long long)b.graph_replays());

  Overlap ov;
  if (!overlap_with.empty()) {
    if (prm) {
      std::fprintf(stderr, "flashtts-bench-cuda: --overlap-with needs a policy as --model\n");
      return 1;
    }
    // The largest batch's sequences hold context + steps tokens; each pass
    // writes the token at `context` again (the same shape every pass).
    std::vector<int32_t> one(max_batch, 1), row0 = {0};
    std::vector<BatchEntry> batch;
    for (int s = 0; s < max_batch; ++s) batch.push_back({std::span(&one[s], 1), context, tables[s], row0});
    auto decode = [&] {
      const float* d_out = nullptr;
      int32_t n = 0;
      BENCH_CHECK(b.forward_on_device(batch, kind, &d_out, &n));
      BENCH_CHECK(b.synchronize());
    };
    ov = measure_overlap(**dev, overlap_with, prefill, block, decode);
    std::printf("overlap with %s: decode of %d rows %.3f ms alone, %.3f ms beside the prefill; prefill of %d tokens "
                "%.3f ms alone, %.3f ms beside the decode; together %.2f of the device each alone (1 = serialized, "
                "2 = no contention)\n\n",
                overlap_with.c_str(), max_batch, ov.decode_alone_s * 1e3, ov.decode_beside_s * 1e3, prefill,
                ov.prefill_alone_s * 1e3, ov.prefill_beside_s * 1e3, ov.together());
  }

  std::printf("%-26s %6s %12s %10s %12s %9s\n", "what", "batch", "tokens/s", "ms/step", "MB/step", "roofline");
  for (const Row& r : rows)
    std::printf("%-26s %6d %12.0f %10.3f %12.1f %9.2f\n", r.what.c_str(), r.batch, r.tokens_per_s, r.step_ms,
                r.bytes_per_step / 1e6, r.roofline_ratio);
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << "{\"device\": \"" << (*dev)->description() << "\", \"model\": \"" << model << "\", \"dtype\": \"" << dtype
      << "\", \"copy_bandwidth_Bps\": " << bw << ", \"gemm_flops\": " << flops;
    if (!overlap_with.empty())
      f << ", \"overlap\": {\"prm\": \"" << overlap_with << "\", \"decode_rows\": " << max_batch
        << ", \"prefill_tokens\": " << prefill << ", \"decode_alone_s\": " << ov.decode_alone_s
        << ", \"decode_beside_s\": " << ov.decode_beside_s << ", \"prefill_alone_s\": " << ov.prefill_alone_s
        << ", \"prefill_beside_s\": " << ov.prefill_beside_s << ", \"together\": " << ov.together() << "}";
    f << ", \"rows\": [";
    for (size_t i = 0; i < rows.size(); ++i)
      f << (i ? ", " : "") << "{\"what\": \"" << rows[i].what << "\", \"batch\": " << rows[i].batch
        << ", \"tokens_per_s\": " << rows[i].tokens_per_s << ", \"ms_per_step\": " << rows[i].step_ms
        << ", \"bytes_per_step\": " << rows[i].bytes_per_step << ", \"roofline_ratio\": " << rows[i].roofline_ratio
        << "}";
    f << "]}\n";
  }
  return 0;
}

#endif
