#include "runtime/service_watchdog.h"

#include <systemd/sd-daemon.h>

#include <cassert>
#include <cstring>

#include "runtime/service_notify.h"

namespace flashtts {

namespace {

double seconds(std::chrono::microseconds d) { return d.count() / 1e6; }

}  // namespace

std::optional<ServiceWatchdog> ServiceWatchdog::from_environment(Logger log, Clock::time_point now) {
  uint64_t usec = 0;
  // unset_environment = 0: like notify_service(), the variables stay.
  int r = sd_watchdog_enabled(0, &usec);
  if (r < 0) {
    log->warn("no watchdog: $WATCHDOG_USEC / $WATCHDOG_PID could not be read ({})", std::strerror(-r));
    return std::nullopt;
  }
  if (r == 0 || usec == 0) return std::nullopt;
  ServiceWatchdog w(std::chrono::microseconds(usec), std::move(log), now);
  w.log_->info("watchdog: WATCHDOG=1 every {:.3g} s while every actor answers (timeout {:.3g} s)",
               seconds(w.period()), seconds(w.timeout_));
  return w;
}

ServiceWatchdog::ServiceWatchdog(std::chrono::microseconds timeout, Logger log, Clock::time_point now)
    : timeout_(timeout), log_(std::move(log)), due_(now) {
  assert(timeout.count() > 0);
}

bool ServiceWatchdog::tick(const std::vector<std::string>& silent, Clock::time_point now) {
  // From now, not from the last due time: a late tick does not bring a burst.
  due_ = now + period();
  if (!silent.empty()) {
    if (silent != silent_) {
      std::string names;
      for (const auto& a : silent) names += (names.empty() ? "" : ", ") + a;
      log_->error("{} {} {} not come back to {} loop for over {:.3g} s (stuck in one iteration); watchdog pings "
                  "stopped: the service manager restarts the service {:.3g} s after the last one",
                  silent.size() == 1 ? "actor" : "actors", names, silent.size() == 1 ? "has" : "have",
                  silent.size() == 1 ? "its" : "their", seconds(period()), seconds(timeout_));
    }
    silent_ = silent;
    return false;
  }
  if (!silent_.empty()) log_->warn("watchdog pings resumed: every actor answers again");
  silent_.clear();
  if (Status s = notify_service("WATCHDOG=1"); !s.ok() && !send_failed_) {
    send_failed_ = true;
    log_->warn("{}", s.message());
  }
  return true;
}

}  // namespace flashtts
