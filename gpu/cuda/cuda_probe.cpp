#include "gpu/cuda/cuda_probe.h"

#include <cuda_runtime_api.h>

namespace flashtts {

namespace {

std::string version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

CudaProbe probe_cuda() {
  CudaProbe p;
  int driver = 0, runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    p.reason = "no NVIDIA driver found (libcuda could not be loaded)";
    return p;
  }
  p.driver_version = version_string(driver);
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    if (e == cudaErrorNoDevice)
      p.reason = "no CUDA device found";
    else if (e == cudaErrorInsufficientDriver)
      p.reason = "the NVIDIA driver (CUDA " + p.driver_version + ") is older than this build's CUDA runtime (" +
                 version_string(runtime) + ")";
    else
      p.reason = std::string("CUDA could not list devices: ") + cudaGetErrorString(e);
    return p;
  }
  if (count == 0) {
    p.reason = "no CUDA device found";
    return p;
  }
  cudaDeviceProp prop{};
  if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
    p.reason = std::string("CUDA device 0 could not be queried: ") + cudaGetErrorString(e);
    return p;
  }
  p.device = 0;
  p.name = prop.name;
  p.cc_major = prop.major;
  p.cc_minor = prop.minor;
  p.total_memory = (int64_t)prop.totalGlobalMem;
  if (prop.major < kMinComputeMajor) {
    p.reason = p.name + " has compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
               "; the CUDA backend needs " + std::to_string(kMinComputeMajor) + ".0 or newer";
    return p;
  }
  // Create the primary context now, once, so that a broken device shows here
  // and not in the first forward pass.
  if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaFree(nullptr)) != cudaSuccess) {
    cudaGetLastError();
    p.reason = std::string("CUDA context creation failed on ") + p.name + ": " + cudaGetErrorString(e);
    return p;
  }
  p.ok = true;
  return p;
}

}  // namespace flashtts
