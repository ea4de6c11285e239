#include "gpu/cuda/attention.cuh"

#include <algorithm>

#include "gpu/cuda/device_math.cuh"

namespace flashtts::cuda {

namespace {

constexpr int kWarps = 4;

// D contiguous values of S in one load when they are aligned to D values:
// every K/V row offset is a multiple of hd, so `hd % D == 0` suffices.
template <int Bytes>
struct alignas(Bytes) Pack {
  unsigned char b[Bytes];
};

template <class S, int D>
__device__ __forceinline__ void load_dims(const S* row, int32_t d0, int32_t hd, bool whole, float (&out)[D]) {
  if (whole && d0 + D <= hd) {
    const Pack<D * sizeof(S)> p = *reinterpret_cast<const Pack<D * sizeof(S)>*>(row + d0);
    const S* v = reinterpret_cast<const S*>(p.b);
#pragma unroll
    for (int d = 0; d < D; ++d) out[d] = to_float(v[d]);
  } else {
#pragma unroll
    for (int d = 0; d < D; ++d) out[d] = d0 + d < hd ? to_float(row[d0 + d]) : 0.0f;
  }
}

// D = dims each lane holds (hd <= 32 * D); lanes own contiguous dims
// [lane*D, lane*D + D) so a warp reads a K/V vector in one coalesced sweep.
template <class S, int D>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const float* __restrict__ q, KvView<S> kv, MetaView m, AttnShape s, float* __restrict__ part,
                     S* __restrict__ out) {
  const int32_t t = blockIdx.x;
  const int32_t chunks = (s.nh / s.nkv + kAttnGroup - 1) / kAttnGroup;
  const int32_t g = blockIdx.y / chunks;                      // KV head
  const int32_t group = s.nh / s.nkv;
  const int32_t h0 = g * group + (blockIdx.y % chunks) * kAttnGroup;  // first query head of this CTA
  const int32_t nq = min(kAttnGroup, g * group + group - h0);
  const int32_t split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t d0 = lane * D;

  const int32_t pos = m.pos[t];
  const int32_t first = s.sliding_window > 0 ? max(0, pos - s.sliding_window + 1) : 0;
  const int32_t n_ctx = pos + 1 - first;
  const int32_t per_split = (n_ctx + s.splits - 1) / s.splits;
  const int32_t begin = first + split * per_split, end = min(pos + 1, begin + per_split);
  const int32_t* table = m.tables + m.table_off[m.entry[t]];
  const float scale = rsqrtf((float)s.hd);
  const bool whole = s.hd % D == 0;  // vector loads of K and V

  float qr[kAttnGroup][D], acc[kAttnGroup][D], mx[kAttnGroup], l[kAttnGroup];
#pragma unroll
  for (int j = 0; j < kAttnGroup; ++j) {
    mx[j] = -INFINITY;
    l[j] = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const bool in = j < nq && d0 + d < s.hd;
      qr[j][d] = in ? q[((int64_t)t * s.nh + h0 + j) * s.hd + d0 + d] * scale : 0.0f;
      acc[j][d] = 0.0f;
    }
  }

  for (int32_t p = begin + warp; p < end; p += kWarps) {
    const S* kp = kv.base + ((int64_t)table[p / kv.block_size] * 2 * kv.block_size + p % kv.block_size) * kv.kv_dim +
                  (int64_t)g * s.hd;
    const S* vp = kp + (int64_t)kv.block_size * kv.kv_dim;
    float kr[D], vr[D];
    load_dims<S, D>(kp, d0, s.hd, whole, kr);
    load_dims<S, D>(vp, d0, s.hd, whole, vr);
#pragma unroll
    for (int j = 0; j < kAttnGroup; ++j) {
      if (j >= nq) break;
      float dot = 0.0f;
#pragma unroll
      for (int d = 0; d < D; ++d) dot += qr[j][d] * kr[d];
      dot = warp_sum(dot);
      const float m_new = fmaxf(mx[j], dot), corr = expf(mx[j] - m_new), e = expf(dot - m_new);
      l[j] = l[j] * corr + e;
#pragma unroll
      for (int d = 0; d < D; ++d) acc[j][d] = acc[j][d] * corr + e * vr[d];
      mx[j] = m_new;
    }
  }

