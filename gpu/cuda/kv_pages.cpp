#include "gpu/cuda/kv_pages.h"

#include <cuda.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "gpu/cuda/cuda_check.h"

namespace flashtts::cuda {

namespace {

// The driver's virtual memory calls, from the runtime's entry points (the
// CUDA 12.0 versions of each).
struct Vmm {
  decltype(&::cuMemGetAllocationGranularity) granularity = nullptr;
  decltype(&::cuMemCreate) create = nullptr;
  decltype(&::cuMemRelease) release = nullptr;
  decltype(&::cuMemAddressReserve) reserve = nullptr;
  decltype(&::cuMemAddressFree) free = nullptr;
  decltype(&::cuMemMap) map = nullptr;
  decltype(&::cuMemUnmap) unmap = nullptr;
  decltype(&::cuMemSetAccess) access = nullptr;
  decltype(&::cuGetErrorName) error_name = nullptr;
  std::string missing;  // the first call the driver did not give; empty = all there
};

template <class F>
void entry(const char* name, F* fn, std::string* missing) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found{};
  if (cudaGetDriverEntryPointByVersion(name, &p, 12000, cudaEnableDefault, &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess || p == nullptr) {
    cudaGetLastError();
    if (missing->empty()) *missing = name;
    return;
  }
  *fn = reinterpret_cast<F>(p);
}

const Vmm& vmm() {
  static const Vmm v = [] {
    Vmm v;
    entry("cuMemGetAllocationGranularity", &v.granularity, &v.missing);
    entry("cuMemCreate", &v.create, &v.missing);
    entry("cuMemRelease", &v.release, &v.missing);
    entry("cuMemAddressReserve", &v.reserve, &v.missing);
    entry("cuMemAddressFree", &v.free, &v.missing);
    entry("cuMemMap", &v.map, &v.missing);
    entry("cuMemUnmap", &v.unmap, &v.missing);
    entry("cuMemSetAccess", &v.access, &v.missing);
    entry("cuGetErrorName", &v.error_name, &v.missing);
    return v;
  }();
  return v;
}

Status check(CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return Status::success();
  const char* name = nullptr;
  if (vmm().error_name) vmm().error_name(r, &name);
  return make_error(std::string("CUDA driver: ") + what + ": " + (name ? name : std::to_string((int)r)));
}

CUmemAllocationProp page_prop(int device) {
  CUmemAllocationProp p{};
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  p.location.id = device;
  return p;
}

// The pages pools gave back, per device, for the next pool that grows.
// While no pool of a device lives, it holds none of that device's: they go
// back to the driver, for whatever the process allocates next.
class PageReserve {
 public:
  static PageReserve& instance() {
    static PageReserve r;
    return r;
  }
  void attach(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    ++pools_[device];
  }
  void detach(int device) {
    std::vector<CUmemGenericAllocationHandle> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pools_[device] > 0) return;
      for (auto& [key, v] : free_)
        if (key.first == device) drop.insert(drop.end(), v.begin(), v.end()), v.clear();
    }
    for (CUmemGenericAllocationHandle h : drop) vmm().release(h);
  }
  // A page of `bytes`: one given back, else a new one from the driver.
  Expected<CUmemGenericAllocationHandle> take(int device, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& free = free_[{device, bytes}];
      if (!free.empty()) {
        const CUmemGenericAllocationHandle h = free.back();
        free.pop_back();
        return h;
      }
    }
    CUmemGenericAllocationHandle h = 0;
    const CUmemAllocationProp prop = page_prop(device);
    FLASHTTS_TRY(check(vmm().create(&h, bytes, &prop, 0), "cuMemCreate (a KV page)"));
    return h;
  }
  void give(int device, size_t bytes, CUmemGenericAllocationHandle h) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[{device, bytes}].push_back(h);
  }
  size_t held(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [key, v] : free_)
      if (key.first == device) n += v.size();
    return n;
  }

 private:
  std::mutex mu_;
  std::map<int, int> pools_;  // live pools per device
  std::map<std::pair<int, size_t>, std::vector<CUmemGenericAllocationHandle>> free_;
};

}  // namespace

size_t kv_pages_reserved(int device) { return PageReserve::instance().held(device); }

Expected<KvPages> KvPages::create(int device, int32_t n_layers, size_t block_bytes, int32_t n_blocks,
                                  int32_t max_blocks, cudaStream_t stream) {
  const Vmm& v = vmm();
  if (!v.missing.empty())
    return make_error(std::string("CUDA: the driver gives no ") + v.missing +
                      ", which an elastic KV pool needs (virtual memory management, CUDA 10.2 and later)");
  if (n_layers <= 0 || block_bytes == 0 || n_blocks < 1 || max_blocks < n_blocks)
    return make_error("CUDA: an elastic KV pool needs layers, a block size and 1 <= n_blocks <= max_blocks");
  KvPages k;
  k.device_ = device;
  k.n_layers_ = n_layers;
  k.block_bytes_ = block_bytes;
  k.max_blocks_ = max_blocks;
  const CUmemAllocationProp prop = page_prop(device);
  FLASHTTS_TRY(check(v.granularity(&k.page_, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED), "cuMemGetAllocationGranularity"));
  k.stride_ = ((size_t)max_blocks * block_bytes + k.page_ - 1) / k.page_ * k.page_;
  k.reserved_ = k.stride_ * (size_t)n_layers;
  CUdeviceptr base = 0;
  // A device without virtual memory management fails here (CUDA_ERROR_NOT_SUPPORTED).
  Status reserved = check(v.reserve(&base, k.reserved_, k.page_, 0, 0), "cuMemAddressReserve (the KV pool's addresses)");
  if (!reserved.ok())
    return make_error(reserved.message() + "; an elastic KV pool needs virtual memory management: on this device use "
                      "policies.memory_split = \"static\"");
  k.base_ = base;
  PageReserve::instance().attach(device);
  k.handles_.resize((size_t)n_layers);
  FLASHTTS_TRY(k.resize(n_blocks, stream));
  return k;
}

