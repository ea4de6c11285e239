// runtime/base/routes.h: every actor's message dispatch, through encoded
// messages and, for drain(), a real mailbox.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <zmq.hpp>

#include "messages/internal.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/routes.h"

namespace flashtts {
namespace {

// A logger whose lines land in `out`, so a test can read what was ignored.
Logger logger_into(std::ostringstream& out) {
  return std::make_shared<spdlog::logger>("routes", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
}

// An envelope of type `type` whose fields are another message's: it opens,
// but does not decode as `type`.
template <class M>
std::string retyped(const M& m, const char* type) {
  msg::MapWriter w;
  w.put("v", msg::kProtocolVersion);
  w.put("type", type);
  m.write(w);
  return w.bytes();
}

TEST(Routes, EachTypeGoesToItsHandler) {
  std::ostringstream log;
  uint64_t forgot = 0, cancelled = 0;
  std::string reason;
  Routes r(logger_into(log));
  r.on<msg::Forget>([&](const msg::Forget& f) { forgot = f.rid; })
      .on<msg::Cancel>([&](msg::Cancel c) { cancelled = c.rid, reason = c.reason; });
  ASSERT_TRUE(r.route(msg::encode(msg::Cancel{7, "client gone"})).ok());
  ASSERT_TRUE(r.route(msg::encode(msg::Forget{9})).ok());
  EXPECT_EQ(forgot, 9u);
  EXPECT_EQ(cancelled, 7u);
  EXPECT_EQ(reason, "client gone");
  EXPECT_EQ(log.str(), "");
}

TEST(Routes, AHandlerMayTakeTheBytesAsTheyCame) {
  std::ostringstream log;
  std::string seen;
  Routes r(logger_into(log));
  r.on<msg::Forget>([&](const msg::Forget&, const std::string& bytes) { seen = bytes; });
  const std::string bytes = msg::encode(msg::Forget{3});
  ASSERT_TRUE(r.route(bytes).ok());
  EXPECT_EQ(seen, bytes);
}

TEST(Routes, APassedTypeIsNotDecoded) {
  std::ostringstream log;
  std::string seen;
  Routes r(logger_into(log));
  r.pass(msg::Forget::kType, [&](const std::string& bytes) { seen = bytes; });
  const std::string bytes = retyped(msg::StatsQuery{5, false}, msg::Forget::kType);  // would not decode: no rid
  ASSERT_TRUE(r.route(bytes).ok());
  EXPECT_EQ(seen, bytes);
}

TEST(Routes, WhatCannotBeReadIsLoggedAndIgnored) {
  std::ostringstream log;
  int calls = 0;
  Routes r(logger_into(log));
  r.on<msg::Forget>([&](const msg::Forget&) { ++calls; });
  EXPECT_TRUE(r.route("not msgpack at all").ok());
  EXPECT_TRUE(r.route(msg::encode(msg::Cancel{1, ""})).ok());  // no handler
  EXPECT_TRUE(r.route(retyped(msg::StatsQuery{5, false}, msg::Forget::kType)).ok());  // no rid
  EXPECT_EQ(calls, 0);
  EXPECT_NE(log.str().find("ignored a 'cancel' message"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("ignored a message: forget"), std::string::npos) << log.str();
}

TEST(Routes, AStrictTypeThatDoesNotDecodeIsAnError) {
  std::ostringstream log;
  Routes r(logger_into(log));
  r.on<msg::Forget>([](const msg::Forget&) {}, Routes::Decode::kStrict);
  Status s = r.route(retyped(msg::StatsQuery{5, false}, msg::Forget::kType));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("forget"), std::string::npos) << s.message();
  EXPECT_TRUE(r.route(msg::encode(msg::Forget{2})).ok());
}

TEST(Routes, DrainStopsAtTheFirstHandlerErrorAndLeavesTheRestQueued) {
  zmq::context_t ctx;
  const std::string ep = "inproc://routes-test";
  auto box = Mailbox::open(ctx, ep, {{"self", ep}});
  ASSERT_TRUE(box.ok()) << box.error().message;
  std::ostringstream log;
  std::vector<uint64_t> seen;
  Routes r(logger_into(log));
  r.on<msg::Forget>([&](const msg::Forget& f) -> Status {
    seen.push_back(f.rid);
    if (f.rid == 2) return make_error("rid 2 is bad");
    return Status::success();
  });
  for (uint64_t rid : {1, 2, 3}) ASSERT_TRUE(box->post("self", msg::Forget{rid}));
  // inproc delivers in order; wait until the first has arrived.
  zmq::pollitem_t p{box->inbox().handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&p, 1, std::chrono::milliseconds(2000)), 1);
  Status s = r.drain(*box);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "rid 2 is bad");
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(r.drain(*box).ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace flashtts
