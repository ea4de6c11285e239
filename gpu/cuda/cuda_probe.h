// Looks for a usable CUDA GPU without ever failing hard: no driver, a driver
// older than the runtime, no device and a device too old for bf16 all come
// back as a reason a user can act on. DeviceContext::open() calls it once.
//
// Thread contract: call from one thread at start-up (it initialises the CUDA
// runtime's primary context of the chosen device).
#pragma once

#include <cstdint>
#include <string>

namespace flashtts {

struct CudaProbe {
  bool ok = false;
  std::string reason;          // why not, when !ok
  int32_t device = -1;         // the device chosen (the first one)
  std::string name;            // e.g. "NVIDIA H100 80GB HBM3"
  int32_t cc_major = 0, cc_minor = 0;
  int64_t total_memory = 0;    // bytes
  std::string driver_version;  // e.g. "13.0"
};

// The backend needs compute capability 8.0 (bf16 arithmetic, the oldest SASS built).
inline constexpr int kMinComputeMajor = 8;

CudaProbe probe_cuda();

}  // namespace flashtts
