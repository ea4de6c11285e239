// The whole pipeline end to end: the six actors on real sockets with the
// tiny random-weight models, driven by clients over ipc:// and tcp://.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "gpu/device_context.h"
#include "messages/envelope.h"
#include "messages/protocol.h"
#include "runtime/client.h"
#include "runtime/supervisor.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

using test::ipc_endpoint;
using test::Pipeline;

// The final frame (result or error) for `id`, checking progress frames on
// the way; fails the test on timeout.
ServerFrame final_frame(Client& c, const std::string& id, int* n_progress = nullptr, std::chrono::seconds t = 60s) {
  auto deadline = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < deadline) {
    auto f = c.recv(100ms);
    EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
    if (!f.ok() || !f->has_value()) continue;
    if ((*f)->id != id) continue;
    if ((*f)->type == "progress") {
      if (n_progress) ++*n_progress;
      continue;
    }
    return std::move(**f);
  }
  ADD_FAILURE() << "no final frame for " << msg::id_text(id);
  return {};
}

msg::MapWriter solve_fields(const std::string& problem) {
  msg::MapWriter w;
  w.put("problem", problem);
  return w;
}

void exercise_all_requests(Pipeline& p) {
  Client c = p.client();
  auto ping = c.call("ping", msg::MapWriter(), 10s);
  ASSERT_TRUE(ping.ok()) << ping.error().message;
  bool pong = false;
  EXPECT_TRUE(ping->body.get("pong", &pong).ok() && pong);

  msg::MapWriter sw = solve_fields("Let a = 5. Let b = a * 3. What is b?");
  sw.put("stream", true).put("return_completions", true).put("seed", uint64_t(3));
  std::string id = c.send("solve", sw);
  int n_progress = 0;
  ServerFrame r = final_frame(c, id, &n_progress);
  ASSERT_EQ(r.type, "result") << r.code << ": " << r.message;
  EXPECT_EQ(r.request, "solve");
  EXPECT_GE(n_progress, 4);  // one "generated" and one "completed" per sample at least
  std::vector<msg::MapReader> completions, steps;
  ASSERT_TRUE(r.body.get("completions", &completions).ok());
  EXPECT_EQ(completions.size(), 4u);
  ASSERT_TRUE(r.body.get("steps", &steps).ok());
  msg::MapReader stats;
  ASSERT_TRUE(r.body.get("stats", &stats).ok());
  int64_t policy_tokens = 0;
  ASSERT_TRUE(stats.get("policy_tokens", &policy_tokens).ok());
  EXPECT_GT(policy_tokens, 0);

  msg::MapWriter gw;
  gw.put("prompt", "Hello").put("max_tokens", 5);
  auto gen = c.call("generate", gw, 30s);
  ASSERT_TRUE(gen.ok()) << gen.error().message;
  std::vector<int32_t> tokens;
  ASSERT_TRUE(gen->body.get("tokens", &tokens).ok());
  EXPECT_EQ(tokens.size(), 5u);

  msg::MapWriter scw;
  scw.put("problem", "What is 1 + 1?").put("steps", std::vector<std::string>{"1 + 1 = 2.", "The answer is 2."});
  auto sc = c.call("score", scw, 30s);
  ASSERT_TRUE(sc.ok()) << sc.error().message;
  std::vector<float> scores;
  ASSERT_TRUE(sc->body.get("scores", &scores).ok());
  ASSERT_EQ(scores.size(), 2u);
  for (float s : scores) EXPECT_TRUE(s >= 0 && s <= 1) << s;

  auto st = c.call("stats", msg::MapWriter(), 10s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  msg::MapReader actors;
  ASSERT_TRUE(st->body.get("actors", &actors).ok());
  for (const char* a : {"intake", "beam_manager", "scheduler", "generator", "verifier", "memory_arbiter"})
    EXPECT_TRUE(actors.has(a)) << a;
  EXPECT_FALSE(st->body.has("missing"));
}

TEST(Pipeline, AnswersSolveGenerateScorePingAndStatsOverIpc) {
  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("ipc")));
  exercise_all_requests(p);
}

