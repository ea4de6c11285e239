// UTF-8 and the few Unicode facts the tokenizer needs: decoding with byte
// offsets, NFC, and the character classes of the split regexes (\p{L}, \p{N},
// \s as Oniguruma and the Rust regex crate define them).
//
// Thread contract: free functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flashtts::unicode {

// One decoded character and where its bytes are in the source string.
struct CodePoint {
  char32_t cp;      // kInvalid for a byte that starts no valid UTF-8 sequence
  uint32_t offset;  // byte offset of its first byte
};

// Stands in for a byte that is not valid UTF-8. It is none of letter, number
// or space, so such bytes group with punctuation and keep their raw value.
inline constexpr char32_t kInvalid = 0xFFFD;

// Decodes `text`; every invalid byte becomes its own kInvalid entry, so the
// offsets always cover the input exactly. Appends to *out (cleared first).
void decode_utf8(std::string_view text, std::vector<CodePoint>* out);

// The code point that starts at byte `pos` (REQUIRES: pos < text.size());
// *len gets its length. An invalid byte gives kInvalid with *len = 1.
char32_t decode_at(std::string_view text, size_t pos, size_t* len);

// The code point that ends just before byte `end` (REQUIRES: end > 0); *len
// gets its length.
char32_t decode_before(std::string_view text, size_t end, size_t* len);

// Appends the UTF-8 bytes of `cp` (REQUIRES: cp <= 0x10FFFF).
void append_utf8(char32_t cp, std::string* out);

// Length of the longest prefix of `bytes` that ends on a character boundary,
// holding back at most 3 trailing bytes that could still become a valid
// character once more bytes arrive.
size_t complete_utf8_prefix(std::string_view bytes);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes
// one U+FFFD.
std::string to_valid_utf8(std::string_view bytes);

// Canonical composition (NFC). Invalid UTF-8 is returned unchanged.
std::string nfc(std::string_view text);

// True when nfc(text) == text is certain without running utf8proc: every
// code point is below U+0300, where nothing composes or decomposes.
bool nfc_trivially(std::string_view text);

// \p{L}: general category Lu, Ll, Lt, Lm or Lo.
bool is_letter(char32_t cp);
// \p{N}: general category Nd, Nl or No.
bool is_number(char32_t cp);
// \s: the White_Space property (TAB..CR, space, NEL, NBSP, Zs, U+2028/2029).
bool is_space(char32_t cp);

}  // namespace flashtts::unicode
