#include "actors/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "gpu/backend.h"
#include "gpu/engine.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "gpu/sampler.h"
#include "gpu/tokenizer.h"
#include "actors/engine_actor.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "messages/utf8.h"
#include "runtime/clock.h"
#include "runtime/mailbox.h"

namespace flashtts {

namespace {

// One GenJob from arrival to GenDone.
struct GenTask {
  GenTask(msg::GenJob j, const Tokenizer& tok)
      : job(std::move(j)), decoder(tok, /*skip_special=*/true), arrived(Clock::now()) {}

  msg::GenJob job;
  std::vector<int32_t> out;  // generated ids so far; kept across preemptions
  std::string text;          // streamed text of `out`, special tokens skipped
  StreamDecoder decoder;
  size_t text_reported = 0;  // bytes of `text` already sent in gen_progress
  int64_t seq = -1;          // engine sequence while running
  int32_t n_cached = 0;      // context tokens the prefix cache held at first admission
  int32_t n_preempted = 0;
  bool admitted_once = false;
  Clock::time_point arrived, admitted;

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
        box_(std::move(box)), weight_bytes_(weight_bytes_on(config_, weights_, o.device.get())) {}

  zmq::socket_t& inbox() { return box_.inbox(); }
  bool has_work() const { return engine_ && (!running_.empty() || !queue_.empty()); }

  void announce() {
    post("memory_arbiter", msg::Weights{"generator", weight_bytes_, (int64_t)kv_bytes_per_token_on(config_, o_.device.get()),
                                        o_.block_size});
  }

  // Handles every message waiting in the inbox.
  Status drain() {
    while (auto bytes = box_.try_recv()) FLASHTTS_TRY(on_message(*bytes));
    return Status::success();
  }

  // One iteration: admit, one forward pass, sample, report, preempt.
  Status step();

 private:
  template <class M>
  void post(const std::string& peer, const M& m) {
    // Mailbox::send requires a known peer; a missing one is a wiring mistake
    // of the supervisor, not a reason to crash the actor.
    if (o_.peers.count(peer)) box_.post(peer, m);
    else log_->warn("no '{}' peer to send a {} to", peer, M::kType);
  }

  Status on_message(const std::string& bytes);
  Status on_grant(const msg::Grant& g);
  void on_job(msg::GenJob job);
  void on_forget(uint64_t rid);
  void on_stats(uint64_t qid, bool reset_peaks);

  void admit();
  bool should_wait_for_shared_prefix(std::span<const int32_t> ctx) const;
  void preempt_latest();
  // Posts GenDone and releases the task's sequence (if it has one). An
  // error's `code` is too_large when the job's context is over a limit of
  // the model or the KV pool (the client's input was too long), "" (internal)
  // when the job itself is broken.
  void finish(GenTask& t, const char* reason, std::string error = "", const char* code = "");
  const char* stop_reason(GenTask& t, int32_t token, size_t text_before) const;

  const GeneratorOptions& o_;
  Logger log_;
  ModelConfig config_;  // a copy: the engine takes the loaded one at the grant
  ModelWeights weights_;  // wait here until the grant moves them into the engine
  std::unique_ptr<Tokenizer> tok_;
  Mailbox box_;
  std::unique_ptr<Engine> engine_;
  int64_t weight_bytes_ = 0, kv_bytes_ = 0;
  int32_t capacity_ = 0;  // KV tokens of the whole pool

  std::deque<GenTask> queue_;     // arrival order, preempted jobs in front
  std::vector<GenTask> running_;  // admission order
  int64_t next_seq_ = 1;
  // After a preemption no job is admitted until one leaves (or none runs):
  // the one just preempted would be admitted again at once and starve the
  // running jobs of the blocks they need to decode.
  bool hold_admission_ = false;

