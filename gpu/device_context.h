// The one device context of a process: created once by the supervisor and
// shared by the generator and the verifier, which each run their engine on
// it. On the CPU it names the machine and its cores; the CUDA backend will
// hold the one CUDA context here and hand each actor its own stream.
//
// Thread contract: immutable after open(); shared read-only between the
// generator and verifier threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace flashtts {

enum class DeviceKind { Cpu };

class DeviceContext {
 public:
  // "cpu"; "auto" (the CPU when this build has no CUDA backend; fallback()
  // then says so); "cuda" is an error naming why it is unavailable.
  static Expected<std::shared_ptr<const DeviceContext>> open(const std::string& device);

  DeviceKind kind() const { return kind_; }
  const std::string& description() const { return description_; }
  const std::string& fallback() const { return fallback_; }  // "" unless "auto" fell back
  int32_t cores() const { return cores_; }

  // Worker threads for an engine that asked for `requested` (0 = all cores).
  int32_t threads_for(int32_t requested) const { return requested > 0 ? requested : cores_; }

 private:
  DeviceKind kind_ = DeviceKind::Cpu;
  std::string description_, fallback_;
  int32_t cores_ = 1;
};

}  // namespace flashtts
