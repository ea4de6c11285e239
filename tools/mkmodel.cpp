// flashtts-mkmodel: writes a random-weight Hugging Face model folder of a
// supported architecture (config.json, model.safetensors or shards + index,
// generation_config.json, a byte-level BPE tokenizer.json and
// tokenizer_config.json), loadable by transformers and by flashtts.
//
// Weights: each tensor draws from its own generator, seeded from --seed and
// the tensor's name (splitmix64 -> xoshiro256**, Box-Muller normals), so the
// values do not depend on sharding or write order. Linear weights and
// embeddings ~ N(0, std); RMSNorm weights 1 + N(0, std); biases N(0, std).
// Tensors stream to disk in chunks: a 7B model never sits in memory.
// --no-weights writes everything but the weights: a folder for a simulated
// device (docs/sim.md), which reads only config.json and the tokenizer.
//
// Usage: see docs/models.md or `flashtts-mkmodel --help`.
#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gpu/model_loader.h"
#include "gpu/safetensors_writer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;
using namespace flashtts;

// ---------------------------------------------------------------------------
// Random numbers (fixed algorithms, so every platform writes the same model)

namespace {

uint64_t splitmix64(uint64_t* s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

class Rng {
 public:
  Rng(uint64_t seed, const std::string& tensor_name) {
    uint64_t s = seed ^ fnv1a64(tensor_name);
    for (auto& x : s_) x = splitmix64(&s);
  }
  uint64_t next() {  // xoshiro256**
    const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {                                                 // Box-Muller, one of the pair
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - uniform(), u2 = uniform();  // u1 in (0, 1]
    double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0;
  bool have_spare_ = false;
};

// ---------------------------------------------------------------------------
// Byte-level BPE tokenizer of exactly V entries

// GPT-2's byte -> printable code point table, in vocabulary order: the
// printable Latin-1 bytes keep their code point, the rest map to 256 + n.
std::vector<std::pair<uint8_t, std::string>> byte_symbols() {
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {  // < 0x800 for every code point used here
      s += char(0xc0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3f));
    }
    return s;
  };
  std::vector<std::pair<uint8_t, std::string>> out;
  std::vector<bool> kept(256, false);
  for (int b = 0; b < 256; ++b)
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) {
      kept[b] = true;
      out.push_back({uint8_t(b), utf8(uint32_t(b))});
    }
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b)
    if (!kept[b]) out.push_back({uint8_t(b), utf8(256 + n++)});
  return out;
}

// A small English / arithmetic sample; the first merges are learned from it.
const char* kCorpus =
    "the quick brown fox jumps over the lazy dog. the answer is the number of ways to choose the "
    "first and the second term. let x be the solution of the equation, then we have that the sum of "
    "the digits is equal to the product of the roots. therefore the final answer is in the box. we "
    "need to find the value of the expression when the integer is positive and the fraction is in "
    "lowest terms. step one: compute the total. step two: subtract the remainder and divide by the "
    "common factor. since the triangle has three sides, the perimeter is the sum of their lengths. "
    "this means that the probability of the event is one half, and the expected value is zero. so "
    "there are ten more apples than oranges in the basket, which is what we wanted to show. first, "
    "note that every prime number greater than two is odd. second, the square of an odd number is "
    "odd. thus the statement holds for all natural numbers, and the proof is complete. The The In In "
    "Let Let We We So So Therefore Thus Since Then Step Step Answer Answer the of and to in is that "
    "for with as on by at from this which are be it an or not we can has have was were will would";

struct Vocab {
  std::vector<std::string> tokens;  // id -> symbol string
  std::vector<std::pair<std::string, std::string>> merges;
  std::unordered_set<std::string> have;
  bool add(const std::string& a, const std::string& b) {
    std::string t = a + b;
    if (have.count(t)) return false;
    have.insert(t);
    tokens.push_back(t);
    merges.push_back({a, b});
    return true;
  }
};

