// The micro-kernel code the SIMD paths share (gpu/cpu/matmul_avx2.cpp,
// matmul_avx512.cpp): the k loop, the zero-padded last group, the prefetch of
// a streaming row, and the dispatch from (rm, rn, dtype) to a tile. Included
// only by those files, each after defining
//   FLASHTTS_TILE_TARGET  the function attribute of its instruction set, and
//   struct Simd           its vector type and operations (see matmul_avx2.cpp),
// inside an anonymous namespace, so that each file gets code of its own.
//
// Lane order, the rule of matmul_tile.h made concrete: F32 and F16 weights go
// in groups of L (the lane count), lane j taking element Lc + j; BF16 weights
// go in groups of 2L, lane j taking element 2Lc + 2j and then 2Lc + 2j + 1,
// because a bf16 pair widens to two floats with one shift and one mask (no
// shuffle of the weight bytes that stream from memory) while the x row, read
// from cache, is deinterleaved instead.
//
// Thread contract: pure functions; call from any thread.
#pragma once

#include <xmmintrin.h>

#include <cstring>

#include "gpu/cpu/matmul_tile.h"

namespace flashtts::cpu {
namespace {

template <DType WT>
constexpr int64_t kGroup = WT == DType::BF16 ? 2 * Simd::kLanes : Simd::kLanes;

// One group: acc[r][o] += x row r . w row o over the group at x[r] / w[o].
template <DType WT, int RM, int RN>
FLASHTTS_TILE_TARGET inline void step(const float* const* x, const char* const* w,
                                      typename Simd::Vec (&acc)[RM][RN]) {
  using Vec = typename Simd::Vec;
  if constexpr (WT == DType::BF16) {
    Vec xe[RM], xo[RM];
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) Simd::deinterleave(x[r], &xe[r], &xo[r]);
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) {
      Vec we, wo;
      Simd::bf16_pairs(w[o], &we, &wo);
#pragma GCC unroll 8
      for (int r = 0; r < RM; ++r) acc[r][o] = Simd::fma(xo[r], wo, Simd::fma(xe[r], we, acc[r][o]));
    }
  } else {
    Vec xv[RM];
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) xv[r] = Simd::load(x[r]);
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) {
      Vec wv;
      if constexpr (WT == DType::F32) wv = Simd::load(reinterpret_cast<const float*>(w[o]));
      else wv = Simd::load_f16(reinterpret_cast<const uint16_t*>(w[o]));
#pragma GCC unroll 8
      for (int r = 0; r < RM; ++r) acc[r][o] = Simd::fma(xv[r], wv, acc[r][o]);
    }
  }
}

template <DType WT, int RM, int RN>
FLASHTTS_TILE_TARGET void tile(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y,
                               int64_t ldy, int64_t k) {
  constexpr int64_t esize = WT == DType::F32 ? 4 : 2;
  constexpr int64_t G = kGroup<WT>;
  const char* wb = static_cast<const char*>(w);
  typename Simd::Vec acc[RM][RN];
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int o = 0; o < RN; ++o) acc[r][o] = Simd::zero();
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
      for (int o = 0; o < RN; ++o) _mm_prefetch(p + o * 64, _MM_HINT_T1);
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
      const float s = Simd::hsum(acc[r][o]);
      y[r * ldy + o] = b ? s + b[o] : s;
    }
}

// rn is a run-time value up to Simd::kMaxRn (kMaxRn1 for one row).
template <DType WT, int RM, int RN = 1>
FLASHTTS_TILE_TARGET void tile_rn(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y,
                                  int64_t ldy, int rn, int64_t k) {
  if (rn == RN) return tile<WT, RM, RN>(x, ldx, w, ldw, b, y, ldy, k);
  if constexpr (RN < (RM == 1 ? Simd::kMaxRn1 : Simd::kMaxRn))
    return tile_rn<WT, RM, RN + 1>(x, ldx, w, ldw, b, y, ldy, rn, k);
}

template <DType WT, int RM = 1>
FLASHTTS_TILE_TARGET void tile_rm(const float* x, int64_t ldx, const void* w, int64_t ldw, const float* b, float* y,
                                  int64_t ldy, int rm, int rn, int64_t k) {
  if (rm == RM) return tile_rn<WT, RM>(x, ldx, w, ldw, b, y, ldy, rn, k);
  if constexpr (RM < Simd::kMaxRm) return tile_rm<WT, RM + 1>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
}

void tile_any(const float* x, int64_t ldx, const void* w, DType wt, int64_t ldw, const float* b, float* y,
              int64_t ldy, int rm, int rn, int64_t k) {
  switch (wt) {
    case DType::BF16: return tile_rm<DType::BF16>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
    case DType::F16: return tile_rm<DType::F16>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
    default: return tile_rm<DType::F32>(x, ldx, w, ldw, b, y, ldy, rm, rn, k);
  }
}

FLASHTTS_TILE_TARGET void widen_f16(const uint16_t* in, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + Simd::kLanes <= n; i += Simd::kLanes) Simd::store(out + i, Simd::load_f16(in + i));
  for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

constexpr TileKernel kTileKernel{tile_any, widen_f16, Simd::kMaxRm, Simd::kMaxRn, Simd::kMaxRn1};

}  // namespace
}  // namespace flashtts::cpu
