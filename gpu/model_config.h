// What a Hugging Face model folder says about its architecture: the fields of
// config.json that the engine needs, plus the PRM family and step tag.
//
// Thread contract: a plain value, built once by the loader, then read-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/status.h"

namespace flashtts {

enum class Arch { Qwen2, Llama, Mistral };

// How a process reward model turns hidden states into a step probability.
enum class PrmKind {
  None,        // a policy model: the LM head gives next-token logits
  Classifier,  // Qwen2.5-Math-PRM: Linear(h,h) -> ReLU -> Linear(h,2), softmax[1]
  ValueHead,   // Skywork-o1-Open-PRM: Linear(h,1), sigmoid
  LmLogits,    // Math-Shepherd / RLHFlow: softmax over {good, bad} LM logits, [good]
};

// The input layout a PRM was trained on (gpu/prm_format.h). A family's
// default is the first of its kind; LM-logit PRMs come in two layouts.
enum class PrmFormat {
  Default,       // by kind: Classifier -> QwenChat, ValueHead -> Skywork, LmLogits -> MathShepherd
  QwenChat,      // ChatML, steps joined and ended by the step tag
  Skywork,       // BOS + problem + "\n", every piece of the response followed by the tag
  MathShepherd,  // problem + "\n " + steps each ending in the tag, joined by "\n\n"
  RlhFlow,       // Llama 3 chat: each step a user turn, the assistant answers the label
};

const char* arch_name(Arch a);
const char* prm_kind_name(PrmKind k);
const char* prm_format_name(PrmFormat f);
// The format actually used: `f`, or the kind's default.
PrmFormat resolved_prm_format(PrmKind k, PrmFormat f);

struct PrmSpec {
  PrmKind kind = PrmKind::None;
  PrmFormat format = PrmFormat::Default;
  std::string step_tag;              // text that ends a step ("<extra_0>", " ки", ...)
  std::vector<int32_t> step_tag_ids; // its token ids; the score is read at the last one
  int32_t good_token_id = -1;        // LmLogits only
  int32_t bad_token_id = -1;         // LmLogits only
  std::string good_token;            // LmLogits only: text of the good / bad label
  std::string bad_token;             //   tokens ("+", "-"); the caller resolves the ids
};

struct ModelConfig {
  Arch arch = Arch::Qwen2;
  std::string architecture;          // config.json "architectures"[0], verbatim
  int32_t hidden_size = 0;           // h
  int32_t intermediate_size = 0;     // ffn width
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;            // grouped-query attention when < n_heads
  int32_t head_dim = 0;              // usually h / n_heads; "head_dim" key wins
  int32_t vocab_size = 0;
  int32_t max_position = 0;          // max_position_embeddings
  float rms_eps = 1e-6f;
  float rope_theta = 10000.0f;
  int32_t sliding_window = 0;        // Mistral / Qwen2 use_sliding_window; 0 = full attention
  bool qkv_bias = false;             // Qwen2 always; Llama/Mistral from attention_bias
  bool o_bias = false;               // Llama attention_bias also biases o_proj
  bool mlp_bias = false;             // Llama mlp_bias
  bool tie_embeddings = false;       // lm_head shares embed_tokens
  std::string torch_dtype;           // as written ("bfloat16", "float32", ...)
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // config + generation_config, deduplicated
  PrmSpec prm;
};

}  // namespace flashtts
