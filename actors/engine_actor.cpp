#include "actors/engine_actor.h"

#include <algorithm>

#include "gpu/open_model.h"

namespace flashtts {

Logger actor_logger(const EngineActorOptions& o, const char* role) {
  return o.log ? o.log : std::make_shared<spdlog::logger>(role);  // no sinks: drops everything
}

Status check_engine_options(const EngineActorOptions& o, const char* role) {
  if (o.block_size <= 0 || o.prefill_chunk <= 0 || o.max_batch <= 0)
    return make_error(std::string(role) + ": block_size, prefill_chunk and max_batch must be positive");
  return Status::success();
}

Expected<std::unique_ptr<Tokenizer>> open_model_tokenizer(const EngineActorOptions& o, const ModelConfig& config,
                                                          const char* role) {
  auto tok = open_tokenizer(o.model_dir);
  if (!tok) return make_error(std::string(role) + ": " + tok.error().message);
  if ((*tok)->vocab_size() > config.vocab_size)
    return make_error(std::string(role) + ": " + o.model_dir.string() + ": the tokenizer has " +
                      std::to_string((*tok)->vocab_size()) + " tokens but config.json vocab_size is " +
                      std::to_string(config.vocab_size));
  return tok;
}

Status accept_grant(const msg::Grant& g, const char* role, const ModelConfig& config, ModelWeights* weights,
                    const EngineActorOptions& o, const Logger& log, std::unique_ptr<Engine>* engine,
                    std::shared_ptr<const std::vector<int32_t>> sample_ids) {
  EngineOptions eo;
  eo.kv_bytes = (size_t)std::max<int64_t>(g.kv_bytes, 0);
  eo.kv_bytes_max = (size_t)std::max(g.kv_bytes_max, g.kv_bytes);
  eo.block_size = o.block_size;
  eo.n_threads = o.device ? o.device->threads_for(o.n_threads) : o.n_threads;
  eo.device = o.device;  // a CUDA context puts the engine on the GPU, on a stream of its own
  eo.sample_ids = std::move(sample_ids);
  auto e = Engine::create(config, std::move(*weights), eo);
  if (!e) return make_error(std::string(role) + ": " + e.error().message);
  *engine = std::move(e).value();
  log->info("KV grant {:.1f} MiB: {} blocks of {} tokens", double(g.kv_bytes) / (1 << 20), (*engine)->kv().n_blocks(),
            o.block_size);
  return Status::success();
}

}  // namespace flashtts
