// A minimal GGUF (v2/v3) metadata reader: just the tokenizer.ggml.* keys a
// byte-level BPE tokenizer needs. Tensor data is never read, so a multi-GB
// model file costs only its header.
//
// Thread contract: a free function returning a plain value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/base/status.h"

namespace flashtts {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class GgufTokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct GgufVocab {
  std::string model;                  // tokenizer.ggml.model ("gpt2" for byte-level BPE)
  std::string pre;                    // tokenizer.ggml.pre ("gpt-2", "qwen2", "llama-bpe"); "" if absent
  std::vector<std::string> tokens;    // tokenizer.ggml.tokens, index = id
  std::vector<int32_t> token_types;   // tokenizer.ggml.token_type, parallel to tokens; empty if absent
  std::vector<std::string> merges;    // tokenizer.ggml.merges, "a b", rank order
  int32_t bos_id = -1;                // tokenizer.ggml.bos_token_id
  int32_t eos_id = -1;                // tokenizer.ggml.eos_token_id
};

// Reads the metadata of `file`. Errors name the file and what is wrong
// (not GGUF, unsupported version, truncated, a key of the wrong type).
Expected<GgufVocab> read_gguf_vocab(const std::filesystem::path& file);

}  // namespace flashtts
