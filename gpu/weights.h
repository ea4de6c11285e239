// The weights of one model in host memory, float32, row-major, with the
// Hugging Face (out_features, in_features) layout of every Linear.
//
// Thread contract: built once by the loader, then read-only; any number of
// threads may read it concurrently.
#pragma once

#include <cstdint>
#include <vector>

#include "gpu/model_config.h"

namespace flashtts {

// Shapes use: h = hidden_size, f = intermediate_size, hd = head_dim,
// nh = n_heads, nkv = n_kv_heads, V = vocab_size. Empty vector = absent.
struct LayerWeights {
  std::vector<float> attn_norm;  // (h)            input_layernorm
  std::vector<float> wq;         // (nh*hd, h)     self_attn.q_proj
  std::vector<float> bq;         // (nh*hd)        bias, Qwen2 / attention_bias
  std::vector<float> wk;         // (nkv*hd, h)
  std::vector<float> bk;         // (nkv*hd)
  std::vector<float> wv;         // (nkv*hd, h)
  std::vector<float> bv;         // (nkv*hd)
  std::vector<float> wo;         // (h, nh*hd)     self_attn.o_proj
  std::vector<float> bo;         // (h)            Llama attention_bias only
  std::vector<float> ffn_norm;   // (h)            post_attention_layernorm
  std::vector<float> w_gate;     // (f, h)         mlp.gate_proj
  std::vector<float> w_up;       // (f, h)         mlp.up_proj
  std::vector<float> w_down;     // (h, f)         mlp.down_proj
  std::vector<float> b_gate, b_up, b_down;  // (f), (f), (h): Llama mlp_bias only
};

struct PrmHeadWeights {
  std::vector<float> w1;  // (h, h)   Classifier: score.0
  std::vector<float> b1;  // (h)
  std::vector<float> w2;  // (n_out, h) Classifier: score.2 (n_out=2); ValueHead: (1, h)
  std::vector<float> b2;  // (n_out)
};

struct ModelWeights {
  std::vector<float> tok_embd;    // (V, h)   model.embed_tokens
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // (h)      model.norm
  std::vector<float> lm_head;     // (V, h)   empty when tied to tok_embd, or absent (PRM heads)
  PrmHeadWeights prm;             // Classifier / ValueHead PRMs only

  // The matrix that maps hidden states to vocabulary logits. (V, h)
  const std::vector<float>& output() const { return lm_head.empty() ? tok_embd : lm_head; }
};

}  // namespace flashtts
