#include "actors/search_path.h"

#include <algorithm>
#include <cmath>

#include "actors/answer.h"
#include "actors/trace.h"
#include "gpu/prm_format.h"

namespace flashtts {

void SearchPath::append(const msg::GenDone& d, const std::string& delimiter) {
  tokens.insert(tokens.end(), d.tokens.begin(), d.tokens.end());
  text += d.text;
  finish = d.finish;
  // Split the whole text, not just the new piece: the steps are then exactly
  // what best-of-N would score for the same text.
  steps = split_steps(text, delimiter);
}

void SearchPath::append_forced(const msg::GenDone& d) {
  tokens.insert(tokens.end(), d.tokens.begin(), d.tokens.end());
  text += d.text;
  finish = d.finish;
  steps.push_back(d.text);
  step_tokens.push_back((int32_t)d.tokens.size());
}

void SearchPath::take_scores(const std::vector<float>& scores, const msg::TraceParams* trace, int32_t max_steps) {
  if (trace && trace->on()) {
    step_scores.resize(std::min(step_scores.size(), steps.size()));
    for (size_t i = step_scores.size(); i < steps.size(); ++i)
      step_scores.push_back(trace_draw(*trace, lineage, (int32_t)i, max_steps).score);
  } else {
    step_scores.assign(scores.begin(), scores.begin() + (ptrdiff_t)std::min(scores.size(), steps.size()));
  }
  scored_steps = steps;
}

Completion SearchPath::completion(int32_t beam, double done_ms) const {
  Completion c;
  c.beam = beam;
  c.text = text;
  c.steps = steps;
  c.step_scores = step_scores;
  c.finish = finish;
  c.n_tokens = (int32_t)tokens.size();
  c.step_tokens = step_tokens;
  c.done_ms = done_ms;
  return c;
}

bool step_ends_beam(const msg::GenDone& step, const SearchPath& path, const std::string& answer_marker) {
  // The reference's generate_k_steps maps every stop that is not the step
  // delimiter (EOS and the token limit alike) to "EOS", which ends the beam.
  if (step.finish != "delimiter") return true;
  if (step.text.empty()) return true;
  return !answer_marker.empty() && path.text.find(answer_marker) != std::string::npos;
}

int32_t beam_priority(const SearchPath& path, std::string_view aggregation) {
  if (path.step_scores.empty()) return 0;
  const double s = aggregate_scores(path.step_scores, aggregation);
  if (!std::isfinite(s)) return 0;
  return (int32_t)std::lround(std::clamp(s, -2000.0, 2000.0) * 1e6);
}

}  // namespace flashtts
