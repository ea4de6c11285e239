// The memory_arbiter actor: owns the memory budget of the device. The
// generator and the verifier report what their weights take (Weights); once
// both have, the split policy divides the rest into KV budgets, granted to
// each of them and announced to the scheduler for admission control.
//
// Thread contract: run_memory_arbiter() is an ActorBody; it runs on the
// actor's thread and owns everything it creates.
#pragma once

#include <map>
#include <string>

#include <zmq.hpp>

#include "runtime/actor.h"
#include "runtime/logging.h"

namespace flashtts {

struct MemoryArbiterOptions {
  std::string inbox;
  std::map<std::string, std::string> peers;  // "generator", "verifier", "scheduler", "intake"
  int64_t budget_bytes = 1ll << 30;
  double generator_share = 0.75;
  std::string policy = "static";
  Logger log;
};

Status run_memory_arbiter(zmq::context_t& ctx, ActorPipe& pipe, const MemoryArbiterOptions& o);

}  // namespace flashtts
