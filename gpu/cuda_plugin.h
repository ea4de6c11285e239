// The CUDA backend as a library loaded at run time. gpu/cuda/ builds
// libflashtts_cuda.so, which links the CUDA runtime and cuBLAS; the engine
// (libflashtts_engine.so) never links them, and loads the backend from its
// own folder the first time a device context asks for CUDA. So one build
// starts on a machine without CUDA libraries: "auto" falls back to the CPU
// naming what could not be loaded, "cuda" is an error saying the same.
//
// The library exports one C function, flashtts_cuda_plugin_v1(), returning a
// table of the few calls the engine needs. Both sides are built from this
// header in one build; `abi` guards against a stale library beside a newer
// engine.
//
// Thread contract: load_cuda_plugin() may be called from any thread (loading
// happens once, under std::call_once); the table is immutable and its
// functions follow the contracts of the calls they stand for
// (gpu/cuda/cuda_probe.h, gpu/cuda/cuda_backend.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gpu/backend.h"
#include "gpu/device_context.h"
#include "gpu/model_config.h"
#include "gpu/weights.h"
#include "runtime/base/status.h"

namespace flashtts {

// What probing for a usable GPU found (gpu/cuda/cuda_probe.h fills it).
struct CudaProbe {
  bool ok = false;
  std::string reason;          // why not, when !ok
  int32_t device = -1;         // the device chosen (the first one)
  std::string name;            // e.g. "NVIDIA H100 80GB HBM3"
  int32_t cc_major = 0, cc_minor = 0;
  int64_t total_memory = 0;    // bytes
  std::string driver_version;  // e.g. "13.0"
};

inline constexpr int32_t kCudaPluginAbi = 3;

struct CudaPlugin {
  int32_t abi = kCudaPluginAbi;
  CudaProbe (*probe)() = nullptr;
  // KV bytes per token of the backend's default element type (bf16).
  size_t (*kv_bytes_per_token)(const ModelConfig& config) = nullptr;
  // Device bytes make_backend's workspaces take besides weights and KV, on
  // the context's device (cuda_workspace_bytes with the default options).
  size_t (*workspace_bytes)(const ModelConfig& config, const BackendOptions& options,
                            const DeviceContext& device) = nullptr;
  // Device bytes make_backend's weights take (cuda_weight_bytes with the
  // default options: bf16 matrices).
  size_t (*weight_bytes)(const ModelConfig& config, const ModelWeights& weights) = nullptr;
  // A backend with default CUDA options on a stream of its own.
  Expected<std::unique_ptr<Backend>> (*make_backend)(ModelConfig config, ModelWeights weights,
                                                     const BackendOptions& options,
                                                     const DeviceContext& device) = nullptr;
};

// The file the engine loads: libflashtts_cuda.so in the engine library's folder.
std::string cuda_plugin_path();

// The loaded table, or null with *why set (the library is absent, or it or a
// library it needs, e.g. libcublas.so.13, cannot be loaded, or it is stale).
// The outcome of the first call is kept for the process.
const CudaPlugin* load_cuda_plugin(std::string* why);

}  // namespace flashtts

// The library's entry point.
extern "C" const flashtts::CudaPlugin* flashtts_cuda_plugin_v1();
