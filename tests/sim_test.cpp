// The simulated device (gpu/sim/, docs/sim.md): its passes take the time its
// card's model predicts, both engines share its one timeline, the engine's KV
// bookkeeping stays real, and a whole pipeline runs on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "gpu/pass_shape.h"
#include "gpu/sampler.h"
#include "gpu/sim/sim_backend.h"
#include "gpu/sim/sim_card.h"
#include "gpu/sim/sim_tokens.h"
#include "gpu/sample_hash.h"
#include "gpu/tokenizer.h"
#include "messages/protocol.h"
#include "runtime/client.h"
#include "runtime/config.h"
#include "runtime/supervisor.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test::qwen_1_5b;

// Qwen2.5-Math-PRM-7B's shapes (the paper's PRM).
ModelConfig qwen_prm_7b() {
  ModelConfig c;
  c.architecture = "Qwen2ForProcessRewardModel";
  c.hidden_size = 3584, c.intermediate_size = 18944, c.n_layers = 28, c.n_heads = 28, c.n_kv_heads = 4;
  c.head_dim = 128, c.vocab_size = 152064, c.max_position = 4096;
  c.prm.kind = PrmKind::Classifier;
  return c;
}

std::shared_ptr<const DeviceContext> sim_device(const std::string& name) {
  auto d = DeviceContext::open(name);
  EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
  return d.ok() ? *d : nullptr;
}

// A batch of `rows` sequences, each `n_new` tokens after `n_past`, all rows
// giving output at their last token; storage lives in the struct.
struct Batch {
  std::vector<std::vector<int32_t>> tokens, tables, out;
  std::vector<BatchEntry> entries;
  Batch(int32_t rows, int32_t n_past, int32_t n_new, int32_t block_size) {
    tokens.resize(rows), tables.resize(rows), out.resize(rows);
    int32_t next_block = 0;
    for (int32_t r = 0; r < rows; ++r) {
      tokens[r].assign(n_new, 1 + r);
      const int32_t blocks = (n_past + n_new + block_size - 1) / block_size;
      for (int32_t b = 0; b < blocks; ++b) tables[r].push_back(next_block++);
      out[r] = {n_new - 1};
    }
    for (int32_t r = 0; r < rows; ++r) {
      BatchEntry e;
      e.tokens = tokens[r], e.n_past = n_past, e.block_table = tables[r], e.out_rows = out[r];
      e.sampling.seed = 7, e.sample_id = (uint64_t)r;
      entries.push_back(e);
    }
  }
};

// An engine's options on the simulated device `dev`: a pool of `blocks`
// blocks of 16 tokens of `c`'s bf16 KV.
EngineOptions sim_engine_options(std::shared_ptr<const DeviceContext> dev, const ModelConfig& c, int32_t blocks) {
  EngineOptions eo;
  eo.device = std::move(dev);
  eo.block_size = 16;
  eo.kv_bytes = (size_t)blocks * 16 * (size_t)sim_kv_bytes_per_token(c);
  return eo;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TEST(SimDevice, KnowsItsCardsAndRefusesOthersNamingTheKnownOnes) {
  for (const char* name : {"sim:rtx4090", "sim:orin-agx", "sim:h100"}) {
    auto d = sim_device(name);
    ASSERT_TRUE(d);
    EXPECT_TRUE(d->simulated());
    EXPECT_NE(d->description().find("simulated"), std::string::npos) << d->description();
    EXPECT_GT(d->device_memory(), 0);
  }
  auto bad = DeviceContext::open("sim:a100");
  ASSERT_FALSE(bad.ok());
  for (const char* known : {"rtx4090", "orin-agx", "h100"})
    EXPECT_NE(bad.error().message.find(known), std::string::npos) << bad.error().message;
  auto c = parse_config("[engine]\ndevice = \"sim:rtx4090\"\n", "x.toml", false);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->engine.device, "sim:rtx4090");
  auto e = parse_config("[engine]\ndevice = \"sim:tpu\"\n", "x.toml", false);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("orin-agx"), std::string::npos) << e.error().message;
}

