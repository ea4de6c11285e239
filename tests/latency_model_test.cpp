// The roofline latency model (gpu/latency_model.h): its fit recovers the
// constants passes were drawn from, waits until both slopes are seen, keeps
// what it knew when the window holds one regime, and calibrate() measures a
// CPU model's passes without leaving anything in its KV pool.
#include <gtest/gtest.h>

#include <cmath>

#include "gpu/engine.h"
#include "gpu/latency_model.h"
#include "gpu/model_loader.h"
#include "gpu/pass_shape.h"
#include "gpu/sim/sim_card.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using test::qwen_1_5b;

ModelCost bf16_cost(const ModelConfig& c) {
  return model_cost(c, 2 * weight_params(c), 2ll * c.n_layers * c.n_kv_heads * c.head_dim * 2);
}

// `rows` sequences decoding one token after `ctx`, plus one prefill of
// `prefill` tokens (none when 0).
PassShape pass(const ModelConfig& c, int rows, int ctx, int prefill = 0) {
  PassShape s;
  for (int r = 0; r < rows; ++r) add_pass_sequence(c, ctx, 1, 1, &s);
  if (prefill > 0) add_pass_sequence(c, 0, prefill, 1, &s);
  return s;
}

std::vector<PassShape> decodes(const ModelConfig& c) {
  std::vector<PassShape> v;
  for (int rows : {1, 2, 4, 8, 16, 32})
    for (int ctx : {100, 1000}) v.push_back(pass(c, rows, ctx));
  return v;
}

std::vector<PassShape> prefills(const ModelConfig& c) {
  std::vector<PassShape> v;
  for (int t : {128, 256, 512, 1024, 2048}) v.push_back(pass(c, 0, 0, t));
  return v;
}

void expect_constants(const LatencyConstants& got, const LatencyConstants& want, double rel) {
  EXPECT_NEAR(got.overhead_s, want.overhead_s, rel * want.overhead_s);
  EXPECT_NEAR(got.s_per_byte, want.s_per_byte, rel * want.s_per_byte);
  EXPECT_NEAR(got.s_per_flop, want.s_per_flop, rel * want.s_per_flop);
}

// Passes of `shapes` timed by `truth`, added to m.
void add_all(LatencyModel& m, const std::vector<PassShape>& shapes, const LatencyConstants& truth) {
  for (const PassShape& s : shapes) m.add(s, truth.seconds(m.cost().bytes(s), m.cost().flops(s)));
}

// Roughly an RTX 4090's achieved rates, and a CPU's (its ridge far lower).
constexpr LatencyConstants kGpu{50e-6, 1 / 800e9, 1 / 100e12};
constexpr LatencyConstants kCpu{300e-6, 1 / 15e9, 1 / 60e9};

TEST(LatencyModel, RecoversTheConstantsOfANoiseFreeRoofline) {
  const ModelConfig c = qwen_1_5b();
  for (const LatencyConstants& truth : {kGpu, kCpu}) {
    LatencyModel m(bf16_cost(c));
    add_all(m, decodes(c), truth);
    add_all(m, prefills(c), truth);
    ASSERT_TRUE(m.known());
    expect_constants(m.constants(), truth, 0.01);
  }
}

TEST(LatencyModel, FitsMixedBatchesOfDecodesAndPrefillChunks) {
  const ModelConfig c = qwen_1_5b();
  LatencyModel m(bf16_cost(c));
  // Decode rows with a chunk of prefill in the same pass, from both sides of the ridge.
  for (int rows : {1, 8, 32})
    for (int chunk : {16, 64, 256, 1024}) {
      const PassShape s = pass(c, rows, 500, chunk);
      m.add(s, kGpu.seconds(m.cost().bytes(s), m.cost().flops(s)));
    }
  ASSERT_TRUE(m.known());
  expect_constants(m.constants(), kGpu, 0.01);
  const PassShape unseen = pass(c, 64, 2000, 128);
  EXPECT_NEAR(m.predict(unseen), kGpu.seconds(m.cost().bytes(unseen), m.cost().flops(unseen)),
              1e-3 * m.predict(unseen));
}

