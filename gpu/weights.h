// The weights of one model in host memory, row-major, with the Hugging Face
// (out_features, in_features) layout of every Linear. Matrices stay in the
// dtype the folder stores (F32, F16 or BF16: a bf16 1.5B model takes 3 GB, not
// 6); the kernels convert while they read. Norms and biases are small and
// kept as float32.
//
// Thread contract: built once by the loader, then read-only; any number of
// threads may read it concurrently.
#pragma once

#include <cstdint>
#include <vector>

#include "gpu/dtype.h"
#include "gpu/model_config.h"

namespace flashtts {

// A weight matrix in its stored dtype: F32 values in `f32`, or F16 / BF16 bit
// patterns in `half`. Built from a float vector it is F32.
struct WeightMatrix {
  DType dtype = DType::F32;
  std::vector<float> f32;      // dtype == F32
  std::vector<uint16_t> half;  // dtype == F16 or BF16

  WeightMatrix() = default;
  WeightMatrix(std::vector<float> v) : f32(std::move(v)) {}  // NOLINT: implicit, a float vector is an F32 matrix
  WeightMatrix(DType d, std::vector<uint16_t> bits) : dtype(d), half(std::move(bits)) {}

  size_t size() const { return dtype == DType::F32 ? f32.size() : half.size(); }  // elements
  bool empty() const { return size() == 0; }
  size_t bytes() const { return size() * dtype_size(dtype); }
  const void* data() const { return dtype == DType::F32 ? (const void*)f32.data() : (const void*)half.data(); }
  float at(size_t i) const {
    return dtype == DType::F32 ? f32[i] : dtype == DType::BF16 ? bf16_to_f32(half[i]) : f16_to_f32(half[i]);
  }
  std::vector<float> to_f32() const;  // every element, exactly
  // Elements [row * width, (row + 1) * width) as float32 into out.
  void copy_row(int64_t row, int64_t width, float* out) const;
  // The same values stored as `d` (F32, F16 or BF16), rounded to nearest even.
  WeightMatrix converted(DType d) const;
  void clear() { f32 = {}, half = {}; }
  bool operator==(const WeightMatrix&) const = default;
};

// Shapes use: h = hidden_size, f = intermediate_size, hd = head_dim,
// nh = n_heads, nkv = n_kv_heads, V = vocab_size. Empty vector = absent.
struct LayerWeights {
  std::vector<float> attn_norm;  // (h)            input_layernorm
  WeightMatrix wq;               // (nh*hd, h)     self_attn.q_proj
  std::vector<float> bq;         // (nh*hd)        bias, Qwen2 / attention_bias
  WeightMatrix wk;               // (nkv*hd, h)
  std::vector<float> bk;         // (nkv*hd)
  WeightMatrix wv;               // (nkv*hd, h)
  std::vector<float> bv;         // (nkv*hd)
  WeightMatrix wo;               // (h, nh*hd)     self_attn.o_proj
  std::vector<float> bo;         // (h)            Llama attention_bias only
  std::vector<float> ffn_norm;   // (h)            post_attention_layernorm
  WeightMatrix w_gate;           // (f, h)         mlp.gate_proj
  WeightMatrix w_up;             // (f, h)         mlp.up_proj
  WeightMatrix w_down;           // (h, f)         mlp.down_proj
  std::vector<float> b_gate, b_up, b_down;  // (f), (f), (h): Llama mlp_bias only
};

struct PrmHeadWeights {
  WeightMatrix w1;        // (h, h)   Classifier: score.0
  std::vector<float> b1;  // (h)
  WeightMatrix w2;        // (n_out, h) Classifier: score.2 (n_out=2); ValueHead: (1, h)
  std::vector<float> b2;  // (n_out)
};

struct ModelWeights {
  WeightMatrix tok_embd;          // (V, h)   model.embed_tokens
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // (h)      model.norm
  WeightMatrix lm_head;           // (V, h)   empty when tied to tok_embd, or absent (PRM heads)
  PrmHeadWeights prm;             // Classifier / ValueHead PRMs only

  // The matrix that maps hidden states to vocabulary logits. (V, h)
  const WeightMatrix& output() const { return lm_head.empty() ? tok_embd : lm_head; }
  // Bytes the host copy takes: what the CPU backend holds for this model.
  int64_t bytes() const;
};

}  // namespace flashtts
