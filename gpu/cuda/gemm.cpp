#include "gpu/cuda/gemm.h"

#include <type_traits>

#include "gpu/cuda/cuda_check.h"

namespace flashtts::cuda {

template <class S>
Status linear(cublasHandle_t h, const S* x, const S* w, float* y, int64_t n, int64_t in, int64_t out) {
  if (n == 0) return Status::success();
  constexpr bool f32 = std::is_same_v<S, float>;
  const cudaDataType_t ab = f32 ? CUDA_R_32F : CUDA_R_16BF;
  const cublasComputeType_t compute = f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  const float one = 1.0f, zero = 0.0f;
  // Column-major view: Y^T (out, n) = W (out, in) . X^T (in, n), where the
  // row-major W is the column-major (in, out) matrix, hence OP_T.
  return check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)out, (int)n, (int)in, &one, w, ab, (int)in, x, ab,
                            (int)in, &zero, y, CUDA_R_32F, (int)out, compute, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

template Status linear<float>(cublasHandle_t, const float*, const float*, float*, int64_t, int64_t, int64_t);
template Status linear<__nv_bfloat16>(cublasHandle_t, const __nv_bfloat16*, const __nv_bfloat16*, float*, int64_t,
                                      int64_t, int64_t);

}  // namespace flashtts::cuda
