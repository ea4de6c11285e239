#include "gpu/cpu/kernels.h"

#include <algorithm>
#include <cmath>

namespace flashtts::cpu {

void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t d, float eps) {
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += (double)xr[i] * xr[i];
    float scale = 1.0f / std::sqrt((float)(ss / d) + eps);
    float* o = out + r * d;
    for (int64_t i = 0; i < d; ++i) o[i] = w[i] * (xr[i] * scale);
  }
}

void rope_inv_freq(int64_t hd, float theta, float* inv_freq) {
  for (int64_t i = 0; i < hd / 2; ++i) inv_freq[i] = 1.0f / std::pow(theta, (float)(2 * i) / (float)hd);
}

void rope_table(const int32_t* pos, int64_t n, int64_t hd, const float* inv_freq, float* cos_out, float* sin_out) {
  const int64_t half = hd / 2;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < half; ++i) {
      float a = (float)pos[r] * inv_freq[i];
      cos_out[r * half + i] = std::cos(a);
      sin_out[r * half + i] = std::sin(a);
    }
  }
}

void rope(float* x, const float* cos_t, const float* sin_t, int64_t n, int64_t n_heads, int64_t hd) {
  const int64_t half = hd / 2;
  for (int64_t r = 0; r < n; ++r) {
    const float* cs = cos_t + r * half;
    const float* sn = sin_t + r * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  }
}

void silu_mul(float* gate, const float* up, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace flashtts::cpu
