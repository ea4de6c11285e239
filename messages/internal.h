// Messages between the actors (DESIGN.md, "Shape"). Each type is defined once
// here with its named fields; encode()/decode() in envelope.h carry it.
//
//   intake ──start, cancel──▶ beam_manager ──gen_job, score_job, stop_jobs, release_kv, drop_kv, forget──▶ scheduler
//   scheduler ──gen_job, stop_jobs, release_kv, drop_kv, forget──▶ generator ──gen_progress, gen_done──▶ scheduler
//   scheduler ──score_job, release_kv, drop_kv, forget──▶ verifier ──score_done──▶ scheduler
//   scheduler ──gen_*, score_done──▶ beam_manager ──progress, reply──▶ intake
//   generator, verifier ──weights──▶ memory_arbiter ──grant──▶ generator, verifier, scheduler
//   intake ──stats_query──▶ every actor ──stats_reply──▶ intake
//   memory_arbiter ──weights_query──▶ generator, verifier (at its start)
//   a process running actors without the intake ──heartbeat──▶ intake
//
// rid is the server's request id (the intake assigns it); job_id names one
// unit of GPU work and is unique within the beam manager.
//
// Thread contract: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "messages/requests.h"

namespace flashtts::msg {

// intake -> beam_manager: a validated client request.
struct Start {
  static constexpr const char* kType = "start";
  uint64_t rid = 0;
  std::string kind;  // "solve" | "generate" | "score"
  SolveParams solve;
  GenerateParams generate;
  ScoreParams score;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// beam_manager -> intake: the one final answer to a request.
struct Reply {
  static constexpr const char* kType = "reply";
  uint64_t rid = 0;
  bool ok = true;
  std::string result;  // ok: the result map, msgpack-encoded
  std::string code;    // !ok: a code from error_codes.h
  std::string message;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// beam_manager -> intake: a progress event of a streaming request.
struct Progress {
  static constexpr const char* kType = "progress";
  uint64_t rid = 0;
  std::string event;  // the event map, msgpack-encoded
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// intake -> beam_manager: the client cancelled, left, or ran out of time.
struct Cancel {
  static constexpr const char* kType = "cancel";
  uint64_t rid = 0;
  std::string reason;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// beam_manager -> scheduler -> generator, verifier: drop every queued or
// running job of the request and any state kept for it.
struct Forget {
  static constexpr const char* kType = "forget";
  uint64_t rid = 0;
  bool completed = false;  // the request ended with its result (not cancelled, not failed)
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// One policy generation: continue `tokens` until the step delimiter (when
// stop_at_delimiter), an EOS token or max_tokens new tokens.
struct GenJob {
  static constexpr const char* kType = "gen_job";
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t beam = 0;             // names the random stream with (seed, position)
  std::vector<int32_t> tokens;  // the whole context: prompt and earlier steps
  double temperature = 0.0;
  double top_p = 1.0;
  int32_t top_k = 0;
  uint64_t seed = 0;
  int32_t max_tokens = 256;
  bool stop_at_delimiter = true;
  int32_t report_every = 0;     // >0: send gen_progress every this many tokens
  int32_t priority = 0;         // higher first, where the policy uses it
  // >0 (the math-trace benchmark): ignore EOS and the delimiter and stop at
  // exactly this many new tokens (finish "forced"), or earlier only at the
  // model's last position (finish "length").
  int32_t forced_tokens = 0;
  // Speculative beam extension (policies.speculation): a job that writes a
  // beam's next step ahead of the iteration's barrier. Lowest priority: never
  // admitted ahead of real work, stopped (finish "stopped", with the tokens
  // it has) when real work waits or KV runs short, held back while its rows
  // would slow the real work by more than the configured bound.
  bool speculative = false;
  // Tokens of this step written earlier (a speculative step's kept part): the
  // end of the context, counted as generated (in max_tokens, forced_tokens,
  // the delimiter test and GenDone's tokens and text). Not part of `tokens`.
  std::vector<int32_t> prefix;
  // Live beams (policies.live_beams): keep_kv keeps the job's sequence (its
  // context and generated tokens, with their KV) in the engine after GenDone,
  // under this job's id, until release_kv names it; from_job names a kept
  // sequence this job's context starts like (its beam's parent): the job forks
  // it, cut back to what they share, instead of computing that context again.
  // A from_job no longer kept (released under memory pressure) falls back to
  // the prefix cache.
  bool keep_kv = false;
  uint64_t from_job = 0;
  // The most jobs its request has at once (a search's n; 1 for a plain
  // generation or scoring): the scheduler's admission by request judges a
  // request's size by it (actors/request_gate.h). 0 = unknown.
  int32_t request_beams = 0;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// beam_manager -> scheduler -> generator: bring speculative jobs of a request
// to an end. Job job_ids[i] finishes (finish "stopped", with the tokens it has)
// once it holds at_tokens[i] generated tokens: at once when it holds that many
// or more, or when it was held back from admission (it would not reach them
// soon). A job that arrived in the same batch of messages and was never
// considered for admission runs to its count. Unknown or finished ids are
// ignored (their GenDone is on its way).
struct StopJobs {
  static constexpr const char* kType = "stop_jobs";
  uint64_t rid = 0;
  std::vector<uint64_t> job_ids;
  std::vector<int32_t> at_tokens;  // same length as job_ids; 0 = now
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// beam_manager -> scheduler -> generator, verifier: the sequences kept for
// these jobs (keep_kv) are no longer needed: a pruned, completed or copied
// beam's. Each engine frees its own (jobs waiting to fork one fork it
// first) and its blocks no other sequence holds leave the prefix cache at
// once; unknown ids are ignored.
struct ReleaseKv {
  static constexpr const char* kType = "release_kv";
  uint64_t rid = 0;
  std::vector<uint64_t> job_ids;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// beam_manager -> scheduler -> generator, verifier (policies.eviction =
// "pruned"): these finished jobs' beams end here, pruned or set aside, so
// nothing continues them. Each engine frees at once the blocks those jobs
// wrote (their own tokens, not the context they shared) that no other job's
// record lists and no sequence holds (actors/job_tails.h), instead of
// leaving them in the prefix cache as recent as the live beams' steps.
// Unknown ids are ignored.
struct DropKv {
  static constexpr const char* kType = "drop_kv";
  uint64_t rid = 0;
  std::vector<uint64_t> job_ids;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// generator -> scheduler -> beam_manager: text generated so far.
struct GenProgress {
  static constexpr const char* kType = "gen_progress";
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t beam = 0;
  std::string text;  // new text since the last report
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

struct GenDone {
  static constexpr const char* kType = "gen_done";
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t beam = 0;
  std::vector<int32_t> tokens;  // generated ids, the stop token included
  std::string text;             // their decoded text
  std::string finish;           // "delimiter" | "eos" | "length" | "forced" | "stopped" | "error"
  std::string error;            // finish == "error": why, a sentence for the client
  std::string code;             // finish == "error": its code (error_codes.h); "" = internal
  int32_t n_context = 0;        // tokens of the job's context
  int32_t n_cached = 0;         // of which the prefix cache held KV
  int32_t n_preempted = 0;      // times the job was preempted and recomputed
  double queue_ms = 0;          // from arrival at the generator to admission
  double run_ms = 0;            // from admission to the last token
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// One PRM scoring: the score of every step of `steps` for `problem`.
struct ScoreJob {
  static constexpr const char* kType = "score_job";
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t beam = 0;
  std::string problem;
  std::vector<std::string> steps;
  bool keep_kv = false;   // as GenJob's: the PRM sequence lives on under this job's id
  uint64_t from_job = 0;  // a kept PRM sequence this input starts like
  int32_t priority = 0;   // higher first, where the policy uses it (GenJob's)
  int32_t request_beams = 0;  // GenJob's
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

struct ScoreDone {
  static constexpr const char* kType = "score_done";
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t beam = 0;
  std::vector<float> scores;  // one per step
  std::string error;          // non-empty: the job failed, a sentence for the client
  std::string code;           // error's code (error_codes.h); "" = internal
  int32_t n_tokens = 0;       // tokens of the PRM input
  int32_t n_computed = 0;     // of which this job computed (the rest came from caches)
  double run_ms = 0;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// generator, verifier -> memory_arbiter: what the loaded model takes.
struct Weights {
  static constexpr const char* kType = "weights";
  std::string role;  // "generator" | "verifier"
  int64_t weight_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int32_t block_size = 16;
  // What a pass costs, in the roofline's terms (gpu/latency_model.h ModelCost).
  double params = 0, layer_params = 0, lm_head_params = 0, prm_head_params = 0, hidden = 0;
  double attn_flops_per_pair = 0;
  int64_t max_position = 0;  // positions a sequence may hold (max_position_embeddings); 0 = no limit
  // Device bytes of the backend's workspaces (gpu/engine.h workspace_bytes_on):
  // an automatic budget leaves them free. 0 on the CPU.
  int64_t workspace_bytes = 0;
  // The answer to a WeightsQuery (a restarted arbiter asks), not the
  // announcement a model makes when it loads.
  bool answer = false;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// memory_arbiter -> generator, verifier, scheduler: a KV budget. The first
// grant creates the model's pool, reserving kv_bytes_max; later ones resize
// it, and the model answers each with a PoolSize.
struct Grant {
  static constexpr const char* kType = "grant";
  std::string role;
  int64_t kv_bytes = 0;
  int64_t kv_tokens = 0;      // kv_bytes / kv_bytes_per_token, rounded down to blocks
  int64_t kv_bytes_max = 0;   // the most this model's pool may ever be granted; 0 = kv_bytes
  int64_t kv_tokens_max = 0;  // kv_bytes_max in tokens, rounded down to blocks
  uint64_t serial = 0;        // of the arbiter's grants; PoolSize echoes it
  // The model's positions (its Weights report's): no sequence holds more KV
  // than this, whatever its max_tokens; 0 = no limit.
  int64_t max_position = 0;
  // A grant that moves memory: the jobs to finish at the new size before
  // the model counts its misses there (the first ones compute again what the
  // move itself dropped, not what a pool of that size loses; about one
  // iteration's jobs). 0 = from the first.
  int32_t settle_jobs = 0;
  // memory.offload: the two models take turns on the device, one's weights
  // in host memory while the other's run; the model then reports DeviceUse
  // and obeys DeviceTurn. `resident`: its weights start on the device.
  bool turns = false;
  bool resident = true;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// generator, verifier -> memory_arbiter, under turns (Grant::turns): whether
// the model has real work (queued or running jobs), sent when that changes.
struct DeviceUse {
  static constexpr const char* kType = "device_use";
  std::string role;
  bool wants = false;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// memory_arbiter -> generator, verifier: move your weights off the device
// (on = false: your passes stop, your KV and jobs stay) or back onto it. The
// model answers TurnDone.
struct DeviceTurn {
  static constexpr const char* kType = "device_turn";
  std::string role;
  bool on = false;
  uint64_t serial = 0;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

struct TurnDone {
  static constexpr const char* kType = "turn_done";
  std::string role;
  uint64_t serial = 0;  // the DeviceTurn's
  bool on = false;      // where the weights are now
  double seconds = 0;   // device time the move took
  std::string error;    // non-empty: nothing moved
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// generator, verifier -> memory_arbiter: the pool's size after a grant (a
// shrink may preempt sequences first; it never fails for want of room).
struct PoolSize {
  static constexpr const char* kType = "pool_size";
  std::string role;
  uint64_t serial = 0;  // the grant's
  int64_t kv_bytes = 0;
  int64_t kv_tokens = 0;
  int32_t preempted = 0;  // tasks the shrink preempted or stopped
  std::string error;      // non-empty: the pool kept its size
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// generator, verifier -> memory_arbiter, every interval while they work: what
// the model is asked for and what its passes cost (the roofline latency
// model's constants, gpu/latency_model.h).
struct EngineLoad {
  static constexpr const char* kType = "engine_load";
  std::string role;
  int32_t running = 0;             // tasks in the batch
  int64_t running_ctx_tokens = 0;  // context tokens of the running tasks, shared prefixes counted each time
  int64_t kv_used_tokens = 0;      // KV tokens the pool's used blocks hold
  int64_t max_ctx_tokens = 0;      // the largest context of a queued or running task
  // The smallest pool (KV tokens, whole blocks) a shrink can make without
  // preempting a running real task: past the highest block one holds.
  int64_t pinned_tokens = 0;
  double tokens_per_job = 0;       // of the jobs finished lately: new tokens per job (generated, or scored)
  double miss_tokens_per_job = 0;  // of the jobs finished at the pool's size: context computed again (evicted) per job
  int32_t miss_jobs = 0;           // jobs finished since the pool got that size
  int64_t pool_tokens = 0;         // that size, in KV tokens
  // The working set of the last k finished jobs, one entry per k (8, 16,
  // ..., 512; actors/context_windows.h): jobs in the window (fewer while
  // fewer finished), their contexts summed, and the distinct KV tokens they
  // take (blocks of the same content once). Empty: not measured.
  std::vector<int32_t> window_jobs, window_ctx_tokens, window_unique_tokens;
  double overhead_s = 0, s_per_byte = 0, s_per_flop = 0;  // latency model
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// scheduler -> memory_arbiter, every interval while jobs wait: the jobs of
// each model not finished yet (queued at the scheduler or out at the model).
struct QueueLoad {
  static constexpr const char* kType = "queue_load";
  int32_t gen_jobs = 0;
  int64_t gen_ctx_tokens = 0;  // their contexts, summed
  int32_t score_jobs = 0;
  int64_t score_ctx_tokens = 0;
  // The beams of the requests being served: each request's most jobs open at
  // once (generation and scoring), summed. More than gen_jobs + score_jobs
  // while beams wait at their iteration's barrier for its stragglers: their
  // contexts continue in the next iteration, so the pools should keep them.
  int32_t live_jobs = 0;
  // The jobs out at each model and the KV tokens the scheduler's admission
  // counts for them together (its policy's accounting: a job's whole context
  // and what it may write under fifo, what no other job out shares under
  // prefix): how many jobs a pool of a given size runs at once.
  int32_t gen_out_jobs = 0;
  int64_t gen_out_tokens = 0;
  int32_t score_out_jobs = 0;
  int64_t score_out_tokens = 0;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

struct StatsQuery {
  static constexpr const char* kType = "stats_query";
  uint64_t qid = 0;
  bool reset_peaks = false;  // after answering, peaks (e.g. KV blocks) start from the current value
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

// memory_arbiter -> generator, verifier, at the arbiter's start: announce
// your Weights (an arbiter that restarted learns the models already loaded).
struct WeightsQuery {
  static constexpr const char* kType = "weights_query";
  void write(MapWriter&) const {}
  Status read(const MapReader&) { return Status::success(); }
};

// A process running some of the actors -> intake, every interval_ms: these
// actors live. `incarnation` is new each time the process starts, so a
// restart is seen even when no heartbeat was missed.
struct Heartbeat {
  static constexpr const char* kType = "heartbeat";
  std::string incarnation;
  std::vector<std::string> actors;
  int64_t interval_ms = 0;
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

struct StatsReply {
  static constexpr const char* kType = "stats_reply";
  uint64_t qid = 0;
  std::string actor;
  std::string stats;  // a map, msgpack-encoded
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
};

}  // namespace flashtts::msg
