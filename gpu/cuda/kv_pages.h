// The CUDA backend's elastic KV storage (Backend::resize_kv; issue 23's
// elastic pools): one virtual address range reserved at start for every
// layer's max_blocks blocks, with physical pages mapped under the blocks in
// use. Growing maps pages at the end of each layer's range, shrinking unmaps
// them; no block below the cut moves, and the addresses the kernels and the
// captured CUDA graphs hold stay valid.
//
// The pages come from a reserve the process keeps per device (PageReserve):
// a pool that shrinks puts its pages there and the other model's pool takes
// them, so memory is taken from the driver once and then moves between the
// two models. Only what neither pool has ever given back is created anew;
// when the device's last pool ends, the reserve goes back to the driver.
//
// The driver's virtual memory calls (cuMemCreate, cuMemMap, ...) are reached
// through the runtime's driver entry points, so the plugin does not link
// libcuda itself.
//
// Thread contract: a KvPages is owned by one backend and used from its
// engine actor's thread only (the device current there). The reserve is
// shared by every backend of the process, behind a mutex.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/base/status.h"

namespace flashtts::cuda {

class KvPages {
 public:
  KvPages() = default;
  // Reserves room for `max_blocks` blocks of `block_bytes` in each of
  // `n_layers` layers and maps pages under the first `n_blocks`, zeroed on
  // `stream`. Error (naming the driver's code) when the driver lacks virtual
  // memory management or the device its memory.
  static Expected<KvPages> create(int device, int32_t n_layers, size_t block_bytes, int32_t n_blocks,
                                  int32_t max_blocks, cudaStream_t stream);
  KvPages(KvPages&& o) noexcept;
  KvPages& operator=(KvPages&& o) noexcept;
  KvPages(const KvPages&) = delete;
  KvPages& operator=(const KvPages&) = delete;
  ~KvPages();

  // Layer l's blocks start at base() + l * layer_stride().
  void* base() const { return reinterpret_cast<void*>(base_); }
  size_t layer_stride() const { return stride_; }
  // Device memory mapped now, all layers.
  size_t mapped_bytes() const { return (size_t)n_layers_ * pages_per_layer_ * page_; }

  // Maps or unmaps pages so that blocks [0, n_blocks) of every layer are
  // backed, and no page wholly above them; new blocks are zeroed on
  // `stream`. Before unmapping it waits for `stream` (a pass may still read
  // the blocks above the cut). On error the pool keeps its size.
  // REQUIRES: 1 <= n_blocks <= max_blocks.
  Status resize(int32_t n_blocks, cudaStream_t stream);

 private:
  void release();
  // Pages that back `blocks` blocks of one layer.
  size_t pages_for(int32_t blocks) const;
  Status map_layer_pages(size_t from, size_t to);  // [from, to) of every layer
  void unmap_layer_pages(size_t from, size_t to);

  int device_ = -1;
  unsigned long long base_ = 0;  // CUdeviceptr
  size_t reserved_ = 0;
  size_t page_ = 0, stride_ = 0, block_bytes_ = 0;
  int32_t n_layers_ = 0, n_blocks_ = 0, max_blocks_ = 0;
  size_t pages_per_layer_ = 0;
  // The physical page under each mapped page, layer by layer.
  std::vector<std::vector<unsigned long long>> handles_;
};

// Pages the reserve of `device` holds now (given back and not taken again).
size_t kv_pages_reserved(int device);

}  // namespace flashtts::cuda