  // Merge the warps' states: (m, l, acc) per warp and head, through shared memory.
  __shared__ float sm_m[kWarps][kAttnGroup], sm_l[kWarps][kAttnGroup];
  __shared__ float sm_acc[kWarps][kAttnGroup][32 * D];
#pragma unroll
  for (int j = 0; j < kAttnGroup; ++j) {
    if (lane == 0) sm_m[warp][j] = mx[j], sm_l[warp][j] = l[j];
#pragma unroll
    for (int d = 0; d < D; ++d) sm_acc[warp][j][d0 + d] = acc[j][d];
  }
  __syncthreads();
  for (int32_t w = threadIdx.x; w < nq * s.hd; w += blockDim.x) {
    const int32_t j = w / s.hd, d = w % s.hd;
    float m_all = -INFINITY;
    for (int k = 0; k < kWarps; ++k) m_all = fmaxf(m_all, sm_m[k][j]);
    float l_all = 0.0f, a_all = 0.0f;
    for (int k = 0; k < kWarps; ++k) {
      if (sm_m[k][j] == -INFINITY) continue;  // this warp saw no position
      const float c = expf(sm_m[k][j] - m_all);
      l_all += sm_l[k][j] * c;
      a_all += sm_acc[k][j][d] * c;
    }
    const int64_t head = h0 + j;
    if (s.splits == 1) {
      out[((int64_t)t * s.nh + head) * s.hd + d] = from_float<S>(a_all / l_all);
    } else {
      // Partial state of this split: (T, nh, splits) x [m, l, acc(hd)].
      float* ps = part + (((int64_t)t * s.nh + head) * s.splits + split) * (2 + s.hd);
      if (d == 0) ps[0] = m_all, ps[1] = l_all;
      ps[2 + d] = a_all;
    }
  }
}

template <class S>
__global__ void merge_splits_kernel(const float* __restrict__ part, AttnShape s, S* __restrict__ out) {
  const int64_t th = blockIdx.x;  // token * nh + head
  const float* ps = part + th * s.splits * (2 + s.hd);
  float m_all = -INFINITY;
  for (int k = 0; k < s.splits; ++k) m_all = fmaxf(m_all, ps[k * (2 + s.hd)]);
  for (int32_t d = threadIdx.x; d < s.hd; d += blockDim.x) {
    float l_all = 0.0f, a_all = 0.0f;
    for (int k = 0; k < s.splits; ++k) {
      const float* p = ps + k * (2 + s.hd);
      if (p[0] == -INFINITY) continue;  // an empty split (short context)
      const float c = expf(p[0] - m_all);
      l_all += p[1] * c;
      a_all += p[2 + d] * c;
    }
    out[th * s.hd + d] = from_float<S>(a_all / l_all);
  }
}

template <class S, int D>
void launch(const float* q, KvView<S> kv, MetaView m, const AttnShape& s, float* ws, S* out, cudaStream_t st) {
  const int32_t chunks = (s.nh / s.nkv + kAttnGroup - 1) / kAttnGroup;
  attention_kernel<S, D><<<dim3(s.T, s.nkv * chunks, s.splits), kWarps * 32, 0, st>>>(q, kv, m, s, ws, out);
  if (s.splits > 1) merge_splits_kernel<S><<<s.T * s.nh, 128, 0, st>>>(ws, s, out);
}

}  // namespace

size_t attention_workspace_floats(const AttnShape& s) {
  return s.splits > 1 ? (size_t)s.T * s.nh * s.splits * (2 + s.hd) : 0;
}

int32_t attention_splits(int32_t T, int32_t nh, int32_t nkv, int32_t n_sms) {
  const int32_t ctas = T * nkv * ((nh / nkv + kAttnGroup - 1) / kAttnGroup);
  if (ctas >= 2 * n_sms) return 1;
  return std::min(kAttnMaxSplits, (2 * n_sms + ctas - 1) / ctas);
}

template <class S>
void paged_attention(const float* q, KvView<S> kv, MetaView m, const AttnShape& s, float* ws, S* out,
                     cudaStream_t st) {
  if (s.hd <= 32)
    launch<S, 1>(q, kv, m, s, ws, out, st);
  else if (s.hd <= 64)
    launch<S, 2>(q, kv, m, s, ws, out, st);
  else if (s.hd <= 128)
    launch<S, 4>(q, kv, m, s, ws, out, st);
  else
    launch<S, 8>(q, kv, m, s, ws, out, st);
}

template void paged_attention<float>(const float*, KvView<float>, MetaView, const AttnShape&, float*, float*,
                                     cudaStream_t);
template void paged_attention<__nv_bfloat16>(const float*, KvView<__nv_bfloat16>, MetaView, const AttnShape&, float*,
                                             __nv_bfloat16*, cudaStream_t);

}  // namespace flashtts::cuda
