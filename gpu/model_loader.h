// Loading a Hugging Face model folder: config.json (+ generation_config.json,
// tokenizer_config.json, flashtts_prm.json) into a ModelConfig, and the
// safetensors weights into ModelWeights with exact shape checks (matrices in
// the dtype the folder stores, norms and biases as float32).
//
// Supported "architectures": Qwen2ForCausalLM, LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForProcessRewardModel (Qwen2.5-Math-PRM) and
// Qwen2ForPrmModel (Skywork-o1-Open-PRM). LM-logit PRMs (Math-Shepherd,
// RLHFlow) are plain causal LMs whose PRM family comes from flashtts_prm.json,
// a PrmOverride, or a known "_name_or_path" in config.json. See docs/models.md.
//
// PRM step tags and good/bad labels are returned as text (PrmSpec::step_tag,
// good_token, bad_token); their token ids need the tokenizer and are left for
// the caller to resolve (PrmSpec::*_ids stay empty / -1).
//
// Thread contract: free functions with no shared state; call from any thread.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/model_config.h"
#include "gpu/weights.h"
#include "runtime/base/status.h"

namespace flashtts {

// PRM settings given by configuration; each field present wins over what the
// folder says.
struct PrmOverride {
  std::optional<PrmKind> family;
  std::optional<std::string> step_tag;
  std::optional<std::string> good_token;  // LmLogits
  std::optional<std::string> bad_token;   // LmLogits
};

// "none", "classifier", "value_head", "lm_logits" (as prm_kind_name writes them).
Expected<PrmKind> parse_prm_family(std::string_view name);

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
};

// Reads config.json (+ generation_config.json, tokenizer_config.json and
// flashtts_prm.json if present) only.
Expected<ModelConfig> load_model_config(const std::filesystem::path& dir, const PrmOverride& ovr = {});

// Config + all weights: matrices (WeightMatrix) in their stored dtype, the
// rest as float32. Every tensor is checked for presence, dtype and exact
// shape; the file maps are released before returning.
Expected<LoadedModel> load_model(const std::filesystem::path& dir, const PrmOverride& ovr = {});

// One Hugging Face tensor the config requires and where it lands.
struct TensorSlot {
  std::string name;            // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // exact (out, in) shape
  // Where it lands: a matrix (kept in its stored dtype) or a float32 vector
  // (norms, biases). Both null when no ModelWeights was given.
  WeightMatrix* mat = nullptr;
  std::vector<float>* vec = nullptr;
};

// Every tensor a model with config c must have, in a fixed order (embedding,
// layers, final norm, lm_head, PRM head). The writer tools use the same list,
// so what they write is exactly what the loader reads.
// REQUIRES: w == nullptr or w->layers.size() == c.n_layers.
std::vector<TensorSlot> model_tensor_slots(const ModelConfig& c, ModelWeights* w);

}  // namespace flashtts
