// A real trained model end to end: the llama2.c checkpoint aidreams260K
// (../shared/testdata/models/aidreams260K), converted by
// flashtts-convert-llama2c and run by the engine in-process, must reproduce
// upstream llama2.c run.c's greedy text from BOS token for token, and the
// float64 reference logits of its first four positions.
//
// expected_greedy_bos.json holds "token_ids" = BOS + the 128 generated ids
// (129 in all; seq_len 128 = max_position_embeddings is enough, since the
// last id is sampled from position 127) and "reference_logits" {positions
// [0..3], logits (4, 512) float64}. See ../shared/testdata/PROVENANCE.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gpu/engine.h"
#include "gpu/generate.h"
#include "gpu/model_loader.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;

fs::path model_data() { return test::testdata_dir() / "models/aidreams260K"; }

nlohmann::json expected() {
  std::ifstream f(model_data() / "expected_greedy_bos.json");
  return nlohmann::json::parse(f);
}

// Converts the checkpoint into a scratch folder and opens an engine on it.
std::unique_ptr<Engine> open_aidreams() {
  fs::path dir = test::scratch_dir("aidreams");
  fs::path tool = test::binary_dir() / "flashtts-convert-llama2c";
  if (!fs::exists(tool)) {
    ADD_FAILURE() << tool << " is not built";
    return nullptr;
  }
  std::string out;
  std::string cmd = tool.string() + " --checkpoint " + (model_data() / "aidreams260K.bin").string() + " --out " +
                    dir.string() + " 2>&1";
  if (int rc = test::run_command(cmd, &out); rc != 0) {
    ADD_FAILURE() << cmd << " exited " << rc << ": " << out;
    return nullptr;
  }
  auto m = load_model(dir);
  fs::remove_all(dir);  // the weights are in memory now
  if (!m.ok()) {
    ADD_FAILURE() << m.error().message;
    return nullptr;
  }
  EngineOptions eo;
  eo.kv_bytes = 8u << 20;
  eo.block_size = 16;
  eo.n_threads = 2;
  auto e = Engine::create(m->config, std::move(m->weights), eo);
  if (!e.ok()) {
    ADD_FAILURE() << e.error().message;
    return nullptr;
  }
  return std::move(e).value();
}

TEST(Aidreams, GreedyDecodingFromBosReproducesLlama2cRunCTokenForToken) {
  FLASHTTS_REQUIRE_TESTDATA();
  const auto want = expected();
  const auto ids = want.at("token_ids").get<std::vector<int32_t>>();
  const auto prompt = want.at("prompt_ids").get<std::vector<int32_t>>();
  ASSERT_EQ(prompt, std::vector<int32_t>{1});
  ASSERT_EQ(ids.size(), prompt.size() + want.at("generated_tokens").get<size_t>());
  ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), ids.begin()));
  auto engine = open_aidreams();
  ASSERT_TRUE(engine);
  ASSERT_GE(engine->config().max_position, (int32_t)ids.size() - 1)
      << "the last generated id is sampled from position " << ids.size() - 2;

  GenerateRequest q;
  q.prompt = prompt;
  q.max_tokens = (int32_t)(ids.size() - prompt.size());  // 128
  q.sampling.temperature = 0.0f;                         // greedy; no stop ids, as run.c -n 128
  auto res = generate(*engine, std::span<const GenerateRequest>(&q, 1));
  ASSERT_TRUE(res.ok()) << res.error().message;
  const std::vector<int32_t>& got = (*res)[0].tokens;
  const std::vector<int32_t> want_gen(ids.begin() + (long)prompt.size(), ids.end());
  ASSERT_EQ(got.size(), want_gen.size());
  auto diff = std::mismatch(got.begin(), got.end(), want_gen.begin());
  EXPECT_TRUE(diff.first == got.end()) << "first differing generated token: #" << (diff.first - got.begin())
                                       << " is " << *diff.first << ", run.c gave " << *diff.second;
  EXPECT_EQ((*res)[0].finish_reason, "length");
}

TEST(Aidreams, LogitsOfTheFirstFourPositionsMatchTheFloat64Reference) {
  FLASHTTS_REQUIRE_TESTDATA();
  const auto want = expected();
  const auto ids = want.at("token_ids").get<std::vector<int32_t>>();
  const auto& ref = want.at("reference_logits");
  const auto positions = ref.at("positions").get<std::vector<int32_t>>();
  const auto logits = ref.at("logits").get<std::vector<std::vector<double>>>();
  ASSERT_EQ(positions.size(), logits.size());
  auto engine = open_aidreams();
  ASSERT_TRUE(engine);

  const int32_t n = *std::max_element(positions.begin(), positions.end()) + 1;
  ASSERT_TRUE(engine->add_sequence(1, std::span<const int32_t>(ids.data(), (size_t)n), false).ok());
  RunItem item{1, RowSelect::Explicit, 0, positions};
  RunResult rr;
  ASSERT_TRUE(engine->run(std::span<const RunItem>(&item, 1), OutputKind::Logits, &rr).ok());
  ASSERT_EQ(rr.item_n_rows[0], (int32_t)positions.size());
  for (size_t r = 0; r < positions.size(); ++r) {
    auto row = rr.out.row(rr.item_first_row[0] + (int32_t)r);
    ASSERT_EQ(rr.row_position[rr.item_first_row[0] + r], positions[r]);
    ASSERT_EQ(row.size(), logits[r].size());
    double max_err = 0, scale = 0;
    for (size_t v = 0; v < row.size(); ++v) {
      max_err = std::max(max_err, std::abs((double)row[v] - logits[r][v]));
      scale = std::max(scale, std::abs(logits[r][v]));
    }
    EXPECT_LE(max_err / scale, 1e-4) << "position " << positions[r] << ": max abs err " << max_err;
    const int32_t argmax = (int32_t)(std::max_element(row.begin(), row.end()) - row.begin());
    EXPECT_EQ(argmax, ids[(size_t)positions[r] + 1]) << "position " << positions[r];
  }
}

}  // namespace
}  // namespace flashtts
