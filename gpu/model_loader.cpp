#include "gpu/model_loader.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gpu/safetensors.h"

namespace flashtts {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct ArchRow {
  const char* name;
  Arch arch;
  PrmKind prm;
};

constexpr ArchRow kArchs[] = {
    {"Qwen2ForCausalLM", Arch::Qwen2, PrmKind::None},
    {"LlamaForCausalLM", Arch::Llama, PrmKind::None},
    {"MistralForCausalLM", Arch::Mistral, PrmKind::None},
    {"Qwen2ForProcessRewardModel", Arch::Qwen2, PrmKind::Classifier},  // Qwen2.5-Math-PRM
    {"Qwen2ForPrmModel", Arch::Qwen2, PrmKind::ValueHead},             // Skywork-o1-Open-PRM
};

std::string supported_archs() {
  std::string s;
  for (const auto& r : kArchs) s += std::string(s.empty() ? "" : ", ") + r.name;
  return s;
}

const char* json_type(const json& v) { return v.type_name(); }

// Reads a whole JSON file. Missing file: *present = false and success.
Status read_json(const fs::path& p, json* out, bool* present) {
  std::error_code ec;
  *present = fs::exists(p, ec);
  if (!*present) return Status::success();
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error(p.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    *out = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    return make_error(p.string() + ": bad JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  }
  if (!out->is_object()) return make_error(p.string() + ": the top level is not a JSON object");
  return Status::success();
}

// Typed access to one JSON object, with messages that name file and key.
class Keys {
 public:
  Keys(const json& j, const fs::path& file) : j_(j), file_(file.string()) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  // Leaves *out alone when the key is missing or null and !required.
  Status get_int(const char* key, int32_t* out, bool required) const {
    if (!has(key)) return required ? missing(key) : Status::success();
    const json& v = j_[key];
    double d = 0;
    if (v.is_number_integer()) {
      d = double(v.get<int64_t>());
    } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
      d = v.get<double>();
    } else {
      return wrong(key, "an integer", v);
    }
    if (d < -2147483648.0 || d > 2147483647.0) return make_error(file_ + ": key '" + key + "' is out of range");
    *out = int32_t(d);
    return Status::success();
  }
  Status get_positive(const char* key, int32_t* out, bool required) const {
    FLASHTTS_TRY(get_int(key, out, required));
    if (has(key) && *out <= 0)
      return make_error(file_ + ": key '" + key + "' must be positive, got " + std::to_string(*out));
    return Status::success();
  }
  Status get_float(const char* key, float* out) const {
    if (!has(key)) return Status::success();
    if (!j_[key].is_number()) return wrong(key, "a number", j_[key]);
    *out = j_[key].get<float>();
    return Status::success();
  }
  Status get_bool(const char* key, bool* out) const {
    if (!has(key)) return Status::success();
    if (!j_[key].is_boolean()) return wrong(key, "true or false", j_[key]);
    *out = j_[key].get<bool>();
    return Status::success();
  }
  Status get_string(const char* key, std::string* out) const {
    if (!has(key)) return Status::success();
    if (!j_[key].is_string()) return wrong(key, "a string", j_[key]);
    *out = j_[key].get<std::string>();
    return Status::success();
  }
  // An int, a list of ints, or null.
  Status get_int_list(const char* key, std::vector<int32_t>* out) const {
    if (!has(key)) return Status::success();
    const json& v = j_[key];
    if (v.is_number_integer()) {
      out->push_back(v.get<int32_t>());
      return Status::success();
    }
    if (!v.is_array()) return wrong(key, "an integer or a list of integers", v);
    for (const auto& e : v) {
      if (!e.is_number_integer()) return wrong(key, "an integer or a list of integers", v);
      out->push_back(e.get<int32_t>());
    }
    return Status::success();
  }
  Error missing(const char* key) const { return make_error(file_ + ": key '" + key + "' is missing"); }
  Error wrong(const char* key, const char* want, const json& got) const {
    return make_error(file_ + ": key '" + key + "' must be " + want + ", got " + json_type(got));
  }

 private:
  const json& j_;
  std::string file_;
};

void add_unique(std::vector<int32_t>* v, int32_t x) {
  if (x >= 0 && std::find(v->begin(), v->end(), x) == v->end()) v->push_back(x);
}

// The text of a special token in tokenizer_config.json: "..." or {"content": "..."}.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// eos/bos of tokenizer_config.json, resolved to ids through its
// added_tokens_decoder (the only id table there without the tokenizer).
Status apply_tokenizer_config(const fs::path& dir, ModelConfig* c) {
  const fs::path p = dir / "tokenizer_config.json";
  json j;
  bool present = false;
  FLASHTTS_TRY(read_json(p, &j, &present));
  if (!present) return Status::success();
  std::map<std::string, int32_t> ids;
  if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
    for (auto it = j["added_tokens_decoder"].begin(); it != j["added_tokens_decoder"].end(); ++it) {
      std::string text = token_text(it.value());
      char* end = nullptr;
      long id = std::strtol(it.key().c_str(), &end, 10);
      if (!text.empty() && end && *end == '\0' && id >= 0) ids[text] = int32_t(id);
    }
  }
  if (j.contains("eos_token")) {
    auto it = ids.find(token_text(j["eos_token"]));
    if (it != ids.end()) add_unique(&c->eos_token_ids, it->second);
  }
  if (c->bos_token_id < 0 && j.contains("bos_token")) {
    auto it = ids.find(token_text(j["bos_token"]));
    if (it != ids.end()) c->bos_token_id = it->second;
  }
  return Status::success();
}

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// What the folder itself says about its PRM family (besides "architectures").
struct PrmHints {
  std::optional<PrmKind> family;
  std::optional<PrmFormat> format;
  std::optional<std::string> step_tag, good_token, bad_token;
  std::string source;  // for messages
};

Status read_prm_file(const fs::path& dir, PrmHints* h) {
  const fs::path p = dir / "flashtts_prm.json";
  json j;
  bool present = false;
  FLASHTTS_TRY(read_json(p, &j, &present));
  if (!present) return Status::success();
  h->source = p.string();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "family" && k != "format" && k != "step_tag" && k != "good_token" && k != "bad_token")
      return make_error(p.string() + ": unknown key '" + k +
                        "' (known: family, format, step_tag, good_token, bad_token)");
    if (!it->is_string()) return make_error(p.string() + ": key '" + k + "' must be a string, got " + json_type(*it));
  }
  if (j.contains("family")) {
    auto f = parse_prm_family(j["family"].get<std::string>());
    if (!f.ok()) return make_error(p.string() + ": key 'family': " + f.error().message);
    h->family = *f;
  }
  if (j.contains("format")) {
    std::string f = j["format"].get<std::string>();
    bool found = false;
    for (PrmFormat x : {PrmFormat::QwenChat, PrmFormat::Skywork, PrmFormat::MathShepherd, PrmFormat::RlhFlow})
      if (f == prm_format_name(x)) h->format = x, found = true;
    if (!found)
      return make_error(p.string() + ": key 'format' = '" + f +
                        "' is not one of qwen_chat, skywork, math_shepherd, rlhflow");
  }
  if (j.contains("step_tag")) h->step_tag = j["step_tag"].get<std::string>();
  if (j.contains("good_token")) h->good_token = j["good_token"].get<std::string>();
  if (j.contains("bad_token")) h->bad_token = j["bad_token"].get<std::string>();
  return Status::success();
}