TEST(Pipeline, AnswersSolveGenerateScorePingAndStatsOverTcp) {
  Pipeline p(test::tiny_pipeline_config("tcp://127.0.0.1:" + std::to_string(test::free_tcp_port())));
  exercise_all_requests(p);
}

TEST(Pipeline, SameSeedGivesTheSameResult) {
  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("seed")));
  Client c = p.client();
  msg::MapWriter w = solve_fields("Let a = 2. What is a?");
  w.put("seed", uint64_t(11)).put("return_completions", true);
  auto a = c.call("solve", w, 60s), b = c.call("solve", w, 60s);
  ASSERT_TRUE(a.ok() && b.ok());
  msg::MapReader ca, cb;
  std::string ta, tb;
  ASSERT_TRUE(a->body.get("text", &ta).ok() && b->body.get("text", &tb).ok());
  EXPECT_EQ(ta, tb);
  double sa = 0, sb = 0;
  ASSERT_TRUE(a->body.get("score", &sa).ok() && b->body.get("score", &sb).ok());
  // Bit-identical although the second run reuses KV the first computed in
  // differently shaped batches: the CPU kernels are batch-invariant.
  EXPECT_EQ(sa, sb);
}

// Each bad request gets an error with the expected code and a sentence that
// names the problem; the server then answers a good request.
TEST(Pipeline, BadInputGetsAnErrorAndTheServerGoesOn) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("bad"));
  cfg.limits.max_message_bytes = 4096;
  Pipeline p(cfg);
  Client c = p.client();
  auto expect_error = [&](const std::string& bytes, const std::string& code, const std::string& words) {
    c.send_raw(bytes);
    auto f = c.recv(10s);
    ASSERT_TRUE(f.ok() && f->has_value()) << "no reply to a bad request (" << code << ")";
    EXPECT_EQ((*f)->type, "error");
    EXPECT_EQ((*f)->code, code) << (*f)->message;
    EXPECT_NE((*f)->message.find(words), std::string::npos) << (*f)->message;
  };
  auto map = [](std::function<void(msg::MapWriter&)> fill) {
    msg::MapWriter w;
    fill(w);
    return w.bytes();
  };
  expect_error("\xc1 is never valid msgpack", "bad_message", "not valid msgpack");
  expect_error("trailing text", "bad_message", "trailing bytes");
  expect_error(std::string("\x93\x01\x02\x03", 4), "bad_message", "array");
  expect_error(map([](auto& w) { w.put("type", "ping"); }), "bad_request", "'id'");
  expect_error(map([](auto& w) { w.put("id", 1.5).put("type", "ping"); }), "bad_request", "'id'");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "fly"); }), "unknown_type", "fly");
  expect_error(map([](auto& w) { w.put("id", 1); }), "bad_request", "'type'");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve"); }), "bad_request", "'problem'");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", 7); }), "bad_request",
               "must be a string");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", ""); }), "bad_request", "empty");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", "x").put("n", 0); }),
               "bad_request", "'n'");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", "x").put("n", 1 << 30); }),
               "bad_request", "'n'");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", "x").put("nn", 2); }),
               "bad_request", "unknown field 'nn'");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", "x").put("v", 2); }),
               "unsupported_version", "version 2");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "solve").put("problem", std::string(5000, 'x')); }),
               "too_large", "limit");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "cancel").put("target", 99); }), "not_found", "99");
  expect_error(map([](auto& w) { w.put("id", 1).put("type", "score").put("problem", "p").put("steps", 3); }),
               "bad_request", "'steps'");
  // Two frames in one message.
  c.socket().send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
  c.socket().send(zmq::str_buffer("b"), zmq::send_flags::none);
  auto f = c.recv(10s);
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->code, "bad_message");

  auto ping = c.call("ping", msg::MapWriter(), 10s);
  EXPECT_TRUE(ping.ok());
  auto solve = c.call("solve", solve_fields("Let a = 1. What is a?"), 60s);
  EXPECT_TRUE(solve.ok()) << solve.error().message;
}