  int64_t jobs_done_ = 0, tokens_generated_ = 0, preemptions_ = 0, iterations_ = 0;
  double busy_ms_ = 0;
  // What the benchmark reads (bench/tts.cpp): context tokens computed at
  // admission (prefix-cache misses and recomputation after preemption), the
  // iterations that sampled tokens and how many rows each sampled (a short
  // batch is a device waiting for stragglers), and the most KV blocks held.
  int64_t prefill_tokens_ = 0, decode_iterations_ = 0, decode_rows_ = 0;
  std::vector<int32_t> rows_hist_;  // [rows] = decode iterations that sampled that many tokens
  int32_t kv_blocks_peak_ = 0;
};

Status Generator::on_message(const std::string& bytes) {
  auto env = msg::open(bytes);
  if (!env) {
    log_->warn("ignored a message: {}", env.error().message);
    return Status::success();
  }
  const std::string& type = env->type;
  if (type == msg::GenJob::kType) {
    if (auto m = decode_logged<msg::GenJob>(*env, log_)) on_job(std::move(*m));
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

Status Generator::on_grant(const msg::Grant& g) {
  const bool had = engine_ != nullptr;
  FLASHTTS_TRY(accept_grant(g, "generator", config_, &weights_, o_, log_, &engine_));
  if (had || !engine_) return Status::success();
  kv_bytes_ = g.kv_bytes;
  capacity_ = engine_->kv().n_blocks() * engine_->kv().block_size();
  return Status::success();
}

void Generator::on_job(msg::GenJob job) {
  GenTask t(std::move(job), *tok_);
  const msg::GenJob& j = t.job;
  std::string bad;
  if (j.tokens.empty()) bad = "the job has no context tokens";
  else if (!(j.temperature >= 0)) bad = "temperature must be >= 0";
  else if (!(j.top_p > 0 && j.top_p <= 1)) bad = "top_p must be in (0, 1]";
  else if (j.top_k < 0) bad = "top_k must be >= 0";
  for (int32_t id : j.tokens)
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
  if (j.max_tokens <= 0) return finish(t, "length");
  queue_.push_back(std::move(t));
}

void Generator::on_forget(uint64_t rid) {
  std::erase_if(queue_, [&](const GenTask& t) { return t.job.rid == rid; });
  size_t before = running_.size();
  std::erase_if(running_, [&](const GenTask& t) {
    if (t.job.rid != rid) return false;
    engine_->release(t.seq);
    return true;
  });
  if (running_.size() != before) hold_admission_ = false;
}

void Generator::on_stats(uint64_t qid, bool reset_peaks) {
  msg::MapWriter st;
  // A path need not be UTF-8; the stats go to a client.
  st.put("model_dir", msg::escape_invalid_utf8(o_.model_dir.string()));
  st.put("weight_bytes", weight_bytes_).put("kv_bytes", kv_bytes_);
  KvCacheStats kv = engine_ ? engine_->kv_stats() : KvCacheStats{};
  st.put("kv_blocks_total", kv.n_blocks).put("kv_blocks_free", kv.free_blocks);
  st.put("kv_blocks_used", kv.used_blocks).put("kv_blocks_cached", kv.cached_blocks);
  st.put("prefix_hit_rate", kv.hit_rate()).put("evictions", kv.evictions);
  st.put("running", (int64_t)running_.size()).put("queued", (int64_t)queue_.size());
  st.put("jobs_done", jobs_done_).put("tokens_generated", tokens_generated_);
  st.put("preemptions", preemptions_).put("iterations", iterations_).put("busy_ms", busy_ms_);
  st.put("prefill_tokens", prefill_tokens_).put("decode_iterations", decode_iterations_);
  st.put("decode_rows", decode_rows_).put("rows_hist", rows_hist_).put("kv_blocks_peak", kv_blocks_peak_);
  post("intake", msg::StatsReply{qid, "generator", st.bytes()});
  if (reset_peaks) kv_blocks_peak_ = kv.used_blocks;
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
  if (t.seq >= 0) {
    engine_->release(t.seq);  // full blocks stay in the prefix cache for the next step
    t.seq = -1;
    hold_admission_ = false;
  }
  ++jobs_done_;
}

bool Generator::should_wait_for_shared_prefix(std::span<const int32_t> ctx) const {
  // A running job that will soon hold KV this one could reuse (sibling beams
  // of one prompt): admitting now would compute the shared blocks twice.
  for (const GenTask& r : running_) {
    int32_t share = shareable_prefix_tokens(ctx, engine_->tokens(r.seq), o_.block_size);
    if (share > 0 && engine_->n_computed(r.seq) < share) return true;
  }
  return false;
}

void Generator::admit() {
  if (hold_admission_) {
    if (!running_.empty()) return;
    hold_admission_ = false;
  }
  // Strictly in queue order: the scheduler decided it.
  while (!queue_.empty() && (int32_t)running_.size() < o_.max_batch) {
    GenTask& t = queue_.front();
    std::vector<int32_t> ctx = t.context();
    if ((int64_t)ctx.size() + 1 > capacity_) {
      finish(t, "error",
             "a context of " + std::to_string(ctx.size()) +
                 " tokens plus one to generate does not fit the generator's KV capacity of " +
                 std::to_string(capacity_) + " tokens; shorten the problem or raise memory.budget_mb",
             msg::code::kTooLarge);
      queue_.pop_front();
      continue;
    }
    if (should_wait_for_shared_prefix(ctx)) break;
    const int64_t seq = next_seq_++;
    auto added = engine_->add_sequence(seq, ctx, /*reuse_prefix=*/true);
    if (!added) {
      if (!running_.empty()) break;  // wait for running jobs to free blocks
      // Nothing holds blocks, so the pool itself is too small (never spin).
      finish(t, "error", added.error().message, msg::code::kTooLarge);
      queue_.pop_front();
      continue;
    }
    t.seq = seq;
    prefill_tokens_ += (int64_t)ctx.size() - *added;
    if (!t.admitted_once) {
      t.admitted_once = true;
      t.admitted = Clock::now();
      t.n_cached = *added;
    }
    running_.push_back(std::move(t));
    queue_.pop_front();
  }
}

void Generator::preempt_latest() {
  GenTask t = std::move(running_.back());
  running_.pop_back();
  engine_->release(t.seq);
  t.seq = -1;
  ++t.n_preempted;
  ++preemptions_;
  log_->debug("preempted job {} after {} tokens", t.job.job_id, t.out.size());
  queue_.push_front(std::move(t));
  hold_admission_ = true;
}

const char* Generator::stop_reason(GenTask& t, int32_t token, size_t text_before) const {
  const auto& eos = engine_->config().eos_token_ids;
  // A forced length (math-trace) ignores EOS and the delimiter, as vLLM's
  // ignore_eos; only the model's last position stops it earlier.
  const bool forced = t.job.forced_tokens > 0;
  if (!forced && std::find(eos.begin(), eos.end(), token) != eos.end()) return "eos";
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
  if (!engine_) return Status::success();
  admit();
  if (running_.empty()) return Status::success();
  const auto t0 = Clock::now();

  std::vector<RunItem> items;
  items.reserve(running_.size());
  // The engine samples each next token (on the device where it can, so no
  // vocabulary-wide logits reach the host), from the stream generate.cpp
  // draws from: (seed, beam, the index the new token will take).
  for (const GenTask& t : running_) {
    const msg::GenJob& j = t.job;
    SamplingParams sp{(float)j.temperature, (float)j.top_p, j.top_k, j.seed};
    items.push_back({t.seq, RowSelect::Last, o_.prefill_chunk, {}, sp, (uint64_t)j.beam});
  }
  RunResult res;
  Status st = engine_->run(items, OutputKind::Tokens, &res);
  if (!st.ok()) return make_error("generator: " + st.message());
  ++iterations_;
  kv_blocks_peak_ = std::max(kv_blocks_peak_, engine_->kv_stats().used_blocks);  // before jobs finish

  std::vector<char> done(running_.size(), 0);
  size_t n_done = 0;
  int32_t rows = 0;  // tokens sampled in this iteration
  for (size_t k = 0; k < running_.size(); ++k) {
    GenTask& t = running_[k];
    // A starved job, or one whose context is still being prefilled in chunks.
    if (res.item_n_rows[k] == 0 || engine_->n_pending(t.seq) != 0) continue;
    ++rows;
    const msg::GenJob& j = t.job;
    const int32_t token = (int32_t)res.out.row(res.item_first_row[k])[0];
    t.out.push_back(token);
    ++tokens_generated_;
    const size_t text_before = t.text.size();
    t.text += t.decoder.push(token);
    if (const char* reason = stop_reason(t, token, text_before)) {
      finish(t, reason);
      done[k] = 1;
      ++n_done;
      continue;
    }
    engine_->append(t.seq, std::span<const int32_t>(&token, 1));
    if (j.report_every > 0 && t.out.size() % (size_t)j.report_every == 0 && t.text.size() > t.text_reported) {
      post("scheduler", msg::GenProgress{j.job_id, j.rid, j.beam, t.text.substr(t.text_reported)});
      t.text_reported = t.text.size();
    }
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
  // Starved jobs retry next iteration; when nothing finished to free blocks,
  // make room by preempting the job that has held them the shortest.
  if (!res.starved.empty() && n_done == 0) preempt_latest();
  if (rows > 0) {
    ++decode_iterations_;
    decode_rows_ += rows;
    if ((size_t)rows >= rows_hist_.size()) rows_hist_.resize((size_t)rows + 1, 0);
    ++rows_hist_[(size_t)rows];
  }
  busy_ms_ += ms_since(t0);
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
