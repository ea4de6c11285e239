// Paged attention on the GPU against a dense float64 reference: several
// block sizes, grouped-query shapes, a sliding window, a prefill chunk and a
// decode step in one piece, blocks shared between a sequence and its fork,
// and the context split across CTAs or not. Skipped where no CUDA device is
// present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "gpu/cuda/attention.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

template <class S>
float stored(float v) {
  if constexpr (std::is_same_v<S, float>) return v;
  else return __bfloat162float(__float2bfloat16(v));
}

template <class S>
S to_s(float v) {
  if constexpr (std::is_same_v<S, float>) return v;
  else return __float2bfloat16(v);
}

template <class S>
float from_s(S v) {
  if constexpr (std::is_same_v<S, float>) return v;
  else return __bfloat162float(v);
}

template <class T>
T* device_copy(const std::vector<T>& v) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), std::max<size_t>(1, v.size()) * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

struct Case {
  int32_t block_size, nh, nkv, hd, window, force_splits;
};

template <class S>
void check_case(const Case& k, double tol) {
  std::mt19937 rng(k.block_size * 131 + k.nh * 7 + k.hd + k.window);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int32_t kv_dim = k.nkv * k.hd, bs = k.block_size;
  // Sequence 0 holds 37 tokens; sequence 1 is its fork after 19 tokens: it
  // shares every full block of those 19 and has its own from then on.
  const int32_t len0 = 37, fork_at = 19, len1 = 26;
  const int32_t blocks0 = (len0 + bs - 1) / bs, shared = fork_at / bs, blocks1 = (len1 + bs - 1) / bs;
  const int32_t n_blocks = blocks0 + blocks1 - shared + 3;
  std::vector<int32_t> perm(n_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> tab0(perm.begin(), perm.begin() + blocks0), tab1(tab0.begin(), tab0.begin() + shared);
  for (int32_t i = 0; i < blocks1 - shared; ++i) tab1.push_back(perm[blocks0 + i]);

  // Dense K/V of each sequence (values as stored in S); the fork's first
  // `shared` blocks are the parent's.
  auto dense = [&](int32_t len) {
    std::vector<float> v((size_t)len * kv_dim);
    for (float& x : v) x = stored<S>(nd(rng));
    return v;
  };
  std::vector<float> k0 = dense(len0), v0 = dense(len0), k1 = dense(len1), v1 = dense(len1);
  std::copy_n(k0.begin(), (size_t)shared * bs * kv_dim, k1.begin());
  std::copy_n(v0.begin(), (size_t)shared * bs * kv_dim, v1.begin());
  std::vector<S> pool((size_t)n_blocks * 2 * bs * kv_dim, to_s<S>(NAN));  // unwritten slots poison the result
  auto put = [&](const std::vector<int32_t>& tab, const std::vector<float>& kd, const std::vector<float>& vd,
                 int32_t len) {
    for (int32_t p = 0; p < len; ++p)
      for (int32_t i = 0; i < kv_dim; ++i) {
        size_t base = ((size_t)tab[p / bs] * 2 * bs + p % bs) * kv_dim + i;
        pool[base] = to_s<S>(kd[(size_t)p * kv_dim + i]);
        pool[base + (size_t)bs * kv_dim] = to_s<S>(vd[(size_t)p * kv_dim + i]);
      }
  };
  put(tab0, k0, v0, len0);
  put(tab1, k1, v1, len1);

  // The piece: the last 7 tokens of sequence 0 (a prefill chunk) and the
  // last token of sequence 1 (a decode step).
  std::vector<int32_t> pos, entry;
  for (int32_t p = len0 - 7; p < len0; ++p) pos.push_back(p), entry.push_back(0);
  pos.push_back(len1 - 1), entry.push_back(1);
  const int32_t T = (int32_t)pos.size();
  std::vector<int32_t> tables = tab0, table_off = {0, (int32_t)tab0.size()};
  tables.insert(tables.end(), tab1.begin(), tab1.end());
  std::vector<float> q((size_t)T * k.nh * k.hd);
  for (float& x : q) x = nd(rng);

  // float64 reference.
  std::vector<double> ref((size_t)T * k.nh * k.hd);
  const int32_t group = k.nh / k.nkv;
  for (int32_t t = 0; t < T; ++t) {
    const auto& kd = entry[t] == 0 ? k0 : k1;
    const auto& vd = entry[t] == 0 ? v0 : v1;
    const int32_t first = k.window > 0 ? std::max(0, pos[t] - k.window + 1) : 0;
    for (int32_t h = 0; h < k.nh; ++h) {
      const int32_t g = h / group;
      std::vector<double> s;
      for (int32_t p = first; p <= pos[t]; ++p) {
        double d = 0;
        for (int32_t i = 0; i < k.hd; ++i)
          d += (double)q[((size_t)t * k.nh + h) * k.hd + i] * kd[(size_t)p * kv_dim + g * k.hd + i];
        s.push_back(d / std::sqrt((double)k.hd));
      }
      const double m = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += x = std::exp(x - m);
      for (int32_t i = 0; i < k.hd; ++i) {
        double o = 0;
        for (size_t j = 0; j < s.size(); ++j) o += s[j] / sum * vd[(size_t)(first + j) * kv_dim + g * k.hd + i];
        ref[((size_t)t * k.nh + h) * k.hd + i] = o;
      }
    }
  }

  cuda::AttnShape shape{T, k.nh, k.nkv, k.hd, k.window, k.force_splits};
  S* d_pool = device_copy(pool);
  float* d_q = device_copy(q);
  int32_t *d_pos = device_copy(pos), *d_entry = device_copy(entry), *d_tables = device_copy(tables),
          *d_off = device_copy(table_off);
  std::vector<float> ws(std::max<size_t>(1, cuda::attention_workspace_floats(shape)));
  float* d_ws = device_copy(ws);
  std::vector<S> out((size_t)T * k.nh * k.hd, to_s<S>(NAN));
  S* d_out = device_copy(out);
  cuda::MetaView m{nullptr, d_pos, d_entry, d_off, d_tables, nullptr};
  cuda::paged_attention<S>(d_q, cuda::KvView<S>{d_pool, bs, kv_dim}, m, shape, d_ws, d_out, nullptr);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(out.data(), d_out, out.size() * sizeof(S), cudaMemcpyDeviceToHost), cudaSuccess);
  for (void* p : {(void*)d_pool, (void*)d_q, (void*)d_pos, (void*)d_entry, (void*)d_tables, (void*)d_off, (void*)d_ws,
                  (void*)d_out})
    cudaFree(p);

  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double d = from_s<S>(out[i]) - ref[i];
    ASSERT_FALSE(std::isnan(from_s<S>(out[i]))) << "output " << i << " unwritten or read a poisoned slot";
    num += d * d;
    den += ref[i] * ref[i];
  }
  EXPECT_LE(std::sqrt(num / den), tol) << "block " << bs << " heads " << k.nh << "/" << k.nkv << " hd " << k.hd
                                       << " window " << k.window << " splits " << k.force_splits;
}