TEST(Pipeline, EightClientsWithEightRequestsEachGetExactlyOneReplyPerRequest) {
  Pipeline p(test::tiny_pipeline_config(ipc_endpoint("many")));
  std::vector<std::thread> threads;
  std::vector<int> finals(8, 0), extras(8, 0), errors(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      Client c = p.client();
      std::map<std::string, int> seen;
      for (int k = 0; k < 8; ++k) {
        if (k % 2 == 0) {
          msg::MapWriter w = solve_fields("Let a = " + std::to_string(t + k + 1) + ". What is a?");
          w.put("n", 2).put("stream", k % 4 == 0);
          seen[c.send("solve", w)] = 0;
        } else {
          msg::MapWriter w;
          w.put("prompt", "x" + std::to_string(k)).put("max_tokens", 4);
          seen[c.send("generate", w)] = 0;
        }
      }
      auto deadline = std::chrono::steady_clock::now() + 120s;
      size_t done = 0;
      while (done < seen.size() && std::chrono::steady_clock::now() < deadline) {
        auto f = c.recv(100ms);
        if (!f.ok() || !f->has_value() || (*f)->type == "progress") continue;
        auto it = seen.find((*f)->id);
        if (it == seen.end() || it->second++ > 0) {
          ++extras[t];
          continue;
        }
        if ((*f)->type == "error") ++errors[t];
        ++done;
      }
      // Nothing more may arrive for these ids.
      for (;;) {
        auto f = c.recv(300ms);
        if (!f.ok() || !f->has_value()) break;
        if ((*f)->type != "progress") ++extras[t];
      }
      finals[t] = (int)done;
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) {
    EXPECT_EQ(finals[t], 8) << "client " << t;
    EXPECT_EQ(extras[t], 0) << "client " << t;
    EXPECT_EQ(errors[t], 0) << "client " << t;
  }
}

// The KV blocks referenced by sequences, per GPU actor, from `stats`.
std::pair<int64_t, int64_t> used_blocks(Client& c) {
  auto st = c.call("stats", msg::MapWriter(), 10s);
  EXPECT_TRUE(st.ok());
  if (!st.ok()) return {-1, -1};
  msg::MapReader actors, g, v;
  EXPECT_TRUE(st->body.get("actors", &actors).ok());
  EXPECT_TRUE(actors.get("generator", &g).ok());
  EXPECT_TRUE(actors.get("verifier", &v).ok());
  int64_t gu = -1, vu = -1;
  EXPECT_TRUE(g.get("kv_blocks_used", &gu).ok()) << "generator stats lack kv_blocks_used";
  EXPECT_TRUE(v.get("kv_blocks_used", &vu).ok()) << "verifier stats lack kv_blocks_used";
  return {gu, vu};
}

// The generator's used KV blocks once it holds some, or 0 after 20 s: a
// request's blocks show in stats a little after it starts (its first progress
// frame can come first on a loaded machine).
int64_t generator_blocks_once_taken(Client& c) {
  auto until = std::chrono::steady_clock::now() + 20s;
  int64_t used = used_blocks(c).first;
  while (used == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
    used = used_blocks(c).first;
  }
  return used;
}

// A policy slow enough that a long generation outlives the test's checks:
// the shared tiny model generates its 4096 positions in a fraction of a
// second, so a stats call that came late could find the request finished
// ("length") and its blocks released by itself, not by the cancel.
std::filesystem::path slow_policy() {
  static const std::filesystem::path dir = [] {
    auto d = test::scratch_dir("slow-policy") / "policy";
    test::write_model(d, "--arch qwen2 --hidden 256 --layers 4 --heads 4 --kv-heads 2 --intermediate 512 --vocab 512"
                         " --max-position 8192 --seed 7");
    return d;
  }();
  return dir;
}

