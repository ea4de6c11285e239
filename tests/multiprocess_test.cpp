// Actors in more than one process, and the command-line entry points:
// the verifier runs in a `flashtts serve --actors verifier` child process
// over ipc://; `flashtts serve` + `flashtts ask` and `flashtts run` are
// driven as a user would.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <thread>

#include "runtime/client.h"
#include "runtime/supervisor.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

using test::Child;
using test::read_file;
using test::wait_for_text;

TEST(MultiProcess, TheVerifierInASecondProcessScoresForThePipeline) {
  auto dir = test::scratch_dir("mp");
  auto cfg_path = test::write_split_config(dir);
  Child verifier({"serve", "--config", cfg_path.string(), "--actors", "verifier"}, dir / "verifier.log");
  ASSERT_TRUE(wait_for_text(dir / "verifier.log", "running 1 actor", 60s)) << read_file(dir / "verifier.log");

  auto cfg = load_config(cfg_path);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  zmq::context_t ctx;
  LogSink logs(spdlog::level::warn);
  auto sup = Supervisor::start(ctx, *cfg, logs,
                               {"memory_arbiter", "generator", "scheduler", "beam_manager", "intake"});
  ASSERT_TRUE(sup.ok()) << sup.error().message;
  auto c = Client::connect(ctx, cfg->endpoints.clients.front());
  ASSERT_TRUE(c.ok());
  msg::MapWriter w;
  w.put("problem", "Let a = 3. What is a?");
  auto r = c->call("solve", w, 60s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<msg::MapReader> steps;
  ASSERT_TRUE(r->body.get("steps", &steps).ok());
  auto st = c->call("stats", msg::MapWriter(), 10s);
  ASSERT_TRUE(st.ok());
  msg::MapReader actors, v;
  ASSERT_TRUE(st->body.get("actors", &actors).ok());
  ASSERT_TRUE(actors.get("verifier", &v).ok()) << "the remote verifier did not answer stats";
  int64_t scored = 0;
  EXPECT_TRUE(v.get("tokens_scored", &scored).ok());
  EXPECT_GT(scored, 0);
  (*sup)->shutdown();
  EXPECT_EQ(verifier.stop(SIGTERM, 5s), 0) << read_file(dir / "verifier.log");
}

TEST(CommandLine, ServeAnswersAskAndStopsCleanlyOnSigint) {
  auto dir = test::scratch_dir("serve");
  auto cfg_path = test::write_split_config(dir);
  Child server({"serve", "--config", cfg_path.string()}, dir / "serve.log");
  ASSERT_TRUE(wait_for_text(dir / "serve.log", "listening on ipc://", 60s)) << read_file(dir / "serve.log");
  std::string out;
  std::string ask = (test::binary_dir() / "flashtts").string() + " ask --quiet --endpoint ipc://" +
                    (dir / "client").string() + " --n 2 --json 'Let a = 4. What is a?' 2>&1";
  ASSERT_EQ(test::run_command(ask, &out), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_TRUE(j.contains("answer"));
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(server.stop(SIGINT, 5s), 0) << read_file(dir / "serve.log");
}

TEST(CommandLine, AskWithoutAServerFailsWithAClearMessage) {
  // A ping with no answer in --connect-timeout tells, long before --timeout.
  std::string out;
  std::string ask = (test::binary_dir() / "flashtts").string() +
                    " ask --quiet --connect-timeout 1 --timeout 600 --endpoint ipc:///nonexistent/flashtts.sock"
                    " 'Let a = 1. What is a?' 2>&1";
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(test::run_command(ask, &out), 1) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << out;
  EXPECT_NE(out.find("no flashtts server answers at ipc:///nonexistent/flashtts.sock (no reply to ping within 1 s)"),
            std::string::npos)
      << out;
}

TEST(CommandLine, RunSolvesInOneProcessAndPrintsAnswerStepsAndTime) {
  auto dir = test::scratch_dir("run");
  auto cfg_path = test::write_split_config(dir);
  std::string out;
  std::string run = (test::binary_dir() / "flashtts").string() + " run --quiet --config " + cfg_path.string() +
                    " 'Let a = 5. Let b = a * 3. What is b?' 2>&1";
  ASSERT_EQ(test::run_command(run, &out), 0) << out;
  EXPECT_NE(out.find("answer:"), std::string::npos) << out;
  EXPECT_NE(out.find("steps:"), std::string::npos) << out;
  EXPECT_NE(out.find("time:"), std::string::npos) << out;
}

TEST(CommandLine, ServeWithAMissingModelFolderFailsNamingIt) {
  auto dir = test::scratch_dir("serve-missing");
  std::ofstream(dir / "bad.toml") << "[models]\npolicy = \"nowhere/policy\"\nprm = \"nowhere/prm\"\n";
  std::string out;
  std::string cmd = (test::binary_dir() / "flashtts").string() + " serve --config " + (dir / "bad.toml").string() +
                    " 2>&1";
  EXPECT_EQ(test::run_command(cmd, &out), 1) << out;
  EXPECT_NE(out.find("nowhere/policy"), std::string::npos) << out;
}

}  // namespace
}  // namespace flashtts