// Known LM-logit PRMs recognised by config.json's "_name_or_path".
void name_hints(const std::string& name_or_path, PrmHints* h) {
  const std::string n = lower(name_or_path);
  if (n.find("math-shepherd") != std::string::npos) {
    // peiyi9979/math-shepherd-mistral-7b-prm: each step ends with " ки";
    // the score is softmax over the logits of "+" and "-" at that token.
    h->family = PrmKind::LmLogits;
    h->step_tag = " ки";
    h->good_token = "+";
    h->bad_token = "-";
    h->source = "config.json _name_or_path '" + name_or_path + "'";
  } else if (n.find("rlhflow") != std::string::npos && n.find("prm") != std::string::npos) {
    // RLHFlow/Llama3.1-8B-PRM-*: every step is a user turn; the assistant
    // answers "+" or "-", so the score is read where the assistant turn opens.
    h->family = PrmKind::LmLogits;
    h->format = PrmFormat::RlhFlow;
    h->step_tag = "<|start_header_id|>assistant<|end_header_id|>\n\n";
    h->good_token = "+";
    h->bad_token = "-";
    h->source = "config.json _name_or_path '" + name_or_path + "'";
  }
}

Status resolve_prm(const fs::path& dir, const std::string& name_or_path, PrmKind arch_prm, const PrmOverride& ovr,
                   ModelConfig* c) {
  PrmHints file;
  FLASHTTS_TRY(read_prm_file(dir, &file));
  PrmHints name;
  name_hints(name_or_path, &name);

  // Family: override > flashtts_prm.json > architecture > name hint.
  PrmKind kind = arch_prm;
  std::string source = "config.json architectures";
  if (ovr.family) {
    kind = *ovr.family;
    source = "the PRM override";
  } else if (file.family) {
    kind = *file.family;
    source = file.source;
  } else if (arch_prm == PrmKind::None && name.family) {
    kind = *name.family;
    source = name.source;
  }
  const bool head_arch = arch_prm == PrmKind::Classifier || arch_prm == PrmKind::ValueHead;
  if (head_arch && kind != arch_prm)
    return make_error(source + " asks for PRM family '" + prm_kind_name(kind) + "', but architecture " +
                      c->architecture + " is a '" + prm_kind_name(arch_prm) + "' PRM");
  if (!head_arch && (kind == PrmKind::Classifier || kind == PrmKind::ValueHead))
    return make_error(source + " asks for PRM family '" + prm_kind_name(kind) + "', which needs architecture " +
                      (kind == PrmKind::Classifier ? "Qwen2ForProcessRewardModel" : "Qwen2ForPrmModel") + ", not " +
                      c->architecture);
  c->prm.kind = kind;
  if (kind == PrmKind::None) return Status::success();
  if (file.format) c->prm.format = *file.format;
  else if (name.format && name.family == kind) c->prm.format = *name.format;
  PrmFormat fmt = resolved_prm_format(kind, c->prm.format);
  bool fits = kind == PrmKind::LmLogits ? (fmt == PrmFormat::MathShepherd || fmt == PrmFormat::RlhFlow)
                                        : fmt == resolved_prm_format(kind, PrmFormat::Default);
  if (!fits)
    return make_error(source + ": PRM format '" + prm_format_name(fmt) + "' does not fit family '" +
                      prm_kind_name(kind) + "'");

  // Strings: override > flashtts_prm.json > name hint > family default.
  auto pick = [&](const std::optional<std::string>& o, const std::optional<std::string>& f,
                  const std::optional<std::string>& n, const char* dflt) {
    if (o) return *o;
    if (f) return *f;
    if (n && name.family == kind) return *n;
    return std::string(dflt);
  };
  const char* default_tag = kind == PrmKind::Classifier ? "<extra_0>" : kind == PrmKind::ValueHead ? "\n" : "";
  c->prm.step_tag = pick(ovr.step_tag, file.step_tag, name.step_tag, default_tag);
  if (kind == PrmKind::LmLogits) {
    c->prm.good_token = pick(ovr.good_token, file.good_token, name.good_token, "");
    c->prm.bad_token = pick(ovr.bad_token, file.bad_token, name.bad_token, "");
    for (auto [what, val] : {std::pair{"step_tag", &c->prm.step_tag}, std::pair{"good_token", &c->prm.good_token},
                             std::pair{"bad_token", &c->prm.bad_token}}) {
      if (val->empty())
        return make_error((dir / "flashtts_prm.json").string() + ": PRM family 'lm_logits' needs key '" + what +
                          "' (in flashtts_prm.json or the PRM override)");
    }
  }
  if (c->prm.step_tag.empty())
    return make_error((dir / "flashtts_prm.json").string() + ": key 'step_tag' must not be empty");
  return Status::success();
}

}  // namespace

