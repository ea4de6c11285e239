// Looks for a usable CUDA GPU without ever failing hard: no driver, a driver
// older than the runtime, no device and a device too old for bf16 all come
// back as a reason a user can act on. DeviceContext::open() calls it once,
// through the library's table (gpu/cuda_plugin.h).
//
// Thread contract: call from one thread at start-up (it initialises the CUDA
// runtime's primary context of the chosen device).
#pragma once

#include "gpu/cuda_plugin.h"  // CudaProbe

namespace flashtts {

// The backend needs compute capability 8.0 (bf16 arithmetic, the oldest SASS built).
inline constexpr int kMinComputeMajor = 8;

CudaProbe probe_cuda();

}  // namespace flashtts
