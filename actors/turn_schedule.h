// memory.offload, the memory arbiter's side: whose turn it is on the device
// when the generator and the verifier take turns (docs/pipeline.md, "Memory
// and admission"). The generator starts on the device. A turn passes when
// the other model has real work (msg::DeviceUse) and the one on the device
// has none, or has held it for kTurnFactor times the seconds a switch costs
// (both models' latest uploads; 1 s until both were measured) while both
// have. A switch is two steps, each answered by msg::TurnDone: the model on
// the device lets its weights go (DeviceTurn off), then the other brings
// its back (DeviceTurn on), so the two never hold both weights.
//
// Thread contract: owned by the memory_arbiter actor and used from its
// thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "messages/internal.h"
#include "runtime/base/status.h"

namespace flashtts {

// While both models have work, the one on the device keeps it for this
// many times the seconds its switch costs (both uploads), so switching takes
// at most about 1/kTurnFactor of the time.
constexpr double kTurnFactor = 8;

// "verifier" for "generator" and the other way round.
inline const char* other_model(const std::string& role) { return role == "generator" ? "verifier" : "generator"; }

// The error of a model whose weights could not move `onto` the device (or
// off it): the other model could then never run.
Status weights_move_error(const msg::TurnDone& d, bool onto);

class TurnSchedule {
 public:
  using Clock = std::chrono::steady_clock;

  // `resident`'s turn from `now` (its weights are on the device, the
  // other's are not); neither is known to want the device until told.
  void start(Clock::time_point now, const std::string& resident = "generator") {
    since_ = now, started_ = true, resident_ = resident, wants_gen_ = wants_ver_ = false;
  }
  // Both models on the device again: no turns until start().
  void stop() { started_ = false, moving_.clear(); }
  bool started() const { return started_; }
  bool switching() const { return !moving_.empty(); }

  void set_wants(const std::string& role, bool wants) { (role == "generator" ? wants_gen_ : wants_ver_) = wants; }

  // The DeviceTurn to send now (its serial taken from *serial), when a turn
  // must pass and no switch is under way.
  std::optional<msg::DeviceTurn> next(Clock::time_point now, uint64_t* serial);

  // A TurnDone: the DeviceTurn that continues the switch (the other model's
  // weights back on), or nothing (done, or not the answer awaited). Error
  // when the weights could not move: the other model could then never run.
  Expected<std::optional<msg::DeviceTurn>> done(const msg::TurnDone& d, Clock::time_point now, uint64_t* serial);

  // How long until a turn that waits for its quantum is due; -1 = none waits.
  std::chrono::milliseconds wake_in(Clock::time_point now) const;

  const std::string& resident() const { return resident_; }
  int64_t switches() const { return switches_; }
  double upload_s() const { return upload_s_; }  // device seconds of all the uploads
  double quantum_s() const;
  // The role's latest upload in seconds; -1 before the first.
  double last_upload_s(const std::string& role) const { return role == "generator" ? last_gen_s_ : last_ver_s_; }

 private:
  bool wants(const std::string& r) const { return r == "generator" ? wants_gen_ : wants_ver_; }
  std::string other() const { return other_model(resident_); }

  bool started_ = false;
  std::string resident_ = "generator";
  bool wants_gen_ = false, wants_ver_ = false;
  Clock::time_point since_{};  // the resident's turn began
  std::string moving_;         // the model whose TurnDone is awaited; "" = none
  bool moving_on_ = false;
  uint64_t serial_ = 0;        // of that DeviceTurn
  int64_t switches_ = 0;
  double upload_s_ = 0;
  double last_gen_s_ = -1, last_ver_s_ = -1;  // each model's latest upload (-1: none yet)
};

}  // namespace flashtts