Expected<PrmKind> parse_prm_family(std::string_view name) {
  for (PrmKind k : {PrmKind::None, PrmKind::Classifier, PrmKind::ValueHead, PrmKind::LmLogits})
    if (name == prm_kind_name(k)) return k;
  return make_error("unknown PRM family '" + std::string(name) +
                    "' (known: none, classifier, value_head, lm_logits)");
}

Expected<ModelConfig> load_model_config(const fs::path& dir, const PrmOverride& ovr) {
  const fs::path p = dir / "config.json";
  json j;
  bool present = false;
  FLASHTTS_TRY(read_json(p, &j, &present));
  if (!present) return make_error(p.string() + ": missing (not a Hugging Face model folder?)");
  Keys k(j, p);
  ModelConfig c;

  if (!j.contains("architectures")) return k.missing("architectures");
  const json& archs = j["architectures"];
  if (!archs.is_array() || archs.empty() || !archs[0].is_string())
    return k.wrong("architectures", "a non-empty list of strings", archs);
  c.architecture = archs[0].get<std::string>();
  const ArchRow* row = nullptr;
  for (const auto& r : kArchs)
    if (c.architecture == r.name) row = &r;
  if (!row)
    return make_error(p.string() + ": key 'architectures': unknown architecture '" + c.architecture +
                      "' (supported: " + supported_archs() + ")");
  c.arch = row->arch;

  FLASHTTS_TRY(k.get_positive("hidden_size", &c.hidden_size, true));
  FLASHTTS_TRY(k.get_positive("intermediate_size", &c.intermediate_size, true));
  FLASHTTS_TRY(k.get_positive("num_hidden_layers", &c.n_layers, true));
  FLASHTTS_TRY(k.get_positive("num_attention_heads", &c.n_heads, true));
  FLASHTTS_TRY(k.get_positive("vocab_size", &c.vocab_size, true));
  c.n_kv_heads = c.n_heads;
  FLASHTTS_TRY(k.get_positive("num_key_value_heads", &c.n_kv_heads, false));
  if (c.n_heads % c.n_kv_heads != 0)
    return make_error(p.string() + ": key 'num_key_value_heads' (" + std::to_string(c.n_kv_heads) +
                      ") must divide num_attention_heads (" + std::to_string(c.n_heads) + ")");
  if (k.has("head_dim")) {
    FLASHTTS_TRY(k.get_positive("head_dim", &c.head_dim, true));
  } else {
    if (c.hidden_size % c.n_heads != 0)
      return make_error(p.string() + ": key 'head_dim' is missing and hidden_size is not a multiple of "
                        "num_attention_heads");
    c.head_dim = c.hidden_size / c.n_heads;
  }
  // transformers' class defaults when the key is absent.
  c.max_position = c.arch == Arch::Qwen2 ? 32768 : c.arch == Arch::Llama ? 2048 : 131072;
  FLASHTTS_TRY(k.get_positive("max_position_embeddings", &c.max_position, false));
  FLASHTTS_TRY(k.get_float("rms_norm_eps", &c.rms_eps));
  FLASHTTS_TRY(k.get_float("rope_theta", &c.rope_theta));
  if (!(c.rms_eps > 0)) return make_error(p.string() + ": key 'rms_norm_eps' must be positive");
  if (!(c.rope_theta > 0)) return make_error(p.string() + ": key 'rope_theta' must be positive");
  if (k.has("rope_scaling"))
    return make_error(p.string() + ": key 'rope_scaling' is set; RoPE scaling (" + j["rope_scaling"].dump() +
                      ") is not supported yet");
  std::string act = "silu";
  FLASHTTS_TRY(k.get_string("hidden_act", &act));
  if (act != "silu")
    return make_error(p.string() + ": key 'hidden_act' is '" + act + "'; only 'silu' is supported");
  FLASHTTS_TRY(k.get_bool("tie_word_embeddings", &c.tie_embeddings));
  FLASHTTS_TRY(k.get_string("torch_dtype", &c.torch_dtype));

  switch (c.arch) {
    case Arch::Qwen2: {
      c.qkv_bias = true;  // Qwen2 attention always has q/k/v bias and no o bias
      bool sliding = false;
      FLASHTTS_TRY(k.get_bool("use_sliding_window", &sliding));
      if (sliding)
        return make_error(p.string() + ": key 'use_sliding_window' is true; Qwen2 sliding-window attention is "
                          "not supported");
      break;
    }
    case Arch::Llama: {
      bool attention_bias = false;
      FLASHTTS_TRY(k.get_bool("attention_bias", &attention_bias));
      c.qkv_bias = c.o_bias = attention_bias;  // HF Llama biases q, k, v and o alike
      FLASHTTS_TRY(k.get_bool("mlp_bias", &c.mlp_bias));
      break;
    }
    case Arch::Mistral:
      FLASHTTS_TRY(k.get_positive("sliding_window", &c.sliding_window, false));
      break;
  }

  int32_t bos = -1;
  FLASHTTS_TRY(k.get_int("bos_token_id", &bos, false));
  c.bos_token_id = bos;
  std::vector<int32_t> eos;
  FLASHTTS_TRY(k.get_int_list("eos_token_id", &eos));
  for (int32_t e : eos) add_unique(&c.eos_token_ids, e);

  const fs::path gp = dir / "generation_config.json";
  json g;
  FLASHTTS_TRY(read_json(gp, &g, &present));
  if (present) {
    Keys gk(g, gp);
    if (c.bos_token_id < 0) FLASHTTS_TRY(gk.get_int("bos_token_id", &c.bos_token_id, false));
    std::vector<int32_t> geos;
    FLASHTTS_TRY(gk.get_int_list("eos_token_id", &geos));
    for (int32_t e : geos) add_unique(&c.eos_token_ids, e);
  }
  FLASHTTS_TRY(apply_tokenizer_config(dir, &c));

  std::string name_or_path;
  FLASHTTS_TRY(k.get_string("_name_or_path", &name_or_path));
  FLASHTTS_TRY(resolve_prm(dir, name_or_path, row->prm, ovr, &c));
  return c;
}