TEST(SimDevice, ModelIsMemoryBoundInDecodeAndComputeBoundInLongPrefill) {
  const SimCard& card = *find_sim_card("rtx4090");
  const ModelConfig c = qwen_1_5b();
  PassShape decode, prefill;
  add_pass_sequence(c, 500, 1, 1, &decode);
  add_pass_sequence(c, 0, 2048, 1, &prefill);
  const SimPassTime d = sim_pass_time(card, c, decode), p = sim_pass_time(card, c, prefill);
  EXPECT_GT(d.memory_s, d.compute_s);
  EXPECT_LT(p.memory_s, p.compute_s);
  // 3.1 GB of bf16 weights over ~0.8 TB/s: a few milliseconds per token.
  EXPECT_GT(d.total(), 2e-3);
  EXPECT_LT(d.total(), 8e-3);
  // A GPU's extra decode rows are almost free: 16 rows cost far less than 16 passes.
  PassShape sixteen;
  for (int i = 0; i < 16; ++i) add_pass_sequence(c, 500, 1, 1, &sixteen);
  EXPECT_LT(sim_pass_time(card, c, sixteen).total(), 1.5 * d.total());
  EXPECT_EQ(sim_weight_bytes(c), 2ll * (151936ll * 1536 + 28ll * (1536ll * 1536 * 2 + 2 * 1536ll * 256 +
                                                                   3 * 1536ll * 8960)));
}

TEST(SimDevice, APassTakesTheTimeItsCardsModelPredicts) {
  for (const char* name : {"sim:rtx4090", "sim:orin-agx", "sim:h100"}) {
    auto dev = sim_device(name);
    ASSERT_TRUE(dev);
    const ModelConfig c = qwen_1_5b();
    BackendOptions bo;
    bo.n_blocks = 4096;
    auto be = make_sim_backend(c, bo, *dev);
    struct Shape {
      int32_t rows, n_past, n_new;
    };
    for (Shape s : {Shape{1, 100, 1}, Shape{16, 1000, 1}, Shape{4, 0, 256}}) {
      Batch b(s.rows, s.n_past, s.n_new, bo.block_size);
      const double predicted =
          sim_pass_time(*dev->sim_card(), c, pass_shape_of(c, b.entries, OutputKind::Tokens)).total();
      ForwardOutput out;
      const double booked_before = dev->sim_timeline()->busy_seconds();
      const auto t0 = Clock::now();
      ASSERT_TRUE(be->forward(b.entries, OutputKind::Tokens, &out).ok());
      const double took = seconds_since(t0);
      // The pass books exactly the model's time on the device and is never
      // over sooner. (How much later a loaded machine wakes the caller is
      // not the model's to say, so no upper bound on the wall clock.)
      EXPECT_NEAR(dev->sim_timeline()->busy_seconds() - booked_before, predicted, 1e-12) << name << " rows " << s.rows;
      EXPECT_GE(took, predicted * 0.999) << name << " rows " << s.rows;
      ASSERT_EQ(out.n_rows, s.rows);
      ASSERT_EQ(out.width, 1);
      for (int32_t r = 0; r < s.rows; ++r) {
        // The seeded stream of the host sampler: (seed, sample id, position of the new token).
        const uint64_t pos = (uint64_t)s.n_past + s.n_new;
        EXPECT_EQ((int32_t)out.row(r)[0], int32_t(sample_uniform(7, (uint64_t)r, pos) * c.vocab_size));
      }
    }
  }
}

