// Loading Hugging Face folders written by flashtts-mkmodel: every architecture
// and PRM family, and every bad-folder case producing an Error that names the
// file and the key or tensor.
#include "gpu/model_loader.h"

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "gpu/safetensors.h"
#include "gpu/safetensors_writer.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Writes a small model with flashtts-mkmodel; `args` are extra flags.
fs::path mkmodel(const std::string& tag, const std::string& args) {
  fs::path dir = test::scratch_dir(tag);
  test::write_model(dir, "--hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 48 --vocab 300 " + args);
  return dir;
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

void edit_config(const fs::path& dir, const std::function<void(json&)>& fn) {
  json j = read_json(dir / "config.json");
  fn(j);
  write_text(dir / "config.json", j.dump(2));
}

// Rewrites model.safetensors through `fn`, which may drop or change tensors.
void edit_tensors(const fs::path& dir, const std::function<void(std::vector<TensorData>&)>& fn) {
  std::vector<TensorData> all;
  {
    auto f = SafetensorsFile::open(dir / "model.safetensors");
    ASSERT_TRUE(f.ok()) << f.error().message;
    for (const auto& t : f->tensors()) {
      TensorData d{{t.name, t.dtype, t.shape}, std::vector<float>(size_t(t.numel()))};
      ASSERT_TRUE(f->read_f32(t, d.values));
      all.push_back(std::move(d));
    }
  }
  fn(all);
  ASSERT_TRUE(write_safetensors(dir / "model.safetensors", all));
}

void expect_error(const Expected<LoadedModel>& m, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(m.ok()) << "loaded, but expected an error";
  for (const auto& p : parts) EXPECT_NE(m.error().message.find(p), std::string::npos) << m.error().message;
}

// --- every architecture

TEST(ModelLoader, AQwen2FolderLoadsWithItsConfigBiasesAndUntiedHead) {
  fs::path dir = mkmodel("ld_qwen2", "--arch qwen2 --rope-theta 1000000 --max-position 2048");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.arch, Arch::Qwen2);
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 48);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.max_position, 2048);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.bos_token_id, 297);                           // <|endoftext|>
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{299, 297}));  // <|im_end|>, then generation_config's
  EXPECT_EQ(c.prm.kind, PrmKind::None);
  const ModelWeights& w = m->weights;
  EXPECT_EQ(w.tok_embd.size(), 300u * 32);
  EXPECT_EQ(w.lm_head.size(), 300u * 32);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.layers[1].wq.size(), 32u * 32);
  EXPECT_EQ(w.layers[1].wk.size(), 16u * 32);
  EXPECT_EQ(w.layers[1].bq.size(), 32u);
  EXPECT_EQ(w.layers[1].bk.size(), 16u);
  EXPECT_EQ(w.layers[1].bv.size(), 16u);
  EXPECT_TRUE(w.layers[1].bo.empty());
  EXPECT_EQ(w.layers[1].w_down.size(), 32u * 48);
  EXPECT_EQ(w.final_norm.size(), 32u);
  // RMSNorm weights are 1 + small noise; Linear weights small.
  EXPECT_NEAR(w.final_norm[0], 1.0f, 0.2f);
  EXPECT_NEAR(w.layers[0].wq.at(5), 0.0f, 0.2f);
}

TEST(ModelLoader, ATiedLlamaFolderHasNoLmHeadAndNoBiases) {
  fs::path dir = mkmodel("ld_llama_tied", "--arch llama --tie");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->config.arch, Arch::Llama);
  EXPECT_TRUE(m->config.tie_embeddings);
  EXPECT_TRUE(m->weights.lm_head.empty());
  EXPECT_EQ(&m->weights.output(), &m->weights.tok_embd);
  EXPECT_FALSE(m->config.qkv_bias);
  EXPECT_TRUE(m->weights.layers[0].bq.empty());
  EXPECT_TRUE(m->weights.layers[0].bo.empty());
}

TEST(ModelLoader, LlamaAttentionBiasBiasesQkvAndO) {
  fs::path dir = mkmodel("ld_llama_bias", "--arch llama --qkv-bias");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_TRUE(m->config.qkv_bias);
  EXPECT_TRUE(m->config.o_bias);
  EXPECT_EQ(m->weights.layers[0].bq.size(), 32u);
  EXPECT_EQ(m->weights.layers[0].bo.size(), 32u);
}

