// AVX-512 micro-kernel of cpu::matmul: 16 lanes, fused multiply-add, tiles of
// up to 4 x rows by 4 w rows (1 by 8 for a single row; 32 zmm registers).
// Compiled for AVX-512F through function attributes only, so that no code of
// this file can run on a CPU without it unless best_isa() picked it. The
// loop itself is gpu/cpu/matmul_tile_impl.h.
// Other architectures (aarch64: a Jetson) build the portable tile in its place;
// best_isa() never picks this one there.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "gpu/cpu/matmul_tile.h"

#define FLASHTTS_TILE_TARGET __attribute__((target("avx512f,avx2,fma,f16c")))

// GCC 12's AVX-512 headers start some conversions from _mm*_undefined_*()
// values and then warn about them; nothing here reads an undefined lane.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace flashtts::cpu {
namespace {

struct Simd {
  using Vec = __m512;
  static constexpr int kLanes = 16, kMaxRm = 4, kMaxRn = 4, kMaxRn1 = 8;

  FLASHTTS_TILE_TARGET static Vec zero() { return _mm512_setzero_ps(); }
  FLASHTTS_TILE_TARGET static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  FLASHTTS_TILE_TARGET static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  FLASHTTS_TILE_TARGET static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  FLASHTTS_TILE_TARGET static Vec load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  // 32 bf16 values: elements 2j into even, 2j + 1 into odd, as floats.
  FLASHTTS_TILE_TARGET static void bf16_pairs(const void* p, Vec* even, Vec* odd) {
    const __m512i v = _mm512_loadu_si512(p);
    *even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *odd = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
  }
  // 32 floats: elements 2j into even, 2j + 1 into odd.
  FLASHTTS_TILE_TARGET static void deinterleave(const float* p, Vec* even, Vec* odd) {
    const __m512i e = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i o = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + kLanes);
    *even = _mm512_permutex2var_ps(a, e, b);
    *odd = _mm512_permutex2var_ps(a, o, b);
  }
  // The fixed tree: lanes j + (j + 8), then j + (j + 4), then 2 -> 1.
  FLASHTTS_TILE_TARGET static float hsum(Vec v) {
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  }
};

}  // namespace
}  // namespace flashtts::cpu

#include "gpu/cpu/matmul_tile_impl.h"

namespace flashtts::cpu {

const TileKernel& tile_kernel_avx512() { return kTileKernel; }

}  // namespace flashtts::cpu
#else
#include "gpu/cpu/matmul_tile.h"

namespace flashtts::cpu {
const TileKernel& tile_kernel_avx512() { return tile_kernel_portable(); }

}  // namespace flashtts::cpu
#endif
