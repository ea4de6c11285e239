#include "gpu/cpu/kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace flashtts::cpu {

void linear(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out) {
  if (b) {
    for (int64_t r = 0; r < n; ++r) std::copy(b, b + out, y + r * out);
  }
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)out, (int)in, 1.0f, w, (int)in, x, 1, b ? 1.0f : 0.0f, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0f, x, (int)in, w, (int)in,
              b ? 1.0f : 0.0f, y, (int)out);
}

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

void rope_table(const int32_t* pos, int64_t n, int64_t hd, float theta, float* cos_out, float* sin_out) {
  const int64_t half = hd / 2;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = 1.0f / std::pow(theta, (float)(2 * i) / (float)hd);
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
