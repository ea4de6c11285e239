// Turning (problem, solution steps) into the token sequence a PRM family was
// trained on, with the positions where its step scores are read.
//
// Thread contract: pure functions over a const Tokenizer; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/model_config.h"
#include "gpu/tokenizer.h"
#include "runtime/base/status.h"

namespace flashtts {

struct PrmInput {
  std::vector<int32_t> ids;
  std::vector<int32_t> score_positions;  // ascending; one per step
};

// Splits a solution into steps at `delimiter`, dropping empty steps (a
// trailing delimiter does not make an empty last step).
std::vector<std::string> split_steps(std::string_view solution, std::string_view delimiter = "\n\n");

// The family's input format:
//  Classifier (Qwen2.5-Math-PRM): ChatML with the boxed-answer system prompt,
//    the steps joined and ended by <extra_0> as the assistant turn.
//  ValueHead (Skywork-o1 PRM): BOS + problem + "\n", then each step followed
//    by the step tag ("\n").
//  LmLogits (Math-Shepherd style): problem + " " + each step followed by the
//    step tag (" ки") and "\n".
// Error when the family is not a PRM or the step tag is not a known token.
Expected<PrmInput> format_prm_input(const Tokenizer& tok, const ModelConfig& cfg, std::string_view problem,
                                    const std::vector<std::string>& steps);

// An already-formatted input: every step-tag token is a score position.
Expected<PrmInput> raw_prm_input(const Tokenizer& tok, const ModelConfig& cfg, std::string_view text);

}  // namespace flashtts
