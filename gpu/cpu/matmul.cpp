#include "gpu/cpu/matmul.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gpu/cpu/matmul_tile.h"
#include "gpu/cpu/thread_pool.h"

namespace flashtts::cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Portable: break;
  }
  return "portable";
}

bool isa_supported(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's CPU model also checks that the OS saves the wide registers (XCR0).
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::Portable: return true;
  }
  return false;
#else
  return isa == Isa::Portable;
#endif
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Portable;
}

Expected<Isa> isa_from_env() {
  const char* v = std::getenv("FLASHTTS_CPU_ISA");
  if (!v || !*v) return best_isa();
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512}) {
    if (std::strcmp(v, isa_name(isa)) != 0) continue;
    if (!isa_supported(isa))
      return make_error(std::string("FLASHTTS_CPU_ISA=") + v + ": this CPU does not support it (best here: " +
                        isa_name(best_isa()) + ")");
    return isa;
  }
  return make_error(std::string("FLASHTTS_CPU_ISA=") + v + ": unknown (portable, avx2 or avx512)");
}

MatrixView MatrixView::slice(int64_t first, int64_t n) const {
  assert(first >= 0 && first + n <= rows);
  return {dtype, static_cast<const char*>(data) + first * stride() * (int64_t)dtype_size(dtype), n, cols, ld};
}

MatrixView view(const WeightMatrix& m, int64_t rows, int64_t cols) {
  assert((int64_t)m.size() == rows * cols);
  return {m.dtype, m.data(), rows, cols};
}

namespace {

const TileKernel& kernel(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return tile_kernel_avx512();
    case Isa::Avx2: return tile_kernel_avx2();
    case Isa::Portable: break;
  }
  return tile_kernel_portable();
}

// Below this many multiply-adds a product is over in about a microsecond on
// one core, less than handing half of it to another thread costs.
constexpr int64_t kMinParallelMacs = 1 << 16;

// W rows per block: a block (as f32) stays in L2 while every x row tile of the
// call passes over it.
constexpr int64_t kBlockBytes = 256 << 10;

// y rows [r0, r1) x columns [o0, o1): y[r * ldy + o] = x row r . w row o
// (+ b[o]), x rows ldx floats apart.
void run_block(const TileKernel& K, const float* x, int64_t ldx, MatrixView w, const float* b, float* y,
               int64_t ldy, int64_t r0, int64_t r1, int64_t o0, int64_t o1) {
  const int64_t in = w.cols, ldw = w.stride();
  const int64_t esize = (int64_t)dtype_size(w.dtype);
  const int max_rn = r1 - r0 == 1 ? K.max_rn_1 : K.max_rn;
  // An F16 block that several row tiles read is widened once, into scratch
  // (F16 sums in the F32 order, so the bits are the same); with one row tile
  // the tile converts in registers. BF16 always converts in registers (a
  // shift and a mask), in an order of its own.
  const bool convert = w.dtype == DType::F16 && ldw == in && r1 - r0 > K.max_rm;
  int64_t nb = std::max<int64_t>(max_rn, kBlockBytes / (in * 4) / max_rn * max_rn);
  thread_local std::vector<float> scratch;
  if (convert) scratch.resize(size_t(std::min(nb, o1 - o0) * in));
  for (int64_t ob = o0; ob < o1; ob += nb) {
    const int64_t oe = std::min(o1, ob + nb);
    const void* wb = static_cast<const char*>(w.data) + ob * ldw * esize;
    DType wt = w.dtype;
    int64_t wsize = esize, wld = ldw;
    if (convert) {
      K.widen_f16(static_cast<const uint16_t*>(w.data) + ob * in, (oe - ob) * in, scratch.data());
      wb = scratch.data(), wt = DType::F32, wsize = 4;
    }
    for (int64_t r = r0; r < r1; r += K.max_rm) {
      const int rm = (int)std::min<int64_t>(K.max_rm, r1 - r);
      for (int64_t o = ob; o < oe; o += max_rn) {
        const int rn = (int)std::min<int64_t>(max_rn, oe - o);
        K.tile(x + r * ldx, ldx, static_cast<const char*>(wb) + (o - ob) * wld * wsize, wt, wld,
               b ? b + o : nullptr, y + r * ldy + o, ldy, rm, rn, in);
      }
    }
  }
}

}  // namespace

void matmul(Isa isa, const float* x, MatrixView w, const float* b, float* y, int64_t n, ThreadPool* pool) {
  const Product p{w, b, y};
  matmul_many(isa, x, std::span<const Product>(&p, 1), n, pool);
}

void matmul_many(Isa isa, const float* x, std::span<const Product> products, int64_t n, ThreadPool* pool) {
  if (n <= 0 || products.empty()) return;
  const TileKernel& K = kernel(isa);
  int64_t macs = 0;
  for (const Product& p : products) macs += n * p.w.rows * p.w.cols;
  const int threads = pool ? pool->size() : 1;
  if (threads == 1 || macs < kMinParallelMacs) {
    for (const Product& p : products) run_block(K, x, p.w.cols, p.w, p.b, p.y, p.w.rows, 0, n, 0, p.w.rows);
    return;
  }
  // Split the outputs when there are enough for every thread, else the rows
  // (a PRM head of 1 or 2 outputs). Either way each output is summed alike.
  // The products' column tiles are numbered one after another, so that a
  // thread's share may span two of them.
  const int max_rn = n == 1 ? K.max_rn_1 : K.max_rn;
  int64_t col_tiles = 0;
  for (const Product& p : products) col_tiles += (p.w.rows + max_rn - 1) / max_rn;
  if (col_tiles >= 4 * threads || n < 2 * threads) {
    pool->parallel_for(col_tiles, [&](int64_t begin, int64_t end) {
      int64_t first = 0;  // the first tile of product p
      for (const Product& p : products) {
        const int64_t tiles = (p.w.rows + max_rn - 1) / max_rn;
        const int64_t b = std::max(begin, first) - first, e = std::min(end, first + tiles) - first;
        if (b < e) run_block(K, x, p.w.cols, p.w, p.b, p.y, p.w.rows, 0, n, b * max_rn, std::min(p.w.rows, e * max_rn));
        first += tiles;
      }
    });
  } else {
    pool->parallel_for(n, [&](int64_t begin, int64_t end) {
      for (const Product& p : products) run_block(K, x, p.w.cols, p.w, p.b, p.y, p.w.rows, begin, end, 0, p.w.rows);
    });
  }
}

void dot_rows(Isa isa, const float* x, int64_t ldx, int64_t n, MatrixView w, float* y, int64_t ldy) {
  if (n > 0 && w.rows > 0) run_block(kernel(isa), x, ldx, w, nullptr, y, ldy, 0, n, 0, w.rows);
}

}  // namespace flashtts::cpu
