// Tokenizer parity: llama.cpp's tokenizer vectors (produced with HF
// tokenizers), the derived MATH-500 ids, round trips, streaming decode, and
// errors for broken files. A tiny self-made tokenizer.json runs everywhere;
// the rest needs ../shared/testdata.
#include "gpu/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

// ------------------------------------------------------------ tiny fixture

// GPT-2's byte-to-unicode map, written out independently of the library.
std::string byte_char(int b) {
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// A 256-byte vocab + "hello", "Ġworld" merges + two added tokens, Qwen2 style.
json tiny_tokenizer_json(const std::string& pattern) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"l", "d"},
      {"Ġwor", "ld"}};
  json jm = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    jm.push_back(json::array({a, b}));
  }
  json added = json::array();
  added.push_back({{"id", 300}, {"content", "<|end|>"}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                   {"normalized", false}, {"single_word", false}});
  added.push_back({{"id", 301}, {"content", "<think>"}, {"special", false}, {"lstrip", false}, {"rstrip", false},
                   {"normalized", false}, {"single_word", false}});
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", jm}, {"ignore_merges", false}}},
  };
}

fs::path write_tiny(const json& j) {
  const fs::path dir = test::scratch_dir("tok");
  spit(dir / "tokenizer.json", j.dump());
  return dir;
}

Tokenizer tiny() {
  auto t = Tokenizer::load(write_tiny(tiny_tokenizer_json(std::string(pretokenizer_pattern(PreTokenizer::Qwen2)))));
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(*t);
}

TEST(TinyTokenizer, MergesByRankAndMapsSpacesToTheGPrefix) {
  const Tokenizer t = tiny();
  EXPECT_EQ(t.pretokenizer(), PreTokenizer::Qwen2);
  const int32_t hello = t.token_to_id("hello"), world = t.token_to_id("Ġworld");
  ASSERT_GE(hello, 256);
  ASSERT_GE(world, 256);
  EXPECT_EQ(t.encode("hello world"), (std::vector<int32_t>{hello, world}));
  EXPECT_EQ(t.id_to_token(world), "Ġworld");
  EXPECT_EQ(t.vocab_size(), 302);
}

TEST(TinyTokenizer, SplitsAddedTokensOutBeforeBpeAndDecodesThemToTheirContent) {
  const Tokenizer t = tiny();
  const int32_t hello = t.token_to_id("hello");
  EXPECT_EQ(t.encode("hello<|end|>hello"), (std::vector<int32_t>{hello, 300, hello}));
  EXPECT_EQ(t.decode(t.encode("hello<|end|>hello")), "hello<|end|>hello");
  EXPECT_EQ(t.decode(t.encode("hello<|end|>hello"), /*skip_special=*/true), "hellohello");
  EXPECT_TRUE(t.is_special(300));
  EXPECT_FALSE(t.is_special(301));
  EXPECT_EQ(t.token_to_id("<think>"), 301);
}

TEST(TinyTokenizer, TreatsSpecialTokensAsTextWhenNotParsingThemButKeepsPlainAddedTokens) {
  const Tokenizer t = tiny();
  const auto ids = t.encode("<|end|><think>", /*parse_special=*/false);
  EXPECT_EQ(ids.back(), 301);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 300), 0);
  EXPECT_EQ(t.decode(ids), "<|end|><think>");
}

TEST(TinyTokenizer, NormalizesToNfcOutsideAddedTokens) {
  const Tokenizer t = tiny();
  // "e" + COMBINING ACUTE composes to U+00E9, which is the two bytes C3 A9.
  EXPECT_EQ(t.decode(t.encode("e\xCC\x81")), "\xC3\xA9");
}

TEST(TinyTokenizer, RoundTripsArbitraryBytesIncludingInvalidUtf8ThroughTokenBytes) {
  const Tokenizer t = tiny();
  const std::string text = "a\xFF\xC3 \x80z";
  std::string raw;
  for (int32_t id : t.encode(text)) raw += t.token_bytes(id);
  EXPECT_EQ(raw, text);
  // decode() repairs invalid UTF-8 the way Rust's from_utf8_lossy does.
  EXPECT_EQ(t.decode(t.encode(text)), "a\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBDz");
}

