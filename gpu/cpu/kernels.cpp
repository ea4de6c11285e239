#include "gpu/cpu/kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace flashtts::cpu {

void linear(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out) {
  // OpenBLAS (0.3.21) computes small products (rows x out below ~1200)
  // on another path than large ones, with different rounding, so a row's
  // result depended on what shared its forward pass (batch, chunking, the
  // number of rows asked for at the head). Small products are padded with
  // zero rows onto the large path: results are then bit-identical across
  // batch shapes and runs (tests/engine_test.cpp checks it). Measured on
  // shapes from 32x32 to 4864x896: above the threshold every row count gives
  // the same bits; kMinProduct keeps a 3x margin.
  constexpr int64_t kMinProduct = 4096;
  int64_t padded = n;
  if (n * out < kMinProduct) padded = ((kMinProduct + out - 1) / out + 7) / 8 * 8;
  thread_local std::vector<float> xp, yp;
  const float* xs = x;
  float* ys = y;
  if (padded != n) {
    xp.resize(padded * in);
    std::copy(x, x + n * in, xp.begin());
    std::fill(xp.begin() + n * in, xp.end(), 0.0f);  // only the padding rows
    yp.resize(padded * out);
    xs = xp.data();
    ys = yp.data();
  }
  if (b) {
    for (int64_t r = 0; r < padded; ++r) std::copy(b, b + out, ys + r * out);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)padded, (int)out, (int)in, 1.0f, xs, (int)in, w, (int)in,
              b ? 1.0f : 0.0f, ys, (int)out);
  if (ys != y) std::copy(ys, ys + n * out, y);
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
