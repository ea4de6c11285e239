// The sampling defaults a model folder's generation_config.json recommends
// (Hugging Face `GenerationConfig`): temperature, top_p and top_k. The
// server makes them the defaults of requests that do not set them
// (runtime/generation_defaults.h; docs/models.md "Sampling defaults").
//
// Read: `temperature` (a number in [0, 100]), `top_p` (in (0, 1]), `top_k`
// (an integer >= 0), each optional, null = absent. `do_sample: false` means
// the model's authors ask for greedy decoding, where Hugging Face ignores
// the sampling keys; flashtts then ignores them too (its own defaults stay).
// Other keys (repetition_penalty, max_new_tokens, ...) are not read. A file
// that is not JSON, or a key of the wrong type or out of range, is an error
// naming the file and the key: a model's recommendation silently dropped
// would change results without a word.
//
// Thread contract: a free function with no shared state; call from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runtime/base/status.h"

namespace flashtts {

struct SamplingDefaults {
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int32_t> top_k;
  std::filesystem::path file;  // the generation_config.json read ("" when absent)
  bool empty() const { return !temperature && !top_p && !top_k; }
};

// The sampling defaults of the model folder `dir`; all absent when it has
// no generation_config.json or the file says do_sample: false.
Expected<SamplingDefaults> read_sampling_defaults(const std::filesystem::path& dir);

}  // namespace flashtts
