// The per-ISA micro-kernels behind cpu::matmul (gpu/cpu/matmul.h), and the
// one rule they all follow: an output is the dot product of one x row and one
// w row over k, summed in L lanes, each lane taking its elements of every
// group of the k axis in order (which elements is the kernel's to say, per
// weight dtype; the last partial group is zero-padded), the lanes then added
// by a fixed pairwise tree, the bias last. How many outputs a call computes
// at once (rm x rn) never changes how one of them is summed.
//
// Thread contract: pure functions; call from any thread.
#pragma once

#include <cstdint>

#include "gpu/dtype.h"

namespace flashtts::cpu {

// y[r * ldy + o] = dot(x + r * ldx, w row o) (+ b[o]) for r < rm, o < rn.
// w rows are ldw elements of dtype wt (F32, F16 or BF16) apart.
// REQUIRES: 1 <= rm <= max_rm; 1 <= rn <= (rm == 1 ? max_rn_1 : max_rn).
using TileFn = void (*)(const float* x, int64_t ldx, const void* w, DType wt, int64_t ldw, const float* b, float* y,
                        int64_t ldy, int rm, int rn, int64_t k);

// out[i] = the float32 value of F16 element i, exactly. F16 weights sum in
// the F32 order, so a block that many row tiles read is widened once ahead.
using WidenFn = void (*)(const uint16_t* in, int64_t n, float* out);

struct TileKernel {
  TileFn tile = nullptr;
  WidenFn widen_f16 = nullptr;
  int max_rm = 1, max_rn = 1;  // the largest tile of several rows
  int max_rn_1 = 1;            // the widest tile of one row (decode: no row reuse, more outputs in flight)
};

const TileKernel& tile_kernel_portable();
const TileKernel& tile_kernel_avx2();    // REQUIRES: the CPU has AVX2, FMA and F16C
const TileKernel& tile_kernel_avx512();  // REQUIRES: the CPU has AVX-512F

}  // namespace flashtts::cpu
