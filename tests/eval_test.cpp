// flashtts eval: the dataset readers (every layout, on fixtures written here
// and on the real files in ../shared/testdata), the metrics on hand-made
// completions, the table and the SVG, and the command end to end on the tiny
// random-weight models.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "runtime/eval_dataset.h"
#include "runtime/eval_metrics.h"
#include "runtime/eval_report.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path write_file(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name, std::ios::binary) << text;
  return dir / name;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

eval::Dataset read_ok(const fs::path& p) {
  auto d = eval::read_dataset(p);
  EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
  return d.ok() ? *d : eval::Dataset{};
}

std::string read_error(const std::string& text, const std::string& name = "bad.jsonl") {
  auto d = eval::parse_dataset(text, name);
  EXPECT_FALSE(d.ok()) << "accepted: " << text;
  return d.ok() ? "" : d.error().message;
}

// ---- dataset readers on fixtures ---------------------------------------------

TEST(EvalDataset, Math500LayoutKeepsTheLatexAnswerAndTheUniqueId) {
  auto dir = test::scratch_dir("eval-ds");
  auto ds = read_ok(write_file(dir, "math.jsonl",
                               R"J({"problem": "Convert $(0,3)$.", "solution": "...", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/807.json"})J"
                               "\n\n"
                               R"J({"problem": "What is $2+2$?", "solution": "", "answer": "4", "subject": "A", "level": 1, "unique_id": "u2"})J"
                               "\n"));
  EXPECT_EQ(ds.layout, "math500");
  ASSERT_EQ(ds.problems.size(), 2u);
  EXPECT_EQ(ds.problems[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_EQ(ds.problems[0].id, "test/precalculus/807.json");
  EXPECT_EQ(ds.problems[0].problem, "Convert $(0,3)$.");
  // A blank line is skipped: the second record is index 1 on line 3.
  EXPECT_EQ(ds.problems[1].index, 1);
  EXPECT_EQ(ds.problems[1].line, 3);
}

TEST(EvalDataset, Gsm8kLayoutTakesTheAnswerAfterTheLastHashes) {
  auto dir = test::scratch_dir("eval-ds");
  auto ds = read_ok(write_file(dir, "gsm8k.jsonl",
                               R"J({"question": "Janet has 16 eggs and eats 3.", "answer": "16 - 3 = <<16-3=13>>13\n#### 13"})J"
                               "\n"
                               R"J({"question": "A house costs a lot.", "answer": "So he made 70,000.\n####   70,000  "})J"
                               "\n"));
  EXPECT_EQ(ds.layout, "gsm8k");
  ASSERT_EQ(ds.problems.size(), 2u);
  EXPECT_EQ(ds.problems[0].problem, "Janet has 16 eggs and eats 3.");
  EXPECT_EQ(ds.problems[0].answer, "13");
  EXPECT_EQ(ds.problems[1].answer, "70,000");
  EXPECT_TRUE(eval::answers_match(ds.problems[1].answer, "70000"));
  EXPECT_EQ(eval::gsm8k_final_answer("a #### 1 #### 2"), "2");
  EXPECT_EQ(eval::gsm8k_final_answer("no final answer"), "");
}

TEST(EvalDataset, QwenMathLayoutReadsAime24StringsAndAmc23Floats) {
  auto dir = test::scratch_dir("eval-ds");
  auto ds = read_ok(write_file(dir, "aime_amc.jsonl",
                               R"J({"id": 60, "problem": "Find t.", "solution": "...", "answer": "025", "url": "u", "question": "Find t."})J"
                               "\n"
                               R"J({"id": 0, "problem": "How many miles?", "answer": 27.0, "url": "u", "question": "q"})J"
                               "\n"
                               R"J({"id": 1, "problem": "Half?", "answer": 2.5, "url": "u", "question": "q"})J"
                               "\n"));
  EXPECT_EQ(ds.layout, "qwen_math");
  ASSERT_EQ(ds.problems.size(), 3u);
  EXPECT_EQ(ds.problems[0].answer, "25");  // AIME's leading zeros dropped
  EXPECT_EQ(ds.problems[0].id, "60");
  EXPECT_EQ(ds.problems[1].answer, "27");  // 27.0
  EXPECT_EQ(ds.problems[2].answer, "2.5");
}

TEST(EvalDataset, Aime25LayoutStripsTheInstructionSuffix) {
  auto dir = test::scratch_dir("eval-ds");
  auto ds = read_ok(write_file(
      dir, "aime25.jsonl",
      R"J({"prompt": "Find the sum of all bases.\nPlease reason step by step, and put your final answer within \\boxed{}.", "answer": 70})J"
      "\n"));
  EXPECT_EQ(ds.layout, "aime25");
  ASSERT_EQ(ds.problems.size(), 1u);
  EXPECT_EQ(ds.problems[0].problem, "Find the sum of all bases.");
  EXPECT_EQ(ds.problems[0].answer, "70");
}

TEST(EvalDataset, PlainLayoutTakesProblemAndAnswerOfAnyScalarType) {
  auto dir = test::scratch_dir("eval-ds");
  auto ds = read_ok(write_file(dir, "plain.jsonl",
                               "{\"problem\": \"Let a = 5. What is a?\", \"answer\": \"5\"}\n"
                               "{\"problem\": \"1+2?\", \"answer\": 3, \"id\": \"x\"}\r\n"));
  EXPECT_EQ(ds.layout, "plain");
  ASSERT_EQ(ds.problems.size(), 2u);
  EXPECT_EQ(ds.problems[1].answer, "3");
  EXPECT_EQ(ds.problems[1].id, "x");
}

TEST(EvalDataset, BadLinesAreErrorsNamingTheFileAndLine) {
  std::string e = read_error("{\"problem\": \"a\", \"answer\": \"1\"}\n\n{not json\n");
  EXPECT_NE(e.find("bad.jsonl:3:"), std::string::npos) << e;
  e = read_error("{\"problem\": \"a\", \"answer\": \"1\"}\n{\"problem\": \"b\"}\n");
  EXPECT_NE(e.find("bad.jsonl:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("'answer'"), std::string::npos) << e;
  e = read_error("{\"text\": \"a\", \"label\": 1}\n");
  EXPECT_NE(e.find("bad.jsonl:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("text, label"), std::string::npos) << e;
  e = read_error("{\"question\": \"a\", \"answer\": \"no hashes here\"}\n");
  EXPECT_NE(e.find("####"), std::string::npos) << e;
  e = read_error("[1, 2]\n");
  EXPECT_NE(e.find("JSON object"), std::string::npos) << e;
  e = read_error("{\"problem\": \"a\", \"answer\": [1]}\n");
  EXPECT_NE(e.find("string or a number"), std::string::npos) << e;
  e = read_error("\n\n");
  EXPECT_NE(e.find("no problems"), std::string::npos) << e;
  auto missing = eval::read_dataset("/nonexistent/x.jsonl");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/x.jsonl"), std::string::npos);
}

// ---- the real files ---------------------------------------------------------

TEST(EvalDataset, TheSharedBenchmarkFilesReadWithTheirLayouts) {
  FLASHTTS_REQUIRE_TESTDATA();
  fs::path d = test::testdata_dir() / "datasets";
  struct Want {
    const char* file;
    const char* layout;
    size_t count;
    const char* first_answer;
  } want[] = {{"math500/test.jsonl", "math500", 500, "\\left( 3, \\frac{\\pi}{2} \\right)"},
              {"gsm8k/test.jsonl", "gsm8k", 1319, "18"},
              {"aime24/test.jsonl", "qwen_math", 30, "204"},
              {"aime25/test.jsonl", "aime25", 30, "70"},
              {"amc23/test.jsonl", "qwen_math", 40, "27"}};
  for (const Want& w : want) {
    SCOPED_TRACE(w.file);
    auto ds = read_ok(d / w.file);
    EXPECT_EQ(ds.layout, w.layout);
    ASSERT_EQ(ds.problems.size(), w.count);
    EXPECT_EQ(ds.problems[0].answer, w.first_answer);
    for (const auto& p : ds.problems) {
      EXPECT_FALSE(p.problem.empty());
      EXPECT_FALSE(p.answer.empty());
      EXPECT_EQ(p.problem.find("Please reason step by step"), std::string::npos);
    }
  }
  // AIME24 writes "025"; the gold is the number.
  auto aime = read_ok(d / "aime24/test.jsonl");
  EXPECT_TRUE(std::any_of(aime.problems.begin(), aime.problems.end(), [](auto& p) { return p.answer == "25"; }));
}

// ---- metrics ----------------------------------------------------------------

TEST(EvalMetrics, TheThreeSelectionsAndPassAtNFollowTheirRules) {
  // 7 has the single best score and the largest score sum; 5 is the most frequent.
  std::vector<eval::CompletionAnswer> c = {{"7", 0.9f}, {"7", 0.8f}, {"5", 0.3f}, {"5.0", 0.2f}, {" 5 ", 0.1f}};
  auto s = eval::select_answers("5", c);
  EXPECT_EQ(s.predicted[0], "7");
  EXPECT_EQ(s.predicted[1], "7");
  EXPECT_EQ(s.predicted[2], "5");  // the best-scored completion saying 5
  EXPECT_FALSE(s.correct[0]);
  EXPECT_FALSE(s.correct[1]);
  EXPECT_TRUE(s.correct[2]);
  EXPECT_TRUE(s.pass);

  // Weighted beats naive: one high score against two medium ones.
  s = eval::select_answers("\\frac{1}{2}", {{{"3", 0.9f}, {"\\dfrac{1}{2}", 0.6f}, {"\\frac12", 0.1f},
                                              {"\\frac{1}{2}", 0.5f}}});
  EXPECT_EQ(s.predicted[0], "3");
  EXPECT_EQ(s.predicted[1], "\\dfrac{1}{2}");  // the best-scored completion with the winning answer
  EXPECT_FALSE(s.correct[0]);
  EXPECT_TRUE(s.correct[1]);
  EXPECT_TRUE(s.correct[2]);

  // Nobody right: pass@N is false; empty answers never vote.
  s = eval::select_answers("4", {{{"", 0.99f}, {"3", 0.2f}, {"3", 0.1f}}});
  EXPECT_EQ(s.predicted[0], "");
  EXPECT_EQ(s.predicted[1], "3");
  EXPECT_EQ(s.predicted[2], "3");
  EXPECT_FALSE(s.pass);

  EXPECT_TRUE(eval::answers_match("1,000", "1000"));
  EXPECT_TRUE(eval::answers_match("2", "2.0"));
  EXPECT_FALSE(eval::answers_match("", ""));
  EXPECT_FALSE(eval::answers_match("2", "3"));
}

TEST(EvalMetrics, SummaryCountsFailuresAsWrongAndAveragesStatsOverResults) {
  std::vector<eval::Outcome> o(4);
  for (auto& x : o) x.n = 4;
  o[0].sel.correct[0] = o[0].sel.correct[1] = o[0].sel.correct[2] = o[0].sel.pass = true;
  o[1].sel.correct[2] = o[1].sel.pass = true;
  o[2].sel.pass = true;
  o[3].failed = true;
  o[3].latency_ms = 1e9;  // not counted
  o[0].latency_ms = 10, o[1].latency_ms = 20, o[2].latency_ms = 30;
  o[0].policy_tokens = 100, o[1].policy_tokens = 200, o[2].policy_tokens = 300;
  o[0].prm_tokens_computed = 30, o[1].prm_tokens_computed = 0, o[2].prm_tokens_computed = 0;
  o[0].goodput_tokens_per_s = 3, o[1].goodput_tokens_per_s = 6, o[2].goodput_tokens_per_s = 9;
  auto s = eval::summarize(4, o);
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(s.problems, 4);
  EXPECT_EQ(s.failed, 1);
  EXPECT_DOUBLE_EQ(s.accuracy[0], 0.25);
  EXPECT_DOUBLE_EQ(s.accuracy[1], 0.25);
  EXPECT_DOUBLE_EQ(s.accuracy[2], 0.5);
  EXPECT_DOUBLE_EQ(s.pass_at_n, 0.75);
  EXPECT_DOUBLE_EQ(s.mean_latency_ms, 20);
  EXPECT_DOUBLE_EQ(s.policy_tokens_per_problem, 200);
  EXPECT_DOUBLE_EQ(s.prm_tokens_per_problem, 10);
  EXPECT_DOUBLE_EQ(s.mean_goodput_tokens_per_s, 6);
}

TEST(EvalReport, AProblemIsOneJsonLineAndAFailureCarriesItsError) {
  eval::Outcome o;
  o.index = 7, o.id = "u7", o.n = 2, o.gold = "5", o.completions = 2, o.server_answer = "5";
  o.sel.predicted[0] = "5", o.sel.predicted[1] = "\xff", o.sel.predicted[2] = "5";
  o.sel.correct[0] = o.sel.correct[2] = o.sel.pass = true;
  o.latency_ms = 12.5, o.policy_tokens = 40;
  std::string line = eval::outcome_json(o);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  json j = json::parse(line);  // invalid UTF-8 was replaced, not thrown
  EXPECT_EQ(j["index"], 7);
  EXPECT_EQ(j["id"], "u7");
  EXPECT_EQ(j["naive"], "5");
  EXPECT_EQ(j["naive_correct"], true);
  EXPECT_EQ(j["weighted_correct"], false);
  EXPECT_EQ(j["pass"], true);
  EXPECT_EQ(j["policy_tokens"], 40);
  eval::Outcome f;
  f.failed = true, f.error = "internal: boom", f.gold = "1", f.n = 1;
  j = json::parse(eval::outcome_json(f));
  EXPECT_EQ(j["failed"], true);
  EXPECT_EQ(j["error"], "internal: boom");
  EXPECT_TRUE(j["naive"].is_null());
  EXPECT_FALSE(j.contains("latency_ms"));
}

// ---- table and plot ---------------------------------------------------------

// Tags balance: every opened element is closed in order (self-closing ones
// count as both); the XML declaration and comments are skipped.
bool tags_balance(const std::string& svg, std::string* why) {
  std::vector<std::string> stack;
  for (size_t p = svg.find('<'); p != std::string::npos; p = svg.find('<', p + 1)) {
    size_t e = svg.find('>', p);
    if (e == std::string::npos) return *why = "unterminated tag", false;
    std::string tag = svg.substr(p + 1, e - p - 1);
    if (tag.starts_with("?") || tag.starts_with("!")) continue;
    if (tag.find('<') != std::string::npos) return *why = "'<' inside a tag", false;
    if (tag.ends_with("/")) continue;
    std::string name = tag.substr(tag[0] == '/' ? 1 : 0);
    name = name.substr(0, name.find_first_of(" \t\n"));
    if (tag[0] != '/') {
      stack.push_back(name);
    } else {
      if (stack.empty() || stack.back() != name) return *why = "</" + name + "> closes nothing open", false;
      stack.pop_back();
    }
  }
  if (!stack.empty()) return *why = "<" + stack.back() + "> never closed", false;
  return true;
}

int count(const std::string& s, const std::string& what) {
  int k = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++k;
  return k;
}

std::vector<eval::Summary> three_rows() {
  std::vector<eval::Summary> rows(3);
  int ns[] = {1, 4, 16};
  for (int i = 0; i < 3; ++i) {
    rows[i].n = ns[i];
    rows[i].problems = 10;
    rows[i].accuracy[0] = 0.1 * (i + 1), rows[i].accuracy[1] = 0.15 * (i + 1), rows[i].accuracy[2] = 0.12 * (i + 1);
    rows[i].pass_at_n = 0.3 * (i + 1);
    rows[i].mean_latency_ms = 100.0 * ns[i];
  }
  return rows;
}

TEST(EvalReport, TheSvgIsWellFormedWithOnePolylinePerMethodAxesTicksAndLegend) {
  auto rows = three_rows();
  std::string svg = eval::svg_plot(rows, "math <500> & friends");
  std::string why;
  EXPECT_TRUE(tags_balance(svg, &why)) << why << "\n" << svg;
  EXPECT_EQ(count(svg, "<polyline"), 5);
  for (const char* m : {"naive", "weighted", "majority", "pass", "latency"})
    EXPECT_EQ(count(svg, std::string("<polyline data-method=\"") + m + "\""), 1) << m;
  // Three points on each polyline; the x ticks 1, 2, 4, 8, 16 on both panels.
  std::smatch mt;
  std::string s = svg;
  std::regex pts("points=\"([^\"]*)\"");
  for (std::sregex_iterator it(s.begin(), s.end(), pts), end; it != end; ++it)
    EXPECT_EQ(count((*it)[1].str(), ","), 3) << (*it)[1].str();
  for (const char* t : {">1<", ">2<", ">4<", ">8<", ">16<"}) EXPECT_EQ(count(svg, t), 2) << t;
  EXPECT_NE(svg.find("class=\"legend\""), std::string::npos);
  EXPECT_NE(svg.find("N (log2 scale)"), std::string::npos);
  EXPECT_NE(svg.find("math &lt;500&gt; &amp; friends"), std::string::npos);
  // One N still draws (a single point per series).
  std::string one = eval::svg_plot(std::span(rows).first(1), "one");
  EXPECT_TRUE(tags_balance(one, &why)) << why;
  EXPECT_EQ(count(one, "<polyline"), 5);
  EXPECT_EQ(one.find("nan"), std::string::npos);
}

// The latency panel's y tick labels, bottom to top, and the y of its points.
std::vector<std::string> latency_ticks(const std::string& svg) {
  std::string panel = svg.substr(svg.find("id=\"latency\""));
  std::string ticks = panel.substr(panel.find("class=\"yticks\""));
  ticks = ticks.substr(0, ticks.find("</g>"));
  std::vector<std::string> out;
  std::regex label(">([^<]*)</text>");
  for (std::sregex_iterator it(ticks.begin(), ticks.end(), label), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

// Issue 24: the README's runs (2564 ms the slowest) were drawn under a
// 5000 ms top, half the panel empty.
TEST(EvalReport, TheLatencyAxisEndsAtTheFirstRoundStepAboveTheSlowestRun) {
  auto rows = three_rows();
  const double lat[] = {117.6, 658.8, 2563.6};
  for (int i = 0; i < 3; ++i) rows[i].mean_latency_ms = lat[i];
  std::string svg = eval::svg_plot(rows, "t");
  EXPECT_EQ(latency_ticks(svg), (std::vector<std::string>{"0", "500", "1000", "1500", "2000", "2500", "3000"}));
  // The slowest point sits in the top sixth of the panel (top 50, height 290).
  std::string panel = svg.substr(svg.find("id=\"latency\""));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(panel, m, std::regex("data-method=\"latency\"[^>]*points=\"[^\"]* [0-9.]+,([0-9.]+)\"")));
  double top_y = std::stod(m[1]);
  EXPECT_GT(top_y, 50.0);
  EXPECT_LT(top_y, 50.0 + 290.0 / 6) << m[0];
  // Small and odd spans get round tops too, never below the data.
  for (auto [ms, ticks] : {std::pair{8.7, std::vector<std::string>{"0", "2", "4", "6", "8", "10"}},
                           {0.42, {"0", "0.1", "0.2", "0.3", "0.4", "0.5"}},
                           {1100.0, {"0", "200", "400", "600", "800", "1000", "1200"}}}) {
    for (auto& r : rows) r.mean_latency_ms = ms;
    EXPECT_EQ(latency_ticks(eval::svg_plot(rows, "t")), ticks) << ms;
  }
}

TEST(EvalReport, TheTableHasOneRowPerN) {
  auto rows = three_rows();
  std::string t = eval::markdown_table(rows);
  EXPECT_EQ(count(t, "\n"), 5);
  EXPECT_NE(t.find("| 4 | 20.0% | 30.0% | 24.0% | 60.0% | 0/10 | 400.0 |"), std::string::npos) << t;
}

TEST(EvalReport, SeveralStrategiesGetALineEachAndAStrategyColumn) {
  std::vector<eval::Summary> rows;
  eval::Summary g;
  g.label = "greedy", g.n = 1, g.problems = 10, g.accuracy[1] = 0.3, g.mean_latency_ms = 50;
  rows.push_back(g);
  for (const char* label : {"beam_search", "best_of_n"}) {
    auto three = three_rows();
    for (auto& r : three) r.label = label;
    rows.insert(rows.end(), three.begin(), three.end());
  }
  std::string svg = eval::svg_plot(rows, "compare");
  std::string why;
  EXPECT_TRUE(tags_balance(svg, &why)) << why << "\n" << svg;
  // Accuracy and latency: one line per strategy, the greedy level included.
  for (const char* l : {"greedy", "beam_search", "best_of_n"})
    EXPECT_EQ(count(svg, std::string("<polyline data-strategy=\"") + l + "\""), 2) << l;
  EXPECT_EQ(count(svg, "data-method="), 0);
  EXPECT_NE(svg.find("accuracy, weighted vote (%)"), std::string::npos);
  std::string t = eval::markdown_table(rows);
  EXPECT_EQ(count(t, "\n"), 2 + 7);
  EXPECT_NE(t.find("| greedy | 1 | 0.0% | 30.0% |"), std::string::npos) << t;
  EXPECT_NE(t.find("| beam_search | 4 | 20.0% | 30.0% | 24.0% |"), std::string::npos) << t;
}

// ---- the command end to end -------------------------------------------------

fs::path write_config(const fs::path& dir) {
  auto m = test::tiny_models();
  return write_file(dir, "eval.toml",
                    "log_level = \"warn\"\n[models]\npolicy = \"" + (m / "policy").string() + "\"\nprm = \"" +
                        (m / "prm").string() +
                        "\"\n[memory]\nbudget_mb = 64\n[engine]\ngenerator_threads = 1\nverifier_threads = 1\n"
                        "[search]\nn = 4\nmax_steps = 2\nmax_tokens_per_step = 12\nselection = \"weighted\"\n"
                        "[limits]\nmax_problem_bytes = 200\n");
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::istringstream s(read_text(p));
  for (std::string line; std::getline(s, line);) out.push_back(json::parse(line));
  return out;
}

TEST(EvalCommand, RunsEveryProblemAtEveryNAndWritesConsistentLinesTableAndPlot) {
  auto dir = test::scratch_dir("eval-e2e");
  auto cfg = write_config(dir);
  // The third problem is over the configured max_problem_bytes: its error is
  // recorded and the run goes on.
  auto data = write_file(dir, "three.jsonl",
                         "{\"problem\": \"Let a = 5. Let b = a * 3. What is b?\", \"answer\": \"15\"}\n"
                         "{\"problem\": \"What is 2 + 3?\", \"answer\": 5}\n"
                         "{\"problem\": \"" + std::string(300, 'x') + "\", \"answer\": \"0\"}\n");
  std::string cmd = (test::binary_dir() / "flashtts").string() + " eval --config " + cfg.string() + " --dataset " +
                    data.string() + " --n 1,2 --seed 3 --concurrency 2 --out " + (dir / "r.jsonl").string() +
                    " --table " + (dir / "t.md").string() + " --plot " + (dir / "p.svg").string() + " 2>" +
                    (dir / "err.txt").string();
  std::string out;
  ASSERT_EQ(test::run_command(cmd, &out), 0) << out << read_text(dir / "err.txt");

  auto lines = read_jsonl(dir / "r.jsonl");
  ASSERT_EQ(lines.size(), 6u);
  int right[2][3] = {}, pass[2] = {};
  for (size_t i = 0; i < lines.size(); ++i) {
    const json& j = lines[i];
    SCOPED_TRACE(j.dump());
    int n = i < 3 ? 1 : 2;
    EXPECT_EQ(j["n"], n);
    EXPECT_EQ(j["index"], int(i % 3));  // problem order, whatever order the replies came in
    const char* gold[] = {"15", "5", "0"};
    EXPECT_EQ(j["gold"], gold[i % 3]);
    if (i % 3 == 2) {
      EXPECT_EQ(j["failed"], true);
      EXPECT_EQ(j["error"].get<std::string>().rfind("too_large", 0), 0u);
      continue;
    }
    EXPECT_EQ(j["failed"], false);
    EXPECT_EQ(j["completions"], n);
    // Our weighted rule is the server's (its selection is "weighted").
    EXPECT_EQ(j["weighted"], j["server_answer"]);
    if (n == 1) {
      EXPECT_TRUE(j["naive"] == j["weighted"] && j["weighted"] == j["majority"]);
    }
    for (int m = 0; m < 3; ++m) {
      bool ok = j[std::string(eval::kMethods[m]) + "_correct"];
      right[n - 1][m] += ok;
      EXPECT_EQ(ok, eval::answers_match(j["gold"].get<std::string>(), j[eval::kMethods[m]].get<std::string>()));
      if (ok) {
        EXPECT_TRUE(j["pass"].get<bool>());
      }
    }
    pass[n - 1] += j["pass"].get<bool>();
    EXPECT_GT(j["latency_ms"].get<double>(), 0);
    EXPECT_GT(j["policy_tokens"].get<int>(), 0);
    EXPECT_GT(j["prm_tokens"].get<int>(), 0);
  }

  // Every N starts on a fresh in-process pipeline: nothing cached by N = 1
  // serves N = 2, whose beam 0 repeats N = 1's completion (same seed).
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_GE(lines[3 + i]["prm_tokens_computed"].get<int>(), lines[i]["prm_tokens_computed"].get<int>());
    EXPECT_GE(lines[3 + i]["policy_tokens"].get<int>(), lines[i]["policy_tokens"].get<int>());
  }

  // The table: one row per N, its accuracies from the lines (failures count as wrong).
  std::string table = read_text(dir / "t.md");
  EXPECT_EQ(count(table, "\n"), 4) << table;
  EXPECT_NE(out.find(table), std::string::npos) << out;
  auto pct = [](int k) {
    char b[16];
    std::snprintf(b, sizeof b, "%.1f%%", 100.0 * k / 3);
    return std::string(b);
  };
  for (int n = 1; n <= 2; ++n) {
    std::string row = "| " + std::to_string(n) + " | " + pct(right[n - 1][0]) + " | " + pct(right[n - 1][1]) + " | " +
                      pct(right[n - 1][2]) + " | " + pct(pass[n - 1]) + " | 1/3 |";
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  }
  EXPECT_NE(out.find("pass@2"), std::string::npos) << out;

  std::string svg = read_text(dir / "p.svg");
  std::string why;
  EXPECT_TRUE(tags_balance(svg, &why)) << why;
  EXPECT_EQ(count(svg, "<polyline"), 5);
  // stderr is not a terminal here: one progress line per problem and N, and the first error.
  std::string err = read_text(dir / "err.txt");
  EXPECT_EQ(count(err, "eval n="), 6) << err;
  EXPECT_NE(err.find("too_large"), std::string::npos) << err;
}

TEST(EvalCommand, ComparesStrategiesAgainstAGreedyBaseline) {
  auto dir = test::scratch_dir("eval-compare");
  auto cfg = write_config(dir);
  auto data = write_file(dir, "two.jsonl",
                         "{\"problem\": \"Let a = 5. Let b = a * 3. What is b?\", \"answer\": \"15\"}\n"
                         "{\"problem\": \"What is 2 + 3?\", \"answer\": 5}\n");
  // --beam-width 2 at N = 1 would be refused (N must be a multiple of M): eval sends M = N there.
  std::string cmd = (test::binary_dir() / "flashtts").string() + " eval --quiet --config " + cfg.string() +
                    " --dataset " + data.string() + " --greedy --strategy beam_search,dvts --n 1,2 --beam-width 2" +
                    " --out " + (dir / "r.jsonl").string() + " --plot " + (dir / "p.svg").string() + " 2>&1";
  std::string out;
  ASSERT_EQ(test::run_command(cmd, &out), 0) << out;
  auto lines = read_jsonl(dir / "r.jsonl");
  ASSERT_EQ(lines.size(), 2u * 5);
  const char* labels[] = {"greedy", "beam_search", "beam_search", "dvts", "dvts"};
  const int ns[] = {1, 1, 2, 1, 2};
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i].dump());
    EXPECT_EQ(lines[i]["strategy"], labels[i / 2]);
    EXPECT_EQ(lines[i]["n"], ns[i / 2]);
    EXPECT_EQ(lines[i]["failed"], false);
  }
  for (const char* row : {"| greedy | 1 |", "| beam_search | 1 |", "| beam_search | 2 |", "| dvts | 1 |", "| dvts | 2 |"})
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  std::string svg = read_text(dir / "p.svg");
  for (const char* l : {"greedy", "beam_search", "dvts"})
    EXPECT_EQ(count(svg, std::string("data-strategy=\"") + l + "\""), 2) << l;
}

TEST(EvalCommand, FailsWhenEveryProblemFailsAndOnABadDatasetLine) {
  auto dir = test::scratch_dir("eval-fail");
  auto cfg = write_config(dir);
  auto data = write_file(dir, "d.jsonl", "{\"problem\": \"1+1?\", \"answer\": \"2\"}\n");
  std::string bin = (test::binary_dir() / "flashtts").string();
  std::string out;
  // An unknown strategy: the server refuses every request; the run ends with status 1.
  EXPECT_EQ(test::run_command(bin + " eval --quiet --config " + cfg.string() + " --dataset " + data.string() +
                                  " --n 1 --strategy no_such_strategy --out " + (dir / "r.jsonl").string() + " 2>&1",
                              &out),
            1)
      << out;
  EXPECT_NE(out.find("every problem failed"), std::string::npos) << out;
  auto lines = read_jsonl(dir / "r.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["error"].get<std::string>().rfind("bad_request", 0), 0u) << lines[0].dump();

  out.clear();
  auto bad = write_file(dir, "bad.jsonl", "{\"problem\": \"1+1?\", \"answer\": \"2\"}\n{\"problem\": 3}\n");
  EXPECT_EQ(test::run_command(bin + " eval --config " + cfg.string() + " --dataset " + bad.string() + " --n 1 2>&1", &out),
            1);
  EXPECT_NE(out.find(bad.string() + ":2:"), std::string::npos) << out;
}

}  // namespace
}  // namespace flashtts
