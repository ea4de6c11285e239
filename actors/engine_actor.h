// What the two GPU actors (generator, verifier) share: their options, the
// start-up checks of a model folder, the engine a KV grant creates, and the
// loop that alternates between messages and forward passes.
//
// Thread contract: every function runs on the calling GPU actor's thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/tokenizer.h"
#include "messages/internal.h"
#include "runtime/base/actor.h"
#include "runtime/base/logging.h"

namespace flashtts {

struct EngineActorOptions {
  std::filesystem::path model_dir;
  std::string inbox;                          // this actor's endpoint
  std::map<std::string, std::string> peers;   // endpoints of "scheduler", "memory_arbiter", "intake"
  int32_t block_size = 16;                    // KV tokens per block
  int32_t n_threads = 0;                      // engine worker threads; 0 = all cores
  std::shared_ptr<const DeviceContext> device;  // the process's one device context (null = the CPU)
  int32_t prefill_chunk = 512;                // most tokens one job computes per iteration
  int32_t max_batch = 256;                    // most jobs running at once
  // Short of KV blocks, preempt the running job, and free the kept sequence,
  // of the lowest priority first (the worst-scored beam: the cheapest to
  // lose); else the newest and the oldest (policies.scheduling: the prefix
  // tree's policies vs fifo).
  bool by_priority = false;
  // policies.request_order = "arrival": a new job queues ahead of the queued
  // jobs of younger requests (the intake numbers requests in arrival order),
  // so the oldest request's work runs first and the requests finish one
  // after another instead of all together.
  bool by_request = false;
  // policies.eviction = "pruned": record each finished job's own blocks so
  // that drop_kv can free a dead beam's at once (actors/job_tails.h).
  bool drop_dead_kv = false;
  Logger log;                                 // may be null: then nothing is logged
};

// The options' logger, or one that drops everything.
Logger actor_logger(const EngineActorOptions& o, const char* role);

// Positive block_size, prefill_chunk and max_batch; error names the role.
Status check_engine_options(const EngineActorOptions& o, const char* role);

// The folder's tokenizer; error when it has more tokens than the model's
// vocabulary (ids past the embedding would be read out of bounds).
Expected<std::unique_ptr<Tokenizer>> open_model_tokenizer(const EngineActorOptions& o, const ModelConfig& config,
                                                          const char* role);

// Acts on the first KV grant for `role`: creates the engine from `config` and
// `*weights` (moved out), its pool sized kv_bytes and room reserved for
// kv_bytes_max; `sample_ids`: what a simulated device samples from
// (EngineOptions::sample_ids). Error when the engine cannot be created.
Status accept_grant(const msg::Grant& g, const char* role, const ModelConfig& config, ModelWeights* weights,
                    const EngineActorOptions& o, const Logger& log, std::unique_ptr<Engine>* engine,
                    std::shared_ptr<const std::vector<int32_t>> sample_ids = {});

// Until "$TERM": wait for the pipe or the inbox (at most idle_wait(): 0
// while the actor has work, -1 = until a message comes), handle every
// waiting message, run one iteration. A needs inbox(), idle_wait(), drain(),
// step() and after_step().
template <class A>
Status run_engine_loop(ActorPipe& pipe, A& actor, const Logger& log) {
  zmq::pollitem_t items[] = {{pipe.socket().handle(), 0, ZMQ_POLLIN, 0}, {actor.inbox().handle(), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    zmq::poll(items, 2, actor.idle_wait());
    if (items[0].revents & ZMQ_POLLIN) {
      std::string cmd = pipe.recv_command();
      if (pipe.terminated()) return Status::success();
      if (!cmd.empty()) log->debug("ignored the command '{}'", cmd);
    }
    FLASHTTS_TRY(actor.drain());
    FLASHTTS_TRY(actor.step());
    actor.after_step();
  }
}

}  // namespace flashtts
