// The math-trace benchmark workload (issue 20): forced step lengths drawn from
// a table of reference step lengths (bench/data/math500_step_lengths.tsv),
// with the solution ending after each step with a fixed probability.
//
// A draw is a pure function of (trace seed, beam lineage, step index), never
// of job ids, timing or batching, so every pipeline configuration does the
// same work, and a step computed early (look-ahead, speculation) has the
// length it has when generated normally.
//
// A beam's lineage names its path: best_of_n's beam i and the strategies'
// first beams are lineage_root(i); a beam copied from a parent (a beam_search
// survivor's copies, a DVTS subtree's candidates) is lineage_child(parent, c).
// Copy 0 keeps its parent's lineage, so it writes the steps the parent would
// have written next.
//
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "messages/requests.h"
#include "runtime/base/status.h"

namespace flashtts {

uint64_t lineage_root(int32_t index);
uint64_t lineage_child(uint64_t parent, int32_t copy);

struct TraceDraw {
  int32_t tokens = 0;  // the step's forced length, an entry of step_tokens
  bool ends = false;   // the solution ends after this step
  // The step's score for the ranking, uniform in [0, 1): the random models'
  // PRM scores depend on the text, which a policy (speculation) changes, so
  // ranking by them would let variants keep different beams and do
  // different work; the search ranks by this draw instead.
  float score = 0;
};

// Step `step` (0-based) of the beam with `lineage`. The last allowed step
// (step + 1 >= max_steps) always ends. REQUIRES: trace.on().
TraceDraw trace_draw(const msg::TraceParams& trace, uint64_t lineage, int32_t step, int32_t max_steps);

// The token column of a step-length table as tools/step_lengths.py writes it
// (bench/data/math500_step_lengths.tsv: '#' comments, a header line, then
// "tokens<TAB>chars<TAB>id" lines). Error naming the file and line when it is
// unreadable or a length is not a positive integer.
Expected<std::vector<int32_t>> read_step_table(const std::filesystem::path& path);

}  // namespace flashtts
