#include "gpu/cuda/cuda_stream.h"

#include <string>

#include "gpu/cuda/cuda_check.h"

namespace flashtts::cuda {

Expected<Stream> Stream::create(const DeviceContext& ctx) {
  if (ctx.kind() != DeviceKind::Cuda) return make_error("CUDA stream asked of a device context that is not CUDA");
  FLASHTTS_CUDA_TRY(cudaSetDevice(ctx.cuda_device()), "cudaSetDevice");
  Stream s;
  s.device_ = ctx.cuda_device();
  FLASHTTS_CUDA_TRY(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (s_) cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
    device_ = o.device_;
  }
  return *this;
}

Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}

Expected<DeviceBuffer> DeviceBuffer::create(size_t bytes, const char* what) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  cudaError_t e = cudaMalloc(&b.p_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    b.p_ = nullptr;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return make_error(std::string("CUDA: could not allocate ") + std::to_string(bytes >> 20) + " MiB for " + what +
                      " (" + std::to_string(free_b >> 20) + " of " + std::to_string(total_b >> 20) +
                      " MiB free): " + cudaGetErrorString(e));
  }
  b.n_ = bytes;
  return b;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFree(p_);
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}

Expected<PinnedBuffer> PinnedBuffer::create(size_t bytes, const char* what) {
  PinnedBuffer b;
  if (bytes == 0) return b;
  cudaError_t e = cudaMallocHost(&b.p_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    b.p_ = nullptr;
    return make_error(std::string("CUDA: could not pin ") + std::to_string(bytes >> 20) + " MiB of host memory for " +
                      what + ": " + cudaGetErrorString(e));
  }
  b.n_ = bytes;
  return b;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFreeHost(p_);
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() {
  if (p_) cudaFreeHost(p_);
}

Expected<Event> Event::create() {
  Event e;
  FLASHTTS_CUDA_TRY(cudaEventCreateWithFlags(&e.e_, cudaEventDisableTiming), "cudaEventCreate");
  return e;
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (e_) cudaEventDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}

Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}

Expected<Blas> Blas::create(cudaStream_t stream, void* ws, size_t ws_bytes) {
  Blas b;
  FLASHTTS_TRY(check(cublasCreate(&b.h_), "cublasCreate"));
  FLASHTTS_TRY(check(cublasSetStream(b.h_, stream), "cublasSetStream"));
  FLASHTTS_TRY(check(cublasSetWorkspace(b.h_, ws, ws_bytes), "cublasSetWorkspace"));
  return b;
}

Blas& Blas::operator=(Blas&& o) noexcept {
  if (this != &o) {
    if (h_) cublasDestroy(h_);
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}

Blas::~Blas() {
  if (h_) cublasDestroy(h_);
}

}  // namespace flashtts::cuda
