// The loaders of Tokenizer: tokenizer.json, vocab.json + merges.txt, GGUF.
// nlohmann::json throws; every throw is caught here and becomes an Error
// that names the file.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gpu/gguf_vocab.h"
#include "gpu/tokenizer.h"
#include "gpu/tokenizer_impl.h"
#include "gpu/unicode.h"

namespace flashtts {
namespace fs = std::filesystem;
using nlohmann::json;

std::array<char32_t, 256> byte_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

namespace {

// The bytes a byte-level token string stands for; a string with a character
// outside the map decodes to its own UTF-8 bytes (HF's ByteLevel decoder).
std::string unmap_bytes(const std::string& token, const std::array<int, 512>& reverse) {
  std::vector<unicode::CodePoint> cps;
  unicode::decode_utf8(token, &cps);
  std::string out;
  for (const auto& c : cps) {
    if (c.cp >= reverse.size() || reverse[c.cp] < 0) return token;
    out.push_back(static_cast<char>(reverse[c.cp]));
  }
  return out;
}

Expected<std::string> read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(file.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Expected<json> read_json(const fs::path& file) {
  auto text = read_file(file);
  FLASHTTS_TRY(text);
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    return make_error(file.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// tokenizer.json / tokenizer_config.json entries share these flags.
AddedToken added_from_json(const json& j, int32_t id) {
  AddedToken a;
  a.id = id;
  a.content = j.at("content").get<std::string>();
  a.special = j.value("special", false);
  a.lstrip = j.value("lstrip", false);
  a.rstrip = j.value("rstrip", false);
  a.single_word = j.value("single_word", false);
  a.normalized = j.value("normalized", false);
  return a;
}

// "a b" -> {"a", "b"}; HF requires exactly one space.
bool split_merge(std::string_view line, std::pair<std::string, std::string>* out) {
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || line.find(' ', sp + 1) != std::string_view::npos) return false;
  *out = {std::string(line.substr(0, sp)), std::string(line.substr(sp + 1))};
  return !out->second.empty();
}

// Normalizer of a tokenizer.json: null, NFC, or a Sequence of just NFC.
Expected<bool> parse_normalizer(const json& n, const std::string& file) {
  if (n.is_null()) return false;
  const std::string type = n.value("type", "");
  if (type == "NFC") return true;
  if (type == "Sequence") {
    bool nfc = false;
    for (const auto& sub : n.at("normalizers")) {
      auto r = parse_normalizer(sub, file);
      FLASHTTS_TRY(r);
      nfc = nfc || *r;
    }
    return nfc;
  }
  return make_error(file + ": normalizer \"" + type + "\" is not supported (only NFC or none)");
}

// Pre-tokenizer of a tokenizer.json: a Split with one of our regexes
// (+ ByteLevel without regex), or a lone ByteLevel with its GPT-2 regex.
Expected<PreTokenizer> parse_pretokenizer(const json& p, const std::string& file) {
  if (p.is_null()) return make_error(file + ": no pre_tokenizer; a byte-level BPE needs one");
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    std::optional<PreTokenizer> found;
    for (const auto& sub : p.at("pretokenizers")) {
      const std::string t = sub.value("type", "");
      if (t == "Split" || (t == "ByteLevel" && sub.value("use_regex", true))) {
        auto r = parse_pretokenizer(sub, file);
        FLASHTTS_TRY(r);
        if (!found) found = *r;
      } else if (t != "ByteLevel") {
        return make_error(file + ": pre_tokenizer step \"" + t + "\" is not supported");
      }
    }
    if (!found) return make_error(file + ": pre_tokenizer has no Split regex");
    return *found;
  }
  if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false))
      return make_error(file + ": ByteLevel add_prefix_space=true is not supported");
    return PreTokenizer::Gpt2;
  }
  if (type == "Split") {
    const auto& pat = p.at("pattern");
    const std::string regex = pat.contains("Regex") ? pat.at("Regex").get<std::string>() : "";
    if (auto pre = pretokenizer_from_pattern(regex)) return *pre;
    return make_error(file + ": Split regex is none of Qwen2, Llama 3, GPT-2: " + regex);
  }
  return make_error(file + ": pre_tokenizer \"" + type + "\" is not supported");
}

