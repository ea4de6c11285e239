#include "actors/beam_manager.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "actors/answer.h"
#include "actors/strategy.h"
#include "gpu/chat_format.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "runtime/base/clock.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/poll_set.h"
#include "runtime/base/routes.h"

namespace flashtts {

namespace {

// Per-request accounting for the result's stats.
struct Tally {
  int64_t policy_tokens = 0, context_tokens = 0, cached_tokens = 0, preemptions = 0;
  int64_t prm_tokens = 0, prm_computed = 0;
  int64_t prompt_tokens = 0;              // the policy prompt (solve)
  double gen_job_ms = 0, ver_job_ms = 0;  // summed over jobs (jobs share batches)
  // Wall-clock spans from the request's start: first job sent, last job back.
  double gen_first_ms = -1, gen_last_ms = 0, ver_first_ms = -1, ver_last_ms = 0;
};

struct Request {
  msg::Start start;
  Clock::time_point t0 = Clock::now();
  std::unique_ptr<SearchStrategy> search;  // solve only
  Tally tally;
  std::unordered_map<uint64_t, int32_t> prefix_of;  // job id -> its prefix tokens, while it runs
  // Live beams: jobs sent with keep_kv, and those finished (their sequence is
  // kept in an engine until a release_kv names it, or Forget).
  std::unordered_set<uint64_t> keeping, kept;
};

class BeamManager;

// The SearchHost of one request.
class Host final : public SearchHost {
 public:
  Host(BeamManager& bm, uint64_t rid) : bm_(bm), rid_(rid) {}
  uint64_t submit(GenRequest g) override;
  void stop(std::vector<uint64_t> job_ids, std::vector<int32_t> at_tokens) override;
  uint64_t submit_score(ScoreRequest s) override;
  void keep_kv_only(const std::unordered_set<uint64_t>& referenced) override;
  void drop_kv(std::vector<uint64_t> job_ids) override;
  void progress(const msg::MapWriter& event) override;
  double elapsed_ms() const override;

 private:
  BeamManager& bm_;
  uint64_t rid_;
};

class BeamManager {
 public:
  BeamManager(const BeamManagerOptions& o, Mailbox& box, std::unique_ptr<Tokenizer> tok, int32_t max_position)
      : o_(o), box_(box), tok_(std::move(tok)), max_position_(max_position) {
    // Job ids of this start never meet those of an earlier one whose jobs
    // still run in the GPU actors' processes.
    next_job_ = uint64_t(std::random_device{}()) << 20;
  }

  // Its message dispatch (the handlers hold `this`).
  Routes routes();

  // The most jobs the request has at once: a search's n, else 1.
  static int32_t beams(const Request& r) { return r.start.kind == "solve" ? std::max(1, r.start.solve.n) : 1; }

  uint64_t submit_gen(uint64_t rid, GenRequest g, int32_t report_every) {
    Request& r = requests_.at(rid);
    msg::GenJob j;
    j.job_id = ++next_job_, j.rid = rid, j.beam = g.beam, j.tokens = std::move(g.tokens);
    j.max_tokens = g.max_tokens, j.stop_at_delimiter = g.stop_at_delimiter, j.report_every = report_every;
    j.forced_tokens = g.forced_tokens, j.speculative = g.speculative, j.prefix = std::move(g.prefix);
    j.keep_kv = g.keep_kv, j.from_job = g.from_job, j.priority = g.priority, j.request_beams = beams(r);
    if (j.keep_kv) r.keeping.insert(j.job_id);
    if (r.start.kind == "solve") {
      const auto& p = r.start.solve;
      j.temperature = g.greedy ? 0.0 : p.temperature, j.top_p = p.top_p, j.top_k = p.top_k, j.seed = p.seed;
    } else {
      const auto& p = r.start.generate;
      j.temperature = p.temperature, j.top_p = p.top_p, j.top_k = p.top_k, j.seed = p.seed;
    }
    // A GenDone repeats the prefix: the tally counts only what was generated.
    if (!j.prefix.empty()) r.prefix_of[j.job_id] = (int32_t)j.prefix.size();
    box_.post("scheduler", j);
    ++jobs_;
    Tally& t = r.tally;
    if (t.gen_first_ms < 0) t.gen_first_ms = ms_since(r.t0);
    return j.job_id;
  }

