// PRM input formats pinned token for token. The expected ids were produced by
// the published reference code through Hugging Face tokenizers (the same
// comparison tests/reference/test_prm_formats.py runs for every family on
// more cases); they need the shared tokenizers and skip without them.
#include <gtest/gtest.h>

#include "gpu/open_model.h"
#include "gpu/prm_format.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

const char* kProblem = "What is 2 + 3 * 4?";
const std::vector<std::string> kSteps = {"First, 3 * 4 = 12.", "Then 2 + 12 = 14.\nSo the answer is \\boxed{14}."};

PrmInput format(const std::string& tokenizer, PrmKind kind, PrmFormat fmt, const std::string& tag, int bos = -1) {
  auto tok = open_tokenizer(test::testdata_dir() / "tokenizers" / tokenizer);
  EXPECT_TRUE(tok.ok()) << (tok.ok() ? "" : tok.error().message);
  ModelConfig cfg;
  cfg.prm.kind = kind;
  cfg.prm.format = fmt;
  cfg.prm.step_tag = tag;
  cfg.prm.good_token = "+";
  cfg.prm.bad_token = "-";
  cfg.bos_token_id = bos;
  EXPECT_TRUE(resolve_prm_tokens(**tok, &cfg).ok());
  auto in = format_prm_input(**tok, cfg, kProblem, kSteps);
  EXPECT_TRUE(in.ok()) << (in.ok() ? "" : in.error().message);
  return in.ok() ? *in : PrmInput{};
}

TEST(PrmFormat, SkyworkSplitsTheResponseIntoPiecesWithATagAfterEach) {
  FLASHTTS_REQUIRE_TESTDATA();
  PrmInput in = format("qwen3", PrmKind::ValueHead, PrmFormat::Skywork, "\n", 151643);
  EXPECT_EQ(in.ids, (std::vector<int32_t>{151643, 3838, 374, 220, 17, 488, 220, 18, 353, 220, 19, 5267, 5338, 11, 220,
                                          18, 353, 220, 19, 284, 220, 16, 17, 13, 198, 198, 12209, 220, 17, 488, 220,
                                          16, 17, 284, 220, 16, 19, 13, 198, 4416, 279, 4226, 374, 1124, 79075, 90, 16,
                                          19, 7810, 198}));
  EXPECT_EQ(in.score_positions, (std::vector<int32_t>{24, 49}));
}

TEST(PrmFormat, MathShepherdEndsEveryStepWithTheTagAsSearchAndLearnDoes) {
  FLASHTTS_REQUIRE_TESTDATA();
  PrmInput in = format("qwen3", PrmKind::LmLogits, PrmFormat::MathShepherd, " ки");
  EXPECT_EQ(in.ids, (std::vector<int32_t>{3838, 374, 220, 17, 488, 220, 18, 353, 220, 19, 5267, 5512, 11, 220, 18, 353,
                                          220, 19, 284, 220, 16, 17, 13, 7665, 1802, 271, 12209, 220, 17, 488, 220, 16,
                                          17, 284, 220, 16, 19, 624, 4416, 279, 4226, 374, 1124, 79075, 90, 16, 19,
                                          7810, 7665, 1802}));
  EXPECT_EQ(in.score_positions, (std::vector<int32_t>{24, 49}));
}

TEST(PrmFormat, RlhFlowMakesEachStepAUserTurnAnsweredPlus) {
  FLASHTTS_REQUIRE_TESTDATA();
  PrmInput in = format("llama3", PrmKind::LmLogits, PrmFormat::RlhFlow,
                       "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(in.ids,
            (std::vector<int32_t>{128000, 128006, 882,    128007, 271,    3923,  374,    220,   17,    489,   220,
                                  18,     353,    220,    19,     30,     5629,  11,     220,   18,    353,   220,
                                  19,     284,    220,    717,    13,     128009, 128006, 78191, 128007, 271,   10,
                                  128009, 128006, 882,    128007, 271,    12487, 220,    17,    489,   220,   717,
                                  284,    220,    975,    627,    4516,   279,   4320,   374,   1144,  80175, 90,
                                  975,    7966,   128009, 128006, 78191,  128007, 271,    10,    128009, 128006, 78191,
                                  128007, 271}));
  EXPECT_EQ(in.score_positions, (std::vector<int32_t>{31, 61}));
}

// Everywhere (no shared data): the tiny PRM that flashtts-mkmodel writes.
TEST(PrmFormat, QwenChatScoresAtEveryExtra0AndRefusesAStepHoldingTheTag) {
  auto tok = open_tokenizer(test::tiny_models() / "prm");
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  ModelConfig cfg;
  cfg.prm.kind = PrmKind::Classifier;
  cfg.prm.step_tag = "<extra_0>";
  ASSERT_TRUE(resolve_prm_tokens(**tok, &cfg).ok());
  auto in = format_prm_input(**tok, cfg, "p", {"a", "b", "c"});
  ASSERT_TRUE(in.ok()) << in.error().message;
  ASSERT_EQ(in->score_positions.size(), 3u);
  for (int32_t p : in->score_positions) EXPECT_EQ(in->ids[p], cfg.prm.step_tag_ids.back());
  auto bad = format_prm_input(**tok, cfg, "p", {"a<extra_0>b"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("2 step tags for 1 steps"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace flashtts