TEST(LatencyModel, IsNotKnownBeforeEnoughPasses) {
  const ModelConfig c = qwen_1_5b();
  LatencyModel m(bf16_cost(c));
  EXPECT_FALSE(m.known());
  EXPECT_EQ(m.predict(pass(c, 1, 100)), 0);
  EXPECT_EQ(m.describe(), "not measured yet");
  // Five passes of both kinds are too few to tell three constants.
  std::vector<PassShape> five = prefills(c);
  five.resize(3);
  five.push_back(pass(c, 1, 100));
  five.push_back(pass(c, 8, 100));
  add_all(m, five, kGpu);
  EXPECT_FALSE(m.known());
  add_all(m, decodes(c), kGpu);
  add_all(m, prefills(c), kGpu);
  ASSERT_TRUE(m.known());
  expect_constants(m.constants(), kGpu, 0.01);
  EXPECT_NE(m.describe().find("GB/s"), std::string::npos) << m.describe();
}

TEST(LatencyModel, PassesOfOneShapeTellNothing) {
  const ModelConfig c = qwen_1_5b();
  LatencyModel m(bf16_cost(c));
  add_all(m, std::vector<PassShape>(40, pass(c, 4, 300)), kGpu);
  EXPECT_FALSE(m.known());
}

TEST(LatencyModel, BoundsASlopeItHasNotSeenByThePassesItHas) {
  // Decodes alone, from 1 to 32 rows: the memory side is exact; the compute
  // slope is the largest that keeps them all memory-bound (a pessimistic
  // prefill time until a prefill is seen).
  const ModelConfig c = qwen_1_5b();
  LatencyModel m(bf16_cost(c));
  add_all(m, decodes(c), kGpu);
  ASSERT_TRUE(m.known());
  EXPECT_NEAR(m.constants().overhead_s, kGpu.overhead_s, 0.01 * kGpu.overhead_s);
  EXPECT_NEAR(m.constants().s_per_byte, kGpu.s_per_byte, 0.01 * kGpu.s_per_byte);
  EXPECT_GE(m.constants().s_per_flop, kGpu.s_per_flop);
  for (const PassShape& s : decodes(c))
    EXPECT_NEAR(m.predict(s), kGpu.seconds(m.cost().bytes(s), m.cost().flops(s)), 1e-3 * m.predict(s));
  add_all(m, prefills(c), kGpu);
  expect_constants(m.constants(), kGpu, 0.01);
}

TEST(LatencyModel, KeepsTheLastKnownConstantsWhileTheWindowHoldsOneRegime) {
  const ModelConfig c = qwen_1_5b();
  LatencyModel m(bf16_cost(c), /*window=*/12);
  add_all(m, decodes(c), kGpu);
  add_all(m, prefills(c), kGpu);
  add_all(m, decodes(c), kGpu);
  expect_constants(m.constants(), kGpu, 0.01);
  // Decodes on a slower device fill the window: nothing tells its compute
  // slope, so the constants stay.
  const LatencyConstants slower{80e-6, 1 / 500e9, 1 / 60e12};
  add_all(m, decodes(c), slower);
  expect_constants(m.constants(), kGpu, 0.01);
  // With prefills in the window the fit moves to the new device, and stays.
  add_all(m, prefills(c), slower);
  add_all(m, decodes(c), slower);
  expect_constants(m.constants(), slower, 0.01);
}

TEST(LatencyModel, PredictionGrowsWithRowsTokensAndContext) {
  const ModelConfig c = qwen_1_5b();
  LatencyModel m(bf16_cost(c));
  add_all(m, decodes(c), kGpu);
  add_all(m, prefills(c), kGpu);
  ASSERT_TRUE(m.known());
  double last = 0;
  for (int rows = 1; rows <= 256; rows *= 2) {
    const double t = m.predict(pass(c, rows, 500));
    EXPECT_GE(t, last) << rows << " rows";
    last = t;
  }
  last = 0;
  for (int tokens = 1; tokens <= 4096; tokens *= 2) {
    const double t = m.predict(pass(c, 0, 0, tokens));
    EXPECT_GE(t, last) << tokens << " tokens";
    last = t;
  }
  EXPECT_GT(m.predict(pass(c, 16, 4000)), m.predict(pass(c, 16, 100)));
}

