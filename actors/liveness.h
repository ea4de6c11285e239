// What the intake knows of the actors that run in other processes: the
// heartbeats of their processes (runtime/base/heartbeat.h), and from them which
// actors are lost. An actor is lost when its process has been silent for the
// timeout, when a heartbeat shows a new start of its process (the old one
// died, whatever it held is gone), or when it has not been heard within the
// timeout of the intake's start. A heartbeat brings a lost actor back.
//
// Thread contract: owned by the intake, used from its thread only.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "messages/internal.h"

namespace flashtts {

class Liveness {
 public:
  using Clock = std::chrono::steady_clock;

  // `remote`: actor name -> its inbox endpoint, for the actors of other
  // processes (none: nothing is watched).
  Liveness(std::map<std::string, std::string> remote, std::chrono::milliseconds timeout, Clock::time_point start);

  struct Event {
    std::string actor;
    bool lost = false;     // false: back
    std::string sentence;  // for the log and, when lost, the error replies
  };

  // A heartbeat arrived: a restart gives a lost event then a back event; a
  // lost actor heard again gives a back event.
  std::vector<Event> heard(const msg::Heartbeat& hb, Clock::time_point now);
  // The actors that went silent since the last call.
  std::vector<Event> expire(Clock::time_point now);
  // When the next actor would go silent (max() when none can).
  Clock::time_point next_deadline() const;

  // "" when `actor` can serve (local, alive, or not yet due); otherwise why not.
  std::string unavailable(const std::string& actor) const;
  bool watches(const std::string& actor) const { return peers_.count(actor) != 0; }

 private:
  struct Peer {
    std::string endpoint;
    std::string incarnation;  // "" until heard
    Clock::time_point last;   // last heartbeat, or the start
    bool lost = false;
    std::string why;          // when lost
  };
  std::string describe(const std::string& actor) const;

  std::map<std::string, Peer> peers_;
  std::chrono::milliseconds timeout_;
  Clock::time_point start_;
};

// The actors a client request of `type` needs while it runs (none for ping,
// cancel and stats).
const std::vector<std::string>& actors_needed_by(const std::string& type);

}  // namespace flashtts
