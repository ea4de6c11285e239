// The generator actor: runs the policy model with continuous batching.
//
// GenJobs arrive in the order the scheduler chose; the generator only admits
// them. Each iteration admits queued jobs while the KV pool holds their
// context, runs one forward pass over every running job (a prefill chunk or
// one decode token each), samples, and reports each job the moment it stops
// at the step delimiter, an EOS token or its token limit. When decode runs
// out of KV blocks the most recently admitted job is preempted by recompute:
// its sequence is released and it goes back to the front of the queue with
// the tokens it has generated, which are then prefilled as context.
// A job that shares whole KV blocks with a running job which has not computed
// them yet waits for it (and keeps the jobs behind it waiting, to keep the
// scheduler's order), so sibling beams of one prompt prefill it once.
//
// Sampling follows gpu/generate.cpp exactly (stream = (seed, beam, position of
// the new token)), so a job's tokens equal generate()'s for the same context
// whatever else shares the batch, and across preemptions. A job's `prefix`
// (tokens of its step written before) counts as generated.
//
// Speculative jobs (GenJob::speculative) are the batch's background work
// (actors/batch.h): queued behind every real job, stopped (finish "stopped",
// with their tokens) when a real job finds no room or KV runs short, and held
// back while their rows would slow a decode pass by more than
// speculation_max_slowdown of the real rows' predicted time (actors/row_cost.h
// fits the measured pass times). stop_jobs gives running jobs a stop point,
// or ends them at once (docs/pipeline.md, "A beam's life").
//
// Messages: in  gen_job, stop_jobs, forget, grant, stats_query
//           out weights -> memory_arbiter (once, after ready);
//               gen_progress, gen_done -> scheduler; stats_reply -> intake
//
// Thread contract: run_generator() is an ActorBody; it runs on the actor's
// thread and owns the model, the engine and its sockets.
#pragma once

#include <string>

#include <zmq.hpp>

#include "actors/engine_actor.h"

namespace flashtts {

struct GeneratorOptions : EngineActorOptions {
  std::string step_delimiter = "\n\n";        // ends a step when a job has stop_at_delimiter
  // Speculative rows may slow a decode pass by at most this fraction of the
  // real rows' time (policies.speculation_max_slowdown); 0 = no bound.
  double speculation_max_slowdown = 0.05;
};

// Loads the model and tokenizer (an error names the folder; Actor::start
// returns it), reports the weights, waits for a KV grant, then serves jobs
// until "$TERM". A grant too small for one KV block, or an engine failure,
// ends the actor with an error (the supervisor reports it).
Status run_generator(zmq::context_t& ctx, ActorPipe& pipe, const GeneratorOptions& o);

}  // namespace flashtts
