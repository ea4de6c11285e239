#include "gpu/device_context.h"

#include <fstream>
#include <thread>

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

}  // namespace

Expected<std::shared_ptr<const DeviceContext>> DeviceContext::open(const std::string& device) {
  if (device != "cpu" && device != "auto") {
    if (device == "cuda")
      return make_error("device 'cuda' is not available: this build has no CUDA backend (use \"cpu\" or \"auto\")");
    return make_error("device '" + device + "' is not one of: cpu, auto, cuda");
  }
  auto d = std::make_shared<DeviceContext>();
  d->cores_ = std::max(1u, std::thread::hardware_concurrency());
  d->description_ = "CPU: " + cpu_model() + ", " + std::to_string(d->cores_) + " cores";
  if (device == "auto") d->fallback_ = "device 'auto': this build has no CUDA backend; running on the CPU";
  return std::shared_ptr<const DeviceContext>(std::move(d));
}

}  // namespace flashtts
