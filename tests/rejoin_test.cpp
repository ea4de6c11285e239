// A lost actor process (issue 19, item 3): the verifier runs in a process of
// its own. When it stops answering (SIGSTOP) the solves that need it fail
// with server_failure within a few seconds, new ones are refused at once,
// generation goes on; after kill -9 a new verifier process is given its
// memory and work again without restarting the rest.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <thread>

#include "actors/liveness.h"
#include "runtime/client.h"
#include "runtime/supervisor.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

msg::MapWriter problem(const char* text) {
  msg::MapWriter w;
  w.put("problem", text);
  return w;
}

TEST(Rejoin, ALostVerifierFailsItsRequestsAndANewOneIsServed) {
  auto dir = test::scratch_dir("rejoin");
  auto cfg_path = test::write_split_config(dir);
  std::ofstream(cfg_path, std::ios::app) << "heartbeat_ms = 100\npeer_timeout_ms = 1500\n";
  const std::string verifier_ep = "ipc://" + (dir / "verifier").string();

  auto first = std::make_unique<test::Child>(
      std::vector<std::string>{"serve", "--config", cfg_path.string(), "--actors", "verifier"}, dir / "v1.log");
  ASSERT_TRUE(test::wait_for_text(dir / "v1.log", "running 1 actor", 60s)) << test::read_file(dir / "v1.log");

  auto cfg = load_config(cfg_path);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  zmq::context_t ctx;
  LogSink logs(spdlog::level::warn);
  auto sup = Supervisor::start(ctx, *cfg, logs, {"memory_arbiter", "generator", "scheduler", "beam_manager", "intake"});
  ASSERT_TRUE(sup.ok()) << sup.error().message;
  auto c = Client::connect(ctx, cfg->endpoints.clients.front());
  ASSERT_TRUE(c.ok());
  auto r = c->call("solve", problem("Let a = 3. What is a?"), 60s);
  ASSERT_TRUE(r.ok()) << r.error().message;

  // Silent: a solve in flight fails within the timeout and a little more.
  ASSERT_EQ(kill(first->pid, SIGSTOP), 0);
  auto t0 = Clock::now();
  r = c->call("solve", problem("Let a = 4. What is a?"), 30s);
  double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("server_failure: ", 0), 0u) << r.error().message;
  EXPECT_NE(r.error().message.find("verifier (" + verifier_ep + ")"), std::string::npos) << r.error().message;
  EXPECT_LT(waited, 5.0) << "the loss took " << waited << " s to tell";

  // While it is lost: refused at once; generation does not need it.
  t0 = Clock::now();
  r = c->call("solve", problem("Let a = 5. What is a?"), 30s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("server_failure: ", 0), 0u) << r.error().message;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0);
  msg::MapWriter g;
  g.put("prompt", "Let a = 1.").put("max_tokens", int64_t(4));
  auto gen = c->call("generate", g, 30s);
  EXPECT_TRUE(gen.ok()) << gen.error().message;

  // kill -9, then a new verifier process: it rejoins and serves.
  EXPECT_EQ(first->stop(SIGKILL, 10s), 128 + SIGKILL);
  first.reset();
  test::Child second({"serve", "--config", cfg_path.string(), "--actors", "verifier"}, dir / "v2.log");
  ASSERT_TRUE(test::wait_for_text(dir / "v2.log", "running 1 actor", 60s)) << test::read_file(dir / "v2.log");
  bool served = false;
  std::string last;
  for (auto deadline = Clock::now() + 20s; !served && Clock::now() < deadline;) {
    r = c->call("solve", problem("Let a = 6. What is a?"), 30s);
    served = r.ok();
    if (!served) {
      last = r.error().message;
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_TRUE(served) << "the new verifier was not used: " << last << "\n" << test::read_file(dir / "v2.log");
  auto st = c->call("stats", msg::MapWriter(), 10s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  msg::MapReader actors, v, gstats;
  ASSERT_TRUE(st->body.get("actors", &actors).ok());
  ASSERT_TRUE(actors.get("verifier", &v).ok()) << "the new verifier did not answer stats";
  int64_t scored = 0, used = -1;
  EXPECT_TRUE(v.get("tokens_scored", &scored).ok());
  EXPECT_GT(scored, 0);
  ASSERT_TRUE(actors.get("generator", &gstats).ok());
  EXPECT_TRUE(gstats.get("kv_blocks_used", &used).ok());
  EXPECT_EQ(used, 0) << "the failed requests left KV blocks in the generator";
  (*sup)->shutdown();
  EXPECT_EQ(second.stop(SIGTERM, 10s), 0) << test::read_file(dir / "v2.log");
}

}  // namespace
}  // namespace flashtts

namespace flashtts {
namespace {

TEST(Rejoin, AnActorWhoseProcessNeverStartedIsReportedAfterTheTimeout) {
  auto dir = test::scratch_dir("never");
  auto cfg_path = test::write_split_config(dir);
  std::ofstream(cfg_path, std::ios::app) << "heartbeat_ms = 100\npeer_timeout_ms = 300\n";
  auto cfg = load_config(cfg_path);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  zmq::context_t ctx;
  LogSink logs(spdlog::level::off);
  auto sup = Supervisor::start(ctx, *cfg, logs, {"memory_arbiter", "generator", "scheduler", "beam_manager", "intake"});
  ASSERT_TRUE(sup.ok()) << sup.error().message;
  std::this_thread::sleep_for(500ms);
  auto c = Client::connect(ctx, cfg->endpoints.clients.front());
  auto r = c->call("score", [] {
    msg::MapWriter w;
    w.put("problem", "Let a = 1.").put("steps", std::vector<std::string>{"a = 1"});
    return w;
  }(), 10s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("has not been heard from since the server started"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("flashtts serve --actors verifier"), std::string::npos) << r.error().message;
  (*sup)->shutdown();
}

TEST(Liveness, ANewIncarnationIsALossAndAReturnAtOnce) {
  auto t = Liveness::Clock::now();
  Liveness l({{"verifier", "ipc:///v"}}, std::chrono::milliseconds(1000), t);
  EXPECT_EQ(l.unavailable("verifier"), "");
  EXPECT_EQ(l.unavailable("generator"), "");  // not watched: runs in this process
  auto ev = l.heard(msg::Heartbeat{"p1", {"verifier"}, 100}, t);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_FALSE(ev[0].lost);
  EXPECT_TRUE(l.expire(t + std::chrono::milliseconds(999)).empty());
  ev = l.heard(msg::Heartbeat{"p2", {"verifier"}, 100}, t + std::chrono::milliseconds(500));
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_TRUE(ev[0].lost);
  EXPECT_NE(ev[0].sentence.find("restarted"), std::string::npos) << ev[0].sentence;
  EXPECT_FALSE(ev[1].lost);
  ev = l.expire(t + std::chrono::milliseconds(1600));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_NE(l.unavailable("verifier").find("went silent"), std::string::npos);
  EXPECT_TRUE(l.expire(t + std::chrono::milliseconds(5000)).empty());  // reported once
  EXPECT_EQ(l.next_deadline(), Liveness::Clock::time_point::max());
  ev = l.heard(msg::Heartbeat{"p2", {"verifier"}, 100}, t + std::chrono::milliseconds(6000));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_FALSE(ev[0].lost);
  EXPECT_EQ(l.unavailable("verifier"), "");
}

}  // namespace
}  // namespace flashtts
