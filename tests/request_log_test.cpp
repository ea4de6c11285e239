// The request log (runtime/base/request_log.h) and JSON logs
// (runtime/base/json_log_formatter.h): the line of a record in both forms, the
// formatter on its own, and a real `flashtts serve` writing one line per
// finished request, as text and as JSON.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "messages/msgpack_io.h"
#include "runtime/base/json_log_formatter.h"
#include "runtime/base/request_log.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

RequestRecord solve_record() {
  RequestRecord r;
  r.rid = 1048577;
  r.packed_id = std::string(1, '\x07');  // msgpack for the integer 7
  r.kind = "solve", r.strategy = "beam_search", r.n = 16;
  r.latency_ms = 658.34, r.policy_tokens = 1403, r.prm_tokens = 596;
  r.outcome = "ok";
  return r;
}

TEST(RequestLog, TheTextLineHasEveryFieldAsKeyEqualsValue) {
  EXPECT_EQ(request_line_text(solve_record()),
            "request rid=1048577 id=7 kind=solve strategy=beam_search n=16 outcome=ok latency_ms=658.3 "
            "policy_tokens=1403 prm_tokens=596");
  RequestRecord g;
  g.rid = 3, g.packed_id = "\xa3" "a b", g.kind = "generate", g.outcome = "cancelled";
  g.error = "cancelled by \"the\" client";
  // No strategy or n for a generate; values with spaces or quotes quoted.
  EXPECT_EQ(request_line_text(g), "request rid=3 id=\"'a b'\" kind=generate outcome=cancelled latency_ms=0.0 "
                                  "policy_tokens=0 prm_tokens=0 error=\"cancelled by \\\"the\\\" client\"");
}

TEST(RequestLog, TheJsonLineIsOneObjectWithTheClientsIdAsItSentIt) {
  json j = json::parse(request_line_json(solve_record()));
  EXPECT_EQ(j["event"], "request");
  EXPECT_EQ(j["rid"], 1048577);
  EXPECT_EQ(j["id"], 7);
  EXPECT_EQ(j["kind"], "solve");
  EXPECT_EQ(j["strategy"], "beam_search");
  EXPECT_EQ(j["n"], 16);
  EXPECT_EQ(j["outcome"], "ok");
  EXPECT_DOUBLE_EQ(j["latency_ms"].get<double>(), 658.3);
  EXPECT_EQ(j["policy_tokens"], 1403);
  EXPECT_EQ(j["prm_tokens"], 596);
  EXPECT_FALSE(j.contains("error"));
  RequestRecord s;
  s.packed_id = "\xa3req", s.kind = "score", s.outcome = "overloaded", s.error = "too many";
  j = json::parse(request_line_json(s));
  EXPECT_EQ(j["id"], "req");
  EXPECT_FALSE(j.contains("strategy"));
  EXPECT_EQ(j["error"], "too many");
}

TEST(RequestLog, TokenCountsComeFromEachKindsResult) {
  RequestRecord r = solve_record();
  r.policy_tokens = r.prm_tokens = 0;
  msg::MapWriter stats, solve;
  stats.put("policy_tokens", int64_t(120)).put("prm_tokens", int64_t(45));
  solve.put("answer", "3").put("stats", stats);
  read_result_tokens(solve.bytes(), &r);
  EXPECT_EQ(r.policy_tokens, 120);
  EXPECT_EQ(r.prm_tokens, 45);

  RequestRecord g;
  g.kind = "generate";
  msg::MapWriter gen;
  gen.put("text", "x").put("tokens", std::vector<int32_t>{5, 6, 7});
  read_result_tokens(gen.bytes(), &g);
  EXPECT_EQ(g.policy_tokens, 3);

  RequestRecord s;
  s.kind = "score";
  msg::MapWriter sc;
  sc.put("n_tokens", int64_t(31));
  read_result_tokens(sc.bytes(), &s);
  EXPECT_EQ(s.prm_tokens, 31);

  RequestRecord bad;
  bad.kind = "solve";
  read_result_tokens("not msgpack", &bad);
  EXPECT_EQ(bad.policy_tokens, 0);
}

std::string format_json(const std::string& logger, spdlog::level::level_enum level, const std::string& text) {
  JsonLogFormatter f;
  spdlog::details::log_msg m(logger, level, text);
  spdlog::memory_buf_t buf;
  f.format(m, buf);
  return std::string(buf.data(), buf.size());
}

TEST(JsonLogs, EachLineIsOneObjectWithTimeLevelLoggerAndMessage) {
  std::string line = format_json("intake", spdlog::level::warn, "a \"quoted\"\nmessage\x01 \xff");
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  json j = json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["logger"], "intake");
  EXPECT_EQ(j["msg"], "a \"quoted\"\nmessage\x01 \xef\xbf\xbd");  // the stray byte replaced
  EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << j["time"];
}

