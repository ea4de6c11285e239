// The worked config of docs/models.md ("Your own models"), read from the doc
// itself so the doc cannot rot: flashtts accepts it with folders of the
// documented models' shapes (flashtts-mkmodel --preset, no weights), the
// folders load with its PRM family, and the memory table's numbers are what
// those shapes give.
#include <gtest/gtest.h>

#include <regex>

#include "gpu/model_loader.h"
#include "runtime/config.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;

std::string models_md() { return test::read_file(fs::path(FLASHTTS_SOURCE_DIR) / "docs" / "models.md"); }

// The ```toml block after the worked-config marker ("" when absent).
std::string worked_config(const std::string& doc) {
  size_t at = doc.find("<!-- worked-config:");
  if (at == std::string::npos) return "";
  size_t open = doc.find("```toml\n", at);
  if (open == std::string::npos) return "";
  open += 8;
  size_t close = doc.find("```", open);
  return close == std::string::npos ? "" : doc.substr(open, close - open);
}

// Folders of the documented models' shapes: config.json, tokenizer, no weights.
const fs::path& preset_folder(const std::string& preset) {
  return test::random_model("models-doc-" + preset, "--preset " + preset + " --no-weights");
}

// Replaces the value of `key = "..."` in `toml`.
std::string set_path(std::string toml, const std::string& key, const fs::path& p) {
  return std::regex_replace(toml, std::regex("\n" + key + " = \"[^\"]*\""), "\n" + key + " = \"" + p.string() + "\"");
}

// 1234567 -> "1,234,567", as the doc writes numbers.
std::string grouped(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

TEST(ModelsDoc, TheWorkedConfigIsAcceptedWithFoldersOfThoseModels) {
  std::string toml = worked_config(models_md());
  ASSERT_FALSE(toml.empty()) << "docs/models.md has no worked-config toml block";
  toml = set_path(set_path(toml, "policy", preset_folder("qwen2.5-math-1.5b")), "prm",
                  preset_folder("skywork-prm-1.5b"));
  auto c = parse_config(toml, test::scratch_dir("models-doc") / "flashtts.toml", /*check_models=*/true);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->models.prm_family, "value_head");
  EXPECT_EQ(c->models.prompt_format, "chatml");
  EXPECT_EQ(c->step_delimiter, "\n\n");
  EXPECT_EQ(c->defaults.solve.strategy, "beam_search");
  EXPECT_EQ(c->defaults.solve.aggregation, "last");
  // The sampling keys are left to the policy's generation_config.json.
  for (const char* k : {"temperature", "top_p", "top_k"}) EXPECT_EQ(c->search_keys.count(k), 0u) << k;

  auto family = parse_prm_family(c->models.prm_family);
  ASSERT_TRUE(family.ok());
  PrmOverride ovr;
  ovr.family = *family;
  auto prm = load_model_config(c->models.prm, ovr);
  ASSERT_TRUE(prm.ok()) << prm.error().message;
  EXPECT_EQ(prm->prm.kind, PrmKind::ValueHead);
  auto policy = load_model_config(c->models.policy);
  ASSERT_TRUE(policy.ok()) << policy.error().message;
  EXPECT_EQ(policy->prm.kind, PrmKind::None);
}

TEST(ModelsDoc, TheQwenPrmAlternativeLoadsAsAClassifier) {
  auto ovr = PrmOverride{};
  auto family = parse_prm_family("classifier");  // what prm_family = "qwen" becomes
  ASSERT_TRUE(family.ok());
  ovr.family = *family;
  auto prm = load_model_config(preset_folder("qwen2.5-math-prm-7b"), ovr);
  ASSERT_TRUE(prm.ok()) << prm.error().message;
  EXPECT_EQ(prm->prm.kind, PrmKind::Classifier);
  EXPECT_NE(models_md().find("prm_family = \"qwen\""), std::string::npos);
}

// Weights as flashtts holds them (matrices in the folder's dtype, vectors in
// float32) and KV per token, for each documented model; the doc must state them.
TEST(ModelsDoc, TheMemoryTableMatchesTheModelShapes) {
  const std::string doc = models_md();
  for (const char* preset : {"qwen2.5-math-1.5b", "skywork-prm-1.5b", "qwen2.5-math-prm-7b"}) {
    auto c = load_model_config(preset_folder(preset));
    ASSERT_TRUE(c.ok()) << c.error().message;
    int64_t mat = 0, vec = 0;
    for (const TensorSlot& s : model_tensor_slots(*c, nullptr)) {
      int64_t n = 1;
      for (int64_t d : s.shape) n *= d;
      (s.shape.size() == 2 ? mat : vec) += n;
    }
    const int64_t kv_values = 2ll * c->n_layers * c->n_kv_heads * c->head_dim;
    for (int64_t v : {mat + vec, 2 * mat + 4 * vec, 4 * (mat + vec), 2 * kv_values, 4 * kv_values})
      EXPECT_NE(doc.find(grouped(v)), std::string::npos) << preset << ": docs/models.md lacks " << grouped(v);
  }
}

}  // namespace
}  // namespace flashtts
