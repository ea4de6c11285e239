// Answer extraction, score aggregation and selection (actors/answer.h).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "actors/answer.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

TEST(Answer, TheLastBoxedAnswerWinsWithBalancedBraces) {
  EXPECT_EQ(extract_answer("so \\boxed{3} or rather \\boxed{\\frac{1}{2}}."), "\\frac{1}{2}");
  EXPECT_EQ(extract_answer("\\boxed {x^{2}}"), "x^{2}");
}

TEST(Answer, WithoutABoxTheAnswerIsSentenceOrTheLastNumber) {
  EXPECT_EQ(extract_answer("Thus the answer is 126.\nDone"), "126");
  EXPECT_EQ(extract_answer("c = 15 - 4 = 11"), "11");
  EXPECT_EQ(extract_answer("a drop of -7 degrees"), "-7");
  EXPECT_EQ(extract_answer("no digits here"), "");
}

TEST(Answer, NormalizationMakesEqualAnswersEqual) {
  EXPECT_EQ(normalize_answer(" 1,000 "), "1000");
  EXPECT_EQ(normalize_answer("2.50"), normalize_answer("2.5"));
  EXPECT_EQ(normalize_answer("3.0"), "3");
  EXPECT_EQ(normalize_answer("\\dfrac{1}{2}"), normalize_answer("\\frac{1}{2}"));
  EXPECT_EQ(normalize_answer("\\left( 1, 2 \\right)"), "(1,2)");
}

TEST(Answer, EquivalentMathAnswersNormalizeAlike) {
  auto same = [](const char* a, const char* b) {
    EXPECT_EQ(normalize_answer(a), normalize_answer(b)) << a << " vs " << b;
  };
  same("0.5", "\\frac{1}{2}");
  same("1/2", "\\dfrac12");
  same("\\tfrac{1}{2}", ".5");
  same("-\\frac{3}{4}", "\\frac{-3}{4}");
  same("-0.75", "-3/4");
  same("10.0", "10");
  same("1,000,000", "1000000");
  same("90^\\circ", "90");
  same("90^{\\circ}", "90");
  same("5\\text{ cm}", "5");
  same("10\\%", "10");
  same("\\$18.90", "18.9");
  same("x = 3", "3");
  same("\\sqrt2", "\\sqrt{2}");
  same("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}");
  same("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})");
  same("\\text{(C)}", "(C)");
  EXPECT_NE(normalize_answer("(1,2)"), normalize_answer("12"));   // a pair, not thousands
  EXPECT_NE(normalize_answer("1,23"), normalize_answer("123"));
  EXPECT_NE(normalize_answer("\\frac{1}{3}"), normalize_answer("0.33"));
  EXPECT_EQ(normalize_answer(normalize_answer("\\dfrac{6}{8}")), normalize_answer("\\dfrac{6}{8}"));
}

// The boxed answer at the end of every MATH-500 reference solution, extracted
// and normalized, equals the dataset's answer field normalized.
TEST(Answer, Math500SolutionsYieldTheirOwnAnswers) {
  FLASHTTS_REQUIRE_TESTDATA();
  std::ifstream f(test::testdata_dir() / "datasets" / "math500" / "test.jsonl");
  ASSERT_TRUE(f.good());
  std::string line;
  int rows = 0, equal = 0;
  std::vector<std::string> misses;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    std::string got = normalize_answer(extract_answer(j["solution"].get<std::string>()));
    std::string want = normalize_answer(j["answer"].get<std::string>());
    ++rows;
    if (got == want) ++equal;
    else if (misses.size() < 12) misses.push_back(got + "  vs  " + want);
  }
  EXPECT_EQ(rows, 500);
  std::string list;
  for (const auto& m : misses) list += "\n  " + m;
  EXPECT_EQ(equal, 500) << equal << "/500 equal; first differences:" << list;
}

TEST(Answer, AggregationsOverStepScores) {
  std::vector<float> s = {0.9f, 0.5f, 0.8f};
  EXPECT_FLOAT_EQ(aggregate_scores(s, "last"), 0.8f);
  EXPECT_FLOAT_EQ(aggregate_scores(s, "min"), 0.5f);
  EXPECT_FLOAT_EQ(aggregate_scores(s, "prod"), 0.36f);
  EXPECT_FLOAT_EQ(aggregate_scores(s, "mean"), 2.2f / 3);
  EXPECT_FLOAT_EQ(aggregate_scores({}, "last"), 0.0f);
}

TEST(Answer, SelectionRulesPickDifferentWinners) {
  // "7" has the best single score; "5" the most votes and the largest sum.
  std::vector<Candidate> c = {{"7", 0.95f}, {"5", 0.6f}, {"5", 0.5f}, {"", 0.99f}};
  EXPECT_EQ(select_candidate(c, "naive"), 3u);
  EXPECT_EQ(select_candidate(c, "weighted"), 1u);
  EXPECT_EQ(select_candidate(c, "majority"), 1u);
  std::vector<Candidate> tie = {{"1", 0.2f}, {"2", 0.9f}};
  EXPECT_EQ(select_candidate(tie, "majority"), 1u);  // equal counts: the larger sum
}

}  // namespace
}  // namespace flashtts
