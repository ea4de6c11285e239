// The split regexes, checked piece by piece. Expected splits were produced by
// HF tokenizers' pre_tokenizers.Split(Regex(pattern), "isolated") (0.19.1).
// Also the UTF-8 helpers the tokenizer relies on. Needs no test data.
#include "gpu/pretokenizer.h"

#include <gtest/gtest.h>

#include "gpu/unicode.h"

namespace flashtts {
namespace {

std::vector<std::string> split(PreTokenizer p, std::string_view text) {
  std::vector<unicode::CodePoint> cps;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  split_pretokens(p, text, &cps, &ranges);
  std::vector<std::string> out;
  for (auto [b, e] : ranges) out.emplace_back(text.substr(b, e - b));
  return out;
}

using V = std::vector<std::string>;
constexpr auto kQwen2 = PreTokenizer::Qwen2;
constexpr auto kLlama3 = PreTokenizer::Llama3;
constexpr auto kGpt2 = PreTokenizer::Gpt2;

TEST(Pretokenizer, AWhitespaceRunGivesBackOneSpaceToTheWordAfterIt) {
  for (auto p : {kQwen2, kLlama3, kGpt2}) EXPECT_EQ(split(p, "  Hello world"), (V{" ", " Hello", " world"}));
  for (auto p : {kQwen2, kLlama3, kGpt2}) EXPECT_EQ(split(p, "end  "), (V{"end", "  "}));
}

TEST(Pretokenizer, QwenAndLlamaKeepAWhitespaceRunUpToItsLastNewlineGpt2DoesNot) {
  EXPECT_EQ(split(kQwen2, "a \r\n\r\n  \nb"), (V{"a", " \r\n\r\n  \n", "b"}));
  EXPECT_EQ(split(kLlama3, "a \r\n\r\n  \nb"), (V{"a", " \r\n\r\n  \n", "b"}));
  EXPECT_EQ(split(kGpt2, "a \r\n\r\n  \nb"), (V{"a", " \r\n\r\n  ", "\n", "b"}));
}

TEST(Pretokenizer, DigitsGoOneAtATimeForQwenThreeAtATimeForLlamaAllAtOnceForGpt2) {
  EXPECT_EQ(split(kQwen2, "x12345 y"), (V{"x", "1", "2", "3", "4", "5", " y"}));
  EXPECT_EQ(split(kLlama3, "x12345 y"), (V{"x", "123", "45", " y"}));
  EXPECT_EQ(split(kGpt2, "x12345 y"), (V{"x", "12345", " y"}));
}

TEST(Pretokenizer, ContractionsIgnoreCaseOnlyInTheNewerPatterns) {
  EXPECT_EQ(split(kQwen2, "I'M DON'T we'Ve"), (V{"I", "'M", " DON", "'T", " we", "'Ve"}));
  EXPECT_EQ(split(kGpt2, "I'M DON'T we'Ve"), (V{"I", "'", "M", " DON", "'", "T", " we", "'", "Ve"}));
}

TEST(Pretokenizer, PunctuationTakesItsTrailingNewlinesAndATabJoinsTheNextWord) {
  EXPECT_EQ(split(kQwen2, "\tfoo!!\n\nbar"), (V{"\tfoo", "!!\n\n", "bar"}));
  EXPECT_EQ(split(kGpt2, "\tfoo!!\n\nbar"), (V{"\t", "foo", "!!", "\n", "\n", "bar"}));
  EXPECT_EQ(split(kLlama3, "($x$)\n"), (V{"($", "x", "$)\n"}));
  EXPECT_EQ(split(kGpt2, "($x$)\n"), (V{"($", "x", "$)", "\n"}));
}

TEST(Pretokenizer, RecognizesItsOwnPatternStringsAndNoOthers) {
  for (auto p : {kQwen2, kLlama3, kGpt2}) EXPECT_EQ(pretokenizer_from_pattern(pretokenizer_pattern(p)), p);
  EXPECT_FALSE(pretokenizer_from_pattern("\\w+").has_value());
}

TEST(Pretokenizer, CoversEveryByteOfInvalidUtf8) {
  const std::string text = "ab\xFF\xFE cd\xE2\x82";
  std::string joined;
  for (const auto& piece : split(kQwen2, text)) joined += piece;
  EXPECT_EQ(joined, text);
}

TEST(Unicode, HoldsBackOnlyAnUnfinishedCharacter) {
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xF0\x9F\x98"), 1u);   // 3 of 4 bytes of an emoji
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xF0\x9F\x98\x80"), 5u);
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xC3"), 1u);
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xFF"), 2u);           // can never complete
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xE0\x80"), 3u);       // overlong: never valid
}

TEST(Unicode, RepairsInvalidBytesLikeRustFromUtf8Lossy) {
  EXPECT_EQ(unicode::to_valid_utf8("a\xE2\x82z"), "a\xEF\xBF\xBDz");                // one U+FFFD for a cut sequence
  EXPECT_EQ(unicode::to_valid_utf8("\xF0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");        // F0 80 is two errors
  EXPECT_EQ(unicode::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(Unicode, ClassifiesLettersNumbersAndWhitespaceAsTheRegexesDo) {
  EXPECT_TRUE(unicode::is_letter(U'\u00e9'));
  EXPECT_TRUE(unicode::is_letter(U'\u6211'));
  EXPECT_FALSE(unicode::is_letter(U'\u0301'));  // a combining mark is Mn, not L
  EXPECT_TRUE(unicode::is_number(U'\uff11'));   // full-width digit (Nd)
  EXPECT_TRUE(unicode::is_number(U'\u00b2'));   // superscript two (No)
  EXPECT_TRUE(unicode::is_space(U'\u3000'));
  EXPECT_TRUE(unicode::is_space(U'\u0085'));
  EXPECT_FALSE(unicode::is_space(U'\u200b'));   // zero-width space is Cf
  EXPECT_EQ(unicode::nfc("e\xCC\x81"), "\xC3\xA9");
}

}  // namespace
}  // namespace flashtts
