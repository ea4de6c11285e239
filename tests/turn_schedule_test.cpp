// memory.offload's turns (actors/turn_schedule.h), on a clock the test
// sets: when a turn passes, that a switch is always off-then-on, the
// quantum while both models have work, and an error when weights cannot
// move. The arbiter sending these over its sockets: memory_split_test.
#include <gtest/gtest.h>

#include "actors/turn_schedule.h"

namespace flashtts {
namespace {

using Clock = TurnSchedule::Clock;
using namespace std::chrono_literals;

// Answers a switch: the DeviceTurn `off` answered, then the one it leads to.
msg::DeviceTurn finish_switch(TurnSchedule& t, const msg::DeviceTurn& off, Clock::time_point now, uint64_t* serial,
                              double upload_s) {
  EXPECT_FALSE(off.on);
  auto on = t.done(msg::TurnDone{off.role, off.serial, false, 0, ""}, now, serial);
  EXPECT_TRUE(on.ok() && on->has_value());
  const msg::DeviceTurn back = **on;
  EXPECT_TRUE(back.on);
  EXPECT_NE(back.role, off.role);
  auto end = t.done(msg::TurnDone{back.role, back.serial, true, upload_s, ""}, now, serial);
  EXPECT_TRUE(end.ok() && !end->has_value());
  return back;
}

TEST(TurnSchedule, ATurnPassesWhenTheOtherHasWorkAndTheResidentNone) {
  TurnSchedule t;
  uint64_t serial = 0;
  const Clock::time_point t0{};
  EXPECT_FALSE(t.next(t0, &serial)) << "not started";
  t.start(t0);
  EXPECT_EQ(t.resident(), "generator");
  EXPECT_FALSE(t.next(t0, &serial)) << "nobody wants the device";
  t.set_wants("generator", true);
  EXPECT_FALSE(t.next(t0, &serial)) << "the generator has it";
  t.set_wants("generator", false);
  t.set_wants("verifier", true);
  auto off = t.next(t0, &serial);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->role, "generator");
  EXPECT_FALSE(t.next(t0, &serial)) << "one switch at a time";
  // A stale answer changes nothing.
  auto stale = t.done(msg::TurnDone{"generator", off->serial + 7, false, 0, ""}, t0, &serial);
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(stale->has_value());
  finish_switch(t, *off, t0, &serial, 0.5);
  EXPECT_EQ(t.resident(), "verifier");
  EXPECT_EQ(t.switches(), 1);
  EXPECT_DOUBLE_EQ(t.upload_s(), 0.5);
}

TEST(TurnSchedule, WhileBothHaveWorkTheResidentKeepsTheDeviceForItsQuantum) {
  TurnSchedule t;
  uint64_t serial = 0;
  Clock::time_point now{};
  t.start(now);
  t.set_wants("generator", true), t.set_wants("verifier", true);
  EXPECT_DOUBLE_EQ(t.quantum_s(), 1.0) << "before both uploads were measured";
  EXPECT_EQ(t.wake_in(now), 1001ms);
  EXPECT_FALSE(t.next(now + 999ms, &serial));
  auto off = t.next(now + 1s, &serial);
  ASSERT_TRUE(off);
  now += 1s;
  finish_switch(t, *off, now, &serial, 0.6);  // the verifier's upload
  EXPECT_EQ(t.wake_in(now), 1001ms) << "the generator's upload is not measured yet";
  now += 1s;
  off = t.next(now, &serial);
  ASSERT_TRUE(off);
  finish_switch(t, *off, now, &serial, 0.1);  // the generator's
  EXPECT_DOUBLE_EQ(t.quantum_s(), kTurnFactor * 0.7);
  EXPECT_FALSE(t.next(now + 5500ms, &serial));
  EXPECT_TRUE(t.next(now + 5600ms, &serial));
  // Nobody waits for a quantum while the other has no work.
  TurnSchedule u;
  u.start(now);
  u.set_wants("generator", true);
  EXPECT_EQ(u.wake_in(now), -1ms);
}

TEST(TurnSchedule, WeightsThatCannotMoveAreAnErrorNamingTheModel) {
  TurnSchedule t;
  uint64_t serial = 0;
  t.start(Clock::time_point{});
  t.set_wants("verifier", true);
  auto off = t.next(Clock::time_point{}, &serial);
  ASSERT_TRUE(off);
  auto on = t.done(msg::TurnDone{"generator", off->serial, false, 0, ""}, Clock::time_point{}, &serial);
  ASSERT_TRUE(on.ok() && on->has_value());
  auto failed = t.done(msg::TurnDone{"verifier", (*on)->serial, false, 0, "out of memory"}, Clock::time_point{}, &serial);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message,
            "memory.offload: the verifier could not move its weights onto the device: out of memory");
}

}  // namespace
}  // namespace flashtts
