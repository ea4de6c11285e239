// CPU kernels of the forward pass besides the matrix products (those are in
// gpu/cpu/matmul.h), float32, row-major. Each works row by row, so callers may
// split the rows across threads; a row's result never depends on the others.
//
// Thread contract: pure functions over caller-owned buffers.
#pragma once

#include <cstdint>

namespace flashtts::cpu {

// out (n, d) = x / rms(x) * w, per row, eps inside the sqrt as in HF.
void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t d, float eps);

// RoPE angles for positions pos[0..n): cos and sin, each (n, hd/2), the angle
// pos * inv_freq_i in float32 as HF computes it.
void rope_table(const int32_t* pos, int64_t n, int64_t hd, const float* inv_freq, float* cos_out, float* sin_out);

// Rotates (n, n_heads, hd) in place with a rope_table of the same n rows: HF
// "rotate_half" convention, pairs (i, i + hd/2).
void rope(float* x, const float* cos_t, const float* sin_t, int64_t n, int64_t n_heads, int64_t hd);

// RoPE inverse frequencies (hd/2): theta^(-2i/hd) in float32, as HF computes them.
void rope_inv_freq(int64_t hd, float theta, float* inv_freq);

// gate (n, f) <- silu(gate) * up.
void silu_mul(float* gate, const float* up, int64_t count);

// In-place softmax over n values; returns nothing, handles -inf.
void softmax(float* x, int64_t n);

}  // namespace flashtts::cpu
