// The memory_arbiter actor: owns the memory budget of the device. The
// generator and the verifier report what their weights take (Weights); once
// both have, the split policy divides the rest into KV budgets, granted to
// each of them and announced to the scheduler for admission control.
// While they serve, the scheduler (QueueLoad) and the two models (EngineLoad)
// report their work; a policy that moves memory (roofline) re-decides the
// split from it, at most every decide_every_ms. A move shrinks one pool,
// waits for its PoolSize, then grows the other by what came back.
//
// Offload (memory.offload): when the budget cannot hold both models' weights
// with useful KV pools, the models take turns on the device. The KV memory is
// then the budget less the larger model's weights; the model whose turn it
// is holds its weights on the device, the other's wait in host memory
// (actors/turn_schedule.h says when the turn passes). The verifier is
// granted first, its weights leaving the device, the generator once the
// verifier's pool exists.
//
// Thread contract: run_memory_arbiter() is an ActorBody; it runs on the
// actor's thread and owns everything it creates.
#pragma once

#include <map>
#include <string>

#include <zmq.hpp>

#include "runtime/base/actor.h"
#include "runtime/base/logging.h"

namespace flashtts {

struct MemoryArbiterOptions {
  std::string inbox;
  std::map<std::string, std::string> peers;  // "generator", "verifier", "scheduler", "intake"
  int64_t budget_bytes = 1ll << 30;          // 0: automatic (device_bytes, host_bytes)
  double generator_share = 0.75;
  std::string policy = "static";
  Logger log;
  int64_t device_bytes = 0;      // automatic on a GPU: its memory less a margin; 0 on the CPU
  int64_t host_bytes = 0;        // automatic on the CPU: at most this (half the memory free)
  double demand_window_s = 3.0;  // the demand is the peak over this window
  int64_t decide_every_ms = 250;
  int32_t max_batch = 256;       // the engines' (engine.max_batch)
  // memory.offload: "off", "on" (always take turns), "auto" (take turns
  // when the split leaves a model's pool short of one sequence of its
  // max_position, or no pool at all) or "adaptive" (starts as "auto", then
  // chooses while serving); "none" where weights cannot leave the device
  // (the CPU: the supervisor says so).
  std::string offload = "off";
  // Under "adaptive" and a split that moves, the models start or stop
  // taking turns while they serve when the roofline predicts the other way
  // 25% faster; at most once in this long, unless a job cannot run as it is.
  double offload_dwell_s = 20;
};

Status run_memory_arbiter(zmq::context_t& ctx, ActorPipe& pipe, const MemoryArbiterOptions& o);

}  // namespace flashtts