// Byte-level symbols of the corpus words (GPT-2 style: a word keeps its
// leading space, which byte-level maps to "Ġ").
std::vector<std::vector<std::string>> corpus_words(const std::vector<std::string>& sym) {
  std::vector<std::vector<std::string>> words;
  std::string text = kCorpus;
  size_t i = 0;
  while (i < text.size()) {
    std::vector<std::string> w;
    if (text[i] == ' ') w.push_back(sym[uint8_t(' ')]), ++i;
    if (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) {
      while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) w.push_back(sym[uint8_t(text[i++])]);
    } else if (i < text.size() && text[i] != ' ') {
      w.push_back(sym[uint8_t(text[i++])]);
    }
    if (!w.empty()) words.push_back(std::move(w));
  }
  return words;
}

Vocab build_vocab(int64_t n_regular) {
  Vocab v;
  auto bytes = byte_symbols();
  std::vector<std::string> sym(256);
  for (auto& [b, s] : bytes) {
    sym[b] = s;
    v.tokens.push_back(s);
    v.have.insert(s);
  }
  // 1. Learn merges from the corpus (most frequent pair first; ties by text).
  auto words = corpus_words(sym);
  while (int64_t(v.tokens.size()) < n_regular) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& w : words)
      for (size_t k = 0; k + 1 < w.size(); ++k) ++counts[{w[k], w[k + 1]}];
    const std::pair<std::string, std::string>* best = nullptr;
    int best_n = 1;
    for (const auto& [p, n] : counts)
      if (n > best_n) best = &p, best_n = n;
    if (!best) break;
    auto pair = *best;
    v.add(pair.first, pair.second);  // false when another pair made the same string: just apply it
    for (auto& w : words) {
      std::vector<std::string> nw;
      for (size_t k = 0; k < w.size(); ++k) {
        if (k + 1 < w.size() && w[k] == pair.first && w[k + 1] == pair.second) {
          nw.push_back(pair.first + pair.second);
          ++k;
        } else {
          nw.push_back(w[k]);
        }
      }
      w = std::move(nw);
    }
  }
  // 2. Fill up: extend tokens by one lowercase letter or digit, oldest
  //    tokens first, starting with "Ġ" + letter words and letter pairs.
  std::vector<std::string> ext;
  for (char c = 'a'; c <= 'z'; ++c) ext.push_back(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) ext.push_back(std::string(1, c));
  std::vector<std::string> stems = {sym[uint8_t(' ')]};
  for (char c = 'a'; c <= 'z'; ++c) stems.push_back(std::string(1, c));
  for (size_t i = 256; i < v.tokens.size(); ++i) stems.push_back(v.tokens[i]);
  for (size_t i = 0; int64_t(v.tokens.size()) < n_regular; ++i) {
    if (i == stems.size()) {  // ran out: every token made so far becomes a stem
      for (size_t k = 256; k < v.tokens.size(); ++k) stems.push_back(v.tokens[k]);
      if (i == stems.size()) break;  // cannot happen: tokens only grow
    }
    const std::string stem = stems[i];
    for (const auto& e : ext) {
      if (int64_t(v.tokens.size()) >= n_regular) break;
      v.add(stem, e);
    }
  }
  return v;
}

// The Qwen2 pre-tokenizer split pattern (as in Qwen2's tokenizer.json).
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

const char* kChatTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct Special {
  std::string text;
  int32_t id;
};

ordered_json byte_level(bool add_prefix_space = false) {
  return ordered_json{{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", false},
                      {"use_regex", false}};
}

// Returns the text of tokenizer.json. The vocabulary object is serialised by
// hand: ordered_json looks keys up linearly, far too slow for 150k entries.
std::string tokenizer_json(const Vocab& v, const std::vector<Special>& specials) {
  ordered_json added = ordered_json::array();
  for (const auto& s : specials)
    added.push_back({{"id", s.id}, {"content", s.text}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  std::string vocab = "{";
  for (size_t i = 0; i < v.tokens.size(); ++i)
    vocab += (i ? ", " : "") + json(v.tokens[i]).dump() + ": " + std::to_string(i);
  vocab += "}";
  const char* kPlaceholder = "@@flashtts-vocab@@";
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : v.merges) merges.push_back(a + " " + b);
  ordered_json t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = added;
  t["normalizer"] = {{"type", "NFC"}};
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", kQwen2Regex}}}, {"behavior", "Isolated"}, {"invert", false}},
        byte_level()}}};
  t["post_processor"] = byte_level();
  t["decoder"] = byte_level();
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", kPlaceholder},
                {"merges", merges}};
  std::string text = t.dump(2);
  const std::string quoted = std::string("\"") + kPlaceholder + "\"";
  text.replace(text.find(quoted), quoted.size(), vocab);
  return text;
}

