#include "gpu/cuda/sampling.h"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <cmath>
#include <utility>

#include "gpu/cuda/cuda_check.h"
#include "gpu/sample_hash.h"

namespace flashtts::cuda {

namespace {

constexpr int kThreads = 512;

struct RowParams {
  float temperature, top_p;
  int32_t top_k, pad;
  uint64_t seed, seq_id, position;
};

__global__ void init_kernel(int32_t* ids, int32_t* offsets, int32_t rows, int32_t vocab) {
  const size_t n = (size_t)rows * vocab;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
    ids[k] = (int32_t)(k % vocab);
  for (size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x; r <= (size_t)rows; r += (size_t)gridDim.x * blockDim.x)
    offsets[r] = (int32_t)(r * vocab);
}

struct ArgMax {
  float v;
  int32_t i;
};
struct ArgMaxOp {
  __device__ ArgMax operator()(const ArgMax& a, const ArgMax& b) const {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;  // lowest id on ties
  }
};

// The first index i in [0, n) whose running sum of term(i) (continued from
// `carry`) satisfies pred(cum); n when none. Scans chunks of the block.
template <class Term, class Pred>
__device__ int32_t first_where(int32_t n, Term term, Pred pred, double* total) {
  using Scan = cub::BlockScan<double, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ int32_t found;
  __shared__ double carry;
  if (threadIdx.x == 0) found = n, carry = 0.0;
  __syncthreads();
  for (int32_t base = 0; base < n; base += kThreads) {
    const int32_t i = base + threadIdx.x;
    double v = i < n ? term(i) : 0.0, cum, chunk;
    Scan(scan).InclusiveSum(v, cum, chunk);
    cum += carry;
    if (i < n && pred(cum)) atomicMin(&found, i);
    __syncthreads();
    if (threadIdx.x == 0) carry += chunk;
    __syncthreads();
    if (found < n) break;
  }
  if (total) *total = carry;
  return found;
}

__global__ void sample_kernel(const float* __restrict__ logits, const float* __restrict__ keys,
                              const int32_t* __restrict__ ids, const RowParams* __restrict__ params, int32_t vocab,
                              int32_t* __restrict__ tokens) {
  const int32_t r = blockIdx.x;
  const RowParams p = params[r];
  if (p.temperature <= 0.0f) {
    using Reduce = cub::BlockReduce<ArgMax, kThreads>;
    __shared__ typename Reduce::TempStorage red;
    ArgMax best{-INFINITY, vocab};
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads)
      best = ArgMaxOp()(best, ArgMax{logits[(size_t)r * vocab + i], i});
    best = Reduce(red).Reduce(best, ArgMaxOp());
    if (threadIdx.x == 0) tokens[r] = best.i < vocab ? best.i : 0;
    return;
  }
  const float* key = keys + (size_t)r * vocab;
  const int32_t* id = ids + (size_t)r * vocab;
  int32_t keep = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
  const double inv_t = 1.0 / p.temperature, top = key[0];
  auto prob = [&](int32_t i) { return exp(((double)key[i] - top) * inv_t); };
  double sum = 0.0;
  first_where(keep, prob, [](double) { return false; }, &sum);
  __syncthreads();
  if (p.top_p < 1.0f) {
    const double top_p = p.top_p, s = sum;
    const int32_t cut = first_where(keep, [&](int32_t i) { return prob(i) / s; },
                                    [&](double cum) { return cum >= top_p; }, nullptr);
    __syncthreads();
    keep = min(keep, cut + 1);
    first_where(keep, prob, [](double) { return false; }, &sum);
    __syncthreads();
  }
  const double u = uniform_of(p.seed, p.seq_id, p.position) * sum;
  const int32_t pick = first_where(keep, prob, [&](double cum) { return u < cum; }, nullptr);
  if (threadIdx.x == 0) tokens[r] = id[pick < keep ? pick : keep - 1];
}

}  // namespace