TEST(SimDevice, TwoEnginesPassesSerializeOnTheOneTimeline) {
  auto dev = sim_device("sim:rtx4090");
  ASSERT_TRUE(dev);
  BackendOptions bo;
  bo.n_blocks = 4096;
  const ModelConfig pc = qwen_1_5b(), vc = qwen_prm_7b();
  auto policy = make_sim_backend(pc, bo, *dev), prm = make_sim_backend(vc, bo, *dev);
  Batch pb(16, 400, 1, bo.block_size), vb(8, 0, 300, bo.block_size);
  const double tp = sim_pass_time(*dev->sim_card(), pc, pass_shape_of(pc, pb.entries, OutputKind::Tokens)).total();
  const double tv = sim_pass_time(*dev->sim_card(), vc, pass_shape_of(vc, vb.entries, OutputKind::Score)).total();
  const double busy_before = dev->sim_timeline()->busy_seconds();
  const auto t0 = Clock::now();
  std::thread a([&] {
    ForwardOutput o;
    EXPECT_TRUE(policy->forward(pb.entries, OutputKind::Tokens, &o).ok());
  });
  std::thread b([&] {
    ForwardOutput o;
    EXPECT_TRUE(prm->forward(vb.entries, OutputKind::Score, &o).ok());
    for (float s : o.data) EXPECT_TRUE(s >= 0 && s < 1) << s;
  });
  a.join(), b.join();
  const double took = seconds_since(t0);
  EXPECT_GE(took, (tp + tv) * 0.999) << "the sum, not the max (" << std::max(tp, tv) << " s)";
  EXPECT_NEAR(dev->sim_timeline()->busy_seconds() - busy_before, tp + tv, 1e-9);
}

TEST(SimDevice, KvBookkeepingIsRealWithBf16Sizes) {
  auto dev = sim_device("sim:rtx4090");
  ASSERT_TRUE(dev);
  const ModelConfig c = qwen_1_5b();
  const EngineOptions eo = sim_engine_options(dev, c, 6);  // six blocks of bf16 KV
  EXPECT_EQ(kv_bytes_per_token_on(c, dev.get()), 2u * 28 * 2 * 128 * 2);
  auto e = Engine::create(c, ModelWeights{}, eo);  // no weights: the card holds them only in the model
  ASSERT_TRUE(e.ok()) << e.error().message;
  Engine& eng = **e;
  EXPECT_EQ(eng.kv().n_blocks(), 6);
  // One sequence longer than the pool cannot be added.
  std::vector<int32_t> too_long(7 * 16, 5);
  EXPECT_FALSE(eng.add_sequence(1, too_long, false).ok());
  // Two sequences of three blocks each fill the pool; a third cannot be added.
  std::vector<int32_t> a(40, 3), b(40, 4), cc(40, 6);
  ASSERT_TRUE(eng.add_sequence(1, a, false).ok());
  ASSERT_TRUE(eng.add_sequence(2, b, false).ok());
  EXPECT_FALSE(eng.add_sequence(3, cc, false).ok());
  std::vector<RunItem> items{{1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}};
  RunResult r;
  ASSERT_TRUE(eng.run(items, OutputKind::Tokens, &r).ok());
  EXPECT_TRUE(r.starved.empty());
  EXPECT_EQ(eng.n_computed(1), 40);
  EXPECT_EQ(eng.kv_stats().used_blocks, 6);
  // Growing past a block boundary needs a fourth block each: both starve,
  // until one leaves and the other gets its block.
  std::vector<int32_t> more(9, 8);
  eng.append(1, more), eng.append(2, more);
  ASSERT_TRUE(eng.run(items, OutputKind::Tokens, &r).ok());
  EXPECT_EQ(r.starved.size(), 2u);
  eng.release(2);
  ASSERT_TRUE(eng.run(std::span<const RunItem>(items.data(), 1), OutputKind::Tokens, &r).ok());
  EXPECT_TRUE(r.starved.empty());
  EXPECT_EQ(eng.n_computed(1), 49);
}