// ---------------------------------------------------------------------------
// Options and presets

struct Options {
  std::string out, arch = "qwen2", preset, dtype = "f32";
  int32_t hidden = 64, layers = 2, heads = 4, kv_heads = 2, intermediate = 128, vocab = 512, head_dim = 0;
  int32_t max_position = 4096, shards = 1;
  double rope_theta = 10000.0, rms_eps = 1e-6, std = 0.02;
  bool tie = false, qkv_bias = true, no_weights = false;
  uint64_t seed = 0;
};

struct Preset {
  const char* name;
  const char* arch;
  int32_t hidden, layers, heads, kv_heads, intermediate, vocab, max_position;
  double rope_theta, rms_eps;
  bool tie;
};

// Shapes of the real models (their config.json on the Hugging Face hub).
constexpr Preset kPresets[] = {
    {"qwen2.5-math-1.5b", "qwen2", 1536, 28, 12, 2, 8960, 151936, 4096, 10000.0, 1e-6, true},
    {"qwen2.5-math-7b", "qwen2", 3584, 28, 28, 4, 18944, 152064, 4096, 10000.0, 1e-6, false},
    {"skywork-prm-1.5b", "skywork-prm", 1536, 28, 12, 2, 8960, 151936, 4096, 10000.0, 1e-6, true},
    {"skywork-prm-7b", "skywork-prm", 3584, 28, 28, 4, 18944, 152064, 4096, 10000.0, 1e-6, false},
    {"qwen2.5-math-prm-7b", "qwen2-prm", 3584, 28, 28, 4, 18944, 152064, 4096, 10000.0, 1e-5, false},
    {"llama3-8b", "llama", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0, 1e-5, false},
};

struct ArchInfo {
  const char* flag;
  const char* hf_name;
  const char* model_type;
  Arch arch;
  PrmKind prm;
};

constexpr ArchInfo kArchInfo[] = {
    {"qwen2", "Qwen2ForCausalLM", "qwen2", Arch::Qwen2, PrmKind::None},
    {"llama", "LlamaForCausalLM", "llama", Arch::Llama, PrmKind::None},
    {"mistral", "MistralForCausalLM", "mistral", Arch::Mistral, PrmKind::None},
    {"qwen2-prm", "Qwen2ForProcessRewardModel", "qwen2", Arch::Qwen2, PrmKind::Classifier},
    {"skywork-prm", "Qwen2ForPrmModel", "qwen2", Arch::Qwen2, PrmKind::ValueHead},
    {"lm-prm", "MistralForCausalLM", "mistral", Arch::Mistral, PrmKind::LmLogits},  // Math-Shepherd-like
};

