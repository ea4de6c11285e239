// A search strategy: the per-request algorithm that turns generation and
// scoring jobs into completed solutions. The beam manager drives it: start()
// once, then on_generated()/on_scored() as results come back, until
// finished(). best-of-N lives here; beam search and DVTS implement the same
// interface.
//
// Thread contract: owned and called by the beam_manager actor only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "messages/internal.h"
#include "messages/msgpack_io.h"

namespace flashtts {

// A finished solution path.
struct Completion {
  int32_t beam = 0;
  std::string text;                // the whole generated solution
  std::vector<std::string> steps;  // text split at the step delimiter
  std::vector<float> step_scores;  // PRM score of each step
  std::string finish;              // how its generation ended ("eos", "length", ...)
  int32_t n_tokens = 0;            // policy tokens generated for it
};

// What a strategy may ask of the beam manager.
class SearchHost {
 public:
  virtual ~SearchHost() = default;
  // Queues generation from `tokens` for `beam`; returns the job id.
  virtual uint64_t generate(int32_t beam, std::vector<int32_t> tokens, int32_t max_tokens, bool stop_at_delimiter) = 0;
  // Queues PRM scoring of `steps` (of this request's problem) for `beam`.
  virtual uint64_t score(int32_t beam, std::vector<std::string> steps) = 0;
  // A progress event for streaming clients (sent only when they asked).
  virtual void progress(const msg::MapWriter& event) = 0;
};

// What every strategy starts from.
struct SearchSetup {
  msg::SolveParams params;
  std::vector<int32_t> prompt;  // the policy prompt, chat template applied
  std::string delimiter;        // the step delimiter
};

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  virtual void start(SearchHost& host) = 0;
  virtual void on_generated(SearchHost& host, const msg::GenDone& done) = 0;
  virtual void on_scored(SearchHost& host, const msg::ScoreDone& done) = 0;
  virtual bool finished() const = 0;
  // REQUIRES: finished().
  virtual std::vector<Completion> completions() const = 0;
};

// best_of_n: n independent samples to EOS or the token limit
// (max_steps * max_tokens_per_step), each scored step by step by the PRM.
std::unique_ptr<SearchStrategy> make_best_of_n(const SearchSetup& setup);

// By the request's strategy name (validated by SolveParams::validate).
std::unique_ptr<SearchStrategy> make_strategy(const SearchSetup& setup);

}  // namespace flashtts
