#include "actors/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "gpu/backend.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "gpu/sampler.h"
#include "gpu/sim/sim_tokens.h"
#include "gpu/tokenizer.h"
#include "actors/batch.h"
#include "actors/engine_load.h"
#include "actors/weights_report.h"
#include "actors/engine_actor.h"
#include "actors/row_cost.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "messages/utf8.h"
#include "runtime/base/clock.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/routes.h"

namespace flashtts {

namespace {

// One GenJob from arrival to GenDone.
struct GenTask : BatchSlot {
  GenTask(msg::GenJob j, const Tokenizer& tok)
      : job(std::move(j)), decoder(tok, /*skip_special=*/true), arrived(Clock::now()) {}

  msg::GenJob job;
  std::vector<int32_t> out;  // generated ids so far, from the job's prefix on; kept across preemptions
  std::string text;          // streamed text of `out`, special tokens skipped
  StreamDecoder decoder;
  size_t text_reported = 0;  // bytes of `text` already sent in gen_progress
  int32_t n_cached = 0;      // context tokens the prefix cache held at first admission
  int32_t n_prefilled = 0;   // context tokens computed at its admissions (the cache did not hold them)
  int32_t stop_at = 0;       // >0: finish "stopped" on holding this many tokens (StopJobs)
  bool bounded = false;      // a cost bound is set: a stop point does not promote it
  Clock::time_point arrived;

  // A speculative job runs at the lowest priority. Without a cost bound,
  // StopJobs' point promotes it: it runs to it like real work, and the beam
  // manager waits, so what is kept does not depend on timing. With a bound it
  // stays background (a promoted job the bound had held back would delay the
  // real work it was meant not to slow); the beam manager ends it at the
  // iteration's barrier.
  bool background() const { return job.speculative && (stop_at == 0 || bounded); }

  std::vector<int32_t> context() const {
    std::vector<int32_t> c = job.tokens;
    c.insert(c.end(), out.begin(), out.end());
    return c;
  }
};

class Generator {
 public:
  Generator(const GeneratorOptions& o, Logger log, LoadedModel model, std::unique_ptr<Tokenizer> tok, Mailbox box)
      : o_(o), log_(std::move(log)), config_(std::move(model.config)), weights_(std::move(model.weights)), tok_(std::move(tok)),
        box_(std::move(box)), weight_bytes_(weight_bytes_on(config_, weights_, o.device.get())),
        pass_cost_(model_cost(config_, weight_bytes_, (int64_t)kv_bytes_per_token_on(config_, o.device.get()))),
        batch_(o, log_, hooks()),
        routes_(log_) {
    routes_.on<msg::GenJob>([this](msg::GenJob j) { on_job(std::move(j)); })
        .on<msg::StopJobs>([this](const msg::StopJobs& m) { on_stop(m); })
        .on<msg::ReleaseKv>([this](const msg::ReleaseKv& m) { batch_.release_kept(m.rid, m.job_ids); })
        .on<msg::DropKv>([this](const msg::DropKv& m) { batch_.drop_dead(m.rid, m.job_ids); })
        .on<msg::Forget>([this](const msg::Forget& m) { batch_.forget(m.rid); })
        .on<msg::Grant>([this](const msg::Grant& g) {
          return on_engine_grant(g, "generator", o_, config_, &weights_, pass_cost_, batch_, meter_, turns_, log_,
                                 [this](const msg::PoolSize& p) { post("memory_arbiter", p); });
        })
        .on<msg::DeviceTurn>([this](const msg::DeviceTurn& t) { post("memory_arbiter", turns_.on_turn(t, batch_.engine())); })
        .on<msg::StatsQuery>([this](const msg::StatsQuery& m) { on_stats(m.qid, m.reset_peaks); })
        // A restarted arbiter asks.
        .on<msg::WeightsQuery>([this](const msg::WeightsQuery&) { announce(/*answer=*/true); });
    // A simulated device writes text that reads back at about one token per
    // token, as a real policy's does (gpu/sim/sim_tokens.h).
    if (o_.device && o_.device->simulated()) {
      const auto t0 = Clock::now();
      auto ids = std::make_shared<const std::vector<int32_t>>(standalone_token_ids(*tok_));
      log_->info("simulated device: sampling from the {} of {} tokens that stand alone as text ({:.0f} ms)",
                 ids->size(), tok_->vocab_size(), ms_since(t0));
      batch_.set_sample_ids(std::move(ids));
    }
  }
  Generator(const Generator&) = delete;  // the hooks and routes point at this object
  Generator& operator=(const Generator&) = delete;