Status read_vocab_json(const json& v, const std::string& file, TokenizerSpec* spec) {
  if (!v.is_object()) return make_error(file + ": vocab is not a JSON object");
  spec->vocab.reserve(v.size());
  for (const auto& [tok, id] : v.items()) spec->vocab.emplace_back(tok, id.get<int32_t>());
  return Status::success();
}

}  // namespace

Expected<std::unique_ptr<Tokenizer::Impl>> build_tokenizer(TokenizerSpec spec) {
  auto t = std::make_unique<Tokenizer::Impl>();
  t->pre = spec.pre;
  t->nfc = spec.nfc;
  t->ignore_merges = spec.ignore_merges;
  if (spec.vocab.empty()) return make_error(spec.source + ": the vocabulary is empty");

  int32_t max_id = -1;
  for (const auto& [tok, id] : spec.vocab) {
    if (id < 0) return make_error(spec.source + ": token \"" + tok + "\" has a negative id");
    max_id = std::max(max_id, id);
  }
  for (const auto& a : spec.added) {
    if (a.id < 0) return make_error(spec.source + ": added token \"" + a.content + "\" has a negative id");
    if (a.content.empty()) return make_error(spec.source + ": added token " + std::to_string(a.id) + " is empty");
    max_id = std::max(max_id, a.id);
  }
  if (max_id >= (1 << 24)) return make_error(spec.source + ": token id " + std::to_string(max_id) + " is implausibly large");

  const auto b2u = byte_to_unicode();
  std::array<int, 512> u2b;
  u2b.fill(-1);
  for (int b = 0; b < 256; ++b) u2b[b2u[b]] = b;

  t->tokens.resize(max_id + 1);
  t->bytes.resize(max_id + 1);
  t->special.assign(max_id + 1, 0);
  t->vocab.reserve(spec.vocab.size());
  for (auto& [tok, id] : spec.vocab) {
    t->bytes[id] = unmap_bytes(tok, u2b);
    t->tokens[id] = tok;
    t->vocab.insert_or_assign(std::move(tok), id);
  }
  for (int b = 0; b < 256; ++b) {
    unicode::append_utf8(b2u[b], &t->byte_char[b]);
    auto it = t->vocab.find(t->byte_char[b]);
    t->byte_id[b] = it == t->vocab.end() ? -1 : it->second;
  }

  t->merges.reserve(spec.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [a, b] = spec.merges[rank];
    auto ia = t->vocab.find(a), ib = t->vocab.find(b);
    joined = a + b;
    auto ij = t->vocab.find(joined);
    const std::string& missing = ia == t->vocab.end() ? a : ib == t->vocab.end() ? b : joined;
    if (ia == t->vocab.end() || ib == t->vocab.end() || ij == t->vocab.end())
      return make_error(spec.source + ": merge " + std::to_string(rank) + " (\"" + a + " " + b + "\") uses \"" +
                        missing + "\", which is not in the vocabulary");
    t->merges.insert(ia->second, ib->second, {static_cast<int32_t>(rank), ij->second});
  }

  for (auto& a : spec.added) {
    t->tokens[a.id] = a.content;
    t->bytes[a.id] = a.content;
    t->special[a.id] = a.special;
    t->added_ids.insert_or_assign(a.content, a.id);
  }
  t->added = std::move(spec.added);
  for (uint32_t k = 0; k < t->added.size(); ++k)
    t->added_by_first_byte[static_cast<uint8_t>(t->added[k].content[0])].push_back(k);
  for (auto& bucket : t->added_by_first_byte)
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t x, uint32_t y) {
      return t->added[x].content.size() > t->added[y].content.size();
    });
  return t;
}