TEST(ModelLoader, AMistralFolderRecordsItsHeadDim) {
  fs::path dir = mkmodel("ld_mistral", "--arch mistral --head-dim 16");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->config.arch, Arch::Mistral);
  EXPECT_EQ(m->config.head_dim, 16);
  EXPECT_EQ(m->weights.layers[0].wq.size(), 64u * 32);  // (nh*hd, h)
  EXPECT_EQ(m->weights.layers[0].wo.size(), 32u * 64);  // (h, nh*hd)
  EXPECT_EQ(m->config.sliding_window, 0);
}

TEST(ModelLoader, AQwen25MathPrmFolderIsAClassifierWithStepTagExtra0) {
  fs::path dir = mkmodel("ld_qprm", "--arch qwen2-prm");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->config.architecture, "Qwen2ForProcessRewardModel");
  EXPECT_EQ(m->config.prm.kind, PrmKind::Classifier);
  EXPECT_EQ(m->config.prm.step_tag, "<extra_0>");
  EXPECT_TRUE(m->weights.lm_head.empty());
  EXPECT_EQ(m->weights.prm.w1.size(), 32u * 32);
  EXPECT_EQ(m->weights.prm.b1.size(), 32u);
  EXPECT_EQ(m->weights.prm.w2.size(), 2u * 32);
  EXPECT_EQ(m->weights.prm.b2.size(), 2u);
}

TEST(ModelLoader, ASkyworkPrmFolderIsAValueHeadWithNewlineSteps) {
  fs::path dir = mkmodel("ld_sky", "--arch skywork-prm");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->config.architecture, "Qwen2ForPrmModel");
  EXPECT_EQ(m->config.prm.kind, PrmKind::ValueHead);
  EXPECT_EQ(m->config.prm.step_tag, "\n");
  EXPECT_TRUE(m->weights.prm.w1.empty());
  EXPECT_EQ(m->weights.prm.w2.size(), 32u);
  EXPECT_EQ(m->weights.prm.b2.size(), 1u);
}

TEST(ModelLoader, AnLmLogitPrmTakesItsFamilyFromFlashttsPrmJson) {
  fs::path dir = mkmodel("ld_lmprm", "--arch lm-prm");
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->config.arch, Arch::Mistral);
  EXPECT_EQ(m->config.prm.kind, PrmKind::LmLogits);
  EXPECT_EQ(m->config.prm.step_tag, " ки");
  EXPECT_EQ(m->config.prm.good_token, "+");
  EXPECT_EQ(m->config.prm.bad_token, "-");
  EXPECT_EQ(m->weights.lm_head.size(), 300u * 32);
}

TEST(ModelLoader, AMathShepherdNameInConfigMakesAnLmLogitPrm) {
  fs::path dir = mkmodel("ld_shepherd", "--arch mistral");
  edit_config(dir, [](json& j) { j["_name_or_path"] = "peiyi9979/math-shepherd-mistral-7b-prm"; });
  auto c = load_model_config(dir);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->prm.kind, PrmKind::LmLogits);
  EXPECT_EQ(c->prm.step_tag, " ки");
  EXPECT_EQ(c->prm.good_token, "+");
}

TEST(ModelLoader, AnOverrideWinsOverTheFolderAndIsCheckedAgainstTheArchitecture) {
  fs::path dir = mkmodel("ld_override", "--arch lm-prm");
  PrmOverride o;
  o.step_tag = "\n\n";
  o.good_token = "Y";
  auto c = load_model_config(dir, o);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->prm.step_tag, "\n\n");
  EXPECT_EQ(c->prm.good_token, "Y");
  EXPECT_EQ(c->prm.bad_token, "-");
  o = {};
  o.family = PrmKind::None;
  auto none = load_model_config(dir, o);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->prm.kind, PrmKind::None);
  o.family = PrmKind::Classifier;
  auto bad = load_model_config(dir, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("Qwen2ForProcessRewardModel"), std::string::npos) << bad.error().message;
  // An lm_logits family without its tokens says which key is missing.
  fs::path plain = mkmodel("ld_override_plain", "--arch qwen2");
  o = {};
  o.family = PrmKind::LmLogits;
  o.step_tag = " ки";
  auto half = load_model_config(plain, o);
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message.find("good_token"), std::string::npos) << half.error().message;
}

