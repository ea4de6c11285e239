// The scheduler actor: receives generation and scoring jobs from the beam
// manager and decides the order and the moment they reach the generator and
// the verifier. Order comes from the scheduling policy (actors/sched_policy.h:
// FIFO baseline, prefix-aware); admission control keeps the KV tokens the
// dispatched jobs may need within what the memory arbiter granted each model,
// so accepted work fits, and fails at once a job that could never fit. A
// generation job counts its context and `reserve` of what it may write; a
// scoring job its text's bytes times the PRM tokens per byte measured on
// the jobs scored (it never sees their PRM tokens).
// Results of the GPU actors pass back through it to the beam manager, which
// frees their capacity.
// Jobs that arrive together are ordered together: the scheduler dispatches
// after it has drained its inbox, not after every message. Under a prefix
// tree policy it also keeps at most `window` jobs out at each model, so that
// the rest wait in its queue, where the order is decided (the model's own
// queue is first come, first served); a model that has fewer gets more at once.
// Speculative generation jobs (GenJob::speculative) bypass the queue and the
// admission count: the generator runs them only in the room real work leaves
// and stops them when real work waits; stop_jobs goes straight through too.
// In front of both lanes, admission by request (actors/request_gate.h) may
// hold a request's jobs whole until the requests before it end.
//
// Thread contract: run_scheduler() is an ActorBody; it runs on the actor's
// thread and owns everything it creates.
#pragma once

#include <map>
#include <string>

#include <zmq.hpp>

#include "runtime/base/actor.h"
#include "runtime/base/logging.h"

namespace flashtts {

struct SchedulerOptions {
  std::string inbox;
  std::map<std::string, std::string> peers;  // "beam_manager", "generator", "verifier", "intake"
  std::string policy = "fifo";
  Logger log;
  int32_t block_size = 16;       // the engines' KV block: a generation job's chunk
  int32_t window = 0;            // jobs out at each model under a tree policy; 0 = no limit
  int64_t max_overtaken = 1024;  // the prefix policy's wait bound (sched_policy.h)
  bool by_request = false;       // the prefix family: the older request first (SchedulingOptions)
  // The share of the tokens a generation job may write (max_tokens) that
  // counts against the generator's grant while the job is out: 1 reserves
  // them all (the baseline); less lets more jobs out, and the generator, which
  // takes blocks as tokens are written, preempts when they run short
  // (policies.scheduling_reserve).
  double reserve = 1.0;
  // "all", or "fit": a request's work waits whole until it fits beside the
  // requests admitted (actors/request_gate.h; policies.request_admission).
  std::string request_admission = "all";
};

Status run_scheduler(zmq::context_t& ctx, ActorPipe& pipe, const SchedulerOptions& o);

}  // namespace flashtts