TEST(Pipeline, CancelAndAVanishedClientReleaseTheirKvBlocks) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("release"));
  cfg.models.policy = slow_policy();
  cfg.limits.max_tokens_per_step = 100000;
  cfg.limits.max_tokens = 100000;
  Pipeline p(cfg);
  Client watcher = p.client();
  EXPECT_EQ(used_blocks(watcher), std::make_pair(int64_t(0), int64_t(0)));

  // Long generations that would run for many seconds (8000 tokens of the
  // slow policy; its KV cache here holds about 10 000).
  msg::MapWriter w;
  w.put("prompt", "Tell me a long story.").put("max_tokens", 8000).put("stream", true);
  Client a = p.client();
  std::string id = a.send("generate", w);
  int n_progress = 0;
  while (n_progress == 0) {  // wait until it is running
    auto f = a.recv(10s);
    ASSERT_TRUE(f.ok() && f->has_value());
    if ((*f)->type == "progress") ++n_progress;
  }
  EXPECT_GT(generator_blocks_once_taken(watcher), 0);
  msg::MapWriter cw;
  cw.put_raw("target", id);
  std::string cancel_id = a.send("cancel", cw);
  // Both answers come: the target's error, then the cancel's result.
  ServerFrame f = final_frame(a, id);
  EXPECT_EQ(f.type, "error");
  EXPECT_EQ(f.code, "cancelled");
  ServerFrame ack = final_frame(a, cancel_id);
  EXPECT_EQ(ack.type, "result");

  {
    // Not streaming: nothing is ever sent to this client before it leaves,
    // so only the intake's connection monitor can notice.
    auto b = Client::connect(p.ctx, p.cfg.endpoints.clients.front());
    ASSERT_TRUE(b.ok());
    msg::MapWriter quiet;
    quiet.put("prompt", "Another long story.").put("max_tokens", 8000);
    b->send("generate", quiet);
    ASSERT_GT(generator_blocks_once_taken(watcher), 0);
  }  // the client disconnects mid-request

  auto deadline = std::chrono::steady_clock::now() + 20s;
  std::pair<int64_t, int64_t> used;
  do {
    std::this_thread::sleep_for(100ms);
    used = used_blocks(watcher);
  } while (used != std::make_pair(int64_t(0), int64_t(0)) && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(used, std::make_pair(int64_t(0), int64_t(0)));
  // Released because both were cancelled, not because they ran out.
  auto st = watcher.call("stats", msg::MapWriter(), 10s);
  ASSERT_TRUE(st.ok());
  msg::MapReader actors, bm;
  ASSERT_TRUE(st->body.get("actors", &actors).ok() && actors.get("beam_manager", &bm).ok());
  int64_t cancelled = 0, completed = 0;
  EXPECT_TRUE(bm.get("cancelled", &cancelled).ok() && bm.get("completed", &completed).ok());
  EXPECT_EQ(cancelled, 2);
}

TEST(Pipeline, DeadlinePassedGivesAnErrorAndFreesTheWork) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("deadline"));
  cfg.limits.max_tokens = 100000;
  Pipeline p(cfg);
  Client c = p.client();
  // A search of 256 beams: about 1 s here, ten times the deadline. (A
  // generate ends at the tiny model's 512 positions, about as soon as a
  // deadline of 300 ms.)
  msg::MapWriter w;
  w.put("problem", "Go on.").put("strategy", "beam_search").put("n", int64_t(256));
  w.put("max_steps", int64_t(64)).put("max_tokens_per_step", int64_t(64)).put("deadline_ms", 100);
  std::string id = c.send("solve", w);
  ServerFrame f = final_frame(c, id, nullptr, 20s);
  EXPECT_EQ(f.code, "deadline_exceeded");
}

