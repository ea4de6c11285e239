// The flashtts binary as a user runs it, on model folders written by our own
// flashtts-mkmodel (so this runs everywhere, with no shared data or Python).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::binary_dir;
using test::run_command;

std::string bin(const std::string& name) { return (binary_dir() / name).string(); }

// Writes a model once per test program.
const fs::path& model_dir(const std::string& arch) {
  static std::map<std::string, fs::path> dirs;
  auto it = dirs.find(arch);
  if (it != dirs.end()) return it->second;
  fs::path d = test::scratch_dir("cli-" + arch);
  test::write_model(d, "--arch " + arch + " --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128"
                       " --vocab 600 --seed 5");
  return dirs[arch] = d;
}

json run_json(const std::string& cmd) {
  std::string out;
  int rc = run_command(cmd + " 2>/dev/null", &out);
  EXPECT_EQ(rc, 0) << cmd;
  return json::parse(out, nullptr, /*allow_exceptions=*/false);
}

TEST(Cli, GenerateJsonHasPromptIdsTokenIdsTextAndFinishReason) {
  std::string m = model_dir("qwen2").string();
  json j = run_json(bin("flashtts") + " generate --model " + m + " --prompt 'Let a = 5.' --max-tokens 12 --temperature 0 --json");
  ASSERT_TRUE(j.is_object());
  EXPECT_FALSE(j["prompt_ids"].empty());
  EXPECT_EQ(j["finish_reason"], j["token_ids"].size() == 12 ? "length" : "stop");
  EXPECT_TRUE(j["text"].is_string());
  // The prompt ids are exactly what tokenize gives.
  json t = run_json(bin("flashtts") + " tokenize --model " + m + " --text 'Let a = 5.' --json");
  EXPECT_EQ(t["ids"], j["prompt_ids"]);
}

TEST(Cli, GreedyGenerationIsRepeatableAndSeededSamplingFollowsTheSeed) {
  std::string m = model_dir("qwen2").string();
  std::string g = bin("flashtts") + " generate --model " + m + " --prompt 'x y z' --max-tokens 16 --json";
  EXPECT_EQ(run_json(g + " --temperature 0")["token_ids"], run_json(g + " --temperature 0")["token_ids"]);
  json a = run_json(g + " --temperature 1 --seed 1"), b = run_json(g + " --temperature 1 --seed 1"),
       c = run_json(g + " --temperature 1 --seed 2");
  EXPECT_EQ(a["token_ids"], b["token_ids"]);
  EXPECT_NE(a["token_ids"], c["token_ids"]);
}

TEST(Cli, ScoreGivesOneProbabilityPerStep) {
  std::string m = model_dir("qwen2-prm").string();
  json j = run_json(bin("flashtts") + " score --prm " + m +
                    " --problem 'What is 2+3?' --solution '2+3 = 5.\n\nThe answer is 5.\n\n' --json");
  ASSERT_EQ(j["step_scores"].size(), 2u);
  for (double s : j["step_scores"]) {
    EXPECT_GT(s, 0.0);
    EXPECT_LT(s, 1.0);
  }
  json raw = run_json(bin("flashtts") + " score --prm " + m + " --raw 'a<extra_0>b<extra_0>c<extra_0>' --json");
  EXPECT_EQ(raw["step_scores"].size(), 3u);
}

TEST(Cli, BadInputExitsNonZeroWithAMessageNamingTheProblem) {
  std::string out;
  fs::path empty = test::scratch_dir("cli-empty");
  EXPECT_EQ(run_command(bin("flashtts") + " generate --model " + empty.string() + " --prompt x 2>&1", &out), 1);
  EXPECT_NE(out.find("config.json"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(bin("flashtts") + " score --prm " + model_dir("qwen2").string() + " --raw 'a b' 2>&1", &out), 0);
  EXPECT_NE(out.find("not a process reward model"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(bin("flashtts") + " generate --model " + model_dir("qwen2-prm").string() + " --prompt x 2>&1", &out), 0);
  EXPECT_NE(out.find("flashtts score"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(bin("flashtts") + " generate --prompt x 2>&1", &out), 0);
  EXPECT_NE(out.find("--model"), std::string::npos) << out;
}

}  // namespace
}  // namespace flashtts