// The ids a simulated policy samples from stand alone as text: each reads
// back as itself, and a stream of them reads back at about one token per
// token, where draws over the whole vocabulary read back at about twice as
// many on a flashtts-mkmodel tokenizer (the benchmark's simulated folders:
// 2.1, so the simulated PRM scored twice the text a real policy writes;
// 1.17 from the standalone ids). Qwen2's own reads either back at about one
// (1.03 and 1.06).
void expect_standalone_ids_read_back_as_written(const Tokenizer& tok, double most) {
  const std::vector<int32_t> ids = standalone_token_ids(tok);
  ASSERT_GT(ids.size(), 1000u);
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  for (int32_t id : ids) {
    ASSERT_FALSE(tok.is_special(id));
    const int32_t one[1] = {id};
    ASSERT_EQ(tok.encode(tok.decode(one), false), std::vector<int32_t>{id}) << id;
  }
  auto read_back = [&](auto draw) {
    std::vector<int32_t> text;
    for (uint64_t i = 0; i < 4000; ++i) text.push_back(draw(uniform_of(5, 1, i)));
    return (double)tok.encode(tok.decode(text, true), false).size() / (double)text.size();
  };
  const double standalone = read_back([&](double u) { return ids[(size_t)(u * (double)ids.size())]; });
  const double whole = read_back([&](double u) { return (int32_t)(u * tok.vocab_size()); });
  std::printf("read back per token: %.3f standalone, %.3f whole vocabulary (%zu of %d ids)\n", standalone, whole,
              ids.size(), tok.vocab_size());
  EXPECT_GT(standalone, 0.8);
  EXPECT_LT(standalone, most);
  EXPECT_LE(standalone, whole);
}

TEST(SimDevice, SampledIdsStandAloneAsTextOnAGeneratedTokenizer) {
  const auto dir = test::scratch_dir("sim-tok") / "policy";
  test::write_model(dir, "--preset qwen2.5-math-1.5b --no-weights");
  auto tok = open_tokenizer(dir);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  expect_standalone_ids_read_back_as_written(**tok, 1.25);
}

TEST(SimDevice, SampledIdsStandAloneAsTextOnQwen2sTokenizer) {
  FLASHTTS_REQUIRE_TESTDATA();
  auto tok = open_tokenizer(test::testdata_dir() / "tokenizers" / "qwen2");
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  expect_standalone_ids_read_back_as_written(**tok, 1.05);
}

// With sample ids, the simulated device draws from them only.
TEST(SimDevice, DrawsItsTokensFromTheSampleIds) {
  auto dev = sim_device("sim:rtx4090");
  ASSERT_TRUE(dev);
  const ModelConfig c = qwen_1_5b();
  EngineOptions eo = sim_engine_options(dev, c, 64);
  eo.sample_ids = std::make_shared<const std::vector<int32_t>>(std::vector<int32_t>{7, 300, 151000});
  auto e = Engine::create(c, ModelWeights{}, eo);
  ASSERT_TRUE(e.ok()) << e.error().message;
  std::vector<RunItem> items;
  for (int64_t s = 1; s <= 32; ++s) {
    ASSERT_TRUE((*e)->add_sequence(s, std::vector<int32_t>{1, 2, 3}, false).ok());
    items.push_back({s, RowSelect::Last, 0, {}, SamplingParams{1.0f, 1.0f, 0, 9}, (uint64_t)s});
  }
  RunResult r;
  ASSERT_TRUE((*e)->run(items, OutputKind::Tokens, &r).ok());
  std::set<int32_t> seen;
  for (int32_t i = 0; i < r.out.n_rows; ++i) seen.insert((int32_t)r.out.row(i)[0]);
  EXPECT_EQ(seen, (std::set<int32_t>{7, 300, 151000}));
}

// On the CPU the engine's Tokens are the host sampler's draw from the logits.
TEST(SimDevice, EngineTokensOnTheCpuAreTheHostSamplersDraw) {
  auto m = load_model(test::tiny_models() / "policy");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EngineOptions eo;
  eo.n_threads = 1;
  auto e = Engine::create(m->config, m->weights, eo);
  ASSERT_TRUE(e.ok());
  std::vector<int32_t> ctx{1, 2, 3, 4, 5};
  ASSERT_TRUE((*e)->add_sequence(1, ctx, false).ok());
  ASSERT_TRUE((*e)->add_sequence(2, ctx, false).ok());
  SamplingParams sp{0.9f, 0.95f, 0, 11};
  RunItem logits_item{1, RowSelect::Last, 0, {}}, tokens_item{2, RowSelect::Last, 0, {}, sp, 3};
  RunResult lr, tr;
  ASSERT_TRUE((*e)->run(std::span<const RunItem>(&logits_item, 1), OutputKind::Logits, &lr).ok());
  ASSERT_TRUE((*e)->run(std::span<const RunItem>(&tokens_item, 1), OutputKind::Tokens, &tr).ok());
  ASSERT_EQ(tr.out.width, 1);
  EXPECT_EQ((int32_t)tr.out.row(0)[0], sample_token(lr.out.row(0), sp, 3, ctx.size()));
}