Expected<Tokenizer> Tokenizer::from_tokenizer_json(const fs::path& file) {
  const std::string name = file.string();
  auto doc = read_json(file);
  FLASHTTS_TRY(doc);
  TokenizerSpec spec;
  spec.source = name;
  try {
    const json& j = *doc;
    if (!j.is_object() || !j.contains("model")) return make_error(name + ": no \"model\"; not a tokenizer.json");
    const json& m = j.at("model");
    const std::string type = m.value("type", "BPE");
    if (type != "BPE") return make_error(name + ": model type \"" + type + "\" is not supported (only BPE)");
    if (m.value("byte_fallback", false)) return make_error(name + ": BPE byte_fallback is not supported");
    if (!m.contains("vocab")) return make_error(name + ": model has no \"vocab\"");
    if (!m.contains("merges") || !m.at("merges").is_array()) return make_error(name + ": model has no \"merges\" list");
    FLASHTTS_TRY(read_vocab_json(m.at("vocab"), name, &spec));
    const json& merges = m.at("merges");
    spec.merges.reserve(merges.size());
    for (const auto& mg : merges) {
      std::pair<std::string, std::string> pair;
      if (mg.is_string()) {
        if (!split_merge(mg.get<std::string>(), &pair))
          return make_error(name + ": merge \"" + mg.get<std::string>() + "\" is not two tokens");
      } else if (mg.is_array() && mg.size() == 2) {
        pair = {mg[0].get<std::string>(), mg[1].get<std::string>()};
      } else {
        return make_error(name + ": a merge is neither \"a b\" nor [\"a\", \"b\"]");
      }
      spec.merges.push_back(std::move(pair));
    }
    spec.ignore_merges = m.value("ignore_merges", false);
    auto nfc = parse_normalizer(j.value("normalizer", json()), name);
    FLASHTTS_TRY(nfc);
    spec.nfc = *nfc;
    auto pre = parse_pretokenizer(j.value("pre_tokenizer", json()), name);
    FLASHTTS_TRY(pre);
    spec.pre = *pre;
    const json added = j.value("added_tokens", json::array());
    for (const auto& a : added) spec.added.push_back(added_from_json(a, a.at("id").get<int32_t>()));
  } catch (const json::exception& e) {
    return make_error(name + ": unexpected tokenizer.json layout (" + e.what() + ")");
  }
  auto impl = build_tokenizer(std::move(spec));
  FLASHTTS_TRY(impl);
  return Tokenizer(std::move(*impl));
}

namespace {

Status read_merges_txt(const fs::path& file, TokenizerSpec* spec) {
  auto text = read_file(file);
  FLASHTTS_TRY(text);
  std::string_view rest = *text;
  size_t line_no = 0;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    std::pair<std::string, std::string> pair;
    if (!split_merge(line, &pair))
      return make_error(file.string() + ":" + std::to_string(line_no) + ": \"" + std::string(line) +
                        "\" is not a merge (two tokens separated by one space)");
    spec->merges.push_back(std::move(pair));
  }
  if (spec->merges.empty()) return make_error(file.string() + ": no merges");
  return Status::success();
}

}  // namespace