// config.json as transformers 4.44 writes it (keys sorted, class defaults).
json hf_config(const Options& o, const ArchInfo& a, const ModelConfig& c) {
  json j;
  j["architectures"] = {a.hf_name};
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_ids.front();
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = o.std;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position;
  j["model_type"] = a.model_type;
  j["num_attention_heads"] = c.n_heads;
  j["num_hidden_layers"] = c.n_layers;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["rms_norm_eps"] = o.rms_eps;
  j["rope_theta"] = o.rope_theta;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  j["transformers_version"] = "4.44.2";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  const bool custom_head_dim = c.head_dim * c.n_heads != c.hidden_size;
  switch (a.arch) {
    case Arch::Qwen2:
      j["max_window_layers"] = c.n_layers;
      j["sliding_window"] = nullptr;
      j["use_sliding_window"] = false;
      if (custom_head_dim) j["head_dim"] = c.head_dim;
      break;
    case Arch::Llama:
      j["attention_bias"] = c.qkv_bias;
      j["mlp_bias"] = false;
      j["pretraining_tp"] = 1;
      j["rope_scaling"] = nullptr;
      if (custom_head_dim) j["head_dim"] = c.head_dim;
      break;
    case Arch::Mistral:
      j["head_dim"] = c.head_dim;
      j["sliding_window"] = nullptr;
      break;
  }
  return j;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text << "\n";
  if (!f) {
    std::fprintf(stderr, "flashtts-mkmodel: cannot write %s\n", p.c_str());
    std::exit(1);
  }
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "flashtts-mkmodel: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a random-weight Hugging Face model folder (see docs/models.md)", "flashtts-mkmodel"};
  Options o;
  std::string preset_names;
  for (const auto& p : kPresets) preset_names += std::string(preset_names.empty() ? "" : ", ") + p.name;
  app.add_option("--out", o.out, "Output folder (created)")->required();
  auto* preset = app.add_option("--preset", o.preset, "Real model shape: " + preset_names);
  auto* arch = app.add_option("--arch", o.arch, "qwen2|llama|mistral|qwen2-prm|skywork-prm|lm-prm");
  auto* hidden = app.add_option("--hidden", o.hidden, "hidden_size");
  auto* layers = app.add_option("--layers", o.layers, "num_hidden_layers");
  auto* heads = app.add_option("--heads", o.heads, "num_attention_heads");
  auto* kv = app.add_option("--kv-heads", o.kv_heads, "num_key_value_heads");
  auto* inter = app.add_option("--intermediate", o.intermediate, "intermediate_size");
  auto* vocab = app.add_option("--vocab", o.vocab, "vocab_size (= tokenizer entries)");
  app.add_option("--head-dim", o.head_dim, "head_dim (default hidden/heads)");
  auto* theta = app.add_option("--rope-theta", o.rope_theta, "rope_theta");
  auto* eps = app.add_option("--rms-eps", o.rms_eps, "rms_norm_eps");
  auto* maxpos = app.add_option("--max-position", o.max_position, "max_position_embeddings");
  bool tie = false, no_tie = false, qkv_bias = false, no_qkv_bias = false;
  app.add_flag("--tie", tie, "tie_word_embeddings = true");
  app.add_flag("--no-tie", no_tie, "tie_word_embeddings = false");
  app.add_flag("--qkv-bias", qkv_bias, "Llama/Mistral: attention_bias (q,k,v and o biases)");
  app.add_flag("--no-qkv-bias", no_qkv_bias, "no attention biases (not for Qwen2)");
  app.add_option("--dtype", o.dtype, "f32|bf16")->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--seed", o.seed, "random seed");
  app.add_flag("--no-weights", o.no_weights, "Write no weights (a folder for a simulated device)");
  app.add_option("--std", o.std, "standard deviation of the weights");
  app.add_option("--shards", o.shards, "number of safetensors shards")->check(CLI::Range(1, 99999));
  CLI11_PARSE(app, argc, argv);

  // Preset first, then explicit flags win.
  if (preset->count()) {
    const Preset* p = nullptr;
    for (const auto& q : kPresets)
      if (o.preset == q.name) p = &q;
    if (!p) return fail("unknown --preset '" + o.preset + "' (known: " + preset_names + ")");
    if (!arch->count()) o.arch = p->arch;
    if (!hidden->count()) o.hidden = p->hidden;
    if (!layers->count()) o.layers = p->layers;
    if (!heads->count()) o.heads = p->heads;
    if (!kv->count()) o.kv_heads = p->kv_heads;
    if (!inter->count()) o.intermediate = p->intermediate;
    if (!vocab->count()) o.vocab = p->vocab;
    if (!theta->count()) o.rope_theta = p->rope_theta;
    if (!eps->count()) o.rms_eps = p->rms_eps;
    if (!maxpos->count()) o.max_position = p->max_position;
    if (!tie && !no_tie) o.tie = p->tie;
  }
  if (tie && no_tie) return fail("--tie and --no-tie together");
  if (qkv_bias && no_qkv_bias) return fail("--qkv-bias and --no-qkv-bias together");
  if (tie) o.tie = true;
  if (no_tie) o.tie = false;

  const ArchInfo* a = nullptr;
  for (const auto& q : kArchInfo)
    if (o.arch == q.flag) a = &q;
  if (!a) return fail("unknown --arch '" + o.arch + "' (qwen2|llama|mistral|qwen2-prm|skywork-prm|lm-prm)");
  if (o.hidden <= 0 || o.layers <= 0 || o.heads <= 0 || o.kv_heads <= 0 || o.intermediate <= 0)
    return fail("--hidden, --layers, --heads, --kv-heads, --intermediate must be positive");
  if (o.heads % o.kv_heads != 0) return fail("--kv-heads must divide --heads");
  if (o.head_dim == 0) {
    if (o.hidden % o.heads != 0) return fail("--hidden is not a multiple of --heads; give --head-dim");
    o.head_dim = o.hidden / o.heads;
  }
  if (o.head_dim % 2 != 0) return fail("--head-dim must be even (RoPE rotates pairs)");

  // Qwen2 attention always has q/k/v biases; Llama/Mistral only when asked.
  if (a->arch == Arch::Qwen2) {
    if (no_qkv_bias) return fail("--no-qkv-bias: Qwen2 attention always has q/k/v biases");
    o.qkv_bias = true;
  } else {
    if (qkv_bias && a->arch == Arch::Mistral) return fail("--qkv-bias: Mistral has no attention biases");
    o.qkv_bias = qkv_bias;
  }

  std::vector<Special> specials;
  const int n_added = a->prm == PrmKind::Classifier ? 4 : 3;
  if (o.vocab < 256 + n_added) return fail("--vocab must be at least " + std::to_string(256 + n_added));
  const int32_t first_special = o.vocab - n_added;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"})
    if (int(specials.size()) < n_added) specials.push_back({s, first_special + int32_t(specials.size())});

  ModelConfig c;
  c.arch = a->arch;
  c.architecture = a->hf_name;
  c.hidden_size = o.hidden;
  c.intermediate_size = o.intermediate;
  c.n_layers = o.layers;
  c.n_heads = o.heads;
  c.n_kv_heads = o.kv_heads;
  c.head_dim = o.head_dim;
  c.vocab_size = o.vocab;
  c.max_position = o.max_position;
  c.qkv_bias = o.qkv_bias;
  c.o_bias = a->arch == Arch::Llama && o.qkv_bias;
  c.tie_embeddings = o.tie;
  c.torch_dtype = o.dtype == "bf16" ? "bfloat16" : "float32";
  c.bos_token_id = specials[0].id;                 // <|endoftext|>
  c.eos_token_ids = {specials[2].id, specials[0].id};  // <|im_end|>, <|endoftext|>
  c.prm.kind = a->prm;

  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return fail("cannot create " + o.out + ": " + ec.message());
  const fs::path dir = o.out;

  // --- config files
  write_text(dir / "config.json", hf_config(o, *a, c).dump(2));
  json gen;
  gen["bos_token_id"] = c.bos_token_id;
  gen["eos_token_id"] = c.eos_token_ids;
  gen["transformers_version"] = "4.44.2";
  write_text(dir / "generation_config.json", gen.dump(2));
  if (a->prm == PrmKind::LmLogits) {
    ordered_json prm = {{"family", "lm_logits"}, {"step_tag", " ки"}, {"good_token", "+"}, {"bad_token", "-"}};
    write_text(dir / "flashtts_prm.json", prm.dump(2));
  }

  // --- tokenizer
  Vocab v = build_vocab(first_special);
  if (int64_t(v.tokens.size()) != first_special) return fail("internal: tokenizer vocabulary came out short");
  write_text(dir / "tokenizer.json", tokenizer_json(v, specials));
  ordered_json tc;
  tc["add_prefix_space"] = false;
  ordered_json dec = ordered_json::object();
  for (const auto& s : specials)
    dec[std::to_string(s.id)] = {{"content", s.text}, {"lstrip", false}, {"normalized", false},
                                 {"rstrip", false}, {"single_word", false}, {"special", true}};
  tc["added_tokens_decoder"] = dec;
  ordered_json extra = ordered_json::array();
  for (size_t i = 1; i < specials.size(); ++i) extra.push_back(specials[i].text);
  tc["additional_special_tokens"] = extra;
  tc["bos_token"] = nullptr;
  tc["chat_template"] = kChatTemplate;
  tc["clean_up_tokenization_spaces"] = false;
  tc["eos_token"] = "<|im_end|>";
  tc["errors"] = "replace";
  tc["model_max_length"] = c.max_position;
  tc["pad_token"] = "<|endoftext|>";
  tc["split_special_tokens"] = false;
  tc["tokenizer_class"] = a->arch == Arch::Qwen2 ? "Qwen2Tokenizer" : "PreTrainedTokenizerFast";
  tc["unk_token"] = nullptr;
  write_text(dir / "tokenizer_config.json", tc.dump(2));

  if (o.no_weights) {
    std::printf("flashtts-mkmodel: wrote %s (%s, no weights: for a simulated device)\n", dir.c_str(), a->hf_name);
    return 0;
  }

  // --- weights, streamed tensor by tensor into contiguous shards
  const DType dt = o.dtype == "bf16" ? DType::BF16 : DType::F32;
  std::vector<TensorSlot> slots = model_tensor_slots(c, nullptr);
  std::vector<TensorSpec> specs;
  uint64_t total = 0;
  for (const auto& s : slots) {
    specs.push_back({s.name, dt, s.shape});
    total += specs.back().nbytes();
  }
  if (size_t(o.shards) > specs.size()) return fail("--shards is larger than the number of tensors");
  // Exactly --shards non-empty groups of consecutive tensors, of roughly equal bytes.
  std::vector<std::vector<TensorSpec>> groups(1);
  {
    const size_t k = size_t(o.shards);
    const uint64_t target = total / k;
    uint64_t bytes = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const size_t tensors_left = specs.size() - i, shards_to_open = k - groups.size();
      if (!groups.back().empty() && shards_to_open > 0 && (bytes >= target || tensors_left == shards_to_open)) {
        groups.emplace_back();
        bytes = 0;
      }
      bytes += specs[i].nbytes();
      groups.back().push_back(std::move(specs[i]));
    }
  }
  const bool verbose = total > (256ull << 20);
  const size_t n_files = groups.size();
  json weight_map = json::object();
  std::vector<float> chunk;
  size_t done_tensors = 0;
  uint64_t done_bytes = 0;
  for (size_t gi = 0; gi < n_files; ++gi) {
    char name[64];
    if (n_files == 1)
      std::snprintf(name, sizeof name, "model.safetensors");
    else
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", gi + 1, n_files);
    for (const auto& s : groups[gi]) weight_map[s.name] = name;
    auto w = SafetensorsWriter::create(dir / name, groups[gi]);
    if (!w.ok()) return fail(w.error().message);
    for (const auto& s : groups[gi]) {
      Rng rng(o.seed, s.name);
      const bool is_norm = s.name.ends_with("norm.weight");
      const int64_t n = s.numel();
      for (int64_t off = 0; off < n; off += int64_t(chunk.size())) {
        chunk.resize(size_t(std::min<int64_t>(n - off, 1 << 20)));
        for (float& x : chunk) x = float((is_norm ? 1.0 : 0.0) + o.std * rng.normal());
        if (auto st = w->write(s.name, chunk); !st.ok()) return fail(st.message());
      }
      ++done_tensors;
      done_bytes += s.nbytes();
      if (verbose)
        std::printf("[%zu/%zu] %s %s  %.1f%%\n", done_tensors, slots.size(), s.name.c_str(),
                    shape_to_string(s.shape).c_str(), 100.0 * double(done_bytes) / double(total));
      std::fflush(stdout);
    }
    if (auto st = w->finish(); !st.ok()) return fail(st.message());
  }
  if (n_files > 1) {
    json index;
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = weight_map;
    write_text(dir / "model.safetensors.index.json", index.dump(2));
  }
  std::printf("flashtts-mkmodel: wrote %s (%s, %zu tensors, %.1f MB in %zu file%s)\n", dir.c_str(), a->hf_name,
              slots.size(), double(total) / 1e6, n_files, n_files == 1 ? "" : "s");
  return 0;
}