  void stop_jobs(uint64_t rid, std::vector<uint64_t> job_ids, std::vector<int32_t> at_tokens) {
    if (job_ids.empty()) return;
    box_.post("scheduler", msg::StopJobs{rid, std::move(job_ids), std::move(at_tokens)});
  }

  uint64_t submit_score(uint64_t rid, const std::string& problem, ScoreRequest s) {
    Request& r = requests_.at(rid);
    msg::ScoreJob j;
    j.job_id = ++next_job_, j.rid = rid, j.beam = s.beam, j.problem = problem, j.steps = std::move(s.steps);
    j.keep_kv = s.keep_kv, j.from_job = s.from_job, j.priority = s.priority, j.request_beams = beams(r);
    if (j.keep_kv) r.keeping.insert(j.job_id);
    box_.post("scheduler", j);
    ++jobs_;
    if (r.tally.ver_first_ms < 0) r.tally.ver_first_ms = ms_since(r.t0);
    return j.job_id;
  }

  const std::string& problem(uint64_t rid) const { return requests_.at(rid).start.solve.problem; }

  // Frees the kept sequences of the request's finished jobs not in `referenced`.
  void keep_kv_only(uint64_t rid, const std::unordered_set<uint64_t>& referenced) {
    Request& r = requests_.at(rid);
    msg::ReleaseKv m{rid, {}};
    for (uint64_t id : r.kept)
      if (!referenced.count(id)) m.job_ids.push_back(id);
    if (m.job_ids.empty()) return;
    std::sort(m.job_ids.begin(), m.job_ids.end());
    for (uint64_t id : m.job_ids) r.kept.erase(id);
    box_.post("scheduler", m);
  }

  void drop_kv(uint64_t rid, std::vector<uint64_t> job_ids) {
    std::erase(job_ids, 0);
    if (!job_ids.empty()) box_.post("scheduler", msg::DropKv{rid, std::move(job_ids)});
  }

  double elapsed_ms(uint64_t rid) const { return ms_since(requests_.at(rid).t0); }

  void progress(uint64_t rid, const msg::MapWriter& event) {
    auto it = requests_.find(rid);
    if (it == requests_.end()) return;
    const auto& s = it->second.start;
    bool stream = s.kind == "solve" ? s.solve.stream : s.kind == "generate" ? s.generate.stream : false;
    if (stream) box_.post("intake", msg::Progress{rid, event.bytes()});
  }

 private:
  void on_start(msg::Start s);
  void on_gen_done(const msg::GenDone& d);
  void on_score_done(const msg::ScoreDone& d);
  void finish_solve(uint64_t rid);
  void reply_ok(uint64_t rid, const msg::MapWriter& result);
  void reply_error(uint64_t rid, const std::string& code, const std::string& message);
  void forget(uint64_t rid, bool completed = false) {
    requests_.erase(rid);
    box_.post("scheduler", msg::Forget{rid, completed});
  }
  Expected<std::vector<int32_t>> prompt_ids(const std::string& text, bool chat);
  // Error (too_large) when the policy model has no position left to generate
  // after `prompt`; the generator would refuse every job of it.
  Status prompt_fits(const std::vector<int32_t>& prompt) const;
  void stats(uint64_t qid);