Expected<Tokenizer> Tokenizer::from_vocab_merges(const fs::path& vocab_json, const fs::path& merges_txt,
                                                 PreTokenizer pre) {
  TokenizerSpec spec;
  spec.source = vocab_json.string() + " + " + merges_txt.string();
  spec.pre = pre;
  spec.nfc = pre == PreTokenizer::Qwen2;  // Qwen2Tokenizer normalizes to NFC
  spec.ignore_merges = pre == PreTokenizer::Llama3;
  auto vocab = read_json(vocab_json);
  FLASHTTS_TRY(vocab);
  try {
    FLASHTTS_TRY(read_vocab_json(*vocab, vocab_json.string(), &spec));
  } catch (const json::exception& e) {
    return make_error(vocab_json.string() + ": ids must be integers (" + e.what() + ")");
  }
  FLASHTTS_TRY(read_merges_txt(merges_txt, &spec));

  // Added tokens live beside them: tokenizer_config.json, else added_tokens.json.
  const fs::path dir = vocab_json.parent_path();
  std::error_code ec;
  try {
    if (fs::exists(dir / "tokenizer_config.json", ec)) {
      auto cfg = read_json(dir / "tokenizer_config.json");
      FLASHTTS_TRY(cfg);
      const json decoder = cfg->value("added_tokens_decoder", json::object());
      for (const auto& [id, a] : decoder.items())
        spec.added.push_back(added_from_json(a, std::stoi(id)));
    }
    if (spec.added.empty() && fs::exists(dir / "added_tokens.json", ec)) {
      auto at = read_json(dir / "added_tokens.json");
      FLASHTTS_TRY(at);
      for (const auto& [content, id] : at->items()) {
        AddedToken a;
        a.content = content;
        a.id = id.get<int32_t>();
        a.special = true;  // the file does not say; these are control tokens in practice
        spec.added.push_back(std::move(a));
      }
    }
  } catch (const std::exception& e) {
    return make_error(dir.string() + ": unexpected added-token entry in tokenizer_config.json or added_tokens.json (" +
                      e.what() + ")");
  }
  std::sort(spec.added.begin(), spec.added.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  auto impl = build_tokenizer(std::move(spec));
  FLASHTTS_TRY(impl);
  return Tokenizer(std::move(*impl));
}

Expected<Tokenizer> Tokenizer::from_gguf(const fs::path& gguf) {
  auto v = read_gguf_vocab(gguf);
  FLASHTTS_TRY(v);
  const std::string name = gguf.string();
  if (v->model != "gpt2")
    return make_error(name + ": tokenizer.ggml.model is \"" + v->model + "\"; only \"gpt2\" (byte-level BPE) is supported");
  TokenizerSpec spec;
  spec.source = name;
  if (v->pre == "gpt-2" || v->pre.empty() || v->pre == "default") {
    spec.pre = PreTokenizer::Gpt2;
  } else if (v->pre == "qwen2" || v->pre == "deepseek-r1-qwen") {
    spec.pre = PreTokenizer::Qwen2;
    spec.nfc = true;
  } else if (v->pre == "llama-bpe" || v->pre == "llama3") {
    spec.pre = PreTokenizer::Llama3;
    spec.ignore_merges = true;
  } else {
    return make_error(name + ": tokenizer.ggml.pre \"" + v->pre + "\" is not supported (gpt-2, qwen2, llama-bpe)");
  }
  for (size_t id = 0; id < v->tokens.size(); ++id) {
    const auto type = v->token_types.empty() ? GgufTokenType::Normal : static_cast<GgufTokenType>(v->token_types[id]);
    if (type == GgufTokenType::Control || type == GgufTokenType::UserDefined) {
      AddedToken a;
      a.content = v->tokens[id];
      a.id = static_cast<int32_t>(id);
      a.special = type == GgufTokenType::Control;
      spec.added.push_back(std::move(a));
    }
    spec.vocab.emplace_back(std::move(v->tokens[id]), static_cast<int32_t>(id));
  }
  for (const auto& line : v->merges) {
    std::pair<std::string, std::string> pair;
    if (!split_merge(line, &pair)) return make_error(name + ": merge \"" + line + "\" is not two tokens");
    spec.merges.push_back(std::move(pair));
  }
  auto impl = build_tokenizer(std::move(spec));
  FLASHTTS_TRY(impl);
  return Tokenizer(std::move(*impl));
}

Expected<Tokenizer> Tokenizer::load(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    if (dir.extension() == ".gguf") return from_gguf(dir);
    return from_tokenizer_json(dir);
  }
  if (!fs::is_directory(dir, ec)) return make_error(dir.string() + ": no such tokenizer folder or file");
  if (fs::exists(dir / "tokenizer.json", ec)) return from_tokenizer_json(dir / "tokenizer.json");
  if (!fs::exists(dir / "vocab.json", ec) || !fs::exists(dir / "merges.txt", ec))
    return make_error(dir.string() + ": has neither tokenizer.json nor vocab.json + merges.txt");
  std::string cls;
  if (fs::exists(dir / "tokenizer_config.json", ec)) {
    auto cfg = read_json(dir / "tokenizer_config.json");
    FLASHTTS_TRY(cfg);
    if (cfg->is_object() && cfg->contains("tokenizer_class") && cfg->at("tokenizer_class").is_string())
      cls = cfg->at("tokenizer_class").get<std::string>();
  }
  PreTokenizer pre;
  if (cls.starts_with("Qwen2")) {
    pre = PreTokenizer::Qwen2;
  } else if (cls.starts_with("GPT2") || cls.empty()) {
    pre = PreTokenizer::Gpt2;
  } else {
    return make_error((dir / "tokenizer_config.json").string() + ": tokenizer_class \"" + cls +
                      "\" needs a tokenizer.json (vocab.json + merges.txt is read for Qwen2 and GPT-2 only)");
  }
  return from_vocab_merges(dir / "vocab.json", dir / "merges.txt", pre);
}

}  // namespace flashtts
