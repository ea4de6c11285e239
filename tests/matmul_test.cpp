// The CPU matrix products (gpu/cpu/matmul.h) on every instruction-set path
// this CPU has: close to a float64 reference, and the same bits for a row
// whatever the number of rows in the call, its position among them, the
// thread count, and whether 16-bit weights are converted ahead or in place.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>

#include "gpu/cpu/matmul.h"
#include "gpu/cpu/thread_pool.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using cpu::Isa;

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512})
    if (cpu::isa_supported(isa)) v.push_back(isa);
  return v;
}

int max_threads() { return std::max(2, (int)std::thread::hardware_concurrency()); }

struct Problem {
  int64_t n, in, out;
  std::vector<float> x, b;
  WeightMatrix w;
};

Problem problem(uint32_t seed, int64_t n, int64_t in, int64_t out, DType dt) {
  std::mt19937 rng(seed);
  Problem p{n, in, out, test::randn(rng, n * in, 1.0f), test::randn(rng, out, 0.5f), {}};
  p.w = WeightMatrix(test::randn(rng, out * in, 0.3f)).converted(dt);
  return p;
}

std::vector<float> run(Isa isa, const Problem& p, ThreadPool* pool, const float* x = nullptr, int64_t n = -1) {
  if (n < 0) n = p.n;
  std::vector<float> y(n * p.out, NAN);
  cpu::matmul(isa, x ? x : p.x.data(), cpu::view(p.w, p.out, p.in), p.b.data(), y.data(), n, pool);
  return y;
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// Inner sizes around every lane count (8, 16) and block edge; outputs around
// the tile widths; a real hidden size.
const int64_t kInner[] = {1, 7, 8, 15, 16, 17, 33, 100, 896};
const int64_t kOuter[] = {1, 2, 3, 5, 9, 31, 64, 130};

TEST(Matmul, EveryPathIsCloseToAFloat64Reference) {
  for (Isa isa : supported_isas())
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (int64_t in : kInner)
        for (int64_t out : {1, 5, 64}) {
          Problem p = problem(1, 5, in, out, dt);
          std::vector<float> y = run(isa, p, nullptr);
          std::vector<float> w = p.w.to_f32();
          for (int64_t r = 0; r < p.n; ++r)
            for (int64_t o = 0; o < out; ++o) {
              double ref = p.b[o], mag = std::fabs(p.b[o]);
              for (int64_t i = 0; i < in; ++i) {
                ref += (double)p.x[r * in + i] * w[o * in + i];
                mag += std::fabs((double)p.x[r * in + i] * w[o * in + i]);
              }
              ASSERT_NEAR(y[r * out + o], ref, 1e-6 * mag + 1e-30)
                  << cpu::isa_name(isa) << " " << dtype_name(dt) << " in=" << in << " out=" << out;
            }
        }
}

TEST(Matmul, ARowGetsTheSameBitsAloneOrAnywhereInABatchUnderAnyThreadCount) {
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t = 1; t <= max_threads(); ++t) pools.push_back(std::make_unique<ThreadPool>(t));
  for (Isa isa : supported_isas())
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (int64_t in : kInner)
        for (int64_t out : kOuter) {
          Problem p = problem(2, 37, in, out, dt);
          // Each row alone, one thread: the reference bits.
          std::vector<float> alone(p.n * out);
          for (int64_t r = 0; r < p.n; ++r) {
            std::vector<float> y = run(isa, p, nullptr, p.x.data() + r * in, 1);
            std::copy(y.begin(), y.end(), alone.begin() + r * out);
          }
          for (auto& pool : pools)
            for (int64_t n : {int64_t(2), int64_t(5), int64_t(16), p.n}) {
              // Rows [first, first + n): the same rows at other positions.
              const int64_t first = p.n - n;
              std::vector<float> y = run(isa, p, pool.get(), p.x.data() + first * in, n);
              ASSERT_TRUE(same_bits(y.data(), alone.data() + first * out, n * out))
                  << cpu::isa_name(isa) << " " << dtype_name(dt) << " in=" << in << " out=" << out
                  << " rows=" << n << " threads=" << pool->size();
            }
        }
}

TEST(Matmul, HalfWeightsGiveTheBitsOfTheirExactFloat32Values) {
  ThreadPool pool(2);
  for (Isa isa : supported_isas())
    for (DType dt : {DType::F16}) {  // BF16 sums in an order of its own
      // 64 rows: the blocks are widened ahead into scratch; 1 row: in registers.
      Problem p = problem(3, 64, 300, 70, dt);
      Problem f = p;
      f.w = p.w.converted(DType::F32);
      EXPECT_EQ(run(isa, p, &pool), run(isa, f, &pool)) << cpu::isa_name(isa) << " " << dtype_name(dt);
      EXPECT_EQ(run(isa, p, nullptr, p.x.data(), 1), run(isa, f, nullptr, f.x.data(), 1));
    }
}

