// The memory-pressure sizing of the test-time-scaling benchmark
// (bench/tts.cpp, `--memory P`): a calibration run of a cell with ample KV
// memory measures the search's KV working set, per model (the blocks each
// model held at its peak, `kv_blocks_peak`); the cell's pipelines then get
// KV pools of P% of it, as `memory.budget_mb` and `memory.generator_share`
// lines of a config overlay, computed the way the memory arbiter splits the
// budget (actors/memory_policy.cpp: KV = budget - both models' weights, the
// generator's share of it, each pool whole blocks of it). Owns: the models'
// memory footprint on the device, the calibration, the sizing and the check
// of the pools a pipeline really got.
//
// Thread contract: the bench's main thread only (it runs the calibration
// through the caller's pipeline and talks to the pipelines' clients).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/client.h"
#include "runtime/config.h"
#include "runtime/base/status.h"
#include "runtime/tts_figures.h"

namespace flashtts::bench {

// What the sizing knows of the two models on the configured device.
struct MemoryModel {
  // As the actors count them (gpu/engine.cpp, weight_bytes_on): a simulated
  // card's bf16 size, else the .safetensors files' size until a pipeline
  // reports the loaded size (calibrate() takes that over).
  int64_t gen_weight_bytes = 0, ver_weight_bytes = 0;
  int64_t gen_kv_bytes_per_token = 0, ver_kv_bytes_per_token = 0;  // kv_bytes_per_token_on
  int32_t block_size = 16;                                          // memory.block_size
  int64_t base_budget_bytes = 0;                                    // the base config's budget
  double base_generator_share = 0.5;

  int64_t gen_block_bytes() const { return gen_kv_bytes_per_token * block_size; }
  int64_t ver_block_bytes() const { return ver_kv_bytes_per_token * block_size; }
};
Expected<MemoryModel> memory_model(const Config& base);

// The shape of one cell's searches.
struct SearchShape {
  int64_t beams = 0;  // N x concurrency
  int max_steps = 0, max_tokens_per_step = 0;
  // Upper bound of one beam's context with a prompt of `prompt` tokens.
  int64_t context_tokens(int64_t prompt) const { return prompt + int64_t(max_steps) * max_tokens_per_step; }
};

// The generator's and the verifier's stats maps; `reset` starts their peaks
// afresh afterwards. An actor busy in a long pass may miss the intake's 2 s
// stats window (the reply then lists it as missing): asks again, 30 times.
struct GpuStats {
  msg::MapReader gen, ver;
};
Expected<GpuStats> gpu_stats(Client& c, bool reset);

// The pools the pipeline serving clients at `endpoint` got, from its
// generator's and verifier's stats.
struct Pools {
  int64_t gen_blocks = 0, ver_blocks = 0;              // kv_blocks_total
  int64_t gen_weight_bytes = 0, ver_weight_bytes = 0;  // weight_bytes (0: not reported)
};
Expected<Pools> read_pools(zmq::context_t& ctx, const std::string& endpoint);

// The cell's KV working set per model, in blocks, and what else the
// calibration run saw: its longest prompt, and the figures a run without
// memory pressure has (recomputed tokens: the partial block of each step).
struct WorkingSet {
  int64_t gen_blocks = 0, ver_blocks = 0;  // the working set the pools are sized from
  // Its two measures: the peak of blocks in use at once, and with the
  // blocks held for their reuse (KvCacheStats::needed_peak_blocks).
  int64_t gen_in_use = 0, ver_in_use = 0, gen_with_reuse = 0, ver_with_reuse = 0;
  bool with_reuse = true;  // which one gen_blocks and ver_blocks are
  int64_t prompt_tokens = 0, recomputed_tokens = 0, evictions = 0;
  double latency_p50_ms = 0;
};

// One run of the cell on the baseline variant with `memory_sets` added to
// its overlay (none: the base config's memory), reset peaks first (as every
// run of the bench does): its figures and the pools it ran with.
struct Observed {
  tts::RunFigures run;
  Pools pools;
};
using RunWith = std::function<Expected<Observed>(const std::vector<std::string>& memory_sets)>;

// Runs the cell once with ample KV memory: the base config's budget, or,
// where its pools cannot hold the upper bound of the working set (every beam
// a whole context of prompt 128 + max_steps x max_tokens_per_step tokens, no
// prefix shared), a budget whose pools hold exactly that bound. Returns the
// working set of each model: with `with_reuse`, the fewest blocks its LRU
// pool needs to keep every block it reused (at least the peak in use), else
// the peak of blocks in use at once; takes the weight sizes the pipeline
// reported into `m`. Error when a solve of the calibration failed.
Expected<WorkingSet> calibrate(MemoryModel* m, const SearchShape& shape, const RunWith& run_with,
                               bool with_reuse = true);

// Each model's pool: ceil(working set x percent / 100) blocks, at least one
// job's largest context (prompt + max_steps x max_tokens_per_step tokens,
// whole blocks) plus one block, so that no job is refused as too large.
struct PoolTarget {
  int64_t gen_blocks = 0, ver_blocks = 0;
  int64_t one_job_blocks = 0;  // the least either pool gets
};
PoolTarget size_pools(const MemoryModel& m, const WorkingSet& ws, const SearchShape& shape, int percent);

// The overlay lines (memory.budget_mb, memory.generator_share, and
// memory.offload = "off") that make the arbiter grant exactly `t` with both
// models on the device: each pool's bytes are aimed at the middle of its
// last block, so rounding of the budget and the share cannot cost a block.
std::vector<std::string> pool_overlay(const MemoryModel& m, const PoolTarget& t);

// A warning when a pool differs from its target by more than one block; ""
// when both are within.
std::string check_pools(const PoolTarget& t, const Pools& got);

// For the progress lines and the tables: "KV working set generator G /
// verifier V blocks (calibration: ...)", and "pools generator G / verifier
// V blocks, g% / v% of the working set (one job's largest context: F blocks)".
std::string describe(const WorkingSet& ws);
std::string describe(const PoolTarget& t, const WorkingSet& ws);

}  // namespace flashtts::bench