Expected<GpuSampler> GpuSampler::create(int32_t max_rows, int32_t vocab, cudaStream_t stream) {
  GpuSampler s;
  s.max_rows_ = max_rows;
  s.vocab_ = vocab;
  s.stream_ = stream;
  const size_t n = (size_t)max_rows * vocab;
  FLASHTTS_CUDA_TRY((cub::DeviceSegmentedRadixSort::SortPairsDescending(
                        nullptr, s.sort_temp_bytes_, (const float*)nullptr, (float*)nullptr, (const int32_t*)nullptr,
                        (int32_t*)nullptr, (int64_t)n, max_rows, (const int32_t*)nullptr, (const int32_t*)nullptr, 0,
                        32, stream)),
                    "sort workspace size");
  auto lay = [&](char* base) {
    Carver c(base);
    s.keys_ = c.take<float>(n);
    s.ids_in_ = c.take<int32_t>(n);
    s.ids_ = c.take<int32_t>(n);
    s.offsets_ = c.take<int32_t>(max_rows + 1);
    s.sort_temp_ = c.take<char>(s.sort_temp_bytes_);
    s.rows_dev_ = c.take<RowParams>(max_rows);
    s.tokens_dev_ = c.take<int32_t>(max_rows);
    return c.used();
  };
  auto dev = DeviceBuffer::create(lay(nullptr), "GPU sampling");
  if (!dev) return dev.error();
  s.dev_ = std::move(dev).value();
  lay(static_cast<char*>(s.dev_.get()));
  auto host = PinnedBuffer::create(max_rows * (sizeof(RowParams) + sizeof(int32_t)), "GPU sampling");
  if (!host) return host.error();
  s.host_ = std::move(host).value();
  s.rows_host_ = s.host_.get();
  s.tokens_host_ = reinterpret_cast<int32_t*>(static_cast<RowParams*>(s.rows_host_) + max_rows);
  init_kernel<<<256, 256, 0, stream>>>(s.ids_in_, s.offsets_, max_rows, vocab);
  FLASHTTS_TRY(check_launch("sampler init"));
  FLASHTTS_CUDA_TRY(cudaStreamSynchronize(stream), "sampler init");
  return Expected<GpuSampler>(std::move(s));
}

Status GpuSampler::sample(const float* d_logits, int32_t rows, std::span<const SamplingParams> params,
                          std::span<const uint64_t> seq_ids, std::span<const uint64_t> positions, int32_t* tokens) {
  if (rows <= 0) return Status::success();
  if (rows > max_rows_) return make_error("GPU sampling: " + std::to_string(rows) + " rows, capacity " +
                                          std::to_string(max_rows_));
  auto* rp = static_cast<RowParams*>(rows_host_);
  bool any_sampled = false;
  for (int32_t r = 0; r < rows; ++r) {
    rp[r] = RowParams{params[r].temperature, params[r].top_p, params[r].top_k, 0, params[r].seed, seq_ids[r],
                      positions[r]};
    any_sampled |= params[r].temperature > 0.0f;
  }
  FLASHTTS_CUDA_TRY(cudaMemcpyAsync(rows_dev_, rp, rows * sizeof(RowParams), cudaMemcpyHostToDevice, stream_),
                    "sampling upload");
  if (any_sampled) {
    size_t temp = sort_temp_bytes_;
    FLASHTTS_CUDA_TRY((cub::DeviceSegmentedRadixSort::SortPairsDescending(
                          sort_temp_, temp, d_logits, keys_, ids_in_, ids_, (int64_t)rows * vocab_, rows, offsets_,
                          offsets_ + 1, 0, 32, stream_)),
                      "sampling sort");
  }
  sample_kernel<<<rows, kThreads, 0, stream_>>>(d_logits, keys_, ids_, static_cast<const RowParams*>(rows_dev_),
                                                  vocab_, tokens_dev_);
  FLASHTTS_TRY(check_launch("sample_kernel"));
  FLASHTTS_CUDA_TRY(cudaMemcpyAsync(tokens_host_, tokens_dev_, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_),
                    "sampling download");
  FLASHTTS_CUDA_TRY(cudaStreamSynchronize(stream_), "sampling");
  std::copy_n(tokens_host_, rows, tokens);
  return Status::success();
}

}  // namespace flashtts::cuda
