// The systemd watchdog (WatchdogSec= in the unit, docs/service.md). When the
// service manager asks for one ($WATCHDOG_USEC, and $WATCHDOG_PID naming
// this process when it is set: sd_watchdog_enabled(3)), `flashtts serve`
// sends WATCHDOG=1 every half of its timeout, but only while every actor
// still comes back to its loop: at each tick the supervisor asks each actor
// for a "$PONG" (Supervisor::probe), and an actor that left the previous
// tick's question unanswered is stuck inside one iteration (a deadlock, a
// forward pass that does not end). Then the pings stop, one line says which
// actor, and systemd kills the service after the timeout and starts it
// again (Restart=on-failure); an answer before that resumes them.
// No watchdog asked for: from_environment() gives none and nothing is probed.
//
// Thread contract: the serve loop's thread only (the supervisor's).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "runtime/base/logging.h"

namespace flashtts {

class ServiceWatchdog {
 public:
  using Clock = std::chrono::steady_clock;

  // The watchdog the service manager asks for, or none (not asked, another
  // process's, or a malformed $WATCHDOG_USEC, which is logged).
  static std::optional<ServiceWatchdog> from_environment(Logger log, Clock::time_point now);
  // REQUIRES: timeout > 0. The first tick is due at `now`.
  ServiceWatchdog(std::chrono::microseconds timeout, Logger log, Clock::time_point now);

  std::chrono::microseconds timeout() const { return timeout_; }
  // Half the timeout: the time between two ticks.
  std::chrono::microseconds period() const { return timeout_ / 2; }
  Clock::time_point due() const { return due_; }

  // At due(): `silent` are the actors that left the previous tick's probe
  // unanswered. None: sends WATCHDOG=1 and returns true. Some: sends
  // nothing, returns false, and logs the names when they change; the first
  // tick without any logs that the pings resume.
  bool tick(const std::vector<std::string>& silent, Clock::time_point now);

 private:
  std::chrono::microseconds timeout_;
  Logger log_;
  Clock::time_point due_;
  std::vector<std::string> silent_;  // as of the last tick
  bool send_failed_ = false;         // logged once
};

}  // namespace flashtts
