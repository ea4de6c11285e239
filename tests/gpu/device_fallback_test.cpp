// device = "auto" / "cuda" / "cpu" on whatever machine runs the tests: with no
// usable GPU (or a build without CUDA), "auto" runs on the CPU and says why in
// one line, "cuda" is an error naming the same reason; with one, "auto"
// picks it. Runs everywhere (labels gpu and cpu).
#include <gtest/gtest.h>

#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(DeviceFallback, AutoRunsOnTheCpuAndSaysWhyOrPicksTheGpu) {
  auto d = DeviceContext::open("auto");
  ASSERT_TRUE(d.ok()) << d.error().message;
  if ((*d)->kind() == DeviceKind::Cuda) {
    EXPECT_TRUE((*d)->fallback().empty());
    EXPECT_TRUE(contains((*d)->description(), "CUDA: ")) << (*d)->description();
    EXPECT_GE((*d)->cuda_device(), 0);
    EXPECT_GT((*d)->device_memory(), 0);
    return;
  }
  const std::string& line = (*d)->fallback();
  EXPECT_TRUE(contains(line, "device 'auto': ")) << line;
  EXPECT_TRUE(contains(line, "; running on the CPU: ")) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line";
#if defined(FLASHTTS_HAVE_CUDA)
  // The backend library loaded (the libraries are there; tests/gpu/test_no_cuda_libs.sh
  // hides them), so the reason is about the machine.
  EXPECT_FALSE(contains(line, "the CUDA backend (")) << line;
  EXPECT_TRUE(contains(line, "driver") || contains(line, "device") || contains(line, "compute capability"))
      << "the reason names the driver or the device: " << line;
#else
  EXPECT_TRUE(contains(line, "this build has no CUDA backend")) << line;
#endif
}

TEST(DeviceFallback, CudaWithoutAUsableGpuIsAClearError) {
  auto a = DeviceContext::open("auto");
  ASSERT_TRUE(a.ok());
  auto d = DeviceContext::open("cuda");
  if ((*a)->kind() == DeviceKind::Cuda) {
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ((*d)->kind(), DeviceKind::Cuda);
    return;
  }
  ASSERT_FALSE(d.ok());
  const std::string& msg = d.error().message;
  EXPECT_TRUE(contains(msg, "device 'cuda' is not available: ")) << msg;
  // The same reason as auto's fallback line.
  const std::string& line = (*a)->fallback();
  const std::string reason = line.substr(15, line.find("; running on") - 15);
  EXPECT_TRUE(contains(msg, reason)) << msg << " vs " << line;
}

TEST(DeviceFallback, CpuAndUnknownDevices) {
  auto c = DeviceContext::open("cpu");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->kind(), DeviceKind::Cpu);
  EXPECT_TRUE((*c)->fallback().empty());
  auto t = DeviceContext::open("tpu");
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(t.error().message, "not one of: cpu, auto, cuda")) << t.error().message;
}

TEST(DeviceFallback, AnEngineOnTheAutoContextRuns) {
  auto d = DeviceContext::open("auto");
  ASSERT_TRUE(d.ok());
  auto [c, w] = random_model(RandomModelSpec{});
  EngineOptions o;
  o.kv_bytes = 1 << 20;
  o.n_threads = 1;
  o.device = *d;
  auto e = Engine::create(c, w, o);
  ASSERT_TRUE(e.ok()) << e.error().message;
  auto toks = random_tokens(3, 5, c.vocab_size);
  ASSERT_TRUE((*e)->add_sequence(1, toks).ok());
  RunItem it{1, RowSelect::Last, 0, {}};
  RunResult r;
  ASSERT_TRUE((*e)->run(std::span(&it, 1), OutputKind::Logits, &r).ok());
  EXPECT_EQ(r.out.n_rows, 1);
  EXPECT_EQ(r.out.width, c.vocab_size);
}

}  // namespace
}  // namespace flashtts::test
