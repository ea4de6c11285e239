#include "gpu/weights.h"

#include <algorithm>
#include <cassert>

namespace flashtts {

std::vector<float> WeightMatrix::to_f32() const {
  if (dtype == DType::F32) return f32;
  std::vector<float> out(half.size());
  for (size_t i = 0; i < half.size(); ++i) out[i] = at(i);
  return out;
}

void WeightMatrix::copy_row(int64_t row, int64_t width, float* out) const {
  const size_t first = size_t(row * width);
  assert(first + size_t(width) <= size());
  if (dtype == DType::F32) {
    std::copy_n(f32.data() + first, width, out);
    return;
  }
  for (int64_t i = 0; i < width; ++i) out[i] = at(first + size_t(i));
}

WeightMatrix WeightMatrix::converted(DType d) const {
  assert(d == DType::F32 || d == DType::F16 || d == DType::BF16);
  if (d == dtype) return *this;
  if (d == DType::F32) return WeightMatrix(to_f32());
  std::vector<uint16_t> bits(size());
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = d == DType::BF16 ? f32_to_bf16(at(i)) : f32_to_f16(at(i));
  return WeightMatrix(d, std::move(bits));
}

int64_t ModelWeights::bytes() const {
  auto vec = [](const std::vector<float>& v) { return (int64_t)(v.size() * sizeof(float)); };
  auto mat = [](const WeightMatrix& m) { return (int64_t)m.bytes(); };
  int64_t n = mat(tok_embd) + vec(final_norm) + mat(lm_head) + mat(prm.w1) + vec(prm.b1) + mat(prm.w2) + vec(prm.b2);
  for (const LayerWeights& L : layers) {
    n += vec(L.attn_norm) + vec(L.ffn_norm) + vec(L.bq) + vec(L.bk) + vec(L.bv) + vec(L.bo);
    n += vec(L.b_gate) + vec(L.b_up) + vec(L.b_down);
    n += mat(L.wq) + mat(L.wk) + mat(L.wv) + mat(L.wo) + mat(L.w_gate) + mat(L.w_up) + mat(L.w_down);
  }
  return n;
}

}  // namespace flashtts
