// CUDA and cuBLAS return codes as Status values: nothing crosses the CUDA
// boundary as an exception, and every call's code is looked at.
//
// Thread contract: pure functions; call from any thread.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "runtime/base/status.h"

namespace flashtts::cuda {

inline Status check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::success();
  return make_error(std::string("CUDA: ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline Status check(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::success();
  return make_error(std::string("cuBLAS: ") + what + ": " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) +
                    ")");
}

// The first launch error since the last check (kernels report asynchronously).
inline Status check_launch(const char* what) { return check(cudaGetLastError(), what); }

}  // namespace flashtts::cuda

#define FLASHTTS_CUDA_TRY(call, what) FLASHTTS_TRY(::flashtts::cuda::check((call), (what)))
