// Evaluation datasets: JSONL files of math problems with their gold answers,
// in the field layouts of the public benchmark files (MATH-500, GSM8K,
// AIME24/25, AMC23) and a plain {"problem", "answer"} one. The layout is
// detected from the fields of the first record; every later record must
// carry that layout's fields. docs/eval.md describes each layout.
//
// Thread contract: pure functions; any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"

namespace flashtts::eval {

struct Problem {
  int64_t index = 0;    // 0-based record number in the file (blank lines not counted)
  int64_t line = 0;     // 1-based line number in the file
  std::string id;       // the record's own id when it has one (unique_id, id), else ""
  std::string problem;  // the text sent to the server
  std::string answer;   // the gold answer as a string (see gold_answer_text)
};

struct Dataset {
  std::string layout;   // "math500", "gsm8k", "qwen_math", "aime25", "plain"
  std::vector<Problem> problems;
};

// Parses JSONL text; `source` names the file in errors ("FILE:LINE: ...").
Expected<Dataset> parse_dataset(std::string_view text, const std::string& source);
Expected<Dataset> read_dataset(const std::filesystem::path& file);

// What the layouts are, one line each, for help texts and errors.
std::string describe_layouts();

// The final answer of a GSM8K solution: the text after its last "####",
// trimmed; "" when there is no "####".
std::string gsm8k_final_answer(std::string_view solution);

}  // namespace flashtts::eval
