// RowCost: the least-squares line t = a + b·rows through the fastest of a
// sliding window of decode passes at each row count (actors/row_cost.h).
#include <gtest/gtest.h>

#include "actors/row_cost.h"

namespace flashtts {
namespace {

TEST(RowCost, IsUnknownUntilTheWindowHoldsTwoDistinctRowCounts) {
  RowCost c;
  EXPECT_FALSE(c.known());
  c.add(4, 10.0);
  c.add(4, 12.0);
  c.add(4, 11.0);
  EXPECT_FALSE(c.known()) << "one row count says nothing of the slope";
  c.add(5, 13.0);
  EXPECT_TRUE(c.known());
}

TEST(RowCost, RecoversAnExactLineFromSyntheticPasses) {
  RowCost c;
  const double a = 2.5, b = 0.75;
  for (int rows : {1, 3, 8, 2, 16, 5}) c.add(rows, a + b * rows);
  ASSERT_TRUE(c.known());
  EXPECT_NEAR(c.a(), a, 1e-9);
  EXPECT_NEAR(c.b(), b, 1e-9);
  EXPECT_NEAR(c.predict(10), a + b * 10, 1e-9);
}

TEST(RowCost, FitsTheLineThroughTheFastestPassAtEachRowCount) {
  RowCost c;
  // A loaded host only adds time: slow passes at the small row counts (other
  // processes on the cores) would give the least-squares line over every
  // pass a negative slope; the fastest pass at each count keeps the true one.
  const double a = 1.0, b = 0.5;
  for (int rows : {2, 4, 6}) c.add(rows, a + b * rows);
  for (int i = 0; i < 6; ++i) c.add(2, a + b * 2 + 20.0);
  c.add(4, a + b * 4 + 5.0);
  ASSERT_TRUE(c.known());
  EXPECT_NEAR(c.a(), a, 1e-9);
  EXPECT_NEAR(c.b(), b, 1e-9);
  // Least squares through the fastest passes: noise at each count is fitted.
  RowCost d;
  d.add(2, 2.0);
  d.add(4, 3.2);
  d.add(6, 4.0);
  d.add(4, 9.0);
  ASSERT_TRUE(d.known());
  EXPECT_NEAR(d.b(), 0.5, 1e-9);
  EXPECT_NEAR(d.a(), 3.0666666666666667 - 0.5 * 4, 1e-9);
}

TEST(RowCost, OnlyTheLastWindowOfPassesCounts) {
  RowCost c(4);
  for (int rows : {1, 2, 3, 4}) c.add(rows, 10.0 + 1.0 * rows);  // an old line
  ASSERT_TRUE(c.known());
  EXPECT_NEAR(c.b(), 1.0, 1e-9);
  for (int rows : {1, 2, 3, 4}) c.add(rows, 0.5 + 3.0 * rows);  // pushes it all out
  EXPECT_EQ(c.size(), 4u);
  EXPECT_NEAR(c.a(), 0.5, 1e-9);
  EXPECT_NEAR(c.b(), 3.0, 1e-9);
  // The window slides to passes of one row count only: unknown again.
  for (int i = 0; i < 4; ++i) c.add(7, 20.0);
  EXPECT_FALSE(c.known());
}

}  // namespace
}  // namespace flashtts
