#include "runtime/eval_metrics.h"

#include <cassert>

#include "actors/answer.h"

namespace flashtts::eval {

bool answers_match(std::string_view gold, std::string_view predicted) {
  std::string g = normalize_answer(gold);
  return !g.empty() && g == normalize_answer(predicted);
}

Selection select_answers(std::string_view gold, std::span<const CompletionAnswer> completions) {
  assert(!completions.empty());
  std::vector<Candidate> cands;
  cands.reserve(completions.size());
  Selection s;
  for (const CompletionAnswer& c : completions) {
    cands.push_back({normalize_answer(c.answer), c.score});
    s.pass = s.pass || answers_match(gold, c.answer);
  }
  for (int m = 0; m < kNumMethods; ++m) {
    size_t k = select_candidate(cands, kMethods[m]);
    s.predicted[m] = completions[k].answer;
    s.correct[m] = answers_match(gold, s.predicted[m]);
  }
  return s;
}

Summary summarize(int n, std::span<const Outcome> outcomes, std::string label) {
  Summary s;
  s.label = std::move(label);
  s.n = n;
  s.problems = int(outcomes.size());
  int ok = 0;
  for (const Outcome& o : outcomes) {
    if (o.failed) {
      ++s.failed;
      continue;
    }
    ++ok;
    for (int m = 0; m < kNumMethods; ++m) s.accuracy[m] += o.sel.correct[m];
    s.pass_at_n += o.sel.pass;
    s.mean_latency_ms += o.latency_ms;
    s.policy_tokens_per_problem += double(o.policy_tokens);
    s.prm_tokens_per_problem += double(o.prm_tokens_computed);
    s.mean_goodput_tokens_per_s += o.goodput_tokens_per_s;
  }
  if (s.problems > 0) {
    for (double& a : s.accuracy) a /= s.problems;
    s.pass_at_n /= s.problems;
  }
  if (ok > 0) {
    s.mean_latency_ms /= ok;
    s.policy_tokens_per_problem /= ok;
    s.prm_tokens_per_problem /= ok;
    s.mean_goodput_tokens_per_s /= ok;
  }
  return s;
}

}  // namespace flashtts::eval
