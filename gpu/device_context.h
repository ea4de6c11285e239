// The one device context of a process: created once by the supervisor and
// shared by the generator and the verifier, which each run their engine on
// it. On the CPU it names the machine and its cores; with CUDA it names the
// GPU whose (primary) CUDA context both engines use, each on its own stream
// (gpu/cuda/cuda_stream.h makes one per backend).
//
// A simulated device ("sim:<card>", gpu/sim/) computes nothing and takes
// each pass's predicted time on one timeline both engines share.
//
// Thread contract: immutable after open(); shared read-only between the
// generator and verifier threads (a simulated device's timeline is
// thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gpu/sim/sim_card.h"
#include "gpu/sim/sim_timeline.h"
#include "runtime/base/status.h"

namespace flashtts {

enum class DeviceKind { Cpu, Cuda, Sim };

class DeviceContext {
 public:
  // "cpu"; "cuda" (an error naming why it is unavailable: a build without
  // CUDA, no driver, no device, a GPU too old); "auto" = CUDA when available,
  // else the CPU, and fallback() then says why in one line; "sim:<card>" a
  // simulated card (an unknown card is an error listing the known ones).
  static Expected<std::shared_ptr<const DeviceContext>> open(const std::string& device);

  DeviceKind kind() const { return kind_; }
  const std::string& description() const { return description_; }
  const std::string& fallback() const { return fallback_; }  // "" unless "auto" fell back
  int32_t cores() const { return cores_; }
  int32_t cuda_device() const { return cuda_device_; }       // -1 unless kind() == Cuda
  int64_t device_memory() const { return device_memory_; }   // bytes on the GPU; 0 on the CPU
  bool simulated() const { return kind_ == DeviceKind::Sim; }
  const SimCard* sim_card() const { return sim_card_; }              // null unless simulated()
  SimTimeline* sim_timeline() const { return sim_timeline_.get(); }  // null unless simulated()

  // Worker threads for an engine that asked for `requested` (0 = all cores).
  int32_t threads_for(int32_t requested) const { return requested > 0 ? requested : cores_; }

 private:
  DeviceKind kind_ = DeviceKind::Cpu;
  std::string description_, fallback_;
  int32_t cores_ = 1;
  int32_t cuda_device_ = -1;
  int64_t device_memory_ = 0;
  const SimCard* sim_card_ = nullptr;
  std::shared_ptr<SimTimeline> sim_timeline_;
};

}  // namespace flashtts
