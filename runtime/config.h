// The server's configuration, read from a TOML file (configs/default.toml
// documents every key). Unknown keys, wrong types, bad values and missing
// model folders are errors naming the key (as `section.key`) or the path.
// Relative paths are relative to the configuration file's folder.
//
// Thread contract: plain values; loaded once by the main thread, then
// copied into each actor's options.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "messages/requests.h"
#include "runtime/base/status.h"

namespace flashtts {

// The six actors, in start-up order (shutdown runs in reverse, intake first).
inline const std::vector<std::string>& actor_names() {
  static const std::vector<std::string> names = {"memory_arbiter", "generator", "verifier",
                                                 "scheduler",      "beam_manager", "intake"};
  return names;
}

struct ModelsConfig {
  std::filesystem::path policy;              // [models] policy: HF folder of the generator
  std::filesystem::path prm;                 // [models] prm: HF folder of the verifier
  // "" = detect; else as parse_prm_family reads it: "classifier", "value_head"
  // or "lm_logits" (the file's "qwen", "skywork" and "lm" are read as these).
  std::string prm_family;
  std::string prompt_format = "auto";        // "auto" | "chatml" | "llama3" | "raw"
  std::string system_prompt = "Please reason step by step, and put your final answer within \\boxed{}.";
};

struct MemoryConfig {
  double budget_mb = 2048;                   // weights of both models + both KV caches; 0 = from the device
  double generator_share = 0.75;             // static split: generator's share of the KV memory
  int32_t block_size = 16;                   // tokens per KV block
  // "auto": the models take turns on the device, the weights of the one
  // not running in host memory, when the split leaves a model's KV pool
  // short of one max_position sequence (docs/pipeline.md, "Memory and
  // admission"); "adaptive": as "auto", then the roofline split chooses
  // again while serving (measured to win and to lose: docs/performance.md);
  // "on": always; "off": never. Only where weights can leave
  // the device (a simulated card with a host link; not the CPU).
  std::string offload = "auto";
};

struct EngineConfig {
  std::string device = "cpu";                // "cpu" | "auto" | "cuda" | "sim:<card>" (docs/sim.md)
  int32_t generator_threads = 0;             // 0 = all cores
  int32_t verifier_threads = 0;
  int32_t prefill_chunk = 512;               // tokens of one sequence's prompt per forward pass
  int32_t max_batch = 256;                   // sequences in one forward pass
};

struct PolicyConfig {
  // "fifo" (the baseline: arrival order, LRU eviction, the newest preempted);
  // "prefix" (prefix-aware: actors/sched_policy.h; the engines preempt and free
  // kept sequences of the lowest-scored beams first); "random" and "scatter"
  // (prefix's accounting in a random and in the worst order, for measurement).
  std::string scheduling = "fifo";
  // prefix: a job waits at most this many dispatches once it is the oldest queued.
  int64_t scheduling_max_overtaken = 1024;
  // "interleaved" (the baseline: every request's work in arrival order of
  // its jobs); "arrival": the oldest request's work first, at the scheduler
  // (where the prefix does not decide) and in the engines' queues.
  std::string request_order = "interleaved";
  std::string request_admission = "all";  // "all" | "fit" (actors/request_gate.h)
  // "lru" (the baseline: the prefix cache evicts the least recently used
  // block); "pruned": the blocks a pruned or finished beam wrote leave it as
  // soon as the search drops the beam (actors/job_tails.h).
  std::string eviction = "lru";
  // The share of the tokens a generation job may write that the scheduler
  // counts against the generator's grant while the job is out (1: all, the
  // baseline); the generator takes blocks as tokens are written and, short of
  // them, preempts (SchedulerOptions::reserve).
  double scheduling_reserve = 1.0;
  // "static" (the baseline: memory.generator_share, fixed); "roofline" (pools
  // that move while the models serve, to the split predicted fastest:
  // actors/roofline_split.h).
  std::string memory_split = "static";
  bool speculation = false;                  // speculative beam extension (beam search, DVTS)
  // Speculative rows may make a decode pass this fraction slower than the
  // real rows alone would (the generator's measured cost of a row); 0 = no bound.
  double speculation_max_slowdown = 0.05;
  // A beam already certain to be pruned (before every beam of its iteration
  // has its score) drops its speculation at once; off, it runs to the barrier.
  bool speculation_prune = true;
  // The paper's score bins: a beam's speculation is capped at 100/75/50/25%
  // of what the lockstep would give it, by the quarter its parent's score
  // ranks in; off, every beam may write ahead to the longest real step.
  bool speculation_bins = true;
  // Live beams: a beam's policy and PRM sequences stay in the engines across
  // iterations and its continuations fork them (beam search, DVTS); off, each
  // job finds its context in the prefix cache (the baseline).
  bool live_beams = false;
};

struct EndpointsConfig {
  std::vector<std::string> clients = {"ipc:///tmp/flashtts.sock"};  // where clients connect
  std::map<std::string, std::string> actors;  // actor name -> its inbox (inproc:// by default)
  // Actors in other processes: each such process sends the intake a
  // heartbeat every heartbeat_ms; silent for peer_timeout_ms = lost.
  int64_t heartbeat_ms = 500;
  int64_t peer_timeout_ms = 3000;
};

struct Config {
  std::filesystem::path source;              // the file read ("" for built-in defaults)
  std::string log_level = "info";
  std::string log_format = "text";           // "text" | "json" (one JSON object per line)
  ModelsConfig models;
  MemoryConfig memory;
  EngineConfig engine;
  PolicyConfig policies;
  EndpointsConfig endpoints;
  std::string step_delimiter = "\n\n";       // [search] step_delimiter
  msg::RequestDefaults defaults;             // [search]: solve defaults; generate/score keep theirs
  // The [search] keys the file writes: they win over the policy's
  // generation_config.json (runtime/generation_defaults.h), defaults do not.
  std::set<std::string> search_keys;
  msg::Limits limits;                        // [limits]
};

// Built-in defaults (inproc actor endpoints, no model folders).
Config default_config();

// Parses TOML text. `source` names the file in errors and anchors relative
// paths. check_models: the model folders must exist and hold config.json.
Expected<Config> parse_config(const std::string& text, const std::filesystem::path& source, bool check_models = true);
Expected<Config> load_config(const std::filesystem::path& file, bool check_models = true);

// The configuration file used when none is given: $FLASHTTS_CONFIG, else
// configs/default.toml next to the executable's build folder, else
// share/flashtts/configs/default.toml of an installed prefix, else in the
// source tree this binary was built from.
std::filesystem::path default_config_path();

}  // namespace flashtts