  zmq::socket_t& inbox() { return box_.inbox(); }
  std::chrono::milliseconds idle_wait() const { return meter_.idle_wait(batch_); }

  void announce(bool answer = false) {
    post("memory_arbiter", weights_report("generator", pass_cost_, o_.block_size, config_.max_position,
                                          workspace_bytes_on(config_, o_.device.get()), answer));
  }

  // Handles every message waiting in the inbox.
  Status drain() { return routes_.drain(box_); }

  // One iteration: admit, one forward pass, sample, report, preempt.
  Status step();
  // After each step: tells the memory arbiter when real work came or went
  // (memory.offload's turns).
  void after_step() {
    if (auto u = turns_.use("generator", batch_)) post("memory_arbiter", *u);
  }

 private:
  template <class M>
  void post(const std::string& peer, const M& m) {
    // Mailbox::send requires a known peer; a missing one is a wiring mistake
    // of the supervisor, not a reason to crash the actor.
    if (o_.peers.count(peer)) box_.post(peer, m);
    else log_->warn("no '{}' peer to send a {} to", peer, M::kType);
  }

  Batch<GenTask>::Hooks hooks();
  void on_job(msg::GenJob job);
  void on_stop(const msg::StopJobs& m);
  void on_stats(uint64_t qid, bool reset_peaks);

  // The cost bound: whether one more speculative row keeps the speculative
  // rows' share of a decode pass within speculation_max_slowdown of the
  // real rows' predicted time.
  bool speculation_fits() const;
  // Posts GenDone and releases the task's sequence (if it has one). An
  // error's `code` is too_large when the job's context is over a limit of
  // the model or the KV pool (the client's input was too long), "" (internal)
  // when the job itself is broken.
  void finish(GenTask& t, const char* reason, std::string error = "", const char* code = "");
  // Why the job stops after sampling `token` (-1: none, a job whose prefix
  // may already end it), `text_before` being its text's length before that
  // token; null when it goes on.
  const char* stop_reason(const GenTask& t, int32_t token, size_t text_before) const;

  const GeneratorOptions& o_;
  Logger log_;
  ModelConfig config_;  // a copy: the engine takes the loaded one at the grant
  ModelWeights weights_;  // wait here until the grant moves them into the engine
  std::unique_ptr<Tokenizer> tok_;
  Mailbox box_;
  int64_t weight_bytes_ = 0;
  ModelCost pass_cost_;  // what its passes cost, for the latency model
  LoadMeter meter_;      // reports to the memory arbiter under an elastic split
  DeviceTurns turns_;    // memory.offload: whose turn on the device
  // The engine, the queue (real jobs in the scheduler's order, then
  // speculative ones) and the running jobs.
  Batch<GenTask> batch_;
  Routes routes_;
  RowCost cost_;  // the decode pass's time against its rows

