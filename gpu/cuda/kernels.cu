#include "gpu/cuda/kernels.cuh"

#include "gpu/cuda/device_math.cuh"

namespace flashtts::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(size_t n, int threads = kThreads) {
  size_t b = (n + threads - 1) / threads;
  return (int)(b < 65535 * 32 ? b : 65535 * 32);
}

template <class S>
__global__ void embed_kernel(const S* __restrict__ tok_embd, const int32_t* __restrict__ tokens, int32_t h,
                             float* __restrict__ x) {
  const int64_t t = blockIdx.x;
  const S* row = tok_embd + (int64_t)tokens[t] * h;
  for (int32_t i = threadIdx.x; i < h; i += blockDim.x) x[t * h + i] = to_float(row[i]);
}

template <class O>
__global__ void residual_rmsnorm_kernel(float* __restrict__ x, const float* __restrict__ add,
                                        const float* __restrict__ bias, const float* __restrict__ w,
                                        const int32_t* __restrict__ rows, int32_t h, float eps, O* __restrict__ out) {
  const int64_t r = blockIdx.x;
  float* xr = x + (rows ? (int64_t)rows[r] : r) * h;
  float ss = 0.0f;
  for (int32_t i = threadIdx.x; i < h; i += blockDim.x) {
    float v = xr[i];
    if (add) v += add[r * h + i] + (bias ? bias[i] : 0.0f);
    if (add) xr[i] = v;
    ss += v * v;
  }
  ss = block_sum(ss);
  // As the CPU: scale = 1 / sqrt(mean + eps) in float, then w * (x * scale).
  const float scale = 1.0f / sqrtf(ss / (float)h + eps);
  O* o = out + r * h;
  for (int32_t i = threadIdx.x; i < h; i += blockDim.x) o[i] = from_float<O>(w[i] * (xr[i] * scale));
}

template <class S>
__global__ void qkv_rope_store_kernel(const float* __restrict__ qkv, const float* __restrict__ bias,
                                      const float* __restrict__ inv_freq, MetaView m, int32_t nh, int32_t nkv,
                                      int32_t hd, KvView<S> kv, float* __restrict__ q) {
  const int64_t t = blockIdx.x;
  const int32_t half = hd / 2, q_dim = nh * hd, kv_dim = nkv * hd, width = q_dim + 2 * kv_dim;
  const float* row = qkv + t * width;
  const int32_t p = m.pos[t];
  const int32_t* table = m.tables + m.table_off[m.entry[t]];
  S* slot_k = kv.base + ((int64_t)table[p / kv.block_size] * 2 * kv.block_size + p % kv.block_size) * kv.kv_dim;
  S* slot_v = slot_k + (int64_t)kv.block_size * kv.kv_dim;
  auto b = [&](int32_t c) { return bias ? bias[c] : 0.0f; };
  // Rotated pairs (i, i + half) of every q and k head.
  for (int32_t w = threadIdx.x; w < (nh + nkv) * half; w += blockDim.x) {
    const int32_t head = w / half, i = w % half;
    const float a = (float)p * inv_freq[i];
    const float cs = cosf(a), sn = sinf(a);
    const int32_t c = head < nh ? head * hd + i : q_dim + (head - nh) * hd + i;
    const float lo = row[c] + b(c), hi = row[c + half] + b(c + half);
    const float r_lo = lo * cs - hi * sn, r_hi = hi * cs + lo * sn;
    if (head < nh) {
      q[t * q_dim + c] = r_lo;
      q[t * q_dim + c + half] = r_hi;
    } else {
      const int32_t kc = c - q_dim;
      slot_k[kc] = from_float<S>(r_lo);
      slot_k[kc + half] = from_float<S>(r_hi);
    }
  }
  for (int32_t i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    const int32_t c = q_dim + kv_dim + i;
    slot_v[i] = from_float<S>(row[c] + b(c));
  }
}

template <class S>
__global__ void silu_mul_kernel(const float* __restrict__ gu, const float* __restrict__ bias, int32_t f, size_t n,
                                S* __restrict__ act) {
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
    const size_t t = k / f;
    const int32_t i = (int32_t)(k % f);
    float g = gu[t * 2 * f + i], u = gu[t * 2 * f + f + i];
    if (bias) g += bias[i], u += bias[f + i];
    act[k] = from_float<S>(g / (1.0f + expf(-g)) * u);
  }
}

