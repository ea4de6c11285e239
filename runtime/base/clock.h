// The one clock of latency accounting (actors, results, benchmarks).
//
// Thread contract: pure functions; any thread.
#pragma once

#include <chrono>

namespace flashtts {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace flashtts
