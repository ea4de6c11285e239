// CPU kernels of the forward pass, float32. Matrices are row-major; a Linear
// weight W is (out, in) as Hugging Face stores it, so y = x W^T + b.
//
// Thread contract: pure functions over caller-owned buffers; the ones taking a
// ThreadPool split their work across it and return when done.
#pragma once

#include <cstdint>

#include "gpu/cpu/thread_pool.h"

namespace flashtts::cpu {

// y (n, out) = x (n, in) W^T (out, in) [+ b (out)]. Uses BLAS.
void linear(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out);

// out (n, d) = x / rms(x) * w, per row, eps inside the sqrt as in HF.
void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t d, float eps);

// RoPE angles for positions pos[0..n): cos and sin, each (n, hd/2), with
// inv_freq_i = theta^(-2i/hd) and the angle pos * inv_freq_i in float32 as HF does.
void rope_table(const int32_t* pos, int64_t n, int64_t hd, float theta, float* cos_out, float* sin_out);

// Rotates (n, n_heads, hd) in place with a rope_table of the same n rows: HF
// "rotate_half" convention, pairs (i, i + hd/2).
void rope(float* x, const float* cos_t, const float* sin_t, int64_t n, int64_t n_heads, int64_t hd);

// gate (n, f) <- silu(gate) * up.
void silu_mul(float* gate, const float* up, int64_t count);

// In-place softmax over n values; returns nothing, handles -inf.
void softmax(float* x, int64_t n);

}  // namespace flashtts::cpu
