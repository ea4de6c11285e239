// An engine actor's side of memory.offload: when the budget cannot hold
// both models' weights and useful KV pools, the generator and the verifier
// take turns on the device. The memory arbiter decides whose turn it is; a
// model whose turn ends moves its weights to host memory (its KV pool, its
// sequences and its queue stay where they are) and runs no pass until its
// weights come back. Each model tells the arbiter whether it has real work
// (msg::DeviceUse), whenever that changes.
//
// Thread contract: owned by one engine actor (generator or verifier) and
// used from its thread only.
#pragma once

#include <optional>
#include <string>

#include "actors/batch.h"
#include "gpu/engine.h"
#include "messages/internal.h"

namespace flashtts {

class DeviceTurns {
 public:
  // Every grant, once the engine exists: whether the models take turns now
  // (the arbiter may start or end them while they serve; a model then tells
  // whether it has work, whatever it told before). On the `first` grant a
  // model whose turn it is not moves its weights off at once. Error when
  // the backend cannot move them.
  Status on_grant(const msg::Grant& g, Engine& engine, bool first) {
    if (g.turns != on_) on_ = g.turns, told_ = false;
    if (!first || !on_ || g.resident) return Status::success();
    auto s = engine.set_weights_on_device(false);
    if (!s) return make_error("memory.offload: " + s.error().message);
    return Status::success();
  }

  // The arbiter's DeviceTurn: the weights move; the answer says where they are.
  msg::TurnDone on_turn(const msg::DeviceTurn& t, Engine* engine) {
    msg::TurnDone d{t.role, t.serial, engine && engine->weights_on_device(), 0, ""};
    if (!engine) {
      d.error = "no engine yet (no grant)";
      return d;
    }
    const bool was_on = engine->weights_on_device();
    if (auto s = engine->set_weights_on_device(t.on)) d.seconds = *s, d.on = t.on;
    else d.error = s.error().message;
    if (d.on && !was_on) ++uploads_, upload_ms_ += d.seconds * 1e3;
    return d;
  }

  // The weights' trips back onto the device, and their device time (stats).
  int64_t uploads() const { return uploads_; }
  double upload_ms() const { return upload_ms_; }

  // After a step: the DeviceUse to send, when whether the model has real
  // work changed since the last one.
  template <class Task>
  std::optional<msg::DeviceUse> use(const char* role, const Batch<Task>& batch) {
    if (!on_) return std::nullopt;
    const bool wants = batch.has_real_work();
    if (told_ && wants == wants_) return std::nullopt;
    wants_ = wants, told_ = true;
    return msg::DeviceUse{role, wants};
  }

 private:
  bool on_ = false;
  bool wants_ = false;  // as last told
  bool told_ = false;   // since the turns began
  int64_t uploads_ = 0;
  double upload_ms_ = 0;
};

}  // namespace flashtts