KvPages::KvPages(KvPages&& o) noexcept { *this = std::move(o); }

KvPages& KvPages::operator=(KvPages&& o) noexcept {
  if (this != &o) {
    release();
    device_ = o.device_;
    base_ = std::exchange(o.base_, 0);
    reserved_ = std::exchange(o.reserved_, 0);
    page_ = o.page_, stride_ = o.stride_, block_bytes_ = o.block_bytes_;
    n_layers_ = o.n_layers_, n_blocks_ = o.n_blocks_, max_blocks_ = o.max_blocks_;
    pages_per_layer_ = std::exchange(o.pages_per_layer_, 0);
    handles_ = std::move(o.handles_);
    o.handles_.clear();
  }
  return *this;
}

KvPages::~KvPages() { release(); }

void KvPages::release() {
  if (base_ == 0) return;
  cudaDeviceSynchronize();  // no pass may still use the pages (the pool's stream is not known here)
  unmap_layer_pages(0, pages_per_layer_);
  vmm().free(base_, reserved_);
  PageReserve::instance().detach(device_);
  base_ = 0;
  pages_per_layer_ = 0;
  handles_.clear();
}

size_t KvPages::pages_for(int32_t blocks) const { return ((size_t)blocks * block_bytes_ + page_ - 1) / page_; }

Status KvPages::map_layer_pages(size_t from, size_t to) {
  const Vmm& v = vmm();
  CUmemAccessDesc access{};
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = device_;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  Status s;
  for (int32_t l = 0; l < n_layers_ && s.ok(); ++l) {
    auto& hs = handles_[(size_t)l];
    const CUdeviceptr layer = base_ + (CUdeviceptr)l * stride_;
    for (size_t p = from; p < to && s.ok(); ++p) {
      auto h = PageReserve::instance().take(device_, page_);
      if (!h) {
        s = h.error();
        break;
      }
      s = check(v.map(layer + p * page_, page_, 0, *h, 0), "cuMemMap (a KV page)");
      if (s.ok()) hs.push_back(*h);
      else PageReserve::instance().give(device_, page_, *h);
    }
    if (s.ok() && to > from)
      s = check(v.access(layer + from * page_, (to - from) * page_, &access, 1), "cuMemSetAccess (KV pages)");
  }
  if (!s.ok()) unmap_layer_pages(from, to);  // this call's pages, every layer
  return s;
}

void KvPages::unmap_layer_pages(size_t from, size_t to) {
  const Vmm& v = vmm();
  for (int32_t l = 0; l < n_layers_ && l < (int32_t)handles_.size(); ++l) {
    auto& hs = handles_[(size_t)l];
    const CUdeviceptr layer = base_ + (CUdeviceptr)l * stride_;
    for (size_t p = std::min(to, hs.size()); p > from; --p) {
      v.unmap(layer + (p - 1) * page_, page_);
      PageReserve::instance().give(device_, page_, hs[p - 1]);
      hs.pop_back();
    }
  }
}

Status KvPages::resize(int32_t n_blocks, cudaStream_t stream) {
  if (n_blocks < 1 || n_blocks > max_blocks_)
    return make_error("CUDA: a KV pool of " + std::to_string(n_blocks) + " blocks is outside the 1 to " +
                      std::to_string(max_blocks_) + " reserved");
  const size_t pages = pages_for(n_blocks);
  if (pages > pages_per_layer_) {
    FLASHTTS_TRY(map_layer_pages(pages_per_layer_, pages));
    pages_per_layer_ = pages;
  }
  if (n_blocks > n_blocks_) {
    // New blocks read as zeros, as the fixed pool's do after its clear.
    const size_t from = (size_t)n_blocks_ * block_bytes_, bytes = (size_t)(n_blocks - n_blocks_) * block_bytes_;
    for (int32_t l = 0; l < n_layers_; ++l)
      FLASHTTS_CUDA_TRY(cudaMemsetAsync(reinterpret_cast<char*>(base_ + (CUdeviceptr)l * stride_) + from, 0, bytes, stream),
                        "KV clear");
  }
  if (pages < pages_per_layer_) {
    FLASHTTS_CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize (before a KV shrink)");
    unmap_layer_pages(pages, pages_per_layer_);
    pages_per_layer_ = pages;
  }
  n_blocks_ = n_blocks;
  return Status::success();
}

}  // namespace flashtts::cuda
