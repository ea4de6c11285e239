// Internals of Tokenizer shared by its encode/decode half (tokenizer.cpp) and
// its loaders (tokenizer_load.cpp). Not part of the public API.
//
// Thread contract: an Impl is immutable after build_tokenizer() except for
// WordCache, which locks.
#pragma once

#include <array>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gpu/tokenizer.h"

namespace flashtts {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id); open addressing, read-only after build.
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  // A later insert of the same pair replaces the earlier one (as HF's HashMap collect does).
  void insert(int32_t left, int32_t right, Merge m);
  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t key = pack(left, right);
    for (size_t h = mix(key) & mask_;; h = (h + 1) & mask_) {
      if (keys_[h] == key) return &vals_[h];
      if (keys_[h] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<uint64_t> keys_{kEmpty};
  std::vector<Merge> vals_{Merge{}};
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Pre-token bytes -> ids, shared by all encode calls. Sharded so that
// concurrent encoders rarely wait on one another; a full shard starts over.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 128;
  bool find(std::string_view word, std::vector<int32_t>* out) const;
  void insert(std::string_view word, const std::vector<int32_t>& ids) const;

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxPerShard = 1 << 14;
  struct Shard {
    std::mutex mu;
    StringMap<std::vector<int32_t>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

struct Tokenizer::Impl {
  PreTokenizer pre = PreTokenizer::Gpt2;
  bool nfc = false;            // normalizer: NFC on text outside added tokens
  bool ignore_merges = false;  // a pre-token already in the vocab is emitted whole

  StringMap<int32_t> vocab;              // byte-level string ("Ġthe") -> id, model vocab only
  std::vector<std::string> tokens;       // id -> byte-level string or added-token content
  std::vector<std::string> bytes;        // id -> the bytes it decodes to
  std::vector<uint8_t> special;          // id -> 1 for special added tokens
  std::vector<AddedToken> added;
  StringMap<int32_t> added_ids;          // content -> id
  std::array<std::vector<uint32_t>, 256> added_by_first_byte;  // indices into added, longest first
  std::array<int32_t, 256> byte_id{};    // id of the one-byte token, -1 if the vocab lacks it
  std::array<std::string, 256> byte_char;  // GPT-2 byte-to-unicode, as UTF-8
  MergeTable merges;
  WordCache cache;
};

// What a loader hands to build_tokenizer.
struct TokenizerSpec {
  std::string source;  // the file(s) it came from, for error messages
  PreTokenizer pre = PreTokenizer::Gpt2;
  bool nfc = false;
  bool ignore_merges = false;
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<AddedToken> added;
};

Expected<std::unique_ptr<Tokenizer::Impl>> build_tokenizer(TokenizerSpec spec);

// GPT-2's reversible byte <-> printable code point map.
std::array<char32_t, 256> byte_to_unicode();

}  // namespace flashtts
