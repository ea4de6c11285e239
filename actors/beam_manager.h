// The beam_manager actor: owns the state of every live request. A `start`
// from the intake becomes a search (solve), one generation (generate) or one
// scoring (score); the jobs go to the scheduler, their results come back
// through it, and the final result or error goes to the intake. Cancels drop
// the request and tell the GPU actors (through the scheduler) to forget it.
// A prompt with no position left in the policy model is refused here
// (too_large); a job the GPU actors refuse ends its request with their code
// (too_large: over the model's positions or the KV pool), a job that fails
// without one with `internal`.
//
// Thread contract: run_beam_manager() is an ActorBody; it runs on the
// actor's thread and owns everything it creates.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <zmq.hpp>

#include "runtime/base/actor.h"
#include "runtime/base/logging.h"

namespace flashtts {

struct BeamManagerOptions {
  std::string inbox;
  std::map<std::string, std::string> peers;  // "intake", "scheduler"
  std::filesystem::path policy_dir;          // for the policy's tokenizer
  std::string prompt_format = "auto";        // "auto" | "chatml" | "llama3" | "raw"
  std::string system_prompt;
  std::string step_delimiter = "\n\n";
  Logger log;
  bool speculation = false;                  // policies.speculation (beam search, DVTS)
  bool speculation_bounded = false;          // policies.speculation_max_slowdown > 0
  bool speculation_prune = false;            // policies.speculation_prune
  bool live_beams = false;                   // policies.live_beams (beam search, DVTS)
  bool speculation_bins = true;              // policies.speculation_bins
  bool drop_dead_kv = false;                 // policies.eviction = "pruned" (beam search, DVTS)
};

Status run_beam_manager(zmq::context_t& ctx, ActorPipe& pipe, const BeamManagerOptions& o);

}  // namespace flashtts
