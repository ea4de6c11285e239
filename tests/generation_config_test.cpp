// A policy folder's generation_config.json sampling keys (temperature,
// top_p, top_k) as request defaults: the reader's checks
// (gpu/generation_config.h), the precedence against the configuration file
// (runtime/generation_defaults.h), and end to end through solve and
// generate requests on a served random-weight model.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "gpu/generation_config.h"
#include "runtime/generation_defaults.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// A folder holding only generation_config.json with `text`.
fs::path folder_with(const std::string& tag, const std::string& text) {
  fs::path d = test::scratch_dir(tag);
  write_text(d / "generation_config.json", text);
  return d;
}

// A copy of the tiny policy whose generation_config.json also holds `keys`
// (mkmodel's bos / eos kept).
fs::path policy_with(const std::string& tag, const nlohmann::json& keys) {
  return test::model_with_generation_config(test::tiny_models() / "policy", tag, keys.dump());
}

TEST(GenerationConfig, ReadsTemperatureTopPAndTopK) {
  auto d = read_sampling_defaults(folder_with("gc-read", R"({"do_sample": true, "temperature": 0.7,
      "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05, "eos_token_id": [1, 2]})"));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->temperature.value_or(-1), 0.7);
  EXPECT_EQ(d->top_p.value_or(-1), 0.8);
  EXPECT_EQ(d->top_k.value_or(-1), 20);
}