TEST(LatencyModel, SimulatedCardsTimeByTheSameCounts) {
  const ModelConfig c = qwen_1_5b();
  const ModelCost cost = bf16_cost(c);
  const SimCard& card = *find_sim_card("rtx4090");
  const PassShape s = pass(c, 16, 500);
  EXPECT_DOUBLE_EQ(cost.bytes(s), 2.0 * (cost.layer_params + cost.lm_head_params + 16 * cost.hidden) +
                                      cost.kv_bytes_per_token * (16 * 501 + 16));
  EXPECT_DOUBLE_EQ(cost.flops(s), 2.0 * 16 * cost.layer_params + 2.0 * 16 * cost.lm_head_params +
                                      cost.attn_flops_per_pair * 16 * 501);
  const SimPassTime t = sim_pass_time(card, c, s);
  EXPECT_DOUBLE_EQ(t.memory_s, cost.bytes(s) / (card.mem_bandwidth * card.mem_efficiency));
  EXPECT_DOUBLE_EQ(t.compute_s, cost.flops(s) / (card.bf16_flops * card.flop_efficiency));
  // A pass that reads no head (Hidden) costs neither its bytes nor its FLOPs.
  PassShape hidden;
  add_pass_sequence(c, 0, 64, 0, &hidden);
  EXPECT_DOUBLE_EQ(cost.bytes(hidden), 2.0 * (cost.layer_params + 64 * cost.hidden) + cost.kv_bytes_per_token * 128);
}

// An engine of the small CPU test model with a KV pool of `kv_blocks` blocks.
std::unique_ptr<Engine> small_engine(int32_t kv_blocks, ModelCost* cost) {
  auto loaded = load_model(test::small_model("latency-qwen2", "qwen2", 3));
  EXPECT_TRUE(loaded.ok());
  if (!loaded.ok()) return nullptr;
  EngineOptions o;
  o.kv_bytes = (size_t)kv_blocks * o.block_size * test::kSmallKvBytesPerToken;
  o.n_threads = 1;
  *cost = model_cost(loaded->config, loaded->weights.bytes(), test::kSmallKvBytesPerToken);
  auto e = Engine::create(loaded->config, std::move(loaded->weights), o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  return e.ok() ? std::move(e).value() : nullptr;
}

TEST(LatencyModel, CalibrateMeasuresACpuModelAndLeavesItsPoolAsItWas) {
  ModelCost cost;
  auto e = small_engine(256, &cost);
  ASSERT_TRUE(e);
  // A prompt the prefix cache holds before calibration must still be there after.
  std::vector<int32_t> prompt(64);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = (int32_t)(7 * i % 500);
  ASSERT_TRUE(e->add_sequence(1, prompt).ok());
  RunResult r;
  RunItem item;
  item.seq = 1;
  ASSERT_TRUE(e->run(std::span(&item, 1), OutputKind::Logits, &r).ok());
  EXPECT_EQ(r.shape.rows, 1);
  EXPECT_EQ(r.shape.tokens, 64);
  EXPECT_EQ(r.shape.out_rows, 1);
  e->release(1);
  const KvCacheStats before = e->kv_stats();

  LatencyModel m(cost);
  const Status st = calibrate(*e, &m, 128);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(m.known()) << m.describe();
  const LatencyConstants& k = m.constants();
  for (double v : {k.s_per_byte, k.s_per_flop}) EXPECT_TRUE(std::isfinite(v) && v > 0) << v;
  EXPECT_TRUE(std::isfinite(k.overhead_s) && k.overhead_s >= 0) << k.overhead_s;

  const KvCacheStats after = e->kv_stats();
  EXPECT_EQ(after.used_blocks, 0);
  EXPECT_EQ(after.free_blocks, before.free_blocks);
  EXPECT_EQ(after.cached_blocks, before.cached_blocks);
  EXPECT_EQ(after.evictions, before.evictions);
  EXPECT_EQ(e->cached_prefix(prompt), 48);
  EXPECT_TRUE(e->kv().check_invariants().ok());
}

TEST(LatencyModel, CalibrateShrinksToATinyPoolAndNeedsOneFreeBlock) {
  ModelCost cost;
  auto e = small_engine(2, &cost);
  ASSERT_TRUE(e);
  LatencyModel m(cost);
  const Status st = calibrate(*e, &m, 512);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(e->kv_stats().free_blocks, 2);

  // Both blocks held by a sequence: nothing to measure in.
  std::vector<int32_t> tokens(32, 5);
  ASSERT_TRUE(e->add_sequence(1, tokens, false).ok());
  const Status none = calibrate(*e, &m, 512);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.message().find("no free block"), std::string::npos) << none.message();
}

}  // namespace
}  // namespace flashtts
