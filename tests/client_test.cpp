// The C++ Client and `flashtts ask` over real sockets: no server at an
// endpoint is told by a ping within its timeout (ipc:// and tcp://), a real
// server answers the ping with its pong, an unanswered ping does not confuse
// later requests, and a request that times out is cancelled on the server.
#include <gtest/gtest.h>

#include <thread>

#include "runtime/client.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::ipc_endpoint;
using test::Pipeline;

std::string no_server_sentence(const std::string& ep, const std::string& within) {
  return "no flashtts server answers at " + ep + " (no reply to ping within " + within + ")";
}

std::string tcp_endpoint_of_a_free_port() { return "tcp://127.0.0.1:" + std::to_string(test::free_tcp_port()); }

// The beam manager's count of cancelled requests.
int64_t cancelled_count(Client& c) {
  auto st = c.call("stats", msg::MapWriter(), 10s);
  EXPECT_TRUE(st.ok()) << st.error().message;
  msg::MapReader actors, bm;
  int64_t n = -1;
  if (st && st->body.get("actors", &actors).ok() && actors.get("beam_manager", &bm).ok()) {
    EXPECT_TRUE(bm.get("cancelled", &n).ok());
  }
  return n;
}

void expect_no_server_within(const std::string& ep) {
  zmq::context_t ctx;
  auto c = Client::connect(ctx, ep);
  ASSERT_TRUE(c.ok()) << "ZeroMQ connects whether or not anything listens";
  auto t0 = Clock::now();
  auto pong = c->ping(500ms);
  auto took = Clock::now() - t0;
  ASSERT_FALSE(pong.ok());
  EXPECT_EQ(pong.error().message, no_server_sentence(ep, "0.5 s"));
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 2s);
}

TEST(Client, PingWithNoServerAtAnIpcPathFailsWithinItsTimeoutNamingTheEndpoint) {
  expect_no_server_within(ipc_endpoint("client-none") + "-nobody");
}

TEST(Client, PingWithNoServerOnAFreeTcpPortFailsWithinItsTimeoutNamingTheEndpoint) {
  expect_no_server_within(tcp_endpoint_of_a_free_port());
}

TEST(Client, ConnectWithACheckFailsWhenNoServerAnswersAndSucceedsWhenOneDoes) {
  zmq::context_t ctx;
  std::string ep = ipc_endpoint("client-check") + "-nobody";
  auto none = Client::connect(ctx, ep, 300ms);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, no_server_sentence(ep, "0.3 s"));

  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("client-check-real")));
  auto c = Client::connect(p.ctx, p.cfg.endpoints.clients.front(), Client::kConnectTimeout);
  ASSERT_TRUE(c.ok()) << c.error().message;
}

TEST(Client, PingOfARealServerReturnsItsPong) {
  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("client-pong")));
  Client c = p.client();
  auto pong = c.ping(5s);
  ASSERT_TRUE(pong.ok()) << pong.error().message;
  EXPECT_EQ(pong->protocol, 1);
  EXPECT_EQ(pong->server, "flashtts");
  EXPECT_GE(pong->uptime_ms, 0.0);
}

TEST(Client, AnUnansweredPingDoesNotConfuseTheRequestsAfterItOnceAServerListens) {
  std::string ep = ipc_endpoint("client-late");
  zmq::context_t ctx;
  auto c = Client::connect(ctx, ep);
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(c->ping(200ms).ok());
  // The DEALER kept the ping; the server answers it when it comes up, and
  // that late pong must not pass for the answer of a later request.
  Pipeline p(test::tiny_pipeline_config(ep));
  msg::MapWriter w;
  w.put("problem", "What is 1 + 1?").put("steps", std::vector<std::string>{"2"});
  auto sc = c->call("score", w, 30s);
  ASSERT_TRUE(sc.ok()) << sc.error().message;
  EXPECT_EQ(sc->request, "score");
  std::vector<float> scores;
  EXPECT_TRUE(sc->body.get("scores", &scores).ok());
  EXPECT_EQ(scores.size(), 1u);
  auto pong = c->ping(5s);
  EXPECT_TRUE(pong.ok()) << pong.error().message;
}

// A solve of the tiny models that runs for seconds (7 s on a 2-core EPYC):
// 16 greedy samples (the random policy greedy never meets EOS) of 2 steps of
// 1000 tokens, within the PRM's 4096 positions.
const char* kLongSolveFlags = "--n 16 --max-steps 2 --max-tokens-per-step 1000 --temperature 0";
msg::MapWriter long_solve() {
  msg::MapWriter w;
  w.put("problem", "Count to a million.").put("n", 16).put("max_steps", 2).put("max_tokens_per_step", 1000);
  w.put("temperature", 0.0);
  return w;
}

TEST(Client, ACallThatTimesOutIsCancelledOnTheServerAndSaysSo) {
  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("client-timeout")));
  Client c = p.client();
  int64_t before = cancelled_count(c);
  auto r = c.call("solve", long_solve(), 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "timed out: no answer within 0.2 s; the request was cancelled on the server");
  EXPECT_EQ(cancelled_count(c), before + 1);
}

std::string flashtts() { return (test::binary_dir() / "flashtts").string(); }

// Runs `flashtts ask ... 2>&1`; returns its exit status, output and seconds.
int ask(const std::string& args, std::string* out, double* seconds) {
  auto t0 = Clock::now();
  int rc = test::run_command(flashtts() + " ask --quiet " + args + " 'Let a = 1. What is a?' 2>&1", out);
  *seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return rc;
}

TEST(Ask, WithNoServerAtAnIpcPathFailsWithinTheConnectTimeoutNamingTheEndpoint) {
  std::string ep = ipc_endpoint("ask-none") + "-nobody", out;
  double s = 0;
  EXPECT_EQ(ask("--connect-timeout 1 --endpoint " + ep, &out, &s), 1) << out;
  EXPECT_NE(out.find(no_server_sentence(ep, "1 s")), std::string::npos) << out;
  EXPECT_LT(s, 5.0) << "the request timeout is 600 s; the ping's is 1 s";
}

TEST(Ask, WithNoServerOnAFreeTcpPortFailsWithinTheDefaultThreeSeconds) {
  std::string ep = tcp_endpoint_of_a_free_port(), out;
  double s = 0;
  EXPECT_EQ(ask("--endpoint " + ep, &out, &s), 1) << out;
  EXPECT_NE(out.find(no_server_sentence(ep, "3 s")), std::string::npos) << out;
  EXPECT_LT(s, 8.0);
}

TEST(Ask, ThatTimesOutSaysSoAndThatTheServerCancelledTheRequest) {
  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("ask-timeout")));
  Client c = p.client();
  int64_t before = cancelled_count(c);
  std::string out;
  double s = 0;
  EXPECT_EQ(ask(std::string("--timeout 0.5 ") + kLongSolveFlags + " --endpoint " + p.cfg.endpoints.clients.front(),
                &out, &s),
            1)
      << out;
  EXPECT_NE(out.find("timed out: no answer within 0.5 s; the request was cancelled on the server"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("cancelled by the client"), std::string::npos) << out;
  EXPECT_EQ(cancelled_count(c), before + 1);
}

}  // namespace
}  // namespace flashtts
