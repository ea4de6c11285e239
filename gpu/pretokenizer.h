// The split step of byte-level BPE tokenizers: cuts text into the pieces
// ("pre-tokens") that BPE then merges independently. Hand-written matchers
// reproduce the three regexes below exactly as a backtracking engine
// (Oniguruma, used by Hugging Face tokenizers) runs them: alternatives tried in
// order at each position, the first that matches wins, greedy quantifiers.
//
//   Qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
//           | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Llama3: the same with \p{N}{1,3}
//   Gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Thread contract: free functions over values; safe from any thread.
#pragma once

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "gpu/unicode.h"

namespace flashtts {

enum class PreTokenizer { Qwen2, Llama3, Gpt2 };

const char* pretokenizer_name(PreTokenizer p);

// The regex string a tokenizer.json Split step carries for `p`.
std::string_view pretokenizer_pattern(PreTokenizer p);

// Which of ours a tokenizer.json regex is; nullopt for any other pattern.
std::optional<PreTokenizer> pretokenizer_from_pattern(std::string_view regex);

// Byte ranges [first, second) of `text`, in order, covering it exactly.
// `cps` is scratch space (decoded code points), reused across calls.
void split_pretokens(PreTokenizer p, std::string_view text, std::vector<unicode::CodePoint>* cps,
                     std::vector<std::pair<uint32_t, uint32_t>>* out);

}  // namespace flashtts
