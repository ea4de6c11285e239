// Portable micro-kernel of cpu::matmul, for x86-64 CPUs without AVX2 (and any
// other target): 8 lanes kept in arrays, a multiply then an add (no fused
// multiply-add: it would be a library call here), tiles of up to 2 x rows by
// 4 w rows; lane j takes element 8c + j for every weight dtype. Slower, and
// its own bits, but as batch-invariant as the others.
#include <cstring>

#include "gpu/cpu/matmul_tile.h"

namespace flashtts::cpu {

namespace {

constexpr int kLanes = 8;

template <DType WT>
inline void load_w(const void* w, int64_t i, int n, float* out) {
  for (int j = 0; j < n; ++j) {
    if constexpr (WT == DType::F32) out[j] = static_cast<const float*>(w)[i + j];
    else if constexpr (WT == DType::BF16) out[j] = bf16_to_f32(static_cast<const uint16_t*>(w)[i + j]);
    else out[j] = f16_to_f32(static_cast<const uint16_t*>(w)[i + j]);
  }
  for (int j = n; j < kLanes; ++j) out[j] = 0.0f;
}

// The fixed tree of the SIMD paths: lanes j + (j + 4), then 4 -> 2 -> 1.
inline float hsum(const float* a) {
  const float s4[4] = {a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]};
  const float s2[2] = {s4[0] + s4[2], s4[1] + s4[3]};
  return s2[0] + s2[1];
}

template <DType WT, int RM, int RN>
void tile(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y, int64_t ldy,
          int64_t k) {
  constexpr size_t esize = WT == DType::F32 ? 4 : 2;
  const char* wb = static_cast<const char*>(w);
  float acc[RM][RN][kLanes] = {};
  for (int64_t i = 0; i < k; i += kLanes) {
    const int n = int(k - i < kLanes ? k - i : kLanes);
    float xv[RM][kLanes];
    for (int r = 0; r < RM; ++r) {
      std::memcpy(xv[r], x + r * ldx + i, n * sizeof(float));
      for (int j = n; j < kLanes; ++j) xv[r][j] = 0.0f;
    }
    for (int o = 0; o < RN; ++o) {
      float wv[kLanes];
      load_w<WT>(wb + o * ldw * esize, i, n, wv);
      for (int r = 0; r < RM; ++r)
        for (int j = 0; j < kLanes; ++j) acc[r][o][j] += xv[r][j] * wv[j];
    }
  }
  for (int r = 0; r < RM; ++r)
    for (int o = 0; o < RN; ++o) {
      const float s = hsum(acc[r][o]);
      y[r * ldy + o] = b ? s + b[o] : s;
    }
}

template <DType WT>
void tile_wt(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y, int64_t ldy, int rm,
             int rn, int64_t k) {
  using Fn = void (*)(const float*, int64_t, const void*, int64_t, const float*, float*, int64_t, int64_t);
  static constexpr Fn fns[2][4] = {{tile<WT, 1, 1>, tile<WT, 1, 2>, tile<WT, 1, 3>, tile<WT, 1, 4>},
                                   {tile<WT, 2, 1>, tile<WT, 2, 2>, tile<WT, 2, 3>, tile<WT, 2, 4>}};
  fns[rm - 1][rn - 1](x, ldx, w, ldw, b, y, ldy, k);
}

void widen_f16(const uint16_t* in, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void tile_any(const float* x, int64_t ldx, const void* w, DType wt, int64_t ldw, const float* b, float* y,
              int64_t ldy, int rm, int rn, int64_t k) {
  switch (wt) {
    case DType::BF16: return tile_wt<DType::BF16>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
    case DType::F16: return tile_wt<DType::F16>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
    default: return tile_wt<DType::F32>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
  }
}

}  // namespace

const TileKernel& tile_kernel_portable() {
  static const TileKernel k{tile_any, widen_f16, 2, 4, 4};
  return k;
}

}  // namespace flashtts::cpu