TEST(ModelLoader, Bf16MatricesStayBf16AndEqualTheRoundingOfTheirF32Twins) {
  fs::path f32 = mkmodel("ld_f32", "--arch qwen2 --seed 9 --std 0.5");
  fs::path bf16 = mkmodel("ld_bf16", "--arch qwen2 --seed 9 --std 0.5 --dtype bf16");
  auto a = load_model(f32);
  auto b = load_model(bf16);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->config.torch_dtype, "bfloat16");
  const auto& x = a->weights.layers[1].w_up;
  const auto& y = b->weights.layers[1].w_up;
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(x.dtype, DType::F32);
  EXPECT_EQ(y.dtype, DType::BF16);  // kept as stored: half the bytes
  EXPECT_EQ(y.bytes() * 2, x.bytes());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y.at(i), bf16_to_f32(f32_to_bf16(x.at(i)))) << i;
  EXPECT_EQ(y, x.converted(DType::BF16));
  EXPECT_NE(x.to_f32(), y.to_f32());  // the rounding did something
  // Norms are float32 whatever the folder stores.
  EXPECT_EQ(a->weights.layers[1].ffn_norm.size(), b->weights.layers[1].ffn_norm.size());
  EXPECT_LT(b->weights.bytes(), a->weights.bytes() * 6 / 10);
}

TEST(ModelLoader, AShardedFolderLoadsTheSameWeightsAsASingleFile) {
  fs::path one = mkmodel("ld_one", "--arch llama --seed 3");
  fs::path four = mkmodel("ld_four", "--arch llama --seed 3 --shards 4");
  EXPECT_TRUE(fs::exists(four / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(four / "model-00004-of-00004.safetensors"));
  auto a = load_model(one);
  auto b = load_model(four);
  ASSERT_TRUE(a.ok() && b.ok()) << (a.ok() ? b.error().message : a.error().message);
  EXPECT_EQ(a->weights.tok_embd, b->weights.tok_embd);
  EXPECT_EQ(a->weights.lm_head, b->weights.lm_head);
  EXPECT_EQ(a->weights.layers[1].w_gate, b->weights.layers[1].w_gate);
}

// --- config.json details

TEST(ModelLoader, ConfigDefaultsAndListsFollowTransformers) {
  fs::path dir = mkmodel("ld_defaults", "--arch llama");
  edit_config(dir, [](json& j) {
    j.erase("num_key_value_heads");
    j.erase("rope_theta");
    j["eos_token_id"] = json::array({5, 6});
    j["head_dim"] = 8;
  });
  fs::remove(dir / "generation_config.json");
  fs::remove(dir / "tokenizer_config.json");
  auto c = load_model_config(dir);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_FLOAT_EQ(c->rope_theta, 10000.0f);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{5, 6}));
}

TEST(ModelLoader, TokenizerConfigEosIsResolvedThroughItsAddedTokens) {
  fs::path dir = mkmodel("ld_tokcfg", "--arch qwen2");
  edit_config(dir, [](json& j) { j.erase("eos_token_id"); j.erase("bos_token_id"); });
  fs::remove(dir / "generation_config.json");
  json tc = read_json(dir / "tokenizer_config.json");
  tc["eos_token"] = "<|endoftext|>";
  write_text(dir / "tokenizer_config.json", tc.dump());
  auto c = load_model_config(dir);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{297}));
}

// --- bad folders: the message names the file and the key or tensor

TEST(ModelLoader, AMissingConfigJsonIsAnErrorNamingIt) {
  fs::path dir = test::scratch_dir("ld_empty");
  expect_error(load_model(dir), {"config.json", "missing"});
}

TEST(ModelLoader, BadJsonNamesTheFileAndTheParserPosition) {
  fs::path dir = mkmodel("ld_badjson", "--arch qwen2");
  write_text(dir / "config.json", "{\"hidden_size\": 32,, }");
  expect_error(load_model(dir), {"config.json", "byte 20"});
  fs::path dir2 = mkmodel("ld_badgen", "--arch qwen2");
  write_text(dir2 / "generation_config.json", "{");
  expect_error(load_model(dir2), {"generation_config.json", "bad JSON"});
}