const Case kCases[] = {
    {1, 4, 2, 16, 0, 1},  {3, 4, 2, 16, 0, 3},  {16, 6, 1, 64, 0, 1},  {16, 12, 2, 128, 0, 4}, {32, 8, 8, 128, 0, 1},
    {8, 28, 4, 128, 0, 2}, {16, 4, 4, 256, 0, 1}, {4, 4, 2, 32, 5, 1},  {4, 4, 2, 32, 5, 5},   {16, 10, 1, 64, 0, 16},
};

TEST(CudaAttention, F32PagedAttentionMatchesADenseFloat64Reference) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  for (const Case& k : kCases) check_case<float>(k, 1e-5);
}

TEST(CudaAttention, Bf16PagedAttentionMatchesADenseFloat64Reference) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  for (const Case& k : kCases) check_case<__nv_bfloat16>(k, 1e-2);
}

TEST(CudaAttention, SplitsFillTheMachineOnlyForSmallPieces) {
  EXPECT_EQ(cuda::attention_splits(4096, 12, 2, 132), 1);
  EXPECT_GT(cuda::attention_splits(1, 12, 2, 132), 1);
  EXPECT_LE(cuda::attention_splits(1, 12, 2, 132), cuda::kAttnMaxSplits);
}

}  // namespace
}  // namespace flashtts::test