TEST(TinyTokenizer, IsCheapToMoveAndUsableAfterTheMove) {
  Tokenizer a = tiny();
  Tokenizer b = std::move(a);
  EXPECT_EQ(b.decode(b.encode("hello")), "hello");
}

TEST(TinyTokenizer, StreamDecoderNeverEmitsHalfACharacter) {
  const Tokenizer t = tiny();
  // Every byte is its own token here, so multi-byte characters always split.
  const std::string text = "héllo 😀👍🏽 中文 👨‍👩‍👧";
  const auto ids = t.encode(text);
  StreamDecoder sd(t);
  std::string got;
  for (int32_t id : ids) {
    const std::string piece = sd.push(id);
    EXPECT_EQ(t.decode(t.encode(piece)), piece) << "partial UTF-8 emitted";
    got += piece;
  }
  got += sd.flush();
  EXPECT_EQ(got, text);
}

// ------------------------------------------------------------------ errors

TEST(TokenizerErrors, BadJsonNamesTheFile) {
  const fs::path dir = test::scratch_dir("tok");
  spit(dir / "tokenizer.json", "{\"model\": ");
  auto t = Tokenizer::load(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find((dir / "tokenizer.json").string()), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("JSON"), std::string::npos) << t.error().message;
}

TEST(TokenizerErrors, MissingMergesNamesTheFileAndTheKey) {
  json j = tiny_tokenizer_json(std::string(pretokenizer_pattern(PreTokenizer::Qwen2)));
  j["model"].erase("merges");
  auto t = Tokenizer::load(write_tiny(j));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("tokenizer.json"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("merges"), std::string::npos) << t.error().message;
}

TEST(TokenizerErrors, AMergeOutsideTheVocabularyIsReported) {
  json j = tiny_tokenizer_json(std::string(pretokenizer_pattern(PreTokenizer::Qwen2)));
  j["model"]["merges"].push_back(json::array({"zz", "q"}));
  auto t = Tokenizer::load(write_tiny(j));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("\"zz\""), std::string::npos) << t.error().message;
}

TEST(TokenizerErrors, AnUnknownSplitRegexIsReported) {
  auto t = Tokenizer::load(write_tiny(tiny_tokenizer_json("\\w+")));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("regex"), std::string::npos) << t.error().message;
}

TEST(TokenizerErrors, AnEmptyFolderAndAMissingFileAreReported) {
  const fs::path dir = test::scratch_dir("tok");
  auto t = Tokenizer::load(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find(dir.string()), std::string::npos);
  auto g = Tokenizer::from_gguf(dir / "nope.gguf");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("nope.gguf"), std::string::npos);
}

TEST(TokenizerErrors, ATruncatedOrForeignGgufIsReported) {
  const fs::path dir = test::scratch_dir("tok");
  spit(dir / "bad.gguf", "GGUF\x03\x00\x00\x00");
  auto t = Tokenizer::from_gguf(dir / "bad.gguf");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("bad.gguf"), std::string::npos);
  spit(dir / "junk.gguf", "not a gguf at all");
  auto u = Tokenizer::from_gguf(dir / "junk.gguf");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("not a GGUF"), std::string::npos);
}

TEST(TokenizerErrors, MergesTxtWithAGarbledLineNamesTheLine) {
  const fs::path dir = test::scratch_dir("tok");
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  spit(dir / "vocab.json", vocab.dump());
  spit(dir / "merges.txt", "#version: 0.2\nh e\nthis is three\n");
  auto t = Tokenizer::from_vocab_merges(dir / "vocab.json", dir / "merges.txt", PreTokenizer::Qwen2);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("merges.txt:3"), std::string::npos) << t.error().message;
}

// ------------------------------------------------------ shared test data

