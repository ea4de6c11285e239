// AVX2 micro-kernel of cpu::matmul: 8 lanes, fused multiply-add, tiles of up
// to 3 x rows by 3 w rows (1 by 8 for a single row; 16 ymm registers).
// Compiled for AVX2 + FMA + F16C through function attributes only, so that no
// code of this file can run on a CPU without them unless best_isa() picked
// it. The loop itself is gpu/cpu/matmul_tile_impl.h.
// Other architectures (aarch64: a Jetson) build the portable tile in its place;
// best_isa() never picks this one there.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "gpu/cpu/matmul_tile.h"

#define FLASHTTS_TILE_TARGET __attribute__((target("avx2,fma,f16c")))

namespace flashtts::cpu {
namespace {

struct Simd {
  using Vec = __m256;
  static constexpr int kLanes = 8, kMaxRm = 3, kMaxRn = 3, kMaxRn1 = 8;

  FLASHTTS_TILE_TARGET static Vec zero() { return _mm256_setzero_ps(); }
  FLASHTTS_TILE_TARGET static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  FLASHTTS_TILE_TARGET static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  FLASHTTS_TILE_TARGET static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  FLASHTTS_TILE_TARGET static Vec load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // 16 bf16 values: elements 2j into even, 2j + 1 into odd, as floats.
  FLASHTTS_TILE_TARGET static void bf16_pairs(const void* p, Vec* even, Vec* odd) {
    const __m256i v = _mm256_loadu_si256(static_cast<const __m256i*>(p));
    *even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
  }
  // 16 floats: elements 2j into even, 2j + 1 into odd. shuffle_ps picks pairs
  // within 128-bit halves; permute4x64 puts the halves in order.
  FLASHTTS_TILE_TARGET static void deinterleave(const float* p, Vec* even, Vec* odd) {
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + kLanes);
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
  }
  // The fixed tree: lanes j + (j + 4), then 4 -> 2 -> 1.
  FLASHTTS_TILE_TARGET static float hsum(Vec s8) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  }
};

}  // namespace
}  // namespace flashtts::cpu

#include "gpu/cpu/matmul_tile_impl.h"

namespace flashtts::cpu {

const TileKernel& tile_kernel_avx2() { return kTileKernel; }

}  // namespace flashtts::cpu
#else
#include "gpu/cpu/matmul_tile.h"

namespace flashtts::cpu {
const TileKernel& tile_kernel_avx2() { return tile_kernel_portable(); }

}  // namespace flashtts::cpu
#endif