TEST(ModelLoader, AnUnknownArchitectureListsTheSupportedOnes) {
  fs::path dir = mkmodel("ld_arch", "--arch qwen2");
  edit_config(dir, [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  expect_error(load_model(dir), {"config.json", "GPT2LMHeadModel", "Qwen2ForCausalLM", "Qwen2ForPrmModel"});
}

TEST(ModelLoader, AMissingOrWrongTypedKeyIsNamed) {
  fs::path dir = mkmodel("ld_keys", "--arch qwen2");
  edit_config(dir, [](json& j) { j.erase("hidden_size"); });
  expect_error(load_model(dir), {"config.json", "'hidden_size'", "missing"});
  edit_config(dir, [](json& j) { j["hidden_size"] = "32"; });
  expect_error(load_model(dir), {"config.json", "'hidden_size'", "integer", "string"});
  edit_config(dir, [](json& j) { j["hidden_size"] = 32; j["tie_word_embeddings"] = 1; });
  expect_error(load_model(dir), {"config.json", "'tie_word_embeddings'"});
  edit_config(dir, [](json& j) { j["tie_word_embeddings"] = false; j["num_key_value_heads"] = 3; });
  expect_error(load_model(dir), {"config.json", "'num_key_value_heads'"});
}

TEST(ModelLoader, RopeScalingIsRejectedAsUnsupported) {
  fs::path dir = mkmodel("ld_rope", "--arch llama");
  edit_config(dir, [](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; });
  expect_error(load_model(dir), {"config.json", "'rope_scaling'", "not supported"});
}

TEST(ModelLoader, AnUnknownKeyInFlashttsPrmJsonIsNamed) {
  fs::path dir = mkmodel("ld_prmjson", "--arch lm-prm");
  write_text(dir / "flashtts_prm.json", R"({"family": "lm_logits", "step_tag": " ки", "goodtoken": "+"})");
  auto c = load_model_config(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("flashtts_prm.json"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("'goodtoken'"), std::string::npos) << c.error().message;
  write_text(dir / "flashtts_prm.json", R"({"family": "lm_logit"})");
  auto f = load_model_config(dir);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("lm_logit'"), std::string::npos) << f.error().message;
}

TEST(ModelLoader, AMissingTensorIsNamedWithItsFile) {
  fs::path dir = mkmodel("ld_notensor", "--arch qwen2");
  edit_tensors(dir, [](std::vector<TensorData>& all) {
    std::erase_if(all, [](const TensorData& t) { return t.spec.name == "model.layers.1.self_attn.k_proj.bias"; });
  });
  expect_error(load_model(dir), {"model.safetensors", "missing tensor 'model.layers.1.self_attn.k_proj.bias'"});
}

TEST(ModelLoader, AWrongShapeShowsExpectedAndActual) {
  fs::path dir = mkmodel("ld_shape", "--arch qwen2");
  edit_tensors(dir, [](std::vector<TensorData>& all) {
    for (auto& t : all)
      if (t.spec.name == "model.layers.0.mlp.up_proj.weight") t.spec.shape = {32, 48};  // transposed
  });
  expect_error(load_model(dir),
               {"model.safetensors", "'model.layers.0.mlp.up_proj.weight'", "[32, 48]", "expected [48, 32]"});
}

TEST(ModelLoader, AnUnsupportedDtypeIsNamed) {
  fs::path dir = mkmodel("ld_dtype", "--arch qwen2");
  // Rewrite the file with model.norm.weight as I32 (same byte count as F32).
  std::string raw;
  {
    std::ifstream f(dir / "model.safetensors", std::ios::binary);
    raw.assign(std::istreambuf_iterator<char>(f), {});
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | uint8_t(raw[size_t(i)]);
  json h = json::parse(raw.substr(8, n));
  h["model.norm.weight"]["dtype"] = "I32";
  std::string text = h.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint64_t(text.size()) >> (8 * i));
  write_text(dir / "model.safetensors", out + text + raw.substr(8 + n));
  expect_error(load_model(dir), {"model.safetensors", "'model.norm.weight'", "I32"});
}

TEST(ModelLoader, ATruncatedSafetensorsFileIsAnError) {
  fs::path dir = mkmodel("ld_trunc", "--arch qwen2");
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
  expect_error(load_model(dir), {"model.safetensors", "beyond the end of the data"});
}

TEST(ModelLoader, AMissingShardAndATensorAbsentFromItsShardAreErrors) {
  fs::path dir = mkmodel("ld_shard", "--arch qwen2 --shards 3");
  fs::remove(dir / "model-00002-of-00003.safetensors");
  expect_error(load_model(dir), {"model.safetensors.index.json", "model-00002-of-00003.safetensors", "missing"});
  fs::path dir2 = mkmodel("ld_shard2", "--arch qwen2 --shards 3");
  json idx = read_json(dir2 / "model.safetensors.index.json");
  idx["weight_map"]["model.norm.weight"] = "model-00001-of-00003.safetensors";  // it lives in shard 3
  write_text(dir2 / "model.safetensors.index.json", idx.dump());
  expect_error(load_model(dir2), {"model.safetensors.index.json", "'model.norm.weight'", "model-00001-of-00003"});
}

}  // namespace
}  // namespace flashtts
