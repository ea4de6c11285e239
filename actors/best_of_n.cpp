// best-of-N: the baseline strategy of every test-time-scaling comparison.
//
// Trace mode (math-trace, actors/trace.h): each sample is generated step by
// step, one forced job per drawn step, each continuing the beam's own tokens
// (the prefix cache holds their KV). The random stream is (seed, beam,
// position), so the tokens are those one job of the summed length would
// write; generating by steps is what lets the steps be cut at token counts
// without a tokenizer here. The PRM scores the whole sample once, as usual.
#include <algorithm>

#include "actors/search_path.h"
#include "actors/trace.h"
#include "gpu/prm_format.h"

namespace flashtts {

namespace {

class BestOfN final : public SearchStrategy {
 public:
  explicit BestOfN(SearchSetup s) : s_(std::move(s)), done_(s_.params.n, false) {
    out_.resize(s_.params.n);
    if (s_.params.trace.on()) {
      paths_.resize(s_.params.n);
      for (int32_t i = 0; i < s_.params.n; ++i) paths_[i].lineage = lineage_root(i);
    }
  }

  void start(SearchHost& host) override {
    if (s_.params.trace.on()) {
      for (int32_t i = 0; i < s_.params.n; ++i) next_step(host, i);
      return;
    }
    int32_t max_tokens = s_.params.max_steps * s_.params.max_tokens_per_step;
    for (int32_t i = 0; i < s_.params.n; ++i) {
      out_[i].beam = i;
      host.generate(i, s_.prompt, max_tokens, /*stop_at_delimiter=*/false, /*greedy=*/false);
    }
  }

  void on_generated(SearchHost& host, const msg::GenDone& d) override {
    if (d.beam < 0 || d.beam >= s_.params.n) return;
    if (s_.params.trace.on()) return on_forced(host, d);
    Completion& c = out_[d.beam];
    c.text = d.text;
    c.finish = d.finish;
    c.n_tokens = (int32_t)d.tokens.size();
    c.steps = split_steps(d.text, s_.delimiter);
    msg::MapWriter ev;
    ev.put("kind", "generated").put("beam", d.beam).put("tokens", c.n_tokens).put("finish", d.finish);
    host.progress(ev);
    if (c.steps.empty()) {
      finish(host, d.beam);  // nothing to score: an empty solution scores 0
      return;
    }
    host.score(d.beam, c.steps);
  }

  void on_scored(SearchHost& host, const msg::ScoreDone& d) override {
    if (d.beam < 0 || d.beam >= s_.params.n) return;
    out_[d.beam].step_scores = d.scores;
    finish(host, d.beam);
  }

  bool finished() const override { return n_done_ == s_.params.n; }
  std::vector<Completion> completions() const override { return out_; }

 private:
  // Trace mode: the beam's next drawn step.
  void next_step(SearchHost& host, int32_t beam) {
    const SearchPath& path = paths_[beam];
    std::vector<int32_t> ctx = s_.prompt;
    ctx.insert(ctx.end(), path.tokens.begin(), path.tokens.end());
    const TraceDraw draw = trace_draw(s_.params.trace, path.lineage, (int32_t)path.steps.size(), s_.params.max_steps);
    host.generate_forced(beam, std::move(ctx), draw.tokens, /*greedy=*/false);
  }

  void on_forced(SearchHost& host, const msg::GenDone& d) {
    SearchPath& path = paths_[d.beam];
    const int32_t step = (int32_t)path.steps.size();
    const bool ends =
        forced_step_ends_beam(d, trace_draw(s_.params.trace, path.lineage, step, s_.params.max_steps).ends);
    path.append_forced(d);
    msg::MapWriter ev;
    ev.put("kind", "generated").put("beam", d.beam).put("tokens", (int32_t)d.tokens.size()).put("finish", d.finish);
    host.progress(ev);
    if (!ends) return next_step(host, d.beam);
    out_[d.beam] = path.completion(d.beam, 0);
    host.score(d.beam, path.steps);
  }

  void finish(SearchHost& host, int32_t beam) {
    if (done_[beam]) return;
    done_[beam] = true;
    ++n_done_;
    out_[beam].done_ms = host.elapsed_ms();
    msg::MapWriter ev;
    ev.put("kind", "completed").put("beam", beam).put("done", n_done_).put("total", s_.params.n);
    ev.put("step_scores", out_[beam].step_scores);
    host.progress(ev);
  }

  SearchSetup s_;
  std::vector<SearchPath> paths_;  // trace mode: each beam's steps so far
  std::vector<Completion> out_;
  std::vector<bool> done_;
  int32_t n_done_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_best_of_n(const SearchSetup& setup) { return std::make_unique<BestOfN>(setup); }

std::unique_ptr<SearchStrategy> make_strategy(const SearchSetup& setup) {
  // SolveParams::validate admits only the strategies listed here.
  const std::string& s = setup.params.strategy;
  if (s == "beam_search") return make_beam_search(setup);
  if (s == "dvts") return make_dvts(setup);
  return make_best_of_n(setup);
}

}  // namespace flashtts
