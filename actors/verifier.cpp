#include "actors/verifier.h"

#include <algorithm>
#include <chrono>
#include <deque>
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
#include "actors/engine_actor.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "messages/utf8.h"
#include "runtime/clock.h"
#include "runtime/mailbox.h"

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
struct ScoreTask {
  msg::ScoreJob job;
  PrmInput in;                  // ids (n_tokens) and score_positions (n_steps)
  std::vector<uint64_t> keys;   // (n_steps) score-cache key of each position
  std::vector<float> scores;    // (n_steps)
  std::vector<char> have;       // (n_steps) scores[i] is known
  int64_t seq = -1;             // engine sequence while running
  int32_t n_computed = 0;       // tokens this job prefilled, over all admissions
  int32_t n_preempted = 0;
  bool admitted_once = false;
  Clock::time_point admitted;

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
        box_(std::move(box)), weight_bytes_(weight_bytes_on(config_, weights_, o.device.get())) {}

  zmq::socket_t& inbox() { return box_.inbox(); }
  bool has_work() const { return engine_ && (!running_.empty() || !queue_.empty()); }

  void announce() {
    post("memory_arbiter", msg::Weights{"verifier", weight_bytes_, (int64_t)kv_bytes_per_token_on(config_, o_.device.get()),
                                        o_.block_size});
  }

  Status drain() {
    while (auto bytes = box_.try_recv()) FLASHTTS_TRY(on_message(*bytes));
    return Status::success();
  }

  // One iteration: admit, one forward pass, collect scores, report.
  Status step();

 private:
  using ScoreCache = std::unordered_map<uint64_t, float>;  // prefix key -> score

  template <class M>
  void post(const std::string& peer, const M& m) {
    if (o_.peers.count(peer)) box_.post(peer, m);
    else log_->warn("no '{}' peer to send a {} to", peer, M::kType);
  }

  Status on_message(const std::string& bytes);
  Status on_grant(const msg::Grant& g);
  void on_job(msg::ScoreJob job);
  void on_forget(uint64_t rid);
  void on_stats(uint64_t qid, bool reset_peaks);

  void admit();
  // Takes what the score cache knows; true when nothing is left to compute.
  bool fill_from_cache(ScoreTask& t);
  bool should_wait_for_shared_prefix(std::span<const int32_t> ids) const;
  void preempt_latest();
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
  std::unique_ptr<Engine> engine_;
  int64_t weight_bytes_ = 0, kv_bytes_ = 0;
  int32_t capacity_ = 0;  // KV tokens of the whole pool

  std::deque<ScoreTask> queue_;
  std::vector<ScoreTask> running_;  // admission order
  std::unordered_map<uint64_t, ScoreCache> cache_;  // rid -> its scores, until Forget
  int64_t next_seq_ = 1;
  bool hold_admission_ = false;  // as in the generator: after a preemption, until a job leaves

  int64_t jobs_done_ = 0, tokens_scored_ = 0, tokens_computed_ = 0, preemptions_ = 0, iterations_ = 0;
  double busy_ms_ = 0;
  int32_t kv_blocks_peak_ = 0;  // the most KV blocks held (the benchmark reads it)
};

Status Verifier::on_message(const std::string& bytes) {
  auto env = msg::open(bytes);
  if (!env) {
    log_->warn("ignored a message: {}", env.error().message);
    return Status::success();
  }
  const std::string& type = env->type;
  if (type == msg::ScoreJob::kType) {
    if (auto m = decode_logged<msg::ScoreJob>(*env, log_)) on_job(std::move(*m));
  } else if (type == msg::Forget::kType) {
    if (auto m = decode_logged<msg::Forget>(*env, log_)) on_forget(m->rid);
  } else if (type == msg::Grant::kType) {
    if (auto m = decode_logged<msg::Grant>(*env, log_)) return on_grant(*m);
  } else if (type == msg::StatsQuery::kType) {
    if (auto m = decode_logged<msg::StatsQuery>(*env, log_)) on_stats(m->qid, m->reset_peaks);
  } else if (type == msg::WeightsQuery::kType) {
    announce();  // a memory arbiter that (re)started asks
  } else {
    log_->warn("ignored a '{}' message", type);
  }
  return Status::success();
}

Status Verifier::on_grant(const msg::Grant& g) {
  const bool had = engine_ != nullptr;
  FLASHTTS_TRY(accept_grant(g, "verifier", config_, &weights_, o_, log_, &engine_));
  if (had || !engine_) return Status::success();
  kv_bytes_ = g.kv_bytes;
  capacity_ = engine_->kv().n_blocks() * engine_->kv().block_size();
  return Status::success();
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
  queue_.push_back(std::move(t));
}

void Verifier::on_forget(uint64_t rid) {
  std::erase_if(queue_, [&](const ScoreTask& t) { return t.job.rid == rid; });
  size_t before = running_.size();
  std::erase_if(running_, [&](const ScoreTask& t) {
    if (t.job.rid != rid) return false;
    engine_->release(t.seq);
    return true;
  });
  if (running_.size() != before) hold_admission_ = false;
  cache_.erase(rid);
}