fs::path tokdir() { return test::testdata_dir() / "tokenizers"; }

// One tokenizer per kind, loaded once for the whole program.
const Tokenizer& shared(const std::string& which) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(which);
  if (it != cache.end()) return it->second;
  Expected<Tokenizer> t = make_error("unknown fixture " + which);
  if (which == "qwen3") t = Tokenizer::from_tokenizer_json(tokdir() / "qwen3/tokenizer.json");
  if (which == "qwen2") t = Tokenizer::load(tokdir() / "qwen2");
  if (which == "llama3") t = Tokenizer::from_tokenizer_json(tokdir() / "llama3/tokenizer.json");
  if (which == "gpt2") t = Tokenizer::from_gguf(tokdir() / "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
  if (!t.ok()) {
    ADD_FAILURE() << t.error().message;
    std::abort();
  }
  return cache.emplace(which, std::move(*t)).first->second;
}

struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> ids;
};

// As llama.cpp's test-tokenizer-0 reads them: split on the separator while
// bytes remain (the file's final separator opens no empty entry); .out has
// one line of space-separated ids per input.
Vectors read_vectors(const std::string& name) {
  const fs::path base = tokdir() / "llama.cpp-vocab" / ("ggml-vocab-" + name + ".gguf");
  const std::string raw = slurp(base.string() + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  Vectors v;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      v.inputs.push_back(raw.substr(pos));
      break;
    }
    v.inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(slurp(base.string() + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    v.ids.push_back(std::move(ids));
  }
  return v;
}

void expect_vectors(const Tokenizer& t, const std::string& name) {
  const Vectors v = read_vectors(name);
  ASSERT_EQ(v.inputs.size(), 46u);
  ASSERT_EQ(v.ids.size(), 46u);
  int matched = 0, round_trips = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    const auto ids = t.encode(v.inputs[i]);
    if (ids == v.ids[i]) ++matched;
    else ADD_FAILURE() << name << " vector " << i << " \"" << v.inputs[i] << "\" differs";
    if (t.decode(ids) == v.inputs[i]) ++round_trips;
    else ADD_FAILURE() << name << " vector " << i << " does not round-trip";
  }
  EXPECT_EQ(matched, 46);
  EXPECT_EQ(round_trips, 46);
  std::cout << "[          ] " << name << ": " << matched << "/46 ids, " << round_trips << "/46 round trips\n";
}

TEST(LlamaCppVectors, Qwen3TokenizerJsonMatchesTheQwen2Vectors) {
  FLASHTTS_REQUIRE_TESTDATA();
  expect_vectors(shared("qwen3"), "qwen2");
}

TEST(LlamaCppVectors, Qwen2VocabAndMergesMatchTheQwen2Vectors) {
  FLASHTTS_REQUIRE_TESTDATA();
  EXPECT_EQ(shared("qwen2").pretokenizer(), PreTokenizer::Qwen2);
  expect_vectors(shared("qwen2"), "qwen2");
}

TEST(LlamaCppVectors, DeepseekR1QwenVectorsMatchToo) {
  FLASHTTS_REQUIRE_TESTDATA();
  expect_vectors(shared("qwen3"), "deepseek-r1-qwen");
}

TEST(LlamaCppVectors, Llama3TokenizerJsonMatchesTheLlamaBpeVectors) {
  FLASHTTS_REQUIRE_TESTDATA();
  EXPECT_EQ(shared("llama3").pretokenizer(), PreTokenizer::Llama3);
  expect_vectors(shared("llama3"), "llama-bpe");
}

TEST(LlamaCppVectors, Gpt2GgufMatchesTheGpt2Vectors) {
  FLASHTTS_REQUIRE_TESTDATA();
  EXPECT_EQ(shared("gpt2").pretokenizer(), PreTokenizer::Gpt2);
  EXPECT_EQ(shared("gpt2").vocab_size(), 50257);
  EXPECT_TRUE(shared("gpt2").is_special(50256));
  expect_vectors(shared("gpt2"), "gpt-2");
}