__global__ void copy_kv_blocks_kernel(char* kv, const int32_t* pairs, size_t layer_bytes, size_t block_bytes) {
  const int32_t c = blockIdx.x, layer = blockIdx.y;
  const char* src = kv + layer * layer_bytes + (size_t)pairs[2 * c] * block_bytes;
  char* dst = kv + layer * layer_bytes + (size_t)pairs[2 * c + 1] * block_bytes;
  if (block_bytes % sizeof(int4) == 0) {  // then every block starts 16-byte aligned too
    for (size_t i = threadIdx.x; i < block_bytes / sizeof(int4); i += blockDim.x)
      reinterpret_cast<int4*>(dst)[i] = reinterpret_cast<const int4*>(src)[i];
  } else {
    for (size_t i = threadIdx.x; i < block_bytes; i += blockDim.x) dst[i] = src[i];
  }
}

__global__ void prm_classifier_kernel(const float* __restrict__ mid, const float* __restrict__ w2,
                                      const float* __restrict__ b2, int32_t h, float* __restrict__ out) {
  const int64_t r = blockIdx.x;
  float s0 = 0.0f, s1 = 0.0f;
  for (int32_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float v = mid[r * h + i];
    s0 += v * w2[i];
    s1 += v * w2[h + i];
  }
  s0 = block_sum(s0);
  s1 = block_sum(s1);
  if (threadIdx.x == 0) {
    const float l0 = s0 + (b2 ? b2[0] : 0.0f), l1 = s1 + (b2 ? b2[1] : 0.0f), m = fmaxf(l0, l1);
    const float e0 = expf(l0 - m), e1 = expf(l1 - m);
    out[r] = e1 / (e0 + e1);
  }
}

__global__ void prm_value_kernel(const float* __restrict__ hidden, const float* __restrict__ w2,
                                 const float* __restrict__ b2, int32_t h, float* __restrict__ out) {
  const int64_t r = blockIdx.x;
  float s = 0.0f;
  for (int32_t i = threadIdx.x; i < h; i += blockDim.x) s += hidden[r * h + i] * w2[i];
  s = block_sum(s);
  if (threadIdx.x == 0) out[r] = 1.0f / (1.0f + expf(-(s + (b2 ? b2[0] : 0.0f))));
}

template <class S>
__global__ void prm_lm_logits_kernel(const float* __restrict__ hidden, const S* __restrict__ lm_head, int32_t good,
                                     int32_t bad, int32_t h, float* __restrict__ out) {
  const int64_t r = blockIdx.x;
  float sg = 0.0f, sb = 0.0f;
  for (int32_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float v = hidden[r * h + i];
    sg += v * to_float(lm_head[(int64_t)good * h + i]);
    sb += v * to_float(lm_head[(int64_t)bad * h + i]);
  }
  sg = block_sum(sg);
  sb = block_sum(sb);
  if (threadIdx.x == 0) {
    const float m = fmaxf(sg, sb), eg = expf(sg - m), eb = expf(sb - m);
    out[r] = eg / (eg + eb);
  }
}

__global__ void bias_act_kernel(float* __restrict__ y, const float* __restrict__ b, int32_t width, size_t n,
                                bool relu) {
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
    float v = y[k] + (b ? b[k % width] : 0.0f);
    y[k] = relu ? fmaxf(v, 0.0f) : v;
  }
}

__global__ void residual_add_kernel(float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ b,
                                    int32_t h, size_t n) {
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
    x[k] += y[k] + (b ? b[k % h] : 0.0f);
}

template <class S>
__global__ void convert_kernel(const float* __restrict__ in, S* __restrict__ out, size_t n) {
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
    out[k] = from_float<S>(in[k]);
}

}  // namespace

template <class S>
void embed(const S* tok_embd, MetaView m, int32_t T, int32_t h, float* x, cudaStream_t st) {
  embed_kernel<S><<<T, kThreads, 0, st>>>(tok_embd, m.tokens, h, x);
}

