// The verifier actor: runs the process reward model (PRM), scoring every step
// of a beam's solution.
//
// A ScoreJob becomes the PRM family's input (gpu/prm_format.h): token ids and
// one score position per step. All queued jobs go into one forward pass per
// iteration (chunked prefill may take several), and only tokens no earlier
// job computed are prefilled: add_sequence reuses the KV of a prefix scored
// before by this beam or a sibling beam (a sibling queued behind one that is
// still prefilling the shared blocks waits for them, as in the generator).
// Reused KV gives no hidden states, so
// step scores inside a reused prefix come from a per-request score cache
// keyed by the hash of the tokens up to the score position; a score missing
// there is recomputed by cutting the sequence back to its position.
//
// Messages: in  score_job, forget, grant, stats_query
//           out weights -> memory_arbiter (once, after ready);
//               score_done -> scheduler; stats_reply -> intake
//
// Thread contract: run_verifier() is an ActorBody; it runs on the actor's
// thread and owns the model, the engine, the score cache and its sockets.
#pragma once

#include <string>

#include <zmq.hpp>

#include "actors/engine_actor.h"

namespace flashtts {

struct VerifierOptions : EngineActorOptions {
  std::string prm_family;                     // "" = what the folder says; else as parse_prm_family reads it
};

// Loads the PRM and tokenizer and resolves its step tag (an error names the
// folder; Actor::start returns it), reports the weights, waits for a KV
// grant, then scores jobs until "$TERM". A grant too small for one KV block,
// or an engine failure, ends the actor with an error.
Status run_verifier(zmq::context_t& ctx, ActorPipe& pipe, const VerifierOptions& o);

}  // namespace flashtts
