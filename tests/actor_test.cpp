// The actor lifecycle (runtime/base/actor.h): ready handshake, $TERM/$DONE,
// failures before and after ready, a body that will not stop, and the
// liveness probe ($PING/$PONG).
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "runtime/base/actor.h"
#include "runtime/base/poll_set.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

// A body that echoes commands back until $TERM.
Status echo_body(zmq::context_t&, ActorPipe& pipe) {
  pipe.ready();
  PollSet poll(pipe, {});
  while (poll.wait(-1ms, [&](const std::string& c) { pipe.socket().send(zmq::buffer("echo " + c)); })) {
  }
  return Status::success();
}

TEST(Actor, StartsAfterReadyAndStopsOnTerm) {
  zmq::context_t ctx;
  auto a = Actor::start(ctx, "echo", echo_body);
  ASSERT_TRUE(a.ok()) << a.error().message;
  (*a)->send("$HELLO");
  zmq::message_t m;
  ASSERT_TRUE((*a)->pipe().recv(m));
  EXPECT_EQ(m.to_string(), "echo $HELLO");
  EXPECT_TRUE((*a)->stop(2s));
  EXPECT_TRUE((*a)->stopped());
}

TEST(Actor, AnErrorBeforeReadyIsTheStartError) {
  zmq::context_t ctx;
  auto a = Actor::start(ctx, "broken", [](zmq::context_t&, ActorPipe&) -> Status {
    return make_error("model folder '/x' has no config.json");
  });
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message, "actor broken failed to start: model folder '/x' has no config.json");
}

TEST(Actor, AnExceptionAfterReadyIsReportedAsAFailure) {
  zmq::context_t ctx;
  auto a = Actor::start(ctx, "thrower", [](zmq::context_t&, ActorPipe& pipe) -> Status {
    pipe.ready();
    throw std::runtime_error("boom");
  });
  ASSERT_TRUE(a.ok());
  auto why = (*a)->poll_failure(2s);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "uncaught exception: boom");
  EXPECT_TRUE((*a)->stop(2s));  // it still acknowledges $TERM
}

TEST(Actor, ABodyStuckOutsideItsLoopIsCutLooseByContextShutdown) {
  zmq::context_t ctx;
  auto a = Actor::start(ctx, "stuck", [](zmq::context_t& c, ActorPipe& pipe) -> Status {
    zmq::socket_t s(c, zmq::socket_type::pull);
    s.set(zmq::sockopt::linger, 0);
    s.bind("inproc://stuck");
    pipe.ready();
    zmq::message_t m;
    (void)s.recv(m);  // blocks without looking at the pipe; ETERM ends it
    return Status::success();
  });
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->stop(200ms));
  ctx.shutdown();
  EXPECT_TRUE((*a)->stop(2s));
}

// Reads the pipe until the last probe is answered (probe() asks again then);
// false when no answer came within `t`.
bool answered(Actor& a, std::chrono::milliseconds t) {
  for (auto end = std::chrono::steady_clock::now() + t; std::chrono::steady_clock::now() < end;) {
    EXPECT_FALSE(a.poll_failure(20ms).has_value());
    if (a.probe()) return true;
  }
  return false;
}

TEST(Actor, ABodyInItsLoopAnswersProbesWithoutSeeingThem) {
  zmq::context_t ctx;
  auto a = Actor::start(ctx, "echo", echo_body);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE((*a)->probe());
  EXPECT_TRUE(answered(**a, 5s));
  EXPECT_TRUE(answered(**a, 5s));  // and asked a third time
  // What the pipe brings is the answer, not an echo: $PING never reaches
  // on_command.
  zmq::message_t m;
  ASSERT_TRUE((*a)->pipe().recv(m));
  EXPECT_EQ(m.to_string(), "$PONG");
  zmq::pollitem_t item{(*a)->pipe().handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, 100ms), 0);
  EXPECT_TRUE((*a)->stop(2s));
}

TEST(Actor, ABodyStuckInOneIterationLeavesTheProbeUnansweredUntilItReturnsToItsLoop) {
  zmq::context_t ctx;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto a = Actor::start(ctx, "stuck", [released](zmq::context_t&, ActorPipe& pipe) -> Status {
    pipe.ready();
    PollSet poll(pipe, {});
    while (poll.wait(-1ms, [&](const std::string& c) {
      if (c == "$BLOCK") released.wait();  // one iteration that does not end, like a hung forward pass
    })) {
    }
    return Status::success();
  });
  ASSERT_TRUE(a.ok());
  (*a)->send("$BLOCK");
  EXPECT_TRUE((*a)->probe());                           // asked
  EXPECT_FALSE((*a)->poll_failure(300ms).has_value());  // no answer comes
  EXPECT_FALSE((*a)->probe());                          // still unanswered: not asked again
  EXPECT_FALSE((*a)->probe());
  release.set_value();
  EXPECT_TRUE(answered(**a, 5s));
  EXPECT_TRUE((*a)->stop(2s));
}

}  // namespace
}  // namespace flashtts
