// The heartbeat of a process that runs some actors but not the intake
// (`flashtts serve --actors ...`): every interval it tells the intake, over
// a PUSH socket to the intake's inbox, which actors live here and which
// start of the process this is. The intake fails the requests that need a
// process gone silent, and sees a restart by its new incarnation
// (actors/liveness.h). It runs as an actor of its own, started last, so
// the beats begin only once every actor here is ready.
//
// Thread contract: run_heartbeat() is an ActorBody; it runs on the actor's
// thread and owns its socket.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "runtime/base/actor.h"

namespace flashtts {

struct HeartbeatOptions {
  std::string intake;                 // the intake's inbox endpoint
  std::vector<std::string> actors;    // the actors this process runs
  std::chrono::milliseconds interval{500};
};

// A fresh id for this start of the process (pid, time and random bits).
std::string new_incarnation();

Status run_heartbeat(zmq::context_t& ctx, ActorPipe& pipe, const HeartbeatOptions& o);

}  // namespace flashtts