TEST(Matmul, ManyProductsOfOneInputGiveEachTheBitsOfItsOwnCall) {
  ThreadPool pool(std::max(2, max_threads()));
  for (Isa isa : supported_isas())
    for (int64_t n : {1, 3, 40}) {
      Problem q = problem(6, n, 96, 70, DType::BF16), k = problem(7, n, 96, 9, DType::F32),
              v = problem(8, n, 96, 33, DType::F16);
      k.x = v.x = q.x;
      std::vector<float> yq(n * 70), yk(n * 9), yv(n * 33);
      const cpu::Product ps[] = {{cpu::view(q.w, 70, 96), q.b.data(), yq.data()},
                                 {cpu::view(k.w, 9, 96), nullptr, yk.data()},
                                 {cpu::view(v.w, 33, 96), v.b.data(), yv.data()}};
      cpu::matmul_many(isa, q.x.data(), ps, n, &pool);
      EXPECT_EQ(yq, run(isa, q, nullptr)) << cpu::isa_name(isa) << " n=" << n;
      std::vector<float> yk_alone(n * 9);
      cpu::matmul(isa, k.x.data(), cpu::view(k.w, 9, 96), nullptr, yk_alone.data(), n, nullptr);
      EXPECT_EQ(yk, yk_alone) << cpu::isa_name(isa) << " n=" << n;
      EXPECT_EQ(yv, run(isa, v, nullptr)) << cpu::isa_name(isa) << " n=" << n;
    }
}

TEST(Matmul, DotRowsOverStridedRowsGivesTheBitsOfMatmul) {
  // Attention's use: a few query rows against keys kv_dim apart, written into
  // a wider score matrix.
  std::mt19937 rng(4);
  for (Isa isa : supported_isas())
    for (int64_t n : kInner) {
      const int64_t rows = 3, keys = 5, ld = n + 7, ldy = keys + 2;
      std::vector<float> q = test::randn(rng, rows * n, 1.0f), k = test::randn(rng, keys * ld, 1.0f);
      std::vector<float> packed(keys * n);
      for (int64_t j = 0; j < keys; ++j) std::copy_n(k.data() + j * ld, n, packed.data() + j * n);
      std::vector<float> y(rows * ldy, NAN), want(rows * keys);
      cpu::dot_rows(isa, q.data(), n, rows, cpu::MatrixView{DType::F32, k.data(), keys, n, ld}, y.data(), ldy);
      cpu::matmul(isa, q.data(), cpu::view(packed.data(), keys, n), nullptr, want.data(), rows, nullptr);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < keys; ++j)
          EXPECT_EQ(y[r * ldy + j], want[r * keys + j]) << cpu::isa_name(isa) << " n=" << n;
    }
}

TEST(Matmul, ASliceOfAMatrixIsItsRows) {
  Problem p = problem(5, 3, 20, 10, DType::BF16);
  cpu::MatrixView all = cpu::view(p.w, 10, 20), rows = all.slice(4, 2);
  std::vector<float> y_all(30), y_rows(6);
  cpu::matmul(cpu::best_isa(), p.x.data(), all, nullptr, y_all.data(), 3, nullptr);
  cpu::matmul(cpu::best_isa(), p.x.data(), rows, nullptr, y_rows.data(), 3, nullptr);
  for (int r = 0; r < 3; ++r)
    for (int o = 0; o < 2; ++o) EXPECT_EQ(y_rows[r * 2 + o], y_all[r * 10 + 4 + o]);
}

TEST(Matmul, TheEnvironmentPicksAPathOrSaysWhyNot) {
  const char* old = std::getenv("FLASHTTS_CPU_ISA");
  const std::string saved = old ? old : "";
  setenv("FLASHTTS_CPU_ISA", "portable", 1);
  auto p = cpu::isa_from_env();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, Isa::Portable);
  setenv("FLASHTTS_CPU_ISA", "sse9", 1);
  auto bad = cpu::isa_from_env();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("unknown"), std::string::npos) << bad.error().message;
  unsetenv("FLASHTTS_CPU_ISA");
  auto best = cpu::isa_from_env();
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(*best, cpu::best_isa());
  if (old) setenv("FLASHTTS_CPU_ISA", saved.c_str(), 1);
}

}  // namespace
}  // namespace flashtts