TEST(SimDevice, AWholeSolveOnASimulatedRtx4090CompletesAtTheCardsPace) {
  Config cfg = test::tiny_pipeline_config(test::ipc_endpoint("sim"));
  cfg.engine.device = "sim:rtx4090";
  test::Pipeline p(cfg);
  ASSERT_TRUE(p.sup->device() && p.sup->device()->simulated());
  Client c = p.client();
  msg::MapWriter w;
  w.put("problem", "Let a = 5. Let b = a * 3. What is b?").put("seed", uint64_t(3));
  auto r = c.call("solve", w, 60s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->type, "result") << r->code << ": " << r->message;
  auto st = c.call("stats", msg::MapWriter(), 10s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  msg::MapReader actors, gen, ver;
  ASSERT_TRUE(st->body.get("actors", &actors).ok());
  ASSERT_TRUE(actors.get("generator", &gen).ok());
  ASSERT_TRUE(actors.get("verifier", &ver).ok());
  double gen_busy = 0, ver_busy = 0;
  int64_t gen_it = 0, ver_it = 0;
  ASSERT_TRUE(gen.get("busy_ms", &gen_busy).ok());
  ASSERT_TRUE(ver.get("busy_ms", &ver_busy).ok());
  ASSERT_TRUE(gen.get("iterations", &gen_it).ok());
  ASSERT_TRUE(ver.get("iterations", &ver_it).ok());
  const SimTimeline& tl = *p.sup->device()->sim_timeline();
  const double predicted_ms = tl.busy_seconds() * 1e3;
  EXPECT_GT(tl.passes(), 0);
  EXPECT_LE(tl.passes(), gen_it + ver_it);  // an iteration whose items all starved runs no pass
  // Every pass is waited for inside one actor's busy time; a pass may also
  // wait behind the other actor's, and each iteration has host work besides.
  EXPECT_GE(gen_busy + ver_busy, predicted_ms * 0.99);
  std::printf("simulated: %lld passes, %.2f ms predicted; busy generator %.2f ms (%lld it), verifier %.2f ms (%lld it)\n",
              (long long)tl.passes(), predicted_ms, gen_busy, (long long)gen_it, ver_busy, (long long)ver_it);
}

// memory.offload on the simulated card: weights off the device run no pass;
// back on, the card copies them over its host link (PCIe), holding the
// device for bytes / link bandwidth. A card that shares the host's memory
// (Jetson) cannot offload at all.
TEST(SimDevice, WeightsOffTheDeviceRunNoPassAndComeBackAtTheHostLinksPace) {
  auto dev = sim_device("sim:rtx4090");
  ASSERT_TRUE(dev);
  EngineOptions eo;
  eo.kv_bytes = 64ull << 20, eo.device = dev;
  const ModelConfig c = qwen_prm_7b();
  auto e = Engine::create(c, ModelWeights{}, eo);
  ASSERT_TRUE(e.ok()) << e.error().message;
  Engine& engine = **e;
  const std::vector<int32_t> ctx(40, 5);
  ASSERT_TRUE(engine.add_sequence(1, ctx).ok());
  auto off = engine.set_weights_on_device(false);
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_EQ(*off, 0.0);
  EXPECT_FALSE(engine.weights_on_device());
  RunResult r;
  std::vector<RunItem> items{{1, RowSelect::Last, 0, {}}};
  Status st = engine.run(items, OutputKind::Score, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("host memory"), std::string::npos) << st.message();
  const double busy = dev->sim_timeline()->busy_seconds();
  const auto t0 = Clock::now();
  auto on = engine.set_weights_on_device(true);
  ASSERT_TRUE(on.ok()) << on.error().message;
  // The bf16 weights over 80% of PCIe 4.0 x16 (25.2 GB/s).
  const double expect = (double)sim_weight_bytes(c) / (0.8 * 31.5e9);
  EXPECT_NEAR(*on, expect, 1e-9);
  EXPECT_GT(*on, 0.5);
  EXPECT_NEAR(dev->sim_timeline()->busy_seconds() - busy, expect, 1e-9);
  EXPECT_GE(seconds_since(t0), expect * 0.999);
  // The KV and the sequence stayed: the pass runs now.
  EXPECT_TRUE(engine.weights_on_device());
  EXPECT_TRUE(engine.run(items, OutputKind::Score, &r).ok());

  auto jetson = sim_device("sim:orin-agx");
  ASSERT_TRUE(jetson);
  eo.device = jetson;
  auto j = Engine::create(c, ModelWeights{}, eo);
  ASSERT_TRUE(j.ok()) << j.error().message;
  auto refused = (*j)->set_weights_on_device(false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("shares the host's memory"), std::string::npos) << refused.error().message;
  EXPECT_TRUE((*j)->weights_on_device());
}

// The two models take turns on the simulated card (memory.offload = "on"):
// a whole beam search gives the same answer as with both models on the
// device, the turn passed both ways, and the device was held for the
// uploads. On the CPU "on" is refused, naming why.
TEST(SimDevice, ModelsTakingTurnsGiveTheSameAnswerAsBothOnTheDevice) {
  auto solve = [](const char* offload, int64_t* switches, double* upload_s) -> std::string {
    Config cfg = test::tiny_pipeline_config(test::ipc_endpoint(std::string("sim-turns-") + offload));
    cfg.engine.device = "sim:rtx4090";
    cfg.memory.offload = offload;
    cfg.step_delimiter = " ";  // the tiny policy writes a space every few tokens
    cfg.defaults.solve.max_steps = 4;
    test::Pipeline p(cfg);
    Client c = p.client();
    msg::MapWriter w;
    w.put("problem", "Let a = 5. Let b = a * 3. What is b?").put("seed", uint64_t(3));
    w.put("strategy", "beam_search").put("n", int64_t(8));
    auto r = c.call("solve", w, 120s);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) return "";
    EXPECT_EQ(r->type, "result") << r->code << ": " << r->message;
    std::string answer;
    EXPECT_TRUE(r->body.get("text", &answer).ok());
    auto st = c.call("stats", msg::MapWriter(), 10s);
    EXPECT_TRUE(st.ok());
    msg::MapReader actors, arb;
    EXPECT_TRUE(st->body.get("actors", &actors).ok());
    EXPECT_TRUE(actors.get("memory_arbiter", &arb).ok());
    bool on = false;
    EXPECT_TRUE(arb.get("offload", &on).ok());
    EXPECT_EQ(on, std::string(offload) == "on");
    EXPECT_TRUE(arb.get("turn_switches", switches).ok());
    EXPECT_TRUE(arb.get("turn_upload_s", upload_s).ok());
    return answer;
  };
  int64_t switches_off = -1, switches_on = -1;
  double up_off = -1, up_on = -1;
  const std::string both = solve("off", &switches_off, &up_off);
  const std::string turns = solve("on", &switches_on, &up_on);
  EXPECT_FALSE(both.empty());
  EXPECT_EQ(turns, both);
  EXPECT_EQ(switches_off, 0);
  EXPECT_GE(switches_on, 2) << "to the verifier and back at least";
  EXPECT_GT(up_on, 0);

  Config cpu = test::tiny_pipeline_config(test::ipc_endpoint("cpu-turns"));
  cpu.memory.offload = "on";
  zmq::context_t ctx;
  LogSink logs{spdlog::level::off};
  auto s = Supervisor::start(ctx, cpu, logs);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("memory.offload"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("CPU"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace flashtts
