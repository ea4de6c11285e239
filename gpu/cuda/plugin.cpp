// libflashtts_cuda.so's entry point (gpu/cuda_plugin.h): the probe, the KV
// size, the workspaces' and the weights' sizes and the backend factory of
// this folder, as the engine calls them.
#include "gpu/cuda_plugin.h"

#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/cuda_probe.h"

namespace flashtts {
namespace {

size_t kv_bytes_per_token_bf16(const ModelConfig& c) { return kv_bytes_per_token_cuda(c, CudaDtype::Bf16); }

size_t default_workspace_bytes(const ModelConfig& c, const BackendOptions& options, const DeviceContext& device) {
  int n_sms = 0;
  if (cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, device.cuda_device()) != cudaSuccess || n_sms <= 0)
    n_sms = 256;  // unknown: more than any GPU has, so the estimate errs large
  return cuda_workspace_bytes(c, options, CudaBackendOptions{}, n_sms);
}

size_t default_weight_bytes(const ModelConfig& c, const ModelWeights& w) {
  return cuda_weight_bytes(c, w, CudaBackendOptions{});
}

Expected<std::unique_ptr<Backend>> make_default_backend(ModelConfig config, ModelWeights weights,
                                                        const BackendOptions& options, const DeviceContext& device) {
  auto b = make_cuda_backend(std::move(config), std::move(weights), options, CudaBackendOptions{}, device);
  if (!b) return b.error();
  return std::unique_ptr<Backend>(std::move(b).value());
}

const CudaPlugin kPlugin{kCudaPluginAbi,          &probe_cuda,           &kv_bytes_per_token_bf16,
                          &default_workspace_bytes, &default_weight_bytes, &make_default_backend};

}  // namespace
}  // namespace flashtts

extern "C" __attribute__((visibility("default"))) const flashtts::CudaPlugin* flashtts_cuda_plugin_v1() {
  return &flashtts::kPlugin;
}
