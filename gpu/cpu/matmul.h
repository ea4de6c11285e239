// The CPU backend's matrix products: y (n, out) = x (n, in) W^T (+ b), with W
// (out, in) in its stored dtype (F32, F16 or BF16) and f32 accumulation.
//
// Batch invariance by construction: every output element is one dot product
// over `in` whose reduction order is fixed by the instruction set and the
// weight dtype alone (L lane sums, each lane adding its products in k order,
// fused multiply-adds where the ISA has them, then a fixed pairwise tree over
// the lanes, then the bias; gpu/cpu/matmul_tile.h). Tiling, threading and the
// number of rows in the call only decide which outputs are computed together
// and by whom, never how one is summed, so a row's bits do not depend on the
// batch it rides in, its position there, prefill chunking or the thread
// count. F16 / BF16 weights convert exactly to f32 before they are
// multiplied; F16 sums in the F32 order (an F16 matrix gives the bits of its
// float32 values), BF16 in an order of its own that widens pairs cheaply.
//
// The ISA is picked at run time (AVX-512, AVX2 + FMA + F16C, or portable C++);
// each gives its own (fixed) bits, so results are comparable bit for bit only
// under one ISA. FLASHTTS_CPU_ISA=portable|avx2|avx512 forces a path (for
// tests and for comparing paths); asking for one the CPU lacks is an error.
//
// Thread contract: pure functions over caller-owned buffers; the ones taking a
// ThreadPool split their work across it and return when done. The pool is the
// caller's (one per backend), used from its owner thread only.
#pragma once

#include <cstdint>
#include <span>

#include "gpu/dtype.h"
#include "gpu/weights.h"
#include "runtime/base/status.h"

namespace flashtts {
class ThreadPool;
}

namespace flashtts::cpu {

enum class Isa { Portable, Avx2, Avx512 };

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // by this CPU (and OS)
Isa best_isa();               // the fastest supported path
// best_isa(), or the path FLASHTTS_CPU_ISA names; an error when the variable
// names an unknown or unsupported path.
Expected<Isa> isa_from_env();

// A read-only view of a row-major (rows, cols) matrix in dtype F32/F16/BF16
// whose rows are `ld` elements apart (0: cols, packed).
struct MatrixView {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t ld = 0;

  int64_t stride() const { return ld ? ld : cols; }
  // Rows [first, first + n) of this matrix.
  MatrixView slice(int64_t first, int64_t n) const;
};
// REQUIRES: m.size() == rows * cols.
MatrixView view(const WeightMatrix& m, int64_t rows, int64_t cols);
inline MatrixView view(const float* data, int64_t rows, int64_t cols) { return {DType::F32, data, rows, cols}; }

// y (n, w.rows) = x (n, w.cols) w^T + b (w.rows; null = none).
// REQUIRES: y does not overlap x; pool may be null (one thread).
void matmul(Isa isa, const float* x, MatrixView w, const float* b, float* y, int64_t n, ThreadPool* pool);

// One product of matmul_many(): y (n, w.rows) = x w^T + b.
struct Product {
  MatrixView w;
  const float* b = nullptr;
  float* y = nullptr;
};
// Several products of the same x (q, k and v; gate and up) in one pass over
// the pool: one wake-up and one wait instead of one per product. Each y gets
// exactly the bits matmul() gives it.
// REQUIRES: every w has the same cols; no y overlaps x or another y.
void matmul_many(Isa isa, const float* x, std::span<const Product> products, int64_t n, ThreadPool* pool);

// y[r * ldy + o] = (x + r * ldx) . (w row o) for r < n, o < w.rows, on the
// calling thread, each in the fixed order of matmul(): attention's scores, a
// few query heads against the keys of a KV block (rows kv_dim apart).
void dot_rows(Isa isa, const float* x, int64_t ldx, int64_t n, MatrixView w, float* y, int64_t ldy);

}  // namespace flashtts::cpu
