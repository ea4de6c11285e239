// Opening a Hugging Face model folder for serving: config, weights, tokenizer
// and engine, with the PRM's step tag and good/bad tokens resolved to ids.
//
// Thread contract: call from the thread that will own the returned engine.
#pragma once

#include <filesystem>
#include <memory>

#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/tokenizer.h"

namespace flashtts {

struct OpenModel {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Engine> engine;
  const ModelConfig& config() const { return engine->config(); }
};

// Resolves cfg->prm's token ids from its strings with `tok`.
Status resolve_prm_tokens(const Tokenizer& tok, ModelConfig* cfg);

// load_model(), except on a simulated device (gpu/sim/), which holds no
// weights: then config.json alone, and empty weights (a 7B folder needs no
// 14 GB of host memory, nor even its safetensors files).
Expected<LoadedModel> load_model_for(const std::filesystem::path& dir, const DeviceContext* device,
                                     const PrmOverride& prm = {});

Expected<OpenModel> open_model(const std::filesystem::path& dir, const EngineOptions& options,
                               const PrmOverride& prm = {});

// Only the tokenizer of a folder (tokenize needs no weights).
Expected<std::unique_ptr<Tokenizer>> open_tokenizer(const std::filesystem::path& dir);

}  // namespace flashtts