  const BeamManagerOptions& o_;
  Mailbox& box_;
  std::unique_ptr<Tokenizer> tok_;
  int32_t max_position_ = 0;  // the policy's max_position_embeddings (0 = unbounded)
  std::unordered_map<uint64_t, Request> requests_;
  uint64_t next_job_ = 0, jobs_ = 0, completed_ = 0, failed_ = 0, cancelled_ = 0;
};

uint64_t Host::submit(GenRequest g) { return bm_.submit_gen(rid_, std::move(g), 0); }
void Host::stop(std::vector<uint64_t> job_ids, std::vector<int32_t> at_tokens) {
  bm_.stop_jobs(rid_, std::move(job_ids), std::move(at_tokens));
}
uint64_t Host::submit_score(ScoreRequest s) { return bm_.submit_score(rid_, bm_.problem(rid_), std::move(s)); }
void Host::keep_kv_only(const std::unordered_set<uint64_t>& referenced) { bm_.keep_kv_only(rid_, referenced); }
void Host::drop_kv(std::vector<uint64_t> job_ids) { bm_.drop_kv(rid_, std::move(job_ids)); }
void Host::progress(const msg::MapWriter& event) { bm_.progress(rid_, event); }
double Host::elapsed_ms() const { return bm_.elapsed_ms(rid_); }

Expected<std::vector<int32_t>> BeamManager::prompt_ids(const std::string& text, bool chat) {
  if (!chat || o_.prompt_format == "raw") return tok_->encode(text);
  ChatFormat f = ChatFormat::ChatML;
  if (o_.prompt_format == "llama3") f = ChatFormat::Llama3;
  else if (o_.prompt_format == "auto") {
    auto d = detect_chat_format(*tok_);
    if (!d) return tok_->encode(text);  // no chat template: the model reads raw text
    f = *d;
  }
  return tok_->encode(format_chat_prompt(f, o_.system_prompt, text));
}

Status BeamManager::prompt_fits(const std::vector<int32_t>& prompt) const {
  if (max_position_ <= 0 || (int64_t)prompt.size() < max_position_) return Status::success();
  return make_error("the prompt is " + std::to_string(prompt.size()) + " tokens; the policy model holds at most " +
                    std::to_string(max_position_) +
                    " positions (max_position_embeddings) and needs one more for the first token it generates");
}

Routes BeamManager::routes() {
  Routes r(o_.log);
  r.on<msg::Start>([this](msg::Start s) { on_start(std::move(s)); })
      .on<msg::GenDone>([this](const msg::GenDone& d) { on_gen_done(d); })
      .on<msg::ScoreDone>([this](const msg::ScoreDone& d) { on_score_done(d); })
      .on<msg::GenProgress>([this](const msg::GenProgress& g) {
        msg::MapWriter ev;
        ev.put("kind", "text").put("beam", g.beam).put("text", g.text);
        progress(g.rid, ev);
      })
      .on<msg::Cancel>([this](const msg::Cancel& c) {
        if (!requests_.count(c.rid)) return;
        o_.log->debug("request {} cancelled: {}", c.rid, c.reason);
        ++cancelled_;
        forget(c.rid);
      })
      .on<msg::StatsQuery>([this](const msg::StatsQuery& q) { stats(q.qid); });
  return r;
}

void BeamManager::on_start(msg::Start s) {
  uint64_t rid = s.rid;
  if (requests_.count(rid)) return;  // the intake never reuses an id
  Request& r = requests_[rid];
  r.start = std::move(s);
  const msg::Start& st = r.start;
  if (st.kind == "solve") {
    auto ids = prompt_ids(st.solve.problem, true);
    if (!ids) return reply_error(rid, msg::code::kBadRequest, ids.error().message);
    if (Status f = prompt_fits(*ids); !f.ok()) return reply_error(rid, msg::code::kTooLarge, f.message());
    r.tally.prompt_tokens = (int64_t)ids->size();
    // Named, not positional: a field added in the middle cannot shift the others.
    SearchSetup setup{.params = st.solve,
                      .prompt = std::move(*ids),
                      .delimiter = o_.step_delimiter,
                      .speculation = o_.speculation,
                      .speculation_bounded = o_.speculation_bounded,
                      .speculation_prune = o_.speculation_prune,
                      .live_beams = o_.live_beams,
                      .speculation_bins = o_.speculation_bins,
                      .drop_dead_kv = o_.drop_dead_kv};
    r.search = make_strategy(setup);
    Host host(*this, rid);
    r.search->start(host);
  } else if (st.kind == "generate") {
    auto ids = prompt_ids(st.generate.prompt, st.generate.chat);
    if (!ids) return reply_error(rid, msg::code::kBadRequest, ids.error().message);
    if (Status f = prompt_fits(*ids); !f.ok()) return reply_error(rid, msg::code::kTooLarge, f.message());
    GenRequest g;
    g.tokens = std::move(*ids), g.max_tokens = st.generate.max_tokens, g.stop_at_delimiter = st.generate.stop_at_step;
    submit_gen(rid, std::move(g), st.generate.stream ? 8 : 0);
  } else {
    submit_score(rid, st.score.problem, {0, st.score.steps});
  }
}

void BeamManager::on_gen_done(const msg::GenDone& d) {
  auto it = requests_.find(d.rid);
  if (it == requests_.end()) return;  // cancelled or failed meanwhile
  Request& r = it->second;
  // A code from the generator says the input was over a limit; none means
  // the engine failed.
  if (d.finish == "error") {
    if (!d.code.empty()) return reply_error(d.rid, d.code, d.error);
    return reply_error(d.rid, msg::code::kInternal, "generation failed: " + d.error);
  }
  if (r.keeping.erase(d.job_id)) r.kept.insert(d.job_id);
  Tally& t = r.tally;
  int32_t prefix = 0;
  if (auto p = r.prefix_of.find(d.job_id); p != r.prefix_of.end()) {
    prefix = p->second;
    r.prefix_of.erase(p);
  }
  t.policy_tokens += (int64_t)d.tokens.size() - prefix;
  t.context_tokens += d.n_context;
  t.cached_tokens += d.n_cached;
  t.preemptions += d.n_preempted;
  t.gen_job_ms += d.run_ms;
  t.gen_last_ms = ms_since(r.t0);
  if (r.start.kind == "generate") {
    msg::MapWriter res;
    res.put("text", d.text).put("tokens", d.tokens).put("finish", d.finish);
    res.put("n_prompt", d.n_context).put("n_cached", d.n_cached).put("latency_ms", ms_since(r.t0));
    return reply_ok(d.rid, res);
  }
  Host host(*this, d.rid);
  r.search->on_generated(host, d);
  if (requests_.count(d.rid) && r.search->finished()) finish_solve(d.rid);
}

void BeamManager::on_score_done(const msg::ScoreDone& d) {
  auto it = requests_.find(d.rid);
  if (it == requests_.end()) return;
  Request& r = it->second;
  if (!d.error.empty()) {
    // The steps of a solve are the policy's, not the client's: a format the
    // PRM refuses is then the server's failure.
    const bool policy_steps_refused = r.start.kind != "score" && d.code == msg::code::kBadRequest;
    if (!d.code.empty() && !policy_steps_refused) return reply_error(d.rid, d.code, d.error);
    return reply_error(d.rid, msg::code::kInternal, "scoring failed: " + d.error);
  }
  if (r.keeping.erase(d.job_id)) r.kept.insert(d.job_id);
  Tally& t = r.tally;
  t.prm_tokens += d.n_tokens;
  t.prm_computed += d.n_computed;
  t.ver_job_ms += d.run_ms;
  t.ver_last_ms = ms_since(r.t0);
  if (r.start.kind == "score") {
    msg::MapWriter res;
    res.put("scores", d.scores).put("n_tokens", d.n_tokens).put("n_computed", d.n_computed);
    res.put("latency_ms", ms_since(r.t0));
    return reply_ok(d.rid, res);
  }
  Host host(*this, d.rid);
  r.search->on_scored(host, d);
  if (requests_.count(d.rid) && r.search->finished()) finish_solve(d.rid);
}

void BeamManager::finish_solve(uint64_t rid) {
  Request& r = requests_.at(rid);
  const msg::SolveParams& p = r.start.solve;
  std::vector<Completion> done = r.search->completions();
  if (done.empty()) return reply_error(rid, msg::code::kInternal, "the search ended without a completed solution");
  std::vector<Candidate> cands;
  std::vector<std::string> answers;
  for (const Completion& c : done) {
    answers.push_back(extract_answer(c.text));
    cands.push_back({normalize_answer(answers.back()), aggregate_scores(c.step_scores, p.aggregation)});
  }
  size_t best = select_candidate(cands, p.selection);
  const Completion& c = done[best];

  msg::MapWriter res;
  res.put("answer", answers[best]).put("score", cands[best].score).put("text", c.text);
  std::vector<msg::MapWriter> steps;
  for (size_t i = 0; i < c.steps.size(); ++i) {
    msg::MapWriter s;
    s.put("text", c.steps[i]).put("score", i < c.step_scores.size() ? c.step_scores[i] : 0.0f);
    steps.push_back(std::move(s));
  }
  res.put("steps", steps);
  res.put("strategy", p.strategy).put("n", p.n).put("aggregation", p.aggregation).put("selection", p.selection);
  if (p.strategy != "best_of_n") res.put("beam_width", p.beam_width);
  if (p.strategy == "beam_search") res.put("lookahead", p.lookahead);
  if (p.return_completions) {
    std::vector<msg::MapWriter> all;
    for (size_t i = 0; i < done.size(); ++i) {
      msg::MapWriter w;
      w.put("beam", done[i].beam).put("text", done[i].text).put("answer", answers[i]).put("score", cands[i].score);
      w.put("step_scores", done[i].step_scores).put("finish", done[i].finish).put("tokens", done[i].n_tokens);
      if (p.trace.on()) w.put("step_tokens", done[i].step_tokens);
      all.push_back(std::move(w));
    }
    res.put("completions", all);
  }
  const Tally& t = r.tally;
  double latency = ms_since(r.t0), tokens_sum = 0, time_sum = 0;
  for (const Completion& x : done) tokens_sum += x.n_tokens, time_sum += x.done_ms;
  msg::MapWriter st;
  st.put("latency_ms", latency).put("policy_tokens", t.policy_tokens).put("prm_tokens", t.prm_tokens);
  st.put("prm_tokens_computed", t.prm_computed).put("preemptions", t.preemptions);
  st.put("prompt_tokens", t.prompt_tokens);
  st.put("prefix_hit_rate", t.context_tokens ? double(t.cached_tokens) / double(t.context_tokens) : 0.0);
  // Spans overlap (best-of-N scores early samples while later ones generate).
  st.put("generation_ms", t.gen_first_ms < 0 ? 0.0 : t.gen_last_ms - t.gen_first_ms);
  st.put("verification_ms", t.ver_first_ms < 0 ? 0.0 : t.ver_last_ms - t.ver_first_ms);
  st.put("generation_job_ms_sum", t.gen_job_ms).put("verification_job_ms_sum", t.ver_job_ms);
  // The paper's goodput: mean tokens per completed beam / mean beam
  // completion time (from the request's start to the beam's last score).
  double mean_s = done.empty() ? 0 : time_sum / double(done.size()) / 1000.0;
  st.put("goodput_tokens_per_s", mean_s > 0 ? (tokens_sum / double(done.size())) / mean_s : 0.0);
  r.search->add_stats(st);
  res.put("stats", st);
  reply_ok(rid, res);
}

void BeamManager::reply_ok(uint64_t rid, const msg::MapWriter& result) {
  msg::Reply rep;
  rep.rid = rid, rep.ok = true, rep.result = result.bytes();
  box_.post("intake", rep);
  ++completed_;
  forget(rid, true);
}

void BeamManager::reply_error(uint64_t rid, const std::string& code, const std::string& message) {
  msg::Reply rep;
  rep.rid = rid, rep.ok = false, rep.code = code, rep.message = message;
  box_.post("intake", rep);
  ++failed_;
  o_.log->warn("request {} failed: {}", rid, message);
  forget(rid);
}

void BeamManager::stats(uint64_t qid) {
  msg::MapWriter st;
  st.put("live_requests", uint64_t(requests_.size())).put("completed", completed_).put("failed", failed_);
  st.put("cancelled", cancelled_).put("jobs_submitted", jobs_);
  box_.post("intake", msg::StatsReply{qid, "beam_manager", st.bytes()});
}

}  // namespace

Status run_beam_manager(zmq::context_t& ctx, ActorPipe& pipe, const BeamManagerOptions& o) {
  auto tok = open_tokenizer(o.policy_dir);
  if (!tok) return tok.error();
  auto policy = load_model_config(o.policy_dir);
  if (!policy) return policy.error();
  auto mb = Mailbox::open(ctx, o.inbox, o.peers);
  if (!mb) return mb.error();
  BeamManager bm(o, *mb, std::move(*tok), policy->max_position);
  pipe.ready();
  PollSet poll(pipe, {&mb->inbox()});
  const Routes routes = bm.routes();
  while (poll.wait(std::chrono::milliseconds(-1))) FLASHTTS_TRY(routes.drain(*mb));
  return Status::success();
}

}  // namespace flashtts
