// Evaluation metrics: from the completions one solve returns (each with its
// answer and aggregated score), the answers the three selection rules pick
// (naive, weighted vote, majority vote — the server's own rule,
// select_candidate in actors/answer.h), whether each is right, pass@N; and
// the accuracy, latency and token figures over many problems.
//
// Thread contract: plain values and pure functions; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flashtts::eval {

// The three selection rules, in the order they are reported.
inline constexpr const char* kMethods[] = {"naive", "weighted", "majority"};
inline constexpr int kNumMethods = 3;

// One completion as the solve result returns it.
struct CompletionAnswer {
  std::string answer;  // as extracted by the server, not normalized
  float score = 0;     // aggregated step score
};

// A predicted answer is right when its normalized form is non-empty and
// equals the normalized gold answer.
bool answers_match(std::string_view gold, std::string_view predicted);

// The answers chosen from one problem's completions.
struct Selection {
  std::string predicted[kNumMethods];  // naive, weighted, majority (as written)
  bool correct[kNumMethods] = {};
  bool pass = false;                   // pass@N: some completion is right
};

// REQUIRES: !completions.empty().
Selection select_answers(std::string_view gold, std::span<const CompletionAnswer> completions);

// One problem's outcome at one N: what the JSONL line holds.
struct Outcome {
  std::string label;       // the run: a strategy name, "greedy", or "" (the server's default)
  int64_t index = 0;       // the dataset's record number
  std::string id;          // the record's own id ("" when none)
  std::string gold;
  int n = 0;
  bool failed = false;     // the server answered with an error (or none came)
  std::string error;       // "code: message" when failed
  Selection sel;
  int completions = 0;
  std::string server_answer;  // the answer the server chose with its selection
  double latency_ms = 0;
  int64_t policy_tokens = 0;
  int64_t prm_tokens = 0;
  int64_t prm_tokens_computed = 0;
  double goodput_tokens_per_s = 0;
};

// What one N's run comes to. Accuracies count a failed problem as wrong
// (their denominator is every problem run); means are over the problems that
// got a result.
struct Summary {
  std::string label;  // as Outcome::label
  int n = 0;
  int problems = 0;
  int failed = 0;
  double accuracy[kNumMethods] = {};  // fractions in [0, 1]
  double pass_at_n = 0;
  double mean_latency_ms = 0;
  double policy_tokens_per_problem = 0;
  double prm_tokens_per_problem = 0;  // PRM tokens computed (not served from its cache)
  double mean_goodput_tokens_per_s = 0;
};

Summary summarize(int n, std::span<const Outcome> outcomes, std::string label = "");

}  // namespace flashtts::eval
