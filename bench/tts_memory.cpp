#include "bench/tts_memory.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/sim/sim_card.h"

namespace flashtts::bench {

namespace {

namespace fs = std::filesystem;

int64_t folder_bytes(const fs::path& dir) {
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") n += (int64_t)e.file_size();
  return n;
}

int64_t blocks_for(int64_t tokens, int32_t block_size) { return (tokens + block_size - 1) / block_size; }

}  // namespace

Expected<MemoryModel> memory_model(const Config& base) {
  auto gc = load_model_config(base.models.policy);
  if (!gc) return gc.error();
  auto vc = load_model_config(base.models.prm);
  if (!vc) return vc.error();
  auto dev = DeviceContext::open(base.engine.device);
  if (!dev) return dev.error();
  MemoryModel m;
  if ((*dev)->simulated()) {
    m.gen_weight_bytes = sim_weight_bytes(*gc);
    m.ver_weight_bytes = sim_weight_bytes(*vc);
  } else {
    m.gen_weight_bytes = folder_bytes(base.models.policy);
    m.ver_weight_bytes = folder_bytes(base.models.prm);
  }
  m.gen_kv_bytes_per_token = (int64_t)kv_bytes_per_token_on(*gc, dev->get());
  m.ver_kv_bytes_per_token = (int64_t)kv_bytes_per_token_on(*vc, dev->get());
  m.block_size = base.memory.block_size;
  m.base_budget_bytes = int64_t(base.memory.budget_mb * (1 << 20));  // as runtime/supervisor.cpp
  m.base_generator_share = base.memory.generator_share;
  return m;
}

Expected<GpuStats> gpu_stats(Client& c, bool reset) {
  using namespace std::chrono_literals;
  msg::MapWriter w;
  w.put("reset_peaks", reset);
  msg::MapReader actors;
  for (int attempt = 0;; ++attempt) {
    auto st = c.call("stats", w, 30s);
    if (!st) return st.error();
    FLASHTTS_TRY(st->body.get("actors", &actors));
    if (actors.has("generator") && actors.has("verifier")) break;
    if (attempt == 30) return make_error("the generator or the verifier did not answer stats 30 times");
  }
  GpuStats s;
  FLASHTTS_TRY(actors.get("generator", &s.gen));
  FLASHTTS_TRY(actors.get("verifier", &s.ver));
  return s;
}

Expected<Pools> read_pools(zmq::context_t& ctx, const std::string& endpoint) {
  auto c = Client::connect(ctx, endpoint);
  if (!c) return c.error();
  auto st = gpu_stats(*c, false);
  if (!st) return st.error();
  const msg::MapReader &g = st->gen, &v = st->ver;
  Pools p;
  FLASHTTS_TRY(g.get("kv_blocks_total", &p.gen_blocks));
  FLASHTTS_TRY(v.get("kv_blocks_total", &p.ver_blocks));
  (void)g.get("weight_bytes", &p.gen_weight_bytes);
  (void)v.get("weight_bytes", &p.ver_weight_bytes);
  return p;
}

Expected<WorkingSet> calibrate(MemoryModel* m, const SearchShape& shape, const RunWith& run_with,
                               bool with_reuse) {
  // The base budget is ample when its static split holds the upper bound of
  // each model's working set; else pools of exactly that bound (the earlier
  // --memory sizing at P = 100).
  const int64_t bound = shape.beams * blocks_for(shape.context_tokens(128), m->block_size);
  const double kv = double(m->base_budget_bytes - m->gen_weight_bytes - m->ver_weight_bytes);
  const double gen = kv * m->base_generator_share, ver = kv - gen;
  std::vector<std::string> sets;
  if (gen < double(bound * m->gen_block_bytes()) || ver < double(bound * m->ver_block_bytes()))
    sets = pool_overlay(*m, {bound, bound, 0});
  auto obs = run_with(sets);
  if (!obs) return obs.error();
  WorkingSet ws;
  // Peaks were reset at the run's start.
  ws.gen_in_use = obs->run.gen.kv_blocks_peak, ws.ver_in_use = obs->run.ver.kv_blocks_peak;
  ws.gen_with_reuse = std::max(ws.gen_in_use, obs->run.gen.kv_blocks_needed_peak);
  ws.ver_with_reuse = std::max(ws.ver_in_use, obs->run.ver.kv_blocks_needed_peak);
  ws.with_reuse = with_reuse;
  ws.gen_blocks = with_reuse ? ws.gen_with_reuse : ws.gen_in_use;
  ws.ver_blocks = with_reuse ? ws.ver_with_reuse : ws.ver_in_use;
  const tts::RunSummary sum = tts::summarize(obs->run);
  ws.recomputed_tokens = sum.recomputed_tokens;
  ws.evictions = sum.evictions;
  ws.latency_p50_ms = sum.latency_p50_ms;
  for (const auto& s : obs->run.solves) {
    if (s.failed) return make_error("a solve of the calibration run failed: " + s.error);
    ws.prompt_tokens = std::max(ws.prompt_tokens, s.prompt_tokens);
  }
  // What the actors counted is what the arbiter subtracts (the files'
  // size is an estimate: headers, and a loader may convert).
  if (obs->pools.gen_weight_bytes > 0) m->gen_weight_bytes = obs->pools.gen_weight_bytes;
  if (obs->pools.ver_weight_bytes > 0) m->ver_weight_bytes = obs->pools.ver_weight_bytes;
  return ws;
}

PoolTarget size_pools(const MemoryModel& m, const WorkingSet& ws, const SearchShape& shape, int percent) {
  const int64_t prompt = std::max<int64_t>(128, ws.prompt_tokens);
  const int64_t one_job = blocks_for(shape.context_tokens(prompt), m.block_size) + 1;
  auto share = [&](int64_t blocks) { return std::max((blocks * percent + 99) / 100, one_job); };
  return {share(ws.gen_blocks), share(ws.ver_blocks), one_job};
}

std::vector<std::string> pool_overlay(const MemoryModel& m, const PoolTarget& t) {
  // The arbiter (actors/memory_policy.cpp): kv = budget - both weights;
  // generator bytes = int64(kv x share), the verifier the rest; each pool
  // floor(bytes / block bytes) blocks. Half a block over each target
  // absorbs the rounding of the share and of the weights' estimate.
  const int64_t g = t.gen_blocks * m.gen_block_bytes() + m.gen_block_bytes() / 2;
  const int64_t v = t.ver_blocks * m.ver_block_bytes() + m.ver_block_bytes() / 2;
  const int64_t budget = m.gen_weight_bytes + m.ver_weight_bytes + g + v;
  // budget / 2^20 is exact in a double; 17 digits give it back exactly.
  char b[64], s[64];
  std::snprintf(b, sizeof b, "memory.budget_mb=%.17g", double(budget) / double(1 << 20));
  std::snprintf(s, sizeof s, "memory.generator_share=%.17g", double(g) / double(g + v));
  // Both models stay on the device with these pools: offload's "auto" would
  // take turns where a pool is short of one max_position sequence, which
  // the one-job floor allows, and the pools would be other than these.
  return {b, s, "memory.offload=\"off\""};
}

std::string check_pools(const PoolTarget& t, const Pools& got) {
  std::string out;
  auto one = [&](const char* model, int64_t want, int64_t have) {
    if (std::abs(have - want) <= 1) return;
    out += (out.empty() ? "" : "; ") + std::string(model) + " pool " + std::to_string(have) +
           " blocks, target " + std::to_string(want);
  };
  one("generator", t.gen_blocks, got.gen_blocks);
  one("verifier", t.ver_blocks, got.ver_blocks);
  return out;
}

std::string describe(const WorkingSet& ws) {
  char b[384];
  std::snprintf(b, sizeof b,
                "KV working set generator %lld / verifier %lld blocks %s (%s: %lld / %lld; calibration: latency p50 "
                "%.1f ms, %lld tokens recomputed, %lld evictions)",
                (long long)ws.gen_blocks, (long long)ws.ver_blocks,
                ws.with_reuse ? "with their reuse" : "in use at once",
                ws.with_reuse ? "in use at once" : "with their reuse",
                (long long)(ws.with_reuse ? ws.gen_in_use : ws.gen_with_reuse),
                (long long)(ws.with_reuse ? ws.ver_in_use : ws.ver_with_reuse), ws.latency_p50_ms,
                (long long)ws.recomputed_tokens, (long long)ws.evictions);
  return b;
}

std::string describe(const PoolTarget& t, const WorkingSet& ws) {
  auto pct = [](int64_t part, int64_t whole) { return 100.0 * double(part) / double(std::max<int64_t>(1, whole)); };
  char b[256];
  std::snprintf(b, sizeof b,
                "pools generator %lld / verifier %lld blocks, %.0f%% / %.0f%% of the working set (one job's largest "
                "context: %lld blocks)",
                (long long)t.gen_blocks, (long long)t.ver_blocks, pct(t.gen_blocks, ws.gen_blocks),
                pct(t.ver_blocks, ws.ver_blocks), (long long)t.one_job_blocks);
  return b;
}

}  // namespace flashtts::bench
