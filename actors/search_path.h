// What beam search and DVTS share: a beam's path (the tokens and text it has
// written, split into steps, with the PRM's step scores), the rule for when a
// new step ends a beam, and the random-stream id of a job.
//
// Thread contract: plain values, owned by one strategy (the beam_manager's
// thread).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "actors/strategy.h"

namespace flashtts {

struct SearchPath {
  std::vector<int32_t> tokens;     // generated ids of every step (the context after the prompt)
  std::string text;                // their text, steps concatenated
  std::vector<std::string> steps;  // split_steps(text): empty pieces dropped, delimiters removed
  std::vector<float> step_scores;  // the PRM's score of each step of `scored_steps`
  std::vector<std::string> scored_steps;  // the steps step_scores belong to
  std::string finish;              // how the last step's generation ended
  // Trace mode (actors/trace.h): the path's lineage, and the token count of
  // each step (each forced generation is exactly one step).
  uint64_t lineage = 0;
  std::vector<int32_t> step_tokens;

  // Appends one generated step. A step's text may run past the delimiter
  // ("\n\nThe"), so appending can change the last step: the scores belong
  // to the steps as they were when scored.
  void append(const msg::GenDone& d, const std::string& delimiter);
  // Appends one forced step (trace mode): its text is one step whatever it
  // holds, the delimiter included.
  void append_forced(const msg::GenDone& d);
  // True when the current steps are the scored ones: a step that adds no
  // step (a bare delimiter, an empty text) needs no scoring; the beam keeps
  // the score of its last real step.
  bool scored() const { return scored_steps == steps; }
  // The PRM's scores of `steps` followed by anything else that was scored
  // with them (look-ahead steps); keeps the first steps.size(). With a trace
  // (trace mode) the steps scored for the first time get their drawn score
  // (TraceDraw::score) instead, so the ranking is the same for every variant.
  void take_scores(const std::vector<float>& scores, const msg::TraceParams* trace = nullptr, int32_t max_steps = 0);
  Completion completion(int32_t beam, double done_ms) const;
};

// Whether the step just appended to `path` ends its beam, as the reference
// decides: its generation stopped at EOS or at its token limit (a step cut
// off mid-way is not continued), it was empty, or the beam's text now holds
// the answer marker ("" = no marker).
bool step_ends_beam(const msg::GenDone& step, const SearchPath& path, const std::string& answer_marker);

// Trace mode: the forced step just appended ends its beam when the draw says
// so, or when its generation stopped short of the drawn length (the model's
// last position); the answer marker and EOS mean nothing in random text.
inline bool forced_step_ends_beam(const msg::GenDone& step, bool drawn_end) {
  return drawn_end || step.finish != "forced";
}

// A job's priority for the beam on `path` (GenJob::priority): its
// aggregated PRM score so far, in millionths; 0 before its first score.
int32_t beam_priority(const SearchPath& path, std::string_view aggregation);

// The beam id (the random stream) of a generation job: unique per iteration
// and slot, so copies of one beam diverge and no two jobs of an iteration
// share a stream. REQUIRES: 0 <= slot < n.
inline int32_t stream_id(int32_t iteration, int32_t slot, int32_t n) { return iteration * n + slot; }

}  // namespace flashtts