std::vector<TensorSlot> model_tensor_slots(const ModelConfig& c, ModelWeights* w) {
  assert(!w || int32_t(w->layers.size()) == c.n_layers);
  const int64_t h = c.hidden_size, f = c.intermediate_size, V = c.vocab_size;
  const int64_t q = int64_t(c.n_heads) * c.head_dim, kv = int64_t(c.n_kv_heads) * c.head_dim;
  std::vector<TensorSlot> s;
  auto mat = [&](std::string name, std::vector<int64_t> shape, WeightMatrix* dst) {
    s.push_back({std::move(name), std::move(shape), w ? dst : nullptr, nullptr});
  };
  auto vec = [&](std::string name, std::vector<int64_t> shape, std::vector<float>* dst) {
    s.push_back({std::move(name), std::move(shape), nullptr, w ? dst : nullptr});
  };
  mat("model.embed_tokens.weight", {V, h}, w ? &w->tok_embd : nullptr);
  for (int32_t i = 0; i < c.n_layers; ++i) {
    LayerWeights* L = w ? &w->layers[i] : nullptr;
    auto m = [&](WeightMatrix LayerWeights::*p) { return L ? &(L->*p) : nullptr; };
    auto v = [&](std::vector<float> LayerWeights::*p) { return L ? &(L->*p) : nullptr; };
    const std::string pre = "model.layers." + std::to_string(i) + ".";
    vec(pre + "input_layernorm.weight", {h}, v(&LayerWeights::attn_norm));
    mat(pre + "self_attn.q_proj.weight", {q, h}, m(&LayerWeights::wq));
    if (c.qkv_bias) vec(pre + "self_attn.q_proj.bias", {q}, v(&LayerWeights::bq));
    mat(pre + "self_attn.k_proj.weight", {kv, h}, m(&LayerWeights::wk));
    if (c.qkv_bias) vec(pre + "self_attn.k_proj.bias", {kv}, v(&LayerWeights::bk));
    mat(pre + "self_attn.v_proj.weight", {kv, h}, m(&LayerWeights::wv));
    if (c.qkv_bias) vec(pre + "self_attn.v_proj.bias", {kv}, v(&LayerWeights::bv));
    mat(pre + "self_attn.o_proj.weight", {h, q}, m(&LayerWeights::wo));
    if (c.o_bias) vec(pre + "self_attn.o_proj.bias", {h}, v(&LayerWeights::bo));
    vec(pre + "post_attention_layernorm.weight", {h}, v(&LayerWeights::ffn_norm));
    mat(pre + "mlp.gate_proj.weight", {f, h}, m(&LayerWeights::w_gate));
    if (c.mlp_bias) vec(pre + "mlp.gate_proj.bias", {f}, v(&LayerWeights::b_gate));
    mat(pre + "mlp.up_proj.weight", {f, h}, m(&LayerWeights::w_up));
    if (c.mlp_bias) vec(pre + "mlp.up_proj.bias", {f}, v(&LayerWeights::b_up));
    mat(pre + "mlp.down_proj.weight", {h, f}, m(&LayerWeights::w_down));
    if (c.mlp_bias) vec(pre + "mlp.down_proj.bias", {h}, v(&LayerWeights::b_down));
  }
  vec("model.norm.weight", {h}, w ? &w->final_norm : nullptr);
  switch (c.prm.kind) {
    case PrmKind::None:
    case PrmKind::LmLogits:
      if (!c.tie_embeddings) mat("lm_head.weight", {V, h}, w ? &w->lm_head : nullptr);
      break;
    case PrmKind::Classifier:  // Qwen2ForProcessRewardModel: score = Linear(h,h), ReLU, Linear(h,2)
      mat("score.0.weight", {h, h}, w ? &w->prm.w1 : nullptr);
      vec("score.0.bias", {h}, w ? &w->prm.b1 : nullptr);
      mat("score.2.weight", {2, h}, w ? &w->prm.w2 : nullptr);
      vec("score.2.bias", {2}, w ? &w->prm.b2 : nullptr);
      break;
    case PrmKind::ValueHead:  // Skywork: v_head.summary = Linear(h,1)
      mat("v_head.summary.weight", {1, h}, w ? &w->prm.w2 : nullptr);
      vec("v_head.summary.bias", {1}, w ? &w->prm.b2 : nullptr);
      break;
  }
  return s;
}

Expected<LoadedModel> load_model(const fs::path& dir, const PrmOverride& ovr) {
  auto cfg = load_model_config(dir, ovr);
  if (!cfg.ok()) return cfg.error();
  auto store = TensorStore::open(dir);
  if (!store.ok()) return store.error();
  LoadedModel m;
  m.config = std::move(cfg.value());
  m.weights.layers.resize(size_t(m.config.n_layers));
  // Load one tensor at a time: only the copies the weights keep are ever
  // allocated; the maps go when `store` does.
  for (const TensorSlot& s : model_tensor_slots(m.config, &m.weights)) {
    if (s.mat) {
      auto t = store->load_matrix(s.name, s.shape);
      if (!t.ok()) return t.error();
      *s.mat = std::move(t.value());
    } else {
      auto t = store->load_f32(s.name, s.shape);
      if (!t.ok()) return t.error();
      *s.vec = std::move(t.value());
    }
  }
  store->release();
  return m;
}

}  // namespace flashtts
