// AVX2 micro-kernel of cpu::matmul: 8 lanes, fused multiply-add, tiles of up
// to 3 x rows by 3 w rows (1 by 8 for a single row: 16 ymm registers).
// Compiled for AVX2 + FMA + F16C through function attributes only, so that no
// code of this file can run on a CPU without them unless best_isa() picked it.
//
// Lane order (fixed for every tile shape): F32 and F16 weights go in groups
// of 8, lane j taking element 8c + j; BF16 weights go in groups of 16, lane
// j taking element 16c + 2j and then 16c + 2j + 1, because a bf16 pair widens
// to two floats with one shift and one mask (no shuffle of the weights, the
// bytes that stream) while the x row, read from cache, is deinterleaved.
#include <immintrin.h>

#include <cstring>

#include "gpu/cpu/matmul_tile.h"

#define FLASHTTS_AVX2 __attribute__((target("avx2,fma,f16c")))


namespace flashtts::cpu {

namespace {

constexpr int kLanes = 8;

// Elements per group: what one step of the k loop consumes of each row.
template <DType WT>
constexpr int kGroup = WT == DType::BF16 ? 2 * kLanes : kLanes;

// The fixed tree: lanes j + (j + 4), then 4 -> 2 -> 1.
FLASHTTS_AVX2 inline float hsum(__m256 s8) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// One group: acc[r][o] += x row r . w row o over the group at x[r] / w[o].
template <DType WT, int RM, int RN>
FLASHTTS_AVX2 inline void step(const float* const* x, const char* const* w, __m256 (&acc)[RM][RN]) {
  if constexpr (WT == DType::BF16) {
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    __m256 xe[RM], xo[RM];
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) {
      // shuffle_ps pairs within 128-bit halves; permute4x64 puts the halves in order.
      const __m256 a = _mm256_loadu_ps(x[r]), b = _mm256_loadu_ps(x[r] + kLanes);
      xe[r] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
      xo[r] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
    }
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[o]));
      const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, high));
#pragma GCC unroll 8
      for (int r = 0; r < RM; ++r) acc[r][o] = _mm256_fmadd_ps(xo[r], wo, _mm256_fmadd_ps(xe[r], we, acc[r][o]));
    }
  } else {
    __m256 xv[RM];
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) xv[r] = _mm256_loadu_ps(x[r]);
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) {
      __m256 wv;
      if constexpr (WT == DType::F32) wv = _mm256_loadu_ps(reinterpret_cast<const float*>(w[o]));
      else wv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[o])));
#pragma GCC unroll 8
      for (int r = 0; r < RM; ++r) acc[r][o] = _mm256_fmadd_ps(xv[r], wv, acc[r][o]);
    }
  }
}

template <DType WT, int RM, int RN>
FLASHTTS_AVX2 void tile(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y,
                          int64_t ldy, int64_t k) {
  constexpr int64_t esize = WT == DType::F32 ? 4 : 2;
  constexpr int64_t G = kGroup<WT>;
  const char* wb = static_cast<const char*>(w);
  __m256 acc[RM][RN];
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) acc[r][o] = _mm256_setzero_ps();
  const float* xp[RM];
  const char* wp[RN];
  // One row (decode) streams its weights: fetch the next tile's rows, which
  // follow this tile's in memory, as fast as this tile reads its own.
  const char* next = wb + RN * ldw * esize;
  int64_t i = 0;
  for (; i + G <= k; i += G) {
    if constexpr (RM == 1) {
      const char* p = next + i * esize * RN;
#pragma GCC unroll 8
      for (int o = 0; o < RN; ++o) _mm_prefetch(p + o * 64, _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) xp[r] = x + r * ldx + i;
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) wp[o] = wb + (o * ldw + i) * esize;
    step<WT, RM, RN>(xp, wp, acc);
  }
  if (i < k) {  // the last partial group, zero-padded
    const int64_t rest = k - i;
    alignas(64) float xpad[RM][G];
    alignas(64) char wpad[RN][G * esize];
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) {
      std::memset(xpad[r], 0, sizeof xpad[r]);
      std::memcpy(xpad[r], x + r * ldx + i, rest * sizeof(float));
      xp[r] = xpad[r];
    }
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) {
      std::memset(wpad[o], 0, sizeof wpad[o]);
      std::memcpy(wpad[o], wb + (o * ldw + i) * esize, rest * esize);
      wp[o] = wpad[o];
    }
    step<WT, RM, RN>(xp, wp, acc);
  }
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) {
      const float s = hsum(acc[r][o]);
      y[r * ldy + o] = b ? s + b[o] : s;
    }
}

template <DType WT, int RM>
FLASHTTS_AVX2 void tile_rm(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y,
                             int64_t ldy, int rn, int64_t k) {
  switch (rn) {
    case 1: return tile<WT, RM, 1>(x, ldx, w, ldw, b, y, ldy, k);
    case 2: return tile<WT, RM, 2>(x, ldx, w, ldw, b, y, ldy, k);
    case 3: return tile<WT, RM, 3>(x, ldx, w, ldw, b, y, ldy, k);
  }
  if constexpr (RM == 1) {
    switch (rn) {
      case 4: return tile<WT, 1, 4>(x, ldx, w, ldw, b, y, ldy, k);
      case 5: return tile<WT, 1, 5>(x, ldx, w, ldw, b, y, ldy, k);
      case 6: return tile<WT, 1, 6>(x, ldx, w, ldw, b, y, ldy, k);
      case 7: return tile<WT, 1, 7>(x, ldx, w, ldw, b, y, ldy, k);
      case 8: return tile<WT, 1, 8>(x, ldx, w, ldw, b, y, ldy, k);
    }
  }
}

template <DType WT>
FLASHTTS_AVX2 void tile_wt(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y,
                             int64_t ldy, int rm, int rn, int64_t k) {
  switch (rm) {
    case 1: return tile_rm<WT, 1>(x, ldx, w, ldw, b, y, ldy, rn, k);
    case 2: return tile_rm<WT, 2>(x, ldx, w, ldw, b, y, ldy, rn, k);
    case 3: return tile_rm<WT, 3>(x, ldx, w, ldw, b, y, ldy, rn, k);
  }
}

void tile_any(const float* x, int64_t ldx, const void* w, DType wt, int64_t ldw, const float* b, float* y,
              int64_t ldy, int rm, int rn, int64_t k) {
  switch (wt) {
    case DType::BF16: return tile_wt<DType::BF16>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
    case DType::F16: return tile_wt<DType::F16>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
    default: return tile_wt<DType::F32>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
  }
}

FLASHTTS_AVX2 void widen_f16(const uint16_t* in, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

}  // namespace

const TileKernel& tile_kernel_avx2() {
  static const TileKernel k{tile_any, widen_f16, 3, 3, 8};
  return k;
}

}  // namespace flashtts::cpu
