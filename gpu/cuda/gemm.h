// Matrix products through cuBLAS: y (n, out) f32 = x (n, in) W^T, with W the
// (out, in) row-major weight as Hugging Face stores it. bf16 operands use
// the tensor cores with float32 accumulation; float32 operands use the
// pedantic float32 compute type (no TF32), so f32 mode matches the CPU.
//
// Thread contract: enqueues on the handle's stream; the owning backend's
// thread only.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "runtime/base/status.h"

namespace flashtts::cuda {

template <class S>
Status linear(cublasHandle_t h, const S* x, const S* w, float* y, int64_t n, int64_t in, int64_t out);

}  // namespace flashtts::cuda
