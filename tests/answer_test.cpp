// Answer extraction, score aggregation and selection (actors/answer.h).
#include <gtest/gtest.h>

#include "actors/answer.h"

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
  EXPECT_EQ(normalize_answer("2.50"), "2.5");
  EXPECT_EQ(normalize_answer("3.0"), "3");
  EXPECT_EQ(normalize_answer("\\dfrac{1}{2}"), normalize_answer("\\frac{1}{2}"));
  EXPECT_EQ(normalize_answer("\\left( 1, 2 \\right)"), "(1,2)");
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