TEST(DerivedIds, Qwen3TokenizerJsonMatchesAllMath500RowsAndTheChatRows) {
  FLASHTTS_REQUIRE_TESTDATA();
  const Tokenizer& t = shared("qwen3");
  std::istringstream in(slurp(tokdir() / "derived/qwen2_bpe_math500_ids.jsonl"));
  int rows = 0, matched = 0, round_trips = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json row = json::parse(line);
    const std::string text = row.at("text");
    const auto want = row.at("ids").get<std::vector<int32_t>>();
    const auto ids = t.encode(text);
    ++rows;
    if (ids == want) ++matched;
    else ADD_FAILURE() << "row " << row.at("unique_id") << " differs";
    if (t.decode(ids) == text) ++round_trips;
  }
  EXPECT_EQ(rows, 502);
  EXPECT_EQ(matched, rows);
  EXPECT_EQ(round_trips, rows);
  std::cout << "[          ] derived: " << matched << "/" << rows << " ids, " << round_trips << " round trips\n";
}

TEST(SharedTokenizers, KnowTheirSpecialTokensAndVocabSizes) {
  FLASHTTS_REQUIRE_TESTDATA();
  const Tokenizer& q = shared("qwen3");
  EXPECT_EQ(q.vocab_size(), 151669);
  EXPECT_EQ(q.token_to_id("<|im_end|>"), 151645);
  EXPECT_TRUE(q.is_special(151645));
  EXPECT_FALSE(q.is_special(q.token_to_id("<think>")));
  EXPECT_EQ(q.id_to_token(q.token_to_id("Ġthe")), "Ġthe");
  EXPECT_EQ(q.token_to_id("no such token"), -1);
  EXPECT_EQ(q.id_to_token(-1), "");
  EXPECT_EQ(q.id_to_token(1 << 20), "");
  EXPECT_EQ(shared("qwen2").vocab_size(), 151646);
  EXPECT_EQ(shared("llama3").vocab_size(), 128256);
  EXPECT_EQ(shared("llama3").token_to_id("<|begin_of_text|>"), 128000);
}

TEST(SharedTokenizers, StreamDecoderRebuildsEmojiAndCjkSplitAcrossTokens) {
  FLASHTTS_REQUIRE_TESTDATA();
  const std::string text =
      "Answer: 42 🚀🧑🏽‍🚀 (multiple emojis) 我想在apple工作1314151天～ 👨‍👩‍👧‍👦 ᄀᄀᄀ 𝔸𝔹ℂ <|im_end|>";
  for (const char* which : {"qwen3", "llama3", "gpt2"}) {
    const Tokenizer& t = shared(which);
    const auto ids = t.encode(text);
    bool split_seen = false;
    for (int32_t id : ids) {
      const auto b = t.token_bytes(id);
      if (!b.empty() && t.decode(std::vector<int32_t>{id}) != b) split_seen = true;
    }
    EXPECT_TRUE(split_seen) << which << ": the text should split some character across tokens";
    StreamDecoder sd(t);
    std::string got;
    for (int32_t id : ids) {
      const std::string piece = sd.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << which << ": a partial character leaked";
      got += piece;
    }
    got += sd.flush();
    EXPECT_EQ(got, text) << which;
  }
}

TEST(SharedTokenizers, EncodeGivesTheSameIdsFromManyThreadsAtOnce) {
  FLASHTTS_REQUIRE_TESTDATA();
  const Tokenizer& t = shared("qwen3");
  std::vector<std::string> texts;
  std::istringstream in(slurp(tokdir() / "derived/qwen2_bpe_math500_ids.jsonl"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(json::parse(line).at("text"));
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(t.encode(s));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> pool;
  for (int k = 0; k < 4; ++k)
    pool.emplace_back([&, k] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = k; i < texts.size() + k; ++i) {
          const size_t j = i % texts.size();
          if (t.encode(texts[j]) != want[j]) ++mismatches;
        }
    });
  for (auto& th : pool) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace flashtts
