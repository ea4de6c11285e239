// Answers in solution text, and the choice among completed solutions:
// extraction of the final answer, the aggregation of a solution's step scores
// into one score, and the selection rules (naive, weighted vote, majority).
//
// Thread contract: pure functions; any thread.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flashtts {

// The last \boxed{...} (balanced braces), else what follows the last "The
// answer is", else the last number; "" when none.
std::string extract_answer(std::string_view text);

// A canonical form for comparing MATH-style answers without a computer
// algebra system: no whitespace or thin spaces; no \left/\right,
// \displaystyle, degrees, percent or dollar signs; \dfrac/\tfrac as \frac;
// \frac12 as \frac{1}{2}, \sqrt2 as \sqrt{2}; units in \text{} after a
// number dropped, a whole-answer \text{(C)} as (C); "x=5" as 5; thousands
// separators dropped; and every plain number (integer, decimal, a/b,
// \frac{a}{b}) as its reduced fraction, so 0.5, 1/2, \frac{1}{2} and
// \dfrac12 are all "1/2", and 2.0 is "2".
std::string normalize_answer(std::string_view answer);

// "last" | "min" | "prod" | "mean" over the step scores; 0 for no steps.
// REQUIRES: a method validated by SolveParams::validate.
float aggregate_scores(std::span<const float> step_scores, std::string_view method);

struct Candidate {
  std::string answer;  // normalized
  float score = 0;     // aggregated
};

// Index of the chosen candidate: "naive" = highest score; "weighted" = the
// answer with the largest sum of scores; "majority" = the most frequent
// answer (ties: the higher score sum); for votes, the best-scored candidate
// with that answer. Candidates without an answer never win a vote.
// REQUIRES: !c.empty().
size_t select_candidate(std::span<const Candidate> c, std::string_view method);

}  // namespace flashtts
