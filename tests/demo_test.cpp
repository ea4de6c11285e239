// `flashtts demo` as tools/run.sh runs it, on the shipped models: the
// picked problem side by side (greedy wrong, search right), the accuracies
// of both on the dozen fresh problems, and the progress on stderr; and the
// pieces of its report (runtime/demo_report.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "runtime/demo_report.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using test::binary_dir;
using test::run_command;

std::string flashtts() { return (binary_dir() / "flashtts").string(); }

struct DemoRun {
  int rc = -1;
  std::string out, err;
};

// Runs `flashtts demo <args>` on the shipped models (the source tree's
// configs/default.toml), stdout and stderr apart.
DemoRun demo(const std::string& args) {
  fs::path dir = test::scratch_dir("demo");
  DemoRun r;
  std::string config = std::string(FLASHTTS_SOURCE_DIR) + "/configs/default.toml";
  r.rc = run_command(flashtts() + " demo --config " + config + " " + args + " 2>" + (dir / "err").string(), &r.out);
  r.err = test::read_file(dir / "err");
  return r;
}

// "right/total" of the accuracy line that starts with `label`.
std::string accuracy_of(const std::string& out, const std::string& label) {
  std::smatch m;
  std::regex line("\n  " + label + R"([^\n]*? +(\d+/\d+) +\d+\.\d%  +\d+ policy tokens per problem)");
  return std::regex_search(out, m, line) ? m[1].str() : "";
}

TEST(Demo, ShowsGreedyBesideSearchOnThePickedProblemAndBothAccuracies) {
  DemoRun r = demo("");
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  // The picked problem, said to be picked, with both answers.
  EXPECT_NE(r.out.find("picked because greedy decoding gets it wrong and search gets it right"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("not so with these models"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Let a = 5. Let b = a * 3. Let c = b * 9. Let d = c - 31. What is d?"), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(\n  (answer \S+: wrong) +\| (answer \S+: right)\n)")))
      << r.out;
  EXPECT_EQ(m[1].str(), "answer 17: wrong");
  EXPECT_EQ(m[2].str(), "answer 104: right");
  // Both accuracy lines on the twelve problems. The run is deterministic
  // (one seed; results the same bits whatever the batch and the kernels),
  // so the counts are the ones it gave when this test was written.
  EXPECT_NE(r.out.find("accuracy on 12 fresh problems (tools/arith/data.py --n 12 --seed 20261205"),
            std::string::npos) << r.out;
  EXPECT_EQ(accuracy_of(r.out, "greedy decoding"), "6/12") << r.out;
  EXPECT_EQ(accuracy_of(r.out, R"(beam search with the PRM \(N=16, M=4\))"), "9/12") << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\nsearch: \+25\.0 points for \d+\.\dx the policy tokens\n)")))
      << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\ntime: \d+\.\d s, models loaded and everything solved on this machine.s \d+ CPU cores\n)"))) << r.out;
  // The progress on stderr (not a terminal here: a line per solve, the
  // last one with the full bar).
  EXPECT_NE(r.err.find("[########################] 24/24"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("24/24"), std::string::npos) << "the progress belongs on stderr";
}

TEST(Demo, OneSolveAtATimeGivesTheSameAnswers) {
  DemoRun r = demo("--concurrency 1 --quiet");
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(accuracy_of(r.out, "greedy decoding"), "6/12") << r.out;
  EXPECT_EQ(accuracy_of(r.out, R"(beam search with the PRM \(N=16, M=4\))"), "9/12") << r.out;
  EXPECT_EQ(r.err, "") << "--quiet prints no progress";
}

TEST(Demo, RunsOnADatasetFileAndRefusesBadInputBeforeLoadingModels) {
  fs::path dir = test::scratch_dir("demo-data");
  std::ofstream(dir / "two.jsonl") << R"({"problem": "Let a = 5. Let b = a + a. What is b?", "answer": "10"})" "\n"
                                   << R"({"problem": "Let a = 7. Let b = a * 2. What is b?", "answer": 14})" "\n";
  DemoRun r = demo("--dataset " + (dir / "two.jsonl").string() + " --n 4 --quiet");
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("accuracy on 2 problems (" + (dir / "two.jsonl").string()), std::string::npos) << r.out;
  EXPECT_NE(accuracy_of(r.out, "greedy decoding"), "") << r.out;
  EXPECT_NE(accuracy_of(r.out, R"(beam search with the PRM \(N=4, M=4\))"), "") << r.out;

  std::ofstream(dir / "bad.jsonl") << "{\"question_text\": 1}\n";
  r = demo("--dataset " + (dir / "bad.jsonl").string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("flashtts demo: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl"), std::string::npos) << r.err;

  r = demo("--n 6");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--n 6 is not a multiple of the beam width 4"), std::string::npos) << r.err;
}

TEST(DemoReport, ColumnsLineUpAndLongStepsAreCut) {
  demo::Outcome a, b;
  a.steps = {{"b = a * 3 = 5 * 3 = 15", 0.973}, {std::string(80, 'x'), 0.017}};
  a.answer = "17", a.policy_tokens = 68, a.latency_ms = 80;
  b.steps = {{"b = a * 3 = 5 * 3 = 15", 0.973}};
  b.answer = "104", b.right = true, b.policy_tokens = 1094, b.prm_tokens = 145, b.latency_ms = 610;
  std::string s = demo::side_by_side("greedy", a, "search", b);
  std::vector<std::string> lines;
  for (size_t p = 0, q; (q = s.find('\n', p)) != std::string::npos; p = q + 1) lines.push_back(s.substr(p, q - p));
  ASSERT_EQ(lines.size(), 5u) << s;  // title, 2 steps, answer, cost
  for (const auto& l : lines) EXPECT_EQ(l.find(" |"), lines[0].find(" | ")) << s;
  EXPECT_NE(lines[1].find("[0.973] b = a * 3 = 5 * 3 = 15"), std::string::npos) << s;
  EXPECT_NE(lines[2].find("xxx..."), std::string::npos) << s;
  EXPECT_TRUE(lines[2].ends_with("... |")) << "a step fewer on the right: " << s;
  EXPECT_NE(lines[3].find("answer 17: wrong"), std::string::npos) << s;
  EXPECT_NE(lines[3].find("| answer 104: right"), std::string::npos) << s;
  EXPECT_NE(lines[4].find("| 1094 policy tokens, 145 PRM, 0.61 s"), std::string::npos) << s;
}

TEST(DemoReport, ProgressBarAndAccuracyLine) {
  EXPECT_EQ(demo::progress_bar(0, 24), "[........................] 0/24");
  EXPECT_EQ(demo::progress_bar(12, 24), "[############............] 12/24");
  EXPECT_EQ(demo::progress_bar(24, 24), "[########################] 24/24");
  demo::Tally t;
  demo::Outcome right, wrong, failed;
  right.right = true, right.policy_tokens = 100;
  wrong.policy_tokens = 50;
  failed.failed = true;
  t.add(right), t.add(wrong), t.add(failed);
  EXPECT_EQ(t.done, 3);
  EXPECT_EQ(t.right, 1);
  EXPECT_EQ(demo::accuracy_line("greedy", t, 3, 8), "  greedy    1/3    33.3%     50 policy tokens per problem  (1 failed)\n");
}

}  // namespace
}  // namespace flashtts
