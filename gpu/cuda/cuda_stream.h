// Move-only RAII for the CUDA objects the backend holds: a stream (one per
// GPU actor, from the process's one device context), device memory taken
// once at start, pinned host memory for transfers, and a cuBLAS handle.
//
// Thread contract: each object is owned by one actor (its backend) and used
// from that actor's thread only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "gpu/device_context.h"
#include "runtime/base/status.h"

namespace flashtts::cuda {

class Stream {
 public:
  Stream() = default;
  // A non-blocking stream on the context's device; sets that device current
  // on the calling thread (the runtime's current device is per thread).
  static Expected<Stream> create(const DeviceContext& ctx);
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)), device_(o.device_) {}
  Stream& operator=(Stream&& o) noexcept;
  ~Stream();
  cudaStream_t get() const { return s_; }
  int device() const { return device_; }

 private:
  cudaStream_t s_ = nullptr;
  int device_ = -1;
};

// Device memory: one cudaMalloc at creation, freed at destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Expected<DeviceBuffer> create(size_t bytes, const char* what);
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  ~DeviceBuffer();
  void* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Page-locked host memory, so copies are truly asynchronous and capturable.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static Expected<PinnedBuffer> create(size_t bytes, const char* what);
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  ~PinnedBuffer();
  void* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// An event without timing, to know when the stream is past a point.
class Event {
 public:
  Event() = default;
  static Expected<Event> create();
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept;
  ~Event();
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

class Blas {
 public:
  Blas() = default;
  // A handle bound to `stream` and its workspace `ws` (so no allocation
  // happens inside a captured graph). Float32 products pick the pedantic
  // compute type per call (no TF32), see gemm.h.
  static Expected<Blas> create(cudaStream_t stream, void* ws, size_t ws_bytes);
  Blas(Blas&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Blas& operator=(Blas&& o) noexcept;
  ~Blas();
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

// Carves aligned pieces out of one device buffer (a bump allocator used only
// at creation).
class Carver {
 public:
  explicit Carver(char* base = nullptr) : base_(base) {}
  template <class T>
  T* take(size_t count) {
    off_ = (off_ + 255) / 256 * 256;
    T* p = base_ ? reinterpret_cast<T*>(base_ + off_) : nullptr;
    off_ += count * sizeof(T);
    return p;
  }
  size_t used() const { return off_; }

 private:
  char* base_;
  size_t off_ = 0;
};

}  // namespace flashtts::cuda
