#include "gpu/device_context.h"

#include <algorithm>
#include <fstream>
#include <thread>

#include "gpu/cuda_plugin.h"

namespace flashtts {

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(p + 2);
    }
  return "unknown CPU";
}

// Why CUDA cannot be used here, or "" when it can (then *probe is filled).
std::string cuda_unavailable(CudaProbe* probe) {
#if defined(FLASHTTS_HAVE_CUDA)
  std::string why;
  const CudaPlugin* plugin = load_cuda_plugin(&why);
  if (!plugin) return why;
  *probe = plugin->probe();
  return probe->ok ? std::string() : probe->reason;
#else
  (void)probe;
  return "this build has no CUDA backend (configured with FLASHTTS_CUDA=OFF or without a CUDA toolkit)";
#endif
}

}  // namespace

Expected<std::shared_ptr<const DeviceContext>> DeviceContext::open(const std::string& device) {
  if (device.rfind("sim:", 0) == 0) {
    const SimCard* card = find_sim_card(std::string_view(device).substr(4));
    if (!card)
      return make_error("device '" + device + "' names no simulated card; known: " + sim_card_names() +
                        " (as sim:<card>)");
    auto d = std::make_shared<DeviceContext>();
    d->kind_ = DeviceKind::Sim;
    d->cores_ = std::max(1u, std::thread::hardware_concurrency());
    d->device_memory_ = card->memory_bytes;
    d->sim_card_ = card;
    d->sim_timeline_ = std::make_shared<SimTimeline>();
    d->description_ = std::string("simulated ") + card->display + " (" + device + ": " +
                      std::to_string(int(card->mem_bandwidth / 1e9)) + " GB/s, " +
                      std::to_string(int(card->bf16_flops / 1e12)) + " dense bf16 TFLOPS, " +
                      std::to_string(card->memory_bytes >> 30) + " GiB); all timings are simulated";
    return std::shared_ptr<const DeviceContext>(std::move(d));
  }
  if (device != "cpu" && device != "auto" && device != "cuda")
    return make_error("device '" + device + "' is not one of: cpu, auto, cuda, sim:<card> (" + sim_card_names() +
                      ")");
  auto d = std::make_shared<DeviceContext>();
  d->cores_ = std::max(1u, std::thread::hardware_concurrency());
  d->description_ = "CPU: " + cpu_model() + ", " + std::to_string(d->cores_) + " cores";
  if (device == "cpu") return std::shared_ptr<const DeviceContext>(std::move(d));

  CudaProbe probe;
  std::string why = cuda_unavailable(&probe);
  if (why.empty()) {
    d->kind_ = DeviceKind::Cuda;
    d->cuda_device_ = probe.device;
    d->device_memory_ = probe.total_memory;
    d->description_ = "CUDA: " + probe.name + " (device " + std::to_string(probe.device) + ", compute " +
                      std::to_string(probe.cc_major) + "." + std::to_string(probe.cc_minor) + ", " +
                      std::to_string(probe.total_memory >> 20) + " MiB), driver " + probe.driver_version;
    return std::shared_ptr<const DeviceContext>(std::move(d));
  }
  if (device == "cuda") return make_error("device 'cuda' is not available: " + why + " (use \"cpu\" or \"auto\")");
  d->fallback_ = "device 'auto': " + why + "; running on the " + d->description_;
  return std::shared_ptr<const DeviceContext>(std::move(d));
}

}  // namespace flashtts
