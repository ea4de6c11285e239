// The intake actor: the only socket outsiders see. A ROUTER (with
// ROUTER_MANDATORY) bound at every client endpoint decodes and validates
// requests, answers bad ones with an error (never drops them, never dies),
// assigns request ids, forwards work to the beam manager and routes its
// progress and final replies back to the client that asked. It answers
// ping and stats itself (stats asks every actor), handles cancels and
// deadlines, and cancels the requests of clients that disconnect.
//
// Actors of other processes (`remote`) are watched through the heartbeats
// of their processes (actors/liveness.h): when one is lost, the requests
// that need it fail with `server_failure` and new ones are refused until it
// is back.
//
// Every finished request gets its line in the request log
// (runtime/base/request_log.h): id, kind, strategy, n, latency, tokens, outcome.
//
// Pipe commands: "$DRAIN <code> <sentence>" answers every request in flight
// with that error and refuses new ones (the supervisor's shutdown and
// failure path).
//
// Thread contract: run_intake() is an ActorBody; it runs on the actor's
// thread and owns everything it creates.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "messages/requests.h"
#include "runtime/base/actor.h"
#include "runtime/base/logging.h"

namespace flashtts {

struct IntakeOptions {
  std::string inbox;
  // "beam_manager" and the actors asked for stats: "scheduler", "generator",
  // "verifier", "memory_arbiter" (those absent are not asked).
  std::map<std::string, std::string> peers;
  std::vector<std::string> client_endpoints;
  std::map<std::string, std::string> remote;  // actor -> inbox, for the actors of other processes
  std::chrono::milliseconds peer_timeout{3000};
  msg::Limits limits;
  msg::RequestDefaults defaults;
  Logger log;
  LogFormat log_format = LogFormat::text;  // of the request log's lines
};

Status run_intake(zmq::context_t& ctx, ActorPipe& pipe, const IntakeOptions& o);

}  // namespace flashtts
