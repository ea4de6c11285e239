// Connection churn at the intake: a client leaves and another connects at
// once, often on the file descriptor the first one had. Every request of the
// new client must get its one final reply (issue 19, item 1).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "runtime/client.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

// Runs `rounds` of: client A asks (and is answered), closes; client B
// connects at once and asks. Returns how many of B's requests got no final
// frame within `wait`.
// Meanwhile two other clients keep the intake busy with pings, so that a
// disconnect and the next connection's request often reach it together.
int lost_after_reconnects(const std::string& endpoint, int rounds, std::chrono::milliseconds wait) {
  zmq::context_t ctx;
  std::atomic<bool> stop{false};
  std::vector<std::thread> noise;
  for (int t = 0; t < 2; ++t)
    noise.emplace_back([&] {
      auto c = Client::connect(ctx, endpoint);
      int in_flight = 0;
      while (!stop) {
        while (in_flight < 64) {
          c->send("ping", msg::MapWriter());
          ++in_flight;
        }
        auto f = c->recv(10ms);
        if (f.ok() && f->has_value()) --in_flight;
      }
    });
  msg::MapWriter gen;
  gen.put("prompt", "Let a = 1.").put("max_tokens", int64_t(2));
  int lost = 0;
  for (int i = 0; i < rounds; ++i) {
    {
      auto a = Client::connect(ctx, endpoint);
      EXPECT_TRUE(a.ok());
      auto r = a->call("generate", gen, 10s);
      EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    }  // A's socket closes here (LINGER 0)
    auto b = Client::connect(ctx, endpoint);
    EXPECT_TRUE(b.ok());
    std::string id = b->send("generate", gen);
    bool answered = false;
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (!answered && std::chrono::steady_clock::now() < deadline) {
      auto f = b->recv(50ms);
      EXPECT_TRUE(f.ok());
      if (f.ok() && f->has_value() && (*f)->id == id && (*f)->type != "progress") answered = true;
    }
    if (!answered) ++lost;
  }
  stop = true;
  for (auto& t : noise) t.join();
  return lost;
}

TEST(Churn, EveryRequestOfAReconnectingClientIsAnsweredOverIpc) {
  test::Pipeline p(test::tiny_pipeline_config(test::ipc_endpoint("churn")));
  EXPECT_EQ(lost_after_reconnects(p.cfg.endpoints.clients.front(), 300, 5s), 0);
}

TEST(Churn, EveryRequestOfAReconnectingClientIsAnsweredOverTcp) {
  test::Pipeline p(test::tiny_pipeline_config("tcp://127.0.0.1:" + std::to_string(test::free_tcp_port())));
  EXPECT_EQ(lost_after_reconnects(p.cfg.endpoints.clients.front(), 200, 5s), 0);
}

}  // namespace
}  // namespace flashtts
