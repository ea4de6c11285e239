// The scheduler actor: receives generation and scoring jobs from the beam
// manager and decides the order and the moment they reach the generator and
// the verifier. Order comes from the scheduling policy (FIFO baseline);
// admission control keeps the KV tokens the dispatched jobs may need within
// what the memory arbiter granted each model, so accepted work fits, and
// fails at once a job that could never fit. Results of the GPU actors pass
// back through it to the beam manager, which frees their capacity.
// Speculative generation jobs (GenJob::speculative) bypass the queue and the
// admission count: the generator runs them only in the room real work leaves
// and stops them when real work waits; stop_jobs goes straight through too.
//
// Thread contract: run_scheduler() is an ActorBody; it runs on the actor's
// thread and owns everything it creates.
#pragma once

#include <map>
#include <string>

#include <zmq.hpp>

#include "runtime/actor.h"
#include "runtime/logging.h"

namespace flashtts {

struct SchedulerOptions {
  std::string inbox;
  std::map<std::string, std::string> peers;  // "beam_manager", "generator", "verifier", "intake"
  std::string policy = "fifo";
  Logger log;
};

Status run_scheduler(zmq::context_t& ctx, ActorPipe& pipe, const SchedulerOptions& o);

}  // namespace flashtts
