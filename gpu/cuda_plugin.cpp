#include "gpu/cuda_plugin.h"

#include <dlfcn.h>

#include <mutex>

namespace flashtts {

std::string cuda_plugin_path() {
  Dl_info info{};
  std::string dir;
  if (dladdr(reinterpret_cast<const void*>(&cuda_plugin_path), &info) != 0 && info.dli_fname) {
    dir = info.dli_fname;
    const size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? std::string() : dir.substr(0, slash + 1);
  }
  return dir + "libflashtts_cuda.so";
}

namespace {

struct Loaded {
  const CudaPlugin* plugin = nullptr;
  std::string why;
};

Loaded load() {
  Loaded r;
  const std::string path = cuda_plugin_path();
  // RTLD_LOCAL: its CUDA symbols stay its own; RTLD_NOW: a missing
  // dependency shows here, not at the first call.
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    r.why = "the CUDA backend (" + path + ") could not be loaded: " + (e ? e : "unknown error");
    return r;
  }
  using Entry = const CudaPlugin* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(h, "flashtts_cuda_plugin_v1"));
  const CudaPlugin* p = entry ? entry() : nullptr;
  if (!p || p->abi != kCudaPluginAbi || !p->probe || !p->kv_bytes_per_token || !p->workspace_bytes ||
      !p->weight_bytes || !p->make_backend) {
    r.why = "the CUDA backend (" + path + ") is not this engine's (" +
            (p ? "ABI " + std::to_string(p->abi) + ", expected " + std::to_string(kCudaPluginAbi)
               : std::string("no flashtts_cuda_plugin_v1")) +
            "): rebuild and reinstall both";
    dlclose(h);
    return r;
  }
  // Never closed: backends and the CUDA runtime live until the process ends.
  r.plugin = p;
  return r;
}

}  // namespace

const CudaPlugin* load_cuda_plugin(std::string* why) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.plugin && why) *why = loaded.why;
  return loaded.plugin;
}

}  // namespace flashtts
