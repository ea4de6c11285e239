// The one timeline of a simulated device: both engines' passes run on it one
// after another, as they share one real GPU. A pass starts when the device is
// free (or now, if it is idle) and holds it for the pass's predicted time;
// the caller then waits until that end.
//
// Thread contract: thread-safe; the generator and verifier threads share it
// through the process's DeviceContext.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

namespace flashtts {

class SimTimeline {
 public:
  using Clock = std::chrono::steady_clock;

  // Books a pass of `seconds` and sleeps until its end on the device.
  void run(double seconds) {
    const auto d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    Clock::time_point end;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Clock::time_point start = std::max(Clock::now(), free_at_);
      end = start + d;
      free_at_ = end;
      busy_s_ += seconds;
      ++passes_;
    }
    std::this_thread::sleep_until(end);
  }

  // Predicted seconds of every pass so far, and their count.
  double busy_seconds() const {
    std::lock_guard<std::mutex> lock(mu_);
    return busy_s_;
  }
  int64_t passes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return passes_;
  }

 private:
  mutable std::mutex mu_;
  Clock::time_point free_at_{};
  double busy_s_ = 0;
  int64_t passes_ = 0;
};

}  // namespace flashtts
