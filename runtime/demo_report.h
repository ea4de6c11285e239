// What `flashtts demo` prints: a solve's outcome read from its result, two
// outcomes side by side (greedy decoding beside search), a running tally of
// right answers, the progress bar and the accuracy lines. Text only; the
// demo's flow is runtime/cli_demo.cpp.
//
// Thread contract: plain values and pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/client.h"

namespace flashtts::demo {

// One solve as the demo shows it.
struct Outcome {
  bool failed = false;
  std::string error;       // "code: message" when failed
  std::string answer;      // the server's chosen answer ("" = none found)
  bool right = false;      // answer matches the gold answer (eval::answers_match)
  struct Step {
    std::string text;      // newlines shown as spaces
    double score = 0;      // the PRM's score of the step
  };
  std::vector<Step> steps;  // the chosen completion's steps
  int64_t policy_tokens = 0, prm_tokens = 0;
  double latency_ms = 0;    // the server's own measure
};

// The outcome of a final frame (result or error) against `gold`.
Outcome read_outcome(const ServerFrame& frame, const std::string& gold);

// Two outcomes in two columns under their titles: each step with its PRM
// score, then, on the same lines, the answers (right or wrong) and what they
// cost. Lines too long for a column are cut with "...".
std::string side_by_side(const std::string& left_title, const Outcome& left, const std::string& right_title,
                         const Outcome& right);

// Right answers among the problems done so far, for one way of solving.
struct Tally {
  int done = 0, right = 0, failed = 0;
  int64_t policy_tokens = 0;
  void add(const Outcome& o);
  double percent() const { return done ? 100.0 * right / done : 0.0; }
};

// "[#########...............] 9/24" (width characters between the brackets).
std::string progress_bar(int done, int total, int width = 24);

// "  greedy decoding            6/12   50.0%    97 policy tokens per problem"
// (and "(2 failed)" when some failed); `label` is padded to `label_width`.
std::string accuracy_line(const std::string& label, const Tally& t, int total, int label_width);

}  // namespace flashtts::demo