TEST(Pipeline, ShutdownWithRequestsInFlightAnswersEachOfThemQuickly) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("shutdown"));
  cfg.limits.max_tokens = 100000;
  auto p = std::make_unique<Pipeline>(cfg);
  Client c = p->client();
  // Four searches of 256 beams: about 1 s each here, so still running at the
  // shutdown 100 ms on. (A generate ends at the tiny model's 512 positions,
  // which here takes about as long as the wait.)
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    msg::MapWriter w;
    w.put("problem", "Story " + std::to_string(i)).put("strategy", "beam_search").put("n", int64_t(256));
    w.put("max_steps", int64_t(64)).put("max_tokens_per_step", int64_t(64));
    ids.push_back(c.send("solve", w));
  }
  std::this_thread::sleep_for(100ms);
  auto t0 = std::chrono::steady_clock::now();
  p->sup->shutdown();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 5.0);
  // The generations are running (their progress frames may come first);
  // each ends with shutting_down.
  std::set<std::string> answered;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (answered.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
    auto f = c.recv(2s);
    if (!f.ok() || !f->has_value()) break;
    if ((*f)->type == "progress") continue;
    EXPECT_EQ((*f)->code, "shutting_down") << (*f)->type << " " << (*f)->message;
    answered.insert((*f)->id);
  }
  EXPECT_EQ(answered.size(), ids.size());
}

TEST(Pipeline, AFailingActorIsReportedAndItsRequestsGetAnError) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("fail"));
  cfg.memory.budget_mb = 0.01;  // less than the weights: the arbiter fails
  zmq::context_t ctx;
  LogSink logs(spdlog::level::off);
  auto sup = Supervisor::start(ctx, cfg, logs);
  ASSERT_TRUE(sup.ok()) << sup.error().message;
  auto c = Client::connect(ctx, cfg.endpoints.clients.front());
  ASSERT_TRUE(c.ok());
  std::string id = c->send("solve", solve_fields("Let a = 1. What is a?"));
  std::this_thread::sleep_for(300ms);  // let the intake take the request in
  auto failure = (*sup)->watch(10s);
  ASSERT_TRUE(failure.has_value());
  EXPECT_NE(failure->find("memory_arbiter"), std::string::npos) << *failure;
  EXPECT_NE(failure->find("budget"), std::string::npos) << *failure;
  EXPECT_FALSE((*sup)->running());
  auto f = c->recv(5s);
  ASSERT_TRUE(f.ok() && f->has_value()) << "the request in flight got no reply";
  EXPECT_EQ((*f)->id, id);
  EXPECT_EQ((*f)->code, "server_failure");
  EXPECT_NE((*f)->message.find("memory_arbiter"), std::string::npos) << (*f)->message;
}

TEST(Pipeline, AMissingModelFolderFailsStartWithItsPath) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("missing"));
  cfg.models.policy = "/nonexistent/policy-model";
  zmq::context_t ctx;
  LogSink logs(spdlog::level::off);
  auto sup = Supervisor::start(ctx, cfg, logs);
  ASSERT_FALSE(sup.ok());
  EXPECT_NE(sup.error().message.find("/nonexistent/policy-model"), std::string::npos) << sup.error().message;
}

TEST(Pipeline, DeviceCudaIsAClearErrorWithoutAUsableGpuAndAutoFallsBackToTheCpu) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("device"));
  // Without CUDA in the build, or without a driver or device, "cuda" fails
  // naming why (the reasons: tests/gpu/device_fallback_test.cpp).
  if (!DeviceContext::open("cuda").ok()) {
    cfg.engine.device = "cuda";
    zmq::context_t ctx;
    LogSink logs(spdlog::level::off);
    auto sup = Supervisor::start(ctx, cfg, logs);
    ASSERT_FALSE(sup.ok());
    EXPECT_NE(sup.error().message.find("device 'cuda' is not available: "), std::string::npos)
        << sup.error().message;
  }
  cfg.engine.device = "auto";
  Pipeline p(cfg);
  Client c = p.client();
  EXPECT_TRUE(c.call("ping", msg::MapWriter(), 10s).ok());
}

}  // namespace
}  // namespace flashtts
