// Byte-level BPE tokenizer that matches Hugging Face `tokenizers` id for id
// for Qwen2 / Qwen2.5 / Qwen3, Llama 3 and GPT-2.
//
// encode: added tokens are cut out of the raw text first (leftmost, longest
// match), then each remaining piece is normalized (NFC for Qwen2), split by
// the pre-tokenizer regex (gpu/pretokenizer.h), mapped through GPT-2's
// byte-to-unicode table and merged by rank. decode reverses the byte map;
// added tokens decode to their content.
//
// Thread contract: built once by a loader, then read-only; encode, decode and
// every other const method may run concurrently from any number of threads
// (the word cache inside is mutex-protected). Cheap to move.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/pretokenizer.h"
#include "runtime/base/status.h"

namespace flashtts {

// A token matched in the raw text before BPE (tokenizer.json "added_tokens").
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // dropped by decode(skip_special); not matched when !parse_special
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // matches only between non-word characters
  bool normalized = false;   // recorded; matching is always on the raw text
};

class Tokenizer {
 public:
  // A Hugging Face folder: tokenizer.json if present, else vocab.json +
  // merges.txt (+ tokenizer_config.json's added_tokens_decoder or
  // added_tokens.json; tokenizer_class picks the pre-tokenizer).
  static Expected<Tokenizer> load(const std::filesystem::path& dir);
  static Expected<Tokenizer> from_tokenizer_json(const std::filesystem::path& file);
  static Expected<Tokenizer> from_vocab_merges(const std::filesystem::path& vocab_json,
                                               const std::filesystem::path& merges_txt, PreTokenizer pre);
  // A GGUF file whose tokenizer.ggml.model is "gpt2" (byte-level BPE).
  static Expected<Tokenizer> from_gguf(const std::filesystem::path& gguf);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // parse_special: special added tokens in the text are matched and emitted as
  // their ids. When false they are tokenized as plain text; non-special added
  // tokens (Qwen3's <think>) are still matched, as HF's encode_special_tokens does.
  // No BOS/EOS is added.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // Invalid UTF-8 in the result becomes U+FFFD, as HF's decode does.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The raw bytes of one token (no U+FFFD repair); "" for unknown ids.
  std::string_view token_bytes(int32_t id) const;

  int32_t token_to_id(std::string_view token) const;  // -1 when unknown (vocab or added token, exact string)
  std::string id_to_token(int32_t id) const;          // raw vocab string ("Ġthe"), "" if out of range
  int32_t vocab_size() const;                          // 1 + highest id (vocab and added tokens)
  bool is_special(int32_t id) const;
  PreTokenizer pretokenizer() const;
  const std::vector<AddedToken>& added_tokens() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Streaming-safe decode: push ids one at a time; returns only complete UTF-8
// characters (bytes of a character split across tokens are held back until
// complete); flush() returns the rest (an unfinished character as U+FFFD).
//
// Thread contract: one owner thread; the Tokenizer must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false);
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;  // bytes of an unfinished character, at most 3
};

}  // namespace flashtts