template <class O>
void residual_rmsnorm(float* x, const float* add, const float* bias, const float* w, const int32_t* rows,
                      int32_t n_rows, int32_t h, float eps, O* out, cudaStream_t st) {
  if (n_rows > 0) residual_rmsnorm_kernel<O><<<n_rows, 512, 0, st>>>(x, add, bias, w, rows, h, eps, out);
}

template <class S>
void qkv_rope_store(const float* qkv, const float* bias, const float* inv_freq, MetaView m, int32_t T, int32_t nh,
                    int32_t nkv, int32_t hd, KvView<S> kv, float* q, cudaStream_t st) {
  qkv_rope_store_kernel<S><<<T, kThreads, 0, st>>>(qkv, bias, inv_freq, m, nh, nkv, hd, kv, q);
}

template <class S>
void silu_mul(const float* gu, const float* bias, int32_t T, int32_t f, S* act, cudaStream_t st) {
  const size_t n = (size_t)T * f;
  silu_mul_kernel<S><<<blocks_for(n), kThreads, 0, st>>>(gu, bias, f, n, act);
}

void copy_kv_blocks(void* kv, const int32_t* pairs, int32_t n_pairs, int32_t n_layers, size_t layer_bytes,
                    size_t block_bytes, cudaStream_t st) {
  if (n_pairs > 0)
    copy_kv_blocks_kernel<<<dim3(n_pairs, n_layers), kThreads, 0, st>>>(static_cast<char*>(kv), pairs, layer_bytes,
                                                                         block_bytes);
}

void prm_classifier(const float* mid, const float* w2, const float* b2, int32_t R, int32_t h, float* out,
                    cudaStream_t st) {
  if (R > 0) prm_classifier_kernel<<<R, kThreads, 0, st>>>(mid, w2, b2, h, out);
}

void prm_value(const float* hidden, const float* w2, const float* b2, int32_t R, int32_t h, float* out,
               cudaStream_t st) {
  if (R > 0) prm_value_kernel<<<R, kThreads, 0, st>>>(hidden, w2, b2, h, out);
}

template <class S>
void prm_lm_logits(const float* hidden, const S* lm_head, int32_t good, int32_t bad, int32_t R, int32_t h, float* out,
                   cudaStream_t st) {
  if (R > 0) prm_lm_logits_kernel<S><<<R, kThreads, 0, st>>>(hidden, lm_head, good, bad, h, out);
}

void bias_act(float* y, const float* b, int32_t rows, int32_t width, bool relu, cudaStream_t st) {
  const size_t n = (size_t)rows * width;
  if (n > 0) bias_act_kernel<<<blocks_for(n), kThreads, 0, st>>>(y, b, width, n, relu);
}

void residual_add(float* x, const float* y, const float* b, int32_t T, int32_t h, cudaStream_t st) {
  const size_t n = (size_t)T * h;
  if (n > 0) residual_add_kernel<<<blocks_for(n), kThreads, 0, st>>>(x, y, b, h, n);
}

template <class S>
void convert(const float* in, S* out, size_t n, cudaStream_t st) {
  if (n > 0) convert_kernel<S><<<blocks_for(n), kThreads, 0, st>>>(in, out, n);
}

#define FLASHTTS_INSTANTIATE(S)                                                                                    \
  template void embed<S>(const S*, MetaView, int32_t, int32_t, float*, cudaStream_t);                              \
  template void residual_rmsnorm<S>(float*, const float*, const float*, const float*, const int32_t*, int32_t,     \
                                    int32_t, float, S*, cudaStream_t);                                             \
  template void qkv_rope_store<S>(const float*, const float*, const float*, MetaView, int32_t, int32_t, int32_t,   \
                                  int32_t, KvView<S>, float*, cudaStream_t);                                       \
  template void silu_mul<S>(const float*, const float*, int32_t, int32_t, S*, cudaStream_t);                       \
  template void prm_lm_logits<S>(const float*, const S*, int32_t, int32_t, int32_t, int32_t, float*, cudaStream_t); \
  template void convert<S>(const float*, S*, size_t, cudaStream_t);
FLASHTTS_INSTANTIATE(float)
FLASHTTS_INSTANTIATE(__nv_bfloat16)
#undef FLASHTTS_INSTANTIATE

}  // namespace flashtts::cuda
