#include "actors/verifier.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "gpu/backend.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "gpu/prm_format.h"
#include "gpu/tokenizer.h"
#include "actors/batch.h"
#include "actors/engine_load.h"
#include "actors/weights_report.h"
#include "actors/engine_actor.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "messages/utf8.h"
#include "runtime/base/clock.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/routes.h"

namespace flashtts {

namespace {

// FNV-1a over the ids up to and including each of `positions` (ascending):
// the key of a step score, since a causal model's score at a position
// depends on exactly those tokens.
std::vector<uint64_t> prefix_keys(std::span<const int32_t> ids, std::span<const int32_t> positions) {
  std::vector<uint64_t> keys;
  keys.reserve(positions.size());
  uint64_t h = 14695981039346656037ull;
  size_t next = 0;
  for (size_t i = 0; i < ids.size() && next < positions.size(); ++i) {
    uint32_t v = (uint32_t)ids[i];
    for (int b = 0; b < 4; ++b) {
      h ^= (v >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
    while (next < positions.size() && (size_t)positions[next] == i) {
      keys.push_back(h);
      ++next;
    }
  }
  return keys;
}

// One ScoreJob from arrival to ScoreDone.
struct ScoreTask : BatchSlot {
  msg::ScoreJob job;
  PrmInput in;                  // ids (n_tokens) and score_positions (n_steps)
  std::vector<uint64_t> keys;   // (n_steps) score-cache key of each position
  std::vector<float> scores;    // (n_steps)
  std::vector<char> have;       // (n_steps) scores[i] is known
  int32_t n_computed = 0;       // tokens this job prefilled, over all admissions
  int32_t n_new = -1;           // tokens after the last step scored before it came: the least it computes

  bool background() const { return false; }  // scoring is never speculative
  bool complete() const { return std::all_of(have.begin(), have.end(), [](char c) { return c != 0; }); }
  std::vector<int32_t> missing() const {
    std::vector<int32_t> m;
    for (size_t i = 0; i < have.size(); ++i)
      if (!have[i]) m.push_back(in.score_positions[i]);
    return m;
  }
};

class Verifier {
 public:
  Verifier(const VerifierOptions& o, Logger log, LoadedModel model, std::unique_ptr<Tokenizer> tok, Mailbox box)
      : o_(o), log_(std::move(log)), config_(std::move(model.config)), weights_(std::move(model.weights)), tok_(std::move(tok)),
        box_(std::move(box)), weight_bytes_(weight_bytes_on(config_, weights_, o.device.get())),
        pass_cost_(model_cost(config_, weight_bytes_, (int64_t)kv_bytes_per_token_on(config_, o.device.get()))),
        batch_(o, log_, hooks()),
        routes_(log_) {
    routes_.on<msg::ScoreJob>([this](msg::ScoreJob j) { on_job(std::move(j)); })
        .on<msg::ReleaseKv>([this](const msg::ReleaseKv& m) { batch_.release_kept(m.rid, m.job_ids); })
        .on<msg::DropKv>([this](const msg::DropKv& m) { batch_.drop_dead(m.rid, m.job_ids); })
        .on<msg::Forget>([this](const msg::Forget& m) { on_forget(m.rid); })
        .on<msg::Grant>([this](const msg::Grant& g) {
          return on_engine_grant(g, "verifier", o_, config_, &weights_, pass_cost_, batch_, meter_, turns_, log_,
                                 [this](const msg::PoolSize& p) { post("memory_arbiter", p); });
        })
        .on<msg::DeviceTurn>([this](const msg::DeviceTurn& t) { post("memory_arbiter", turns_.on_turn(t, batch_.engine())); })
        .on<msg::StatsQuery>([this](const msg::StatsQuery& m) { on_stats(m.qid, m.reset_peaks); })
        // A restarted arbiter asks.
        .on<msg::WeightsQuery>([this](const msg::WeightsQuery&) { announce(/*answer=*/true); });
  }
  Verifier(const Verifier&) = delete;  // the hooks and routes point at this object
  Verifier& operator=(const Verifier&) = delete;

  zmq::socket_t& inbox() { return box_.inbox(); }
  std::chrono::milliseconds idle_wait() const { return meter_.idle_wait(batch_); }

  void announce(bool answer = false) {
    post("memory_arbiter", weights_report("verifier", pass_cost_, o_.block_size, config_.max_position,
                                          workspace_bytes_on(config_, o_.device.get()), answer));
  }

  Status drain() { return routes_.drain(box_); }

  // One iteration: admit, one forward pass, collect scores, report.
  Status step();
  // After each step: tells the memory arbiter when real work came or went
  // (memory.offload's turns).
  void after_step() {
    if (auto u = turns_.use("verifier", batch_)) post("memory_arbiter", *u);
  }

 private:
  using ScoreCache = std::unordered_map<uint64_t, float>;  // prefix key -> score

  template <class M>
  void post(const std::string& peer, const M& m) {
    if (o_.peers.count(peer)) box_.post(peer, m);
    else log_->warn("no '{}' peer to send a {} to", peer, M::kType);
  }

  Batch<ScoreTask>::Hooks hooks();
  void on_job(msg::ScoreJob job);
  void on_forget(uint64_t rid);
  void on_stats(uint64_t qid, bool reset_peaks);

  // Takes what the score cache knows; true when nothing is left to compute.
  bool fill_from_cache(ScoreTask& t);
  // Posts ScoreDone and releases the task's sequence. An error's `code`:
  // bad_request when the steps cannot be put in the PRM's format, too_large
  // when the input is over the PRM's positions or the KV pool, "" (internal)
  // for a fault of the engine.
  void finish(ScoreTask& t, std::string error = "", const char* code = "");

  const VerifierOptions& o_;
  Logger log_;
  ModelConfig config_;  // with the PRM's token ids resolved; format_prm_input reads it
  ModelWeights weights_;  // wait here until the grant moves them into the engine
  std::unique_ptr<Tokenizer> tok_;
  Mailbox box_;
  int64_t weight_bytes_ = 0;
  ModelCost pass_cost_;  // what its passes cost, for the latency model
  LoadMeter meter_;      // reports to the memory arbiter under an elastic split
  DeviceTurns turns_;    // memory.offload: whose turn on the device
  Batch<ScoreTask> batch_;  // the engine, the queue (FIFO) and the running jobs
  Routes routes_;

  std::unordered_map<uint64_t, ScoreCache> cache_;  // rid -> its scores, until Forget

  int64_t jobs_done_ = 0, tokens_scored_ = 0, tokens_computed_ = 0, iterations_ = 0;
  double busy_ms_ = 0;
};

Batch<ScoreTask>::Hooks Verifier::hooks() {
  Batch<ScoreTask>::Hooks h;
  h.context = [](const ScoreTask& t) { return t.in.ids; };
  h.settled = [this](ScoreTask& t) {
    const bool done = fill_from_cache(t);
    if (t.n_new < 0) {
      const auto first = std::find(t.have.begin(), t.have.end(), 0) - t.have.begin();
      t.n_new = (int32_t)t.in.ids.size() - (first > 0 ? t.in.score_positions[first - 1] + 1 : 0);
    }
    if (!done) return false;
    finish(t);  // every step was scored before (a repeated job)
    return true;
  };
  h.over_capacity = [this](size_t n) {
    return "a PRM input of " + std::to_string(n) + " tokens does not fit the verifier's KV capacity of " +
           std::to_string(batch_.capacity()) + " tokens; shorten the problem or raise memory.budget_mb";
  };
  h.reject = [this](ScoreTask& t, std::string why) { finish(t, std::move(why), msg::code::kTooLarge); };
  // Its last step's tokens: past the step before it. A first step's start is
  // not known here (the problem's tokens end somewhere before it): from the
  // block of its score position, which holds its last tokens.
  h.own_from = [](const ScoreTask& t) {
    const auto& pos = t.in.score_positions;
    if (pos.empty()) return (int32_t)t.in.ids.size();
    return pos.size() >= 2 ? pos[pos.size() - 2] + 1 : pos.back();
  };
  h.admitted = [this](ScoreTask& t, std::span<const int32_t> ids, int32_t n_cached) {
    // A score inside the reused prefix that the cache does not hold (another
    // request computed that KV, or Forget dropped the scores): cut the
    // sequence back to that position so the pass computes it again.
    const std::vector<int32_t> need = t.missing();
    if (!need.empty() && need.front() < n_cached) {
      batch_.engine()->truncate(t.seq, need.front());
      batch_.engine()->append(t.seq, ids.subspan(need.front()));
    }
  };
  return h;
}

void Verifier::on_job(msg::ScoreJob job) {
  ScoreTask t;
  t.job = std::move(job);
  auto in = format_prm_input(*tok_, config_, t.job.problem, t.job.steps);
  if (!in) return finish(t, in.error().message, msg::code::kBadRequest);
  if (config_.max_position > 0 && (int64_t)in->ids.size() > config_.max_position)
    return finish(t,
                  "the problem and steps in the PRM's input format are " + std::to_string(in->ids.size()) +
                      " tokens; the PRM holds at most " + std::to_string(config_.max_position) +
                      " positions (max_position_embeddings)",
                  msg::code::kTooLarge);
  t.in = std::move(in).value();
  t.keys = prefix_keys(t.in.ids, t.in.score_positions);
  t.scores.assign(t.in.score_positions.size(), 0.0f);
  t.have.assign(t.in.score_positions.size(), 0);
  batch_.push(std::move(t));
}

void Verifier::on_forget(uint64_t rid) {
  batch_.forget(rid);
  cache_.erase(rid);
}

void Verifier::on_stats(uint64_t qid, bool reset_peaks) {
  int64_t entries = 0;
  for (const auto& [rid, c] : cache_) entries += (int64_t)c.size();
  msg::MapWriter st;
  st.put("model_dir", msg::escape_invalid_utf8(o_.model_dir.string()));  // a path need not be UTF-8
  st.put("prm_family", prm_kind_name(config_.prm.kind));
  st.put("weight_bytes", weight_bytes_).put("kv_bytes", batch_.kv_bytes());
  KvCacheStats kv = batch_.engine() ? batch_.engine()->kv_stats() : KvCacheStats{};
  st.put("kv_blocks_total", kv.n_blocks).put("kv_blocks_free", kv.free_blocks);
  st.put("kv_blocks_used", kv.used_blocks).put("kv_blocks_cached", kv.cached_blocks);
  st.put("prefix_hit_rate", kv.hit_rate()).put("evictions", kv.evictions);
  st.put("recomputed_tokens", kv.recomputed_tokens).put("kv_blocks_needed_peak", kv.needed_peak_blocks);
  st.put("running", (int64_t)batch_.running().size()).put("queued", (int64_t)batch_.queue().size());
  st.put("jobs_done", jobs_done_).put("tokens_scored", tokens_scored_).put("tokens_computed", tokens_computed_);
  st.put("score_cache_entries", entries).put("score_cache_requests", (int64_t)cache_.size());
  st.put("preemptions", batch_.preemptions()).put("iterations", iterations_).put("busy_ms", busy_ms_);
  st.put("kv_blocks_peak", batch_.kv_blocks_peak()).put("kv_resizes", batch_.resizes());
  st.put("weight_uploads", turns_.uploads()).put("weight_upload_ms", turns_.upload_ms());
  batch_.kept().add_stats(st);
  batch_.tails().add_stats(st);
  if (reset_peaks) batch_.reset_peak(kv.used_blocks);
  post("intake", msg::StatsReply{qid, "verifier", st.bytes()});
}

void Verifier::finish(ScoreTask& t, std::string error, const char* code) {
  msg::ScoreDone d;
  d.job_id = t.job.job_id;
  d.rid = t.job.rid;
  d.beam = t.job.beam;
  if (error.empty()) d.scores = t.scores;
  d.error = std::move(error);
  if (!d.error.empty()) d.code = code;
  d.n_tokens = (int32_t)t.in.ids.size();
  d.n_computed = t.n_computed;
  d.run_ms = t.admitted_once ? ms_since(t.admitted) : 0.0;
  if (!d.error.empty())
    log_->warn("score_job {} failed ({}): {}", d.job_id, d.code.empty() ? "internal" : d.code, d.error);
  post("scheduler", d);
  // Full blocks stay in the prefix cache for the next step; a live beam's
  // whole sequence stays for the jobs that continue it.
  batch_.release(t, /*keep=*/d.error.empty());
  ++jobs_done_;
  tokens_scored_ += d.n_tokens;
  if (d.error.empty()) {
    // What it computed beyond its new tokens was context the pool had evicted.
    const int32_t fresh = t.n_new < 0 ? t.n_computed : std::min(t.n_computed, t.n_new);
    meter_.job_done(fresh, t.n_computed - fresh, batch_.capacity(), t.in.ids, {}, o_.block_size);
  }
}

bool Verifier::fill_from_cache(ScoreTask& t) {
  auto it = cache_.find(t.job.rid);
  if (it == cache_.end()) return t.complete();
  for (size_t i = 0; i < t.keys.size(); ++i) {
    if (t.have[i]) continue;
    auto hit = it->second.find(t.keys[i]);
    if (hit == it->second.end()) continue;
    t.scores[i] = hit->second;
    t.have[i] = 1;
  }
  return t.complete();
}

Status Verifier::step() {
  Engine* engine = batch_.engine();
  // No engine yet, or the other model's turn on the device (memory.offload).
  if (!engine || !engine->weights_on_device()) return Status::success();
  batch_.admit();
  std::vector<ScoreTask>& running = batch_.running();
  if (running.empty()) {
    // A job that waits for the pool to grow: the memory arbiter must hear of
    // it (max_need), though no pass runs.
    if (auto l = meter_.report("verifier", batch_)) post("memory_arbiter", *l);
    return Status::success();
  }
  const auto t0 = Clock::now();

  std::vector<RunItem> items;
  std::vector<int32_t> computed_before;
  items.reserve(running.size());
  for (const ScoreTask& t : running) {
    items.push_back({t.seq, RowSelect::Explicit, o_.prefill_chunk, t.missing()});
    computed_before.push_back(engine->n_computed(t.seq));
  }
  RunResult res;
  const auto run0 = Clock::now();
  Status st = engine->run(items, OutputKind::Score, &res);
  if (!st.ok()) return make_error("verifier: " + st.message());
  meter_.pass(res.shape, res.out.device_s >= 0 ? res.out.device_s : ms_since(run0) / 1e3);
  ++iterations_;
  batch_.note_peak();  // before jobs finish

  size_t n_done = 0;
  for (size_t k = 0; k < running.size(); ++k) {
    ScoreTask& t = running[k];
    const int32_t computed = engine->n_computed(t.seq) - computed_before[k];
    t.n_computed += computed;
    tokens_computed_ += computed;
    ScoreCache& cache = cache_[t.job.rid];
    for (int32_t r = res.item_first_row[k]; r < res.item_first_row[k] + res.item_n_rows[k]; ++r) {
      const auto& pos = t.in.score_positions;
      size_t i = std::lower_bound(pos.begin(), pos.end(), res.row_position[r]) - pos.begin();
      // Explicit rows are exactly the positions asked for (one per step).
      t.scores[i] = res.out.row(r)[0];
      t.have[i] = 1;
      cache[t.keys[i]] = t.scores[i];
    }
    if (engine->n_pending(t.seq) != 0) continue;  // more chunks to prefill, or starved
    if (t.complete()) finish(t);
    else finish(t, "a step score was not computed");
    ++n_done;
  }
  batch_.drop_left();
  if (!res.starved.empty() && n_done == 0) batch_.make_room();
  busy_ms_ += ms_since(t0);
  if (auto l = meter_.report("verifier", batch_)) post("memory_arbiter", *l);
  return Status::success();
}

}  // namespace

Status run_verifier(zmq::context_t& ctx, ActorPipe& pipe, const VerifierOptions& o) {
  Logger log = actor_logger(o, "verifier");
  FLASHTTS_TRY(check_engine_options(o, "verifier"));
  PrmOverride ovr;
  if (!o.prm_family.empty()) {
    auto fam = parse_prm_family(o.prm_family);
    if (!fam) return make_error("verifier: " + fam.error().message);
    ovr.family = *fam;
  }
  auto model = load_model_for(o.model_dir, o.device.get(), ovr);
  if (!model) return make_error("verifier: " + model.error().message);
  if (model->config.prm.kind == PrmKind::None)
    return make_error("verifier: " + o.model_dir.string() + " (" + model->config.architecture +
                      ") is not a process reward model; name its family with prm_family");
  auto tok = open_model_tokenizer(o, model->config, "verifier");
  if (!tok) return tok.error();
  if (Status s = resolve_prm_tokens(**tok, &model->config); !s.ok())
    return make_error("verifier: " + o.model_dir.string() + ": " + s.message());
  auto box = Mailbox::open(ctx, o.inbox, o.peers);
  if (!box) return make_error("verifier: " + box.error().message);

  Verifier v(o, log, std::move(model).value(), std::move(tok).value(), std::move(box).value());
  pipe.ready();
  v.announce();

  return run_engine_loop(pipe, v, log);
}

}  // namespace flashtts
