#include "gpu/open_model.h"

#include <spdlog/spdlog.h>

namespace flashtts {

namespace {

// The single token id a label text encodes to; Error naming the label when it
// is not exactly one token.
Expected<int32_t> single_token(const Tokenizer& tok, const std::string& text, const char* what) {
  int32_t id = tok.token_to_id(text);
  if (id >= 0) return id;
  std::vector<int32_t> ids = tok.encode(text);
  if (ids.size() != 1)
    return make_error(std::string("PRM ") + what + " '" + text + "' is " + std::to_string(ids.size()) +
                      " tokens, not one");
  return ids[0];
}

}  // namespace

Status resolve_prm_tokens(const Tokenizer& tok, ModelConfig* cfg) {
  PrmSpec& p = cfg->prm;
  if (p.kind == PrmKind::None) return Status::success();
  if (p.step_tag.empty()) return make_error("PRM " + cfg->architecture + " has no step tag");
  int32_t direct = tok.token_to_id(p.step_tag);
  p.step_tag_ids = direct >= 0 ? std::vector<int32_t>{direct} : tok.encode(p.step_tag);
  if (p.step_tag_ids.empty()) return make_error("PRM step tag '" + p.step_tag + "' encodes to no tokens");
  if (p.kind == PrmKind::LmLogits) {
    auto good = single_token(tok, p.good_token, "good token");
    if (!good) return good.error();
    auto bad = single_token(tok, p.bad_token, "bad token");
    if (!bad) return bad.error();
    p.good_token_id = *good;
    p.bad_token_id = *bad;
  }
  return Status::success();
}

Expected<std::unique_ptr<Tokenizer>> open_tokenizer(const std::filesystem::path& dir) {
  auto tok = Tokenizer::load(dir);
  if (!tok) return tok.error();
  return std::make_unique<Tokenizer>(std::move(tok).value());
}

Expected<LoadedModel> load_model_for(const std::filesystem::path& dir, const DeviceContext* device,
                                     const PrmOverride& prm) {
  if (!device || !device->simulated()) return load_model(dir, prm);
  auto cfg = load_model_config(dir, prm);
  if (!cfg) return cfg.error();
  return LoadedModel{std::move(cfg).value(), ModelWeights{}};
}

Expected<OpenModel> open_model(const std::filesystem::path& dir, const EngineOptions& options,
                               const PrmOverride& prm) {
  auto loaded = load_model_for(dir, options.device.get(), prm);
  if (!loaded) return loaded.error();
  auto tok = open_tokenizer(dir);
  if (!tok) return tok.error();
  ModelConfig cfg = std::move(loaded->config);
  FLASHTTS_TRY(resolve_prm_tokens(**tok, &cfg));
  if ((*tok)->vocab_size() > cfg.vocab_size)
    return make_error((dir / "tokenizer.json").string() + ": the tokenizer has " +
                      std::to_string((*tok)->vocab_size()) + " tokens but config.json vocab_size is " +
                      std::to_string(cfg.vocab_size));
  spdlog::info("model {}: {} layers, hidden {}, {} heads ({} kv), vocab {}, prm {}", dir.string(), cfg.n_layers,
               cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size, prm_kind_name(cfg.prm.kind));
  auto engine = Engine::create(std::move(cfg), std::move(loaded->weights), options);
  if (!engine) return engine.error();
  return OpenModel{std::move(tok).value(), std::move(engine).value()};
}

}  // namespace flashtts