  int64_t jobs_done_ = 0, tokens_generated_ = 0, iterations_ = 0;
  double busy_ms_ = 0;
  // What the benchmark reads (bench/tts.cpp): context tokens computed at
  // admission (prefix-cache misses and recomputation after preemption), the
  // iterations that sampled tokens and how many rows each sampled (a short
  // batch is a device waiting for stragglers).
  int64_t prefill_tokens_ = 0, decode_iterations_ = 0, decode_rows_ = 0;
  std::vector<int32_t> rows_hist_;  // [rows] = decode iterations that sampled that many tokens
  // Speculation: jobs received, tokens they sampled, those stopped before
  // their natural end, admission rounds the cost bound held one back.
  int64_t spec_jobs_ = 0, spec_tokens_ = 0, spec_stopped_ = 0, spec_held_ = 0;
};

Batch<GenTask>::Hooks Generator::hooks() {
  Batch<GenTask>::Hooks h;
  h.context = [](const GenTask& t) { return t.context(); };
  h.extra_tokens = 1;  // the token it generates
  h.over_capacity = [this](size_t n) {
    return "a context of " + std::to_string(n) +
           " tokens plus one to generate does not fit the generator's KV capacity of " +
           std::to_string(batch_.capacity()) + " tokens; shorten the problem or raise memory.budget_mb";
  };
  h.reject = [this](GenTask& t, std::string why) { finish(t, "error", std::move(why), msg::code::kTooLarge); };
  h.admitted = [this](GenTask& t, std::span<const int32_t> ctx, int32_t n_cached) {
    prefill_tokens_ += (int64_t)ctx.size() - n_cached;
    t.n_prefilled += (int32_t)ctx.size() - n_cached;
    if (!t.admitted_once) t.n_cached = n_cached;
  };
  h.background_fits = [this] { return speculation_fits(); };
  // With a cost bound, speculation does not recompute context the prefix
  // cache evicted (more than the partial last block).
  if (o_.speculation_max_slowdown > 0) h.background_max_uncached = o_.block_size;
  h.background_free_blocks_only = true;  // speculation never evicts the prefix cache
  h.stop = [this](GenTask& t) { finish(t, "stopped"); };
  h.own_from = [](const GenTask& t) { return (int32_t)t.job.tokens.size(); };  // its prefix is its step's
  return h;
}

bool Generator::speculation_fits() const {
  const double f = o_.speculation_max_slowdown;
  if (!(f > 0)) return true;
  int32_t spec = 0, real = 0;
  for (const GenTask& t : batch_.running()) ++(t.background() ? spec : real);
  // One row until two row counts were seen: enough to learn the slope.
  if (!cost_.known()) return spec < 1;
  return (spec + 1) * cost_.b() <= f * cost_.predict(real);
}

void Generator::on_job(msg::GenJob job) {
  GenTask t(std::move(job), *tok_);
  const msg::GenJob& j = t.job;
  if (j.speculative) ++spec_jobs_;
  t.bounded = o_.speculation_max_slowdown > 0;
  std::string bad;
  if (j.tokens.empty()) bad = "the job has no context tokens";
  else if (!(j.temperature >= 0)) bad = "temperature must be >= 0";
  else if (!(j.top_p > 0 && j.top_p <= 1)) bad = "top_p must be in (0, 1]";
  else if (j.top_k < 0) bad = "top_k must be >= 0";
  for (const auto* ids : {&j.tokens, &j.prefix})
    for (int32_t id : *ids)
      if (bad.empty() && (id < 0 || id >= config_.vocab_size))
        bad = "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(config_.vocab_size);
  if (!bad.empty()) return finish(t, "error", bad);  // the beam manager built a broken job: internal
  // The beam manager refuses prompts over the limit; a context can still
  // reach it with the steps generated so far.
  if (config_.max_position > 0 && (int64_t)j.tokens.size() >= config_.max_position)
    return finish(t, "error",
                  "the context is " + std::to_string(j.tokens.size()) + " tokens; the policy model holds at most " +
                      std::to_string(config_.max_position) +
                      " positions (max_position_embeddings) and needs one more for the token it generates",
                  msg::code::kTooLarge);
  // The prefix is this step's beginning, written by an earlier job: the job
  // goes on from it as if it had sampled it.
  t.out = j.prefix;
  for (int32_t id : j.prefix) t.text += t.decoder.push(id);
  if (j.max_tokens <= 0) return finish(t, "length");
  if (const char* reason = t.out.empty() ? nullptr : stop_reason(t, -1, 0)) return finish(t, reason);
  batch_.push(std::move(t));
}

void Generator::on_stop(const msg::StopJobs& m) {
  auto named = [&](const GenTask& t, uint64_t id) { return t.job.rid == m.rid && t.job.job_id == id && !t.left; };
  for (size_t i = 0; i < m.job_ids.size(); ++i) {
    const int32_t at = m.at_tokens[i];
    auto run_to = [&](GenTask& t, bool may_run) {
      // With a cost bound, a job that will not reach its point soon (held
      // back from admission) ends now with what it has; the beam manager
      // continues from there. Without one it runs to its point like real
      // work, however long it waits: the beam manager would send it again.
      if (may_run && at > 0 && (int32_t)t.out.size() < at) t.stop_at = at;
      else finish(t, "stopped");
    };
    auto& running = batch_.running();
    auto& queue = batch_.queue();
    if (auto r = std::find_if(running.begin(), running.end(), [&](const GenTask& t) { return named(t, m.job_ids[i]); });
        r != running.end())
      run_to(*r, /*may_run=*/true);
    else if (auto q = std::find_if(queue.begin(), queue.end(), [&](const GenTask& t) { return named(t, m.job_ids[i]); });
             q != queue.end())
      run_to(*q, /*may_run=*/!q->held || !q->bounded);
    // Else unknown, or finished: its GenDone is on its way.
  }
  batch_.drop_left();
  batch_.reorder();  // jobs with a stop point run like real work
}

void Generator::on_stats(uint64_t qid, bool reset_peaks) {
  msg::MapWriter st;
  // A path need not be UTF-8; the stats go to a client.
  st.put("model_dir", msg::escape_invalid_utf8(o_.model_dir.string()));
  st.put("weight_bytes", weight_bytes_).put("kv_bytes", batch_.kv_bytes());
  KvCacheStats kv = batch_.engine() ? batch_.engine()->kv_stats() : KvCacheStats{};
  st.put("kv_blocks_total", kv.n_blocks).put("kv_blocks_free", kv.free_blocks);
  st.put("kv_blocks_used", kv.used_blocks).put("kv_blocks_cached", kv.cached_blocks);
  st.put("prefix_hit_rate", kv.hit_rate()).put("evictions", kv.evictions);
  st.put("recomputed_tokens", kv.recomputed_tokens).put("kv_blocks_needed_peak", kv.needed_peak_blocks);
  st.put("running", (int64_t)batch_.running().size()).put("queued", (int64_t)batch_.queue().size());
  st.put("jobs_done", jobs_done_).put("tokens_generated", tokens_generated_);
  st.put("preemptions", batch_.preemptions()).put("iterations", iterations_).put("busy_ms", busy_ms_);
  st.put("prefill_tokens", prefill_tokens_).put("decode_iterations", decode_iterations_);
  st.put("decode_rows", decode_rows_).put("rows_hist", rows_hist_).put("kv_blocks_peak", batch_.kv_blocks_peak());
  st.put("kv_resizes", batch_.resizes());
  st.put("weight_uploads", turns_.uploads()).put("weight_upload_ms", turns_.upload_ms());
  batch_.kept().add_stats(st);
  batch_.tails().add_stats(st);
  st.put("spec_jobs", spec_jobs_).put("spec_tokens", spec_tokens_);
  st.put("spec_stopped", spec_stopped_).put("spec_held", spec_held_);
  st.put("row_cost_a_ms", cost_.known() ? cost_.a() : -1.0).put("row_cost_b_ms", cost_.known() ? cost_.b() : -1.0);
  post("intake", msg::StatsReply{qid, "generator", st.bytes()});
  if (reset_peaks) batch_.reset_peak(kv.used_blocks);
}

void Generator::finish(GenTask& t, const char* reason, std::string error, const char* code) {
  msg::GenDone d;
  d.job_id = t.job.job_id;
  d.rid = t.job.rid;
  d.beam = t.job.beam;
  d.tokens = t.out;
  d.text = tok_->decode(t.out, /*skip_special=*/true);
  d.finish = reason;
  d.error = std::move(error);
  if (!d.error.empty()) d.code = code;
  d.n_context = (int32_t)t.job.tokens.size();
  d.n_cached = t.n_cached;
  d.n_preempted = t.n_preempted;
  d.queue_ms = t.admitted_once ? std::chrono::duration<double, std::milli>(t.admitted - t.arrived).count()
                               : ms_since(t.arrived);
  d.run_ms = t.admitted_once ? ms_since(t.admitted) : 0.0;
  if (!d.error.empty())
    log_->warn("gen_job {} failed ({}): {}", d.job_id, d.code.empty() ? "internal" : d.code, d.error);
  post("scheduler", d);
  if (!t.job.speculative)
    meter_.job_done((int64_t)t.out.size(), t.n_prefilled, batch_.capacity(), t.job.tokens, t.out, o_.block_size);
  // Full blocks stay in the prefix cache for the next step; a live beam's
  // whole sequence stays for the jobs that continue it.
  batch_.release(t, /*keep=*/d.error.empty());
  ++jobs_done_;
  if (t.job.speculative && d.finish == "stopped") ++spec_stopped_;
}

const char* Generator::stop_reason(const GenTask& t, int32_t token, size_t text_before) const {
  const auto& eos = batch_.engine()->config().eos_token_ids;
  // A forced length (math-trace) ignores EOS and the delimiter, as vLLM's
  // ignore_eos; only the model's last position stops it earlier.
  const bool forced = t.job.forced_tokens > 0;
  if (!forced && token >= 0 && std::find(eos.begin(), eos.end(), token) != eos.end()) return "eos";
  // The model cannot place a token past its last position: stop there, even
  // at a delimiter, so that no search asks to continue a full context.
  if (config_.max_position > 0 && int64_t(t.job.tokens.size() + t.out.size()) >= config_.max_position)
    return "length";
  if (forced) return (int32_t)t.out.size() >= t.job.forced_tokens ? "forced" : nullptr;
  const std::string& d = o_.step_delimiter;
  if (t.job.stop_at_delimiter && !d.empty()) {
    // Only the new tail can hold a delimiter that was not there before.
    size_t from = text_before >= d.size() - 1 ? text_before - (d.size() - 1) : 0;
    if (t.text.find(d, from) != std::string::npos) return "delimiter";
  }
  if ((int32_t)t.out.size() >= t.job.max_tokens) return "length";
  return nullptr;
}

Status Generator::step() {
  Engine* engine = batch_.engine();
  // No engine yet, or the other model's turn on the device (memory.offload).
  if (!engine || !engine->weights_on_device()) return Status::success();
  if (batch_.admit() == Blocked::kBound) ++spec_held_;
  batch_.spare_cache();
  std::vector<GenTask>& running = batch_.running();
  if (running.empty()) {
    // A job that waits for the pool to grow: the memory arbiter must hear of
    // it (max_need), though no pass runs.
    if (auto l = meter_.report("generator", batch_)) post("memory_arbiter", *l);
    return Status::success();
  }
  const auto t0 = Clock::now();

  std::vector<RunItem> items;
  items.reserve(running.size());
  // A pass in which every job decodes one token: what the row-cost model fits.
  bool decode_only = true;
  // The engine samples each next token (on the device where it can, so no
  // vocabulary-wide logits reach the host), from the stream generate.cpp
  // draws from: (seed, beam, the index the new token will take).
  for (const GenTask& t : running) {
    const msg::GenJob& j = t.job;
    SamplingParams sp{(float)j.temperature, (float)j.top_p, j.top_k, j.seed};
    items.push_back({t.seq, RowSelect::Last, o_.prefill_chunk, {}, sp, (uint64_t)j.beam});
    decode_only = decode_only && engine->n_pending(t.seq) == 1;
  }
  RunResult res;
  const auto run0 = Clock::now();
  Status st = engine->run(items, OutputKind::Tokens, &res);
  if (!st.ok()) return make_error("generator: " + st.message());
  if (decode_only && res.starved.empty()) cost_.add((int32_t)items.size(), ms_since(run0));
  meter_.pass(res.shape, res.out.device_s >= 0 ? res.out.device_s : ms_since(run0) / 1e3);
  ++iterations_;
  batch_.note_peak();  // before jobs finish

  size_t n_done = 0;
  int32_t rows = 0;  // tokens sampled in this iteration
  for (size_t k = 0; k < running.size(); ++k) {
    GenTask& t = running[k];
    // A starved job, or one whose context is still being prefilled in chunks.
    if (res.item_n_rows[k] == 0 || engine->n_pending(t.seq) != 0) continue;
    ++rows;
    const msg::GenJob& j = t.job;
    const int32_t token = (int32_t)res.out.row(res.item_first_row[k])[0];
    t.out.push_back(token);
    ++tokens_generated_;
    if (j.speculative) ++spec_tokens_;
    const size_t text_before = t.text.size();
    t.text += t.decoder.push(token);
    const char* reason = stop_reason(t, token, text_before);
    if (!reason && t.stop_at > 0 && (int32_t)t.out.size() >= t.stop_at) reason = "stopped";
    if (reason) {
      finish(t, reason);
      ++n_done;
      continue;
    }
    engine->append(t.seq, std::span<const int32_t>(&token, 1));
    if (j.report_every > 0 && t.out.size() % (size_t)j.report_every == 0 && t.text.size() > t.text_reported) {
      post("scheduler", msg::GenProgress{j.job_id, j.rid, j.beam, t.text.substr(t.text_reported)});
      t.text_reported = t.text.size();
    }
  }
  batch_.drop_left();
  // Starved jobs retry next iteration; when nothing finished to free blocks,
  // make room: stop a speculative job, or preempt the job that has held its
  // blocks the shortest.
  if (!res.starved.empty() && n_done == 0) batch_.make_room();
  if (rows > 0) {
    ++decode_iterations_;
    decode_rows_ += rows;
    if ((size_t)rows >= rows_hist_.size()) rows_hist_.resize((size_t)rows + 1, 0);
    ++rows_hist_[(size_t)rows];
  }
  busy_ms_ += ms_since(t0);
  if (auto l = meter_.report("generator", batch_)) post("memory_arbiter", *l);
  return Status::success();
}

}  // namespace

Status run_generator(zmq::context_t& ctx, ActorPipe& pipe, const GeneratorOptions& o) {
  Logger log = actor_logger(o, "generator");
  FLASHTTS_TRY(check_engine_options(o, "generator"));
  auto model = load_model_for(o.model_dir, o.device.get());
  if (!model) return make_error("generator: " + model.error().message);
  const ModelConfig& cfg = model->config;
  if (cfg.prm.kind != PrmKind::None && cfg.prm.kind != PrmKind::LmLogits)
    return make_error("generator: " + o.model_dir.string() + " is a process reward model (" + cfg.architecture +
                      ") without a language-model head");
  auto tok = open_model_tokenizer(o, cfg, "generator");
  if (!tok) return tok.error();
  auto box = Mailbox::open(ctx, o.inbox, o.peers);
  if (!box) return make_error("generator: " + box.error().message);

  Generator g(o, log, std::move(model).value(), std::move(tok).value(), std::move(box).value());
  pipe.ready();
  g.announce();

  return run_engine_loop(pipe, g, log);
}

}  // namespace flashtts