TEST(GenerationConfig, AFolderWithoutTheFileOrItsKeysGivesNoDefaults) {
  auto none = read_sampling_defaults(test::scratch_dir("gc-none"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto nulls = read_sampling_defaults(folder_with("gc-null", R"({"bos_token_id": 0, "temperature": null})"));
  ASSERT_TRUE(nulls.ok());
  EXPECT_TRUE(nulls->empty());
}

TEST(GenerationConfig, DoSampleFalseLeavesTheSamplingKeysUnused) {
  auto d = read_sampling_defaults(folder_with("gc-greedy", R"({"do_sample": false, "temperature": 0.7, "top_k": 20})"));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->empty());
}

TEST(GenerationConfig, AMalformedFileIsAnErrorNamingTheFileAndKey) {
  struct Case {
    const char* text;
    const char* words;
  } cases[] = {
      {R"({"temperature": 0.7,)", "bad JSON"},
      {R"([0.7])", "not a JSON object"},
      {R"({"temperature": "0.7"})", "key 'temperature' must be a number, got string"},
      {R"({"temperature": -1})", "key 'temperature' = -1 is out of range [0, 100]"},
      {R"({"top_p": 1.5})", "key 'top_p' = 1.5 is out of range (0, 1]"},
      {R"({"top_p": 0})", "key 'top_p' = 0 is out of range (0, 1]"},
      {R"({"top_k": 2.5})", "key 'top_k' = 2.5 must be an integer >= 0"},
      {R"({"top_k": -3})", "key 'top_k' = -3 must be an integer >= 0"},
      {R"({"do_sample": "yes", "top_k": 5})", "key 'do_sample' must be true or false"},
  };
  int i = 0;
  for (const Case& c : cases) {
    fs::path dir = folder_with("gc-bad-" + std::to_string(i++), c.text);
    auto d = read_sampling_defaults(dir);
    ASSERT_FALSE(d.ok()) << c.text;
    const std::string& m = d.error().message;
    EXPECT_EQ(m.rfind((dir / "generation_config.json").string() + ": ", 0), 0u) << m;
    EXPECT_NE(m.find(c.words), std::string::npos) << m;
  }
}

// The configuration file's own [search] keys win for solve; generate, which
// has no configuration keys, takes the folder's values.
TEST(GenerationConfig, SearchKeysTheConfigFileSetsWinForSolveOnly) {
  fs::path policy = folder_with("gc-prec", R"({"temperature": 0.3, "top_p": 0.9, "top_k": 7})");
  auto c = parse_config("[models]\npolicy = \"" + policy.string() + "\"\n[search]\ntemperature = 0.5\n", "t.toml",
                        /*check_models=*/false);
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto line = apply_generation_defaults(&*c);
  ASSERT_TRUE(line.ok()) << line.error().message;
  EXPECT_EQ(c->defaults.solve.temperature, 0.5);  // the file's [search] key
  EXPECT_EQ(c->defaults.solve.top_p, 0.9);        // not in [search]: the folder's
  EXPECT_EQ(c->defaults.solve.top_k, 7);
  EXPECT_EQ(c->defaults.generate.temperature, 0.3);
  EXPECT_EQ(c->defaults.generate.top_p, 0.9);
  EXPECT_EQ(c->defaults.generate.top_k, 7);
  EXPECT_NE(line->find("solve and generate requests default to top_p 0.9, top_k 7; generate requests to temperature 0.3"),
            std::string::npos)
      << *line;

  // Without the key in the file, the folder's value replaces the built-in one.
  auto bare = parse_config("[models]\npolicy = \"" + policy.string() + "\"\n", "t.toml", false);
  ASSERT_TRUE(bare.ok());
  ASSERT_TRUE(apply_generation_defaults(&*bare).ok());
  EXPECT_EQ(bare->defaults.solve.temperature, 0.3);
}

std::string result_text(Client& c, const std::string& type, msg::MapWriter w) {
  auto r = c.call(type, w, 60s);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  std::string text;
  if (r.ok()) {
    EXPECT_TRUE(r->body.get("text", &text).ok());
  }
  return text;
}

// Two solves with different seeds and no temperature of their own: the
// same text when the folder says temperature 0 (greedy), different texts
// with mkmodel's file, which has no sampling keys (the built-in 0.8).
TEST(GenerationConfig, ASolveWithoutTemperatureTakesTheFoldersTemperature) {
  auto texts = [](const fs::path& policy, const std::string& tag) {
    Config cfg = test::tiny_pipeline_config(test::ipc_endpoint(tag));
    cfg.models.policy = policy;
    test::Pipeline p(cfg);
    Client c = p.client();
    std::vector<std::string> out;
    for (uint64_t seed : {1, 2}) {
      msg::MapWriter w;
      w.put("problem", "What is 3 + 4?").put("seed", seed);
      out.push_back(result_text(c, "solve", w));
    }
    return out;
  };
  auto greedy = texts(policy_with("gc-solve-greedy", {{"temperature", 0}}), "gc-solve-greedy");
  EXPECT_FALSE(greedy[0].empty());
  EXPECT_EQ(greedy[0], greedy[1]);
  auto sampled = texts(test::tiny_models() / "policy", "gc-solve-sampled");
  EXPECT_NE(sampled[0], sampled[1]);
}

// generate's built-in default is greedy: different seeds give one text,
// unless the folder asks for sampling. A request's own temperature wins.
TEST(GenerationConfig, AGenerateWithoutTemperatureTakesTheFoldersTemperature) {
  Config cfg = test::tiny_pipeline_config(test::ipc_endpoint("gc-gen"));
  cfg.models.policy = policy_with("gc-gen", {{"temperature", 1.5}, {"top_k", 0}});
  test::Pipeline p(cfg);
  Client c = p.client();
  auto gen = [&](uint64_t seed, std::optional<double> temperature) {
    msg::MapWriter w;
    w.put("prompt", "Hello").put("max_tokens", 16).put("seed", seed);
    if (temperature) w.put("temperature", *temperature);
    return result_text(c, "generate", w);
  };
  EXPECT_NE(gen(1, std::nullopt), gen(2, std::nullopt));
  EXPECT_EQ(gen(1, 0.0), gen(2, 0.0));
}

TEST(GenerationConfig, AServerWithAMalformedFileDoesNotStartAndNamesIt) {
  fs::path policy = policy_with("gc-bad-serve", {{"top_p", 7}});
  Config cfg = test::tiny_pipeline_config(test::ipc_endpoint("gc-bad-serve"));
  cfg.models.policy = policy;
  try {
    test::Pipeline p(cfg);
    ADD_FAILURE() << "the server started";
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find((policy / "generation_config.json").string() + ": key 'top_p' = 7"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace flashtts