void Verifier::on_stats(uint64_t qid, bool reset_peaks) {
  int64_t entries = 0;
  for (const auto& [rid, c] : cache_) entries += (int64_t)c.size();
  msg::MapWriter st;
  st.put("model_dir", msg::escape_invalid_utf8(o_.model_dir.string()));  // a path need not be UTF-8
  st.put("prm_family", prm_kind_name(config_.prm.kind));
  st.put("weight_bytes", weight_bytes_).put("kv_bytes", kv_bytes_);
  KvCacheStats kv = engine_ ? engine_->kv_stats() : KvCacheStats{};
  st.put("kv_blocks_total", kv.n_blocks).put("kv_blocks_free", kv.free_blocks);
  st.put("kv_blocks_used", kv.used_blocks).put("kv_blocks_cached", kv.cached_blocks);
  st.put("prefix_hit_rate", kv.hit_rate()).put("evictions", kv.evictions);
  st.put("running", (int64_t)running_.size()).put("queued", (int64_t)queue_.size());
  st.put("jobs_done", jobs_done_).put("tokens_scored", tokens_scored_).put("tokens_computed", tokens_computed_);
  st.put("score_cache_entries", entries).put("score_cache_requests", (int64_t)cache_.size());
  st.put("preemptions", preemptions_).put("iterations", iterations_).put("busy_ms", busy_ms_);
  st.put("kv_blocks_peak", kv_blocks_peak_);
  if (reset_peaks) kv_blocks_peak_ = kv.used_blocks;
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
  if (t.seq >= 0) {
    engine_->release(t.seq);  // full blocks stay in the prefix cache for the next step
    t.seq = -1;
    hold_admission_ = false;
  }
  ++jobs_done_;
  tokens_scored_ += d.n_tokens;
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

bool Verifier::should_wait_for_shared_prefix(std::span<const int32_t> ids) const {
  // A sibling beam still prefilling the prefix this job shares: admitting now
  // would compute the shared blocks twice.
  for (const ScoreTask& r : running_) {
    int32_t share = shareable_prefix_tokens(ids, engine_->tokens(r.seq), o_.block_size);
    if (share > 0 && engine_->n_computed(r.seq) < share) return true;
  }
  return false;
}

void Verifier::admit() {
  if (hold_admission_) {
    if (!running_.empty()) return;
    hold_admission_ = false;
  }
  while (!queue_.empty() && (int32_t)running_.size() < o_.max_batch) {
    ScoreTask& t = queue_.front();
    const std::vector<int32_t>& ids = t.in.ids;
    if (fill_from_cache(t)) {  // every step was scored before (a repeated job)
      finish(t);
      queue_.pop_front();
      continue;
    }
    if ((int64_t)ids.size() > capacity_) {
      finish(t,
             "a PRM input of " + std::to_string(ids.size()) + " tokens does not fit the verifier's KV capacity of " +
                 std::to_string(capacity_) + " tokens; shorten the problem or raise memory.budget_mb",
             msg::code::kTooLarge);
      queue_.pop_front();
      continue;
    }
    if (should_wait_for_shared_prefix(ids)) break;
    const int64_t seq = next_seq_++;
    auto added = engine_->add_sequence(seq, ids, /*reuse_prefix=*/true);
    if (!added) {
      if (!running_.empty()) break;
      finish(t, added.error().message, msg::code::kTooLarge);  // the pool itself is too small
      queue_.pop_front();
      continue;
    }
    // A score inside the reused prefix that the cache does not hold (another
    // request computed that KV, or Forget dropped the scores): cut the
    // sequence back to that position so the pass computes it again.
    const std::vector<int32_t> need = t.missing();
    if (!need.empty() && need.front() < *added) {
      engine_->truncate(seq, need.front());
      engine_->append(seq, std::span<const int32_t>(ids).subspan(need.front()));
    }
    t.seq = seq;
    if (!t.admitted_once) {
      t.admitted_once = true;
      t.admitted = Clock::now();
    }
    running_.push_back(std::move(t));
    queue_.pop_front();
  }
}

void Verifier::preempt_latest() {
  ScoreTask t = std::move(running_.back());
  running_.pop_back();
  engine_->release(t.seq);
  t.seq = -1;
  ++t.n_preempted;
  ++preemptions_;
  log_->debug("preempted score job {}", t.job.job_id);
  queue_.push_front(std::move(t));
  hold_admission_ = true;
}

Status Verifier::step() {
  if (!engine_) return Status::success();
  admit();
  if (running_.empty()) return Status::success();
  const auto t0 = Clock::now();

  std::vector<RunItem> items;
  std::vector<int32_t> computed_before;
  items.reserve(running_.size());
  for (const ScoreTask& t : running_) {
    items.push_back({t.seq, RowSelect::Explicit, o_.prefill_chunk, t.missing()});
    computed_before.push_back(engine_->n_computed(t.seq));
  }
  RunResult res;
  Status st = engine_->run(items, OutputKind::Score, &res);
  if (!st.ok()) return make_error("verifier: " + st.message());
  ++iterations_;
  kv_blocks_peak_ = std::max(kv_blocks_peak_, engine_->kv_stats().used_blocks);  // before jobs finish

  std::vector<char> done(running_.size(), 0);
  size_t n_done = 0;
  for (size_t k = 0; k < running_.size(); ++k) {
    ScoreTask& t = running_[k];
    const int32_t computed = engine_->n_computed(t.seq) - computed_before[k];
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
    if (engine_->n_pending(t.seq) != 0) continue;  // more chunks to prefill, or starved
    if (t.complete()) finish(t);
    else finish(t, "a step score was not computed");
    done[k] = 1;
    ++n_done;
  }
  if (n_done > 0) {
    size_t w = 0;
    for (size_t k = 0; k < running_.size(); ++k)
      if (!done[k]) {
        if (w != k) running_[w] = std::move(running_[k]);
        ++w;
      }
    running_.erase(running_.begin() + (ptrdiff_t)w, running_.end());
  }
  if (!res.starved.empty() && n_done == 0) preempt_latest();
  busy_ms_ += ms_since(t0);
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
