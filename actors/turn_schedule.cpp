#include "actors/turn_schedule.h"

#include <algorithm>

namespace flashtts {

Status weights_move_error(const msg::TurnDone& d, bool onto) {
  return make_error("memory.offload: the " + d.role + " could not move its weights " + (onto ? "onto" : "off") +
                    " the device: " + d.error);
}

double TurnSchedule::quantum_s() const {
  if (last_gen_s_ < 0 || last_ver_s_ < 0) return 1.0;  // not measured yet
  return std::max(0.1, kTurnFactor * (last_gen_s_ + last_ver_s_));
}

std::optional<msg::DeviceTurn> TurnSchedule::next(Clock::time_point now, uint64_t* serial) {
  if (!started_ || !moving_.empty() || !wants(other())) return std::nullopt;
  if (wants(resident_) && std::chrono::duration<double>(now - since_).count() < quantum_s()) return std::nullopt;
  // The one on the device leaves first: the other's weights fit only then.
  moving_ = resident_, moving_on_ = false, serial_ = ++*serial;
  return msg::DeviceTurn{moving_, false, serial_};
}

Expected<std::optional<msg::DeviceTurn>> TurnSchedule::done(const msg::TurnDone& d, Clock::time_point now,
                                                            uint64_t* serial) {
  if (moving_.empty() || d.serial != serial_ || d.role != moving_) return std::optional<msg::DeviceTurn>();
  if (!d.error.empty()) return weights_move_error(d, moving_on_).error();
  if (!moving_on_) {
    moving_ = other(), moving_on_ = true, serial_ = ++*serial;
    return std::optional<msg::DeviceTurn>(msg::DeviceTurn{moving_, true, serial_});
  }
  resident_ = moving_, moving_.clear();
  since_ = now;
  ++switches_;
  upload_s_ += d.seconds;
  (d.role == "generator" ? last_gen_s_ : last_ver_s_) = d.seconds;
  return std::optional<msg::DeviceTurn>();
}

std::chrono::milliseconds TurnSchedule::wake_in(Clock::time_point now) const {
  if (!started_ || !moving_.empty() || !wants(other()) || !wants(resident_)) return std::chrono::milliseconds(-1);
  const auto due = since_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(quantum_s()));
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
  return std::max(left + std::chrono::milliseconds(1), std::chrono::milliseconds(0));
}

}  // namespace flashtts
