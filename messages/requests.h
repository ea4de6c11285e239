// The parameters of the three kinds of work a client can ask for (solve,
// generate, score), defined once: the client protocol carries them at the top
// level of a request, the intake forwards them to the beam manager inside a
// `start` message. read() leaves a field at its current value (the server's
// default) when the request does not set it; validate() checks ranges and
// choices, and that the text fields (problem, prompt, steps, answer_marker)
// are UTF-8, naming the field.
//
// Thread contract: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "messages/msgpack_io.h"

namespace flashtts::msg {

// What the server accepts; from the [limits] section of the configuration.
struct Limits {
  int64_t max_message_bytes = 1 << 20;
  int64_t max_problem_bytes = 16 << 10;
  int32_t max_n = 256;
  int32_t max_steps = 64;
  int32_t max_tokens_per_step = 2048;
  int32_t max_tokens = 8192;       // generate's max_tokens
  int32_t max_score_steps = 256;
  int32_t max_live_requests = 1024;
  int64_t max_deadline_ms = 24ll * 3600 * 1000;
};

// The math-trace benchmark workload (issue 20, docs/protocol.md "trace"):
// every step's length is forced to a draw from `step_tokens`, and after each
// step the solution ends with probability `end_prob`; the draws are a pure
// function of (seed, beam lineage, step index) (actors/trace.h). Off when
// step_tokens is empty.
struct TraceParams {
  std::vector<int32_t> step_tokens;  // the length table: tokens of each reference step
  double end_prob = 0;               // chance that a solution ends after a step, in (0, 1]
  uint64_t seed = 0;
  bool on() const { return !step_tokens.empty(); }
};

struct SolveParams {
  std::string problem;
  std::string strategy = "best_of_n";
  int32_t n = 4;
  int32_t beam_width = 4;
  int32_t max_steps = 8;
  int32_t max_tokens_per_step = 128;
  double temperature = 0.8;
  double top_p = 1.0;
  int32_t top_k = 0;
  uint64_t seed = 0;
  std::string aggregation = "last";  // how a solution's step scores become one score
  std::string selection = "weighted";  // how the answer is chosen among the completions
  // beam_search only (other strategies reset a server default to off; a
  // request that sets one for them is refused):
  int32_t lookahead = 0;           // greedy steps scored past the real one before selection
  bool filter_duplicates = false;  // drop active beams whose text another active beam has
  bool sort_completed = false;     // keep the n best-scored completed beams, not the first n
  // beam_search and dvts: a step whose beam's text holds this ends the beam
  // (its final answer is written); "" = off.
  std::string answer_marker = "\\boxed";
  bool return_completions = false;
  bool stream = false;
  int64_t deadline_ms = 0;           // 0 = none
  TraceParams trace;                 // benchmark only: forced step lengths

  static const std::vector<std::string_view>& fields();
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
  Status validate(const Limits& l) const;
};

struct GenerateParams {
  std::string prompt;
  bool chat = false;  // wrap the prompt in the model's chat template
  int32_t max_tokens = 256;
  double temperature = 0.0;
  double top_p = 1.0;
  int32_t top_k = 0;
  uint64_t seed = 0;
  bool stop_at_step = false;  // stop at the step delimiter
  bool stream = false;
  int64_t deadline_ms = 0;

  static const std::vector<std::string_view>& fields();
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
  Status validate(const Limits& l) const;
};

struct ScoreParams {
  std::string problem;
  std::vector<std::string> steps;
  int64_t deadline_ms = 0;

  static const std::vector<std::string_view>& fields();
  void write(MapWriter& w) const;
  Status read(const MapReader& r);
  Status validate(const Limits& l) const;
};

// The server's defaults for each kind, from the [search] section.
struct RequestDefaults {
  SolveParams solve;
  GenerateParams generate;
  ScoreParams score;
};

}  // namespace flashtts::msg