TEST(JsonLogs, AMessageThatIsAnObjectGivesItsFieldsToTheLine) {
  json j = json::parse(format_json("intake", spdlog::level::info, request_line_json(solve_record())));
  EXPECT_FALSE(j.contains("msg"));
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["event"], "request");
  EXPECT_EQ(j["policy_tokens"], 1403);
  // Its fields never replace the line's own.
  j = json::parse(format_json("intake", spdlog::level::info, R"({"level": "forged", "x": 1})"));
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["x"], 1);
  // Text that only looks like an object stays a message.
  j = json::parse(format_json("intake", spdlog::level::info, "{not json}"));
  EXPECT_EQ(j["msg"], "{not json}");
}

TEST(JsonLogs, AnUnknownFormatIsRefusedByNameInTheConfig) {
  auto dir = test::scratch_dir("logfmt-bad");
  std::ofstream(dir / "c.toml") << "log_format = \"xml\"\n";
  std::string out;
  int rc = test::run_command((test::binary_dir() / "flashtts").string() + " serve --config " +
                                 (dir / "c.toml").string() + " 2>&1",
                             &out);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("log_format"), std::string::npos) << out;
  EXPECT_NE(out.find("text"), std::string::npos) << out;
}

// Runs a server on the tiny random models with `args` before `serve`,
// solves once and asks a generate, stops it; returns its output.
std::string serve_and_solve(const std::string& tag, const std::vector<std::string>& global,
                            const std::string& top_of_config = "") {
  auto dir = test::scratch_dir(tag);
  auto cfg = test::write_split_config(dir);
  if (!top_of_config.empty()) {
    std::string text = test::read_file(cfg);
    std::ofstream(cfg) << top_of_config << text.substr(text.find('\n') + 1);  // replaces log_level = "warn"
  }
  std::vector<std::string> args = global;
  for (const char* a : {"serve", "--config"}) args.push_back(a);
  args.push_back(cfg.string());
  test::Child server(args, dir / "serve.log");
  EXPECT_TRUE(test::wait_for_text(dir / "serve.log", "listening on ipc://", 60s)) << test::read_file(dir / "serve.log");
  std::string ask = (test::binary_dir() / "flashtts").string() + " ask --quiet --endpoint ipc://" +
                    (dir / "client").string();
  std::string out;
  EXPECT_EQ(test::run_command(ask + " --n 2 --strategy best_of_n 'Let a = 4. What is a?' 2>&1", &out), 0) << out;
  EXPECT_EQ(test::run_command(ask + " ping 2>&1", &out), 0) << out;
  EXPECT_EQ(server.stop(SIGTERM, 10s), 0) << test::read_file(dir / "serve.log");
  return test::read_file(dir / "serve.log");
}

TEST(RequestLogServe, EveryFinishedSolveGetsATextLineAtTheIntake) {
  std::string log = serve_and_solve("reqlog-text", {"--log-level", "info"});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m,
      std::regex(R"(\[intake\] request rid=\d+ id=\d+ kind=solve strategy=best_of_n n=2 outcome=ok )"
                 R"(latency_ms=\d+\.\d policy_tokens=(\d+) prm_tokens=(\d+)\n)")))
      << log;
  EXPECT_GT(std::stoi(m[1]), 0);
  EXPECT_GT(std::stoi(m[2]), 0);
  // One line per request: the ping gets none.
  size_t lines = 0;
  for (size_t p = 0; (p = log.find("] request rid=", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 1u) << log;
}

TEST(RequestLogServe, JsonLogsFromTheConfigAreOneObjectPerLine) {
  std::string log = serve_and_solve("reqlog-json", {}, "log_level = \"info\"\nlog_format = \"json\"\n");
  std::istringstream in(log);
  std::string line;
  int objects = 0, requests = 0;
  while (std::getline(in, line)) {
    if (line.rfind("flashtts serve:", 0) == 0) continue;  // stdout's own lines, in the same file here
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    ++objects;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("logger")) << line;
    if (j.value("event", "") != "request") continue;
    ++requests;
    EXPECT_EQ(j["logger"], "intake");
    EXPECT_EQ(j["kind"], "solve");
    EXPECT_EQ(j["strategy"], "best_of_n");
    EXPECT_EQ(j["n"], 2);
    EXPECT_EQ(j["outcome"], "ok");
    EXPECT_TRUE(j["id"].is_number_integer()) << line;
    EXPECT_GT(j["latency_ms"].get<double>(), 0.0);
    EXPECT_GT(j["policy_tokens"].get<int64_t>(), 0);
    EXPECT_GT(j["prm_tokens"].get<int64_t>(), 0);
  }
  EXPECT_GT(objects, 3) << log;  // the actors' own info lines too
  EXPECT_EQ(requests, 1) << log;
}

}  // namespace
}  // namespace flashtts
