// flashtts eval: accuracy of a search strategy on a math dataset. Every
// problem of the file goes to a server (--endpoint) or an in-process
// pipeline (--config) as a solve with return_completions, `--concurrency` at
// a time; the three selection rules are applied here to the completions, so
// one request per problem gives all three accuracies. Several N run one after
// another and end in a table and a plot. docs/eval.md is the manual.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>

#include "runtime/cli.h"
#include "runtime/client.h"
#include "runtime/eval_dataset.h"
#include "runtime/eval_metrics.h"
#include "runtime/eval_report.h"
#include "runtime/supervisor.h"

namespace flashtts::cli {

namespace {

using Clock = std::chrono::steady_clock;
using eval::kMethods;
using eval::kNumMethods;

volatile std::sig_atomic_t g_eval_stop = 0;  // set by SIGINT/SIGTERM: finish early with what is done
void on_eval_signal(int) { g_eval_stop = 1; }

struct EvalOpts {
  std::string dataset, endpoint, config, out, plot, table;
  int64_t limit = 0, offset = 0;
  std::vector<int32_t> ns;
  std::vector<std::string> strategies;  // empty: the server's default
  bool greedy = false;                  // a greedy baseline run first
  std::optional<std::string> aggregation;
  std::optional<int32_t> beam_width, max_steps, max_tokens_per_step, top_k;
  std::optional<double> temperature, top_p;
  std::optional<uint64_t> seed;
  int concurrency = 4;
  double timeout_s = 1800;
  bool quiet = false;
};

// One pass over the dataset: a strategy at one N.
struct Run {
  std::string label;                  // strategy name, "greedy", or "" (the server's default)
  std::optional<std::string> strategy;
  int32_t n = 1;
  std::optional<int32_t> beam_width;  // at N below the asked width, N itself
  std::optional<double> temperature;
};

// Runs of several kinds (strategies, or a greedy baseline beside one) are
// labelled with their strategy in every line, row and plot.
bool compares(const EvalOpts& o) { return o.strategies.size() > 1 || o.greedy; }

// Every run in order: the greedy baseline, then each strategy at each N.
std::vector<Run> plan_runs(const EvalOpts& o) {
  std::vector<Run> runs;
  if (o.greedy) runs.push_back({"greedy", "best_of_n", 1, std::nullopt, 0.0});
  std::vector<std::optional<std::string>> strategies(o.strategies.begin(), o.strategies.end());
  if (strategies.empty()) strategies.push_back(std::nullopt);
  for (const auto& st : strategies)
    for (int32_t n : o.ns) {
      Run r{compares(o) ? st.value_or("") : "", st, n, o.beam_width, o.temperature};
      if (r.beam_width && *r.beam_width > n) r.beam_width = n;
      runs.push_back(r);
    }
  return runs;
}

msg::MapWriter solve_fields(const EvalOpts& o, const Run& run, const std::string& problem) {
  msg::MapWriter w;
  w.put("problem", problem).put("n", run.n).put("return_completions", true);
  if (run.strategy) w.put("strategy", *run.strategy);
  if (run.beam_width) w.put("beam_width", *run.beam_width);
  if (o.max_steps) w.put("max_steps", *o.max_steps);
  if (o.max_tokens_per_step) w.put("max_tokens_per_step", *o.max_tokens_per_step);
  if (run.temperature) w.put("temperature", *run.temperature);
  if (o.top_p) w.put("top_p", *o.top_p);
  if (o.top_k) w.put("top_k", *o.top_k);
  if (o.seed) w.put("seed", *o.seed);
  if (o.aggregation) w.put("aggregation", *o.aggregation);
  return w;
}

// Fills the outcome from a solve result; an unreadable result fails it. The
// server's strategy name goes to *strategy unless that is null.
void read_result(const msg::MapReader& r, eval::Outcome* o, std::string* strategy) {
  std::vector<msg::MapReader> comps;
  msg::MapReader st;
  Status s = r.get("answer", &o->server_answer);
  if (s) s = r.get_opt("completions", &comps);
  if (s) s = r.get_opt("stats", &st);
  std::string ignored;  // runs of several strategies know theirs
  if (s) s = r.get_opt("strategy", strategy ? strategy : &ignored);
  std::vector<eval::CompletionAnswer> answers;
  for (size_t i = 0; s && i < comps.size(); ++i) {
    eval::CompletionAnswer a;
    double score = 0;
    s = comps[i].get("answer", &a.answer);
    if (s) s = comps[i].get("score", &score);
    a.score = float(score);
    answers.push_back(std::move(a));
  }
  if (s) s = st.get_opt("latency_ms", &o->latency_ms);
  if (s) s = st.get_opt("policy_tokens", &o->policy_tokens);
  if (s) s = st.get_opt("prm_tokens", &o->prm_tokens);
  if (s) s = st.get_opt("prm_tokens_computed", &o->prm_tokens_computed);
  if (s) s = st.get_opt("goodput_tokens_per_s", &o->goodput_tokens_per_s);
  if (!s) {
    o->failed = true;
    o->error = "bad_result: " + s.message();
    return;
  }
  // A result without completions (a server that ignores return_completions)
  // still has the answer of its own selection.
  if (answers.empty()) answers.push_back({o->server_answer, 0.0f});
  o->completions = int(comps.size());
  o->sel = eval::select_answers(o->gold, answers);
}

// The progress line: redrawn in place on a terminal, a line per problem in a log.
class Progress {
 public:
  Progress(bool quiet, std::string label, int n, int total)
      : quiet_(quiet), tty_(isatty(STDERR_FILENO)), label_(label.empty() ? "" : label + " "), n_(n), total_(total) {}

  void add(const eval::Outcome& o) {
    ++done_;
    failed_ += o.failed;
    for (int m = 0; m < kNumMethods; ++m) right_[m] += o.sel.correct[m];
    pass_ += o.sel.pass;
    if (quiet_) return;
    if (tty_) return draw();
    std::string what = o.failed ? "error " + o.error : "gold " + clip(o.gold);
    if (!o.failed)
      for (int m = 0; m < kNumMethods; ++m)
        what += std::string(" ") + kMethods[m] + " " + clip(o.sel.predicted[m]) + (o.sel.correct[m] ? " (right)" : "");
    std::fprintf(stderr, "eval %sn=%d [%d/%d] #%lld %s | %s\n", label_.c_str(), n_, done_, total_, (long long)o.index,
                 what.c_str(), running().c_str());
    std::fflush(stderr);
  }
  void tick() {
    if (!quiet_ && tty_ && Clock::now() - last_ > std::chrono::milliseconds(500)) draw();
  }
  void finish() {
    if (!quiet_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  static std::string clip(std::string s) {
    for (char& c : s)
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (s.size() > 24) s = s.substr(0, 21) + "...";
    return s.empty() ? "''" : s;
  }
  std::string running() const {
    char b[160];
    double d = done_ ? 100.0 / done_ : 0;
    std::snprintf(b, sizeof b, "naive %.1f%% weighted %.1f%% majority %.1f%% pass@%d %.1f%% failed %d", right_[0] * d,
                  right_[1] * d, right_[2] * d, n_, pass_ * d, failed_);
    return b;
  }
  void draw() {
    last_ = Clock::now();
    double s = std::chrono::duration<double>(last_ - start_).count();
    const int width = 24;
    int fill = total_ ? done_ * width / total_ : width;
    std::string bar = std::string(fill, '#') + std::string(width - fill, '.');
    char eta[32] = "";
    if (done_ > 0 && done_ < total_) std::snprintf(eta, sizeof eta, " eta %.0f s", s / done_ * (total_ - done_));
    std::fprintf(stderr, "\r\033[K%sn=%d [%s] %d/%d %s %.0f s%s", label_.c_str(), n_, bar.c_str(), done_, total_,
                 running().c_str(), s, eta);
    std::fflush(stderr);
  }

  bool quiet_, tty_;
  std::string label_;
  int n_, total_, done_ = 0, failed_ = 0, pass_ = 0;
  int right_[kNumMethods] = {};
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
};

// Runs every problem at one N, `concurrency` requests in flight, writing
// JSONL lines in problem order as they complete. Error only when the
// pipeline itself fails (the in-process server, or an unreadable frame).
Expected<std::vector<eval::Outcome>> run_one_n(Client& client, const EvalOpts& o,
                                               const std::vector<eval::Problem>& problems, const Run& run,
                                               std::ofstream* jsonl, std::string* strategy,
                                               const std::function<std::optional<std::string>()>& idle) {
  std::vector<std::optional<eval::Outcome>> results(problems.size());
  struct Flight {
    size_t k;
    Clock::time_point deadline;
  };
  std::map<std::string, Flight> inflight;  // msgpack-encoded request id -> problem
  size_t next = 0, written = 0, done = 0;
  Progress progress(o.quiet, run.label, run.n, int(problems.size()));
  auto timeout = std::chrono::milliseconds(int64_t(o.timeout_s * 1000));
  bool first_error_shown = false;

  auto finish = [&](size_t k, eval::Outcome out) {
    if (out.failed && !first_error_shown && !o.quiet) {
      progress.finish();
      std::fprintf(stderr, "eval: problem %lld failed: %s\n", (long long)out.index, out.error.c_str());
      first_error_shown = true;
    }
    progress.add(out);
    results[k] = std::move(out);
    ++done;
    for (; written < results.size() && results[written]; ++written)
      if (jsonl) *jsonl << eval::outcome_json(*results[written]) << "\n" << std::flush;
  };
  auto fresh = [&](size_t k) {
    eval::Outcome out;
    out.label = run.label;
    out.index = problems[k].index;
    out.id = problems[k].id;
    out.gold = problems[k].answer;
    out.n = run.n;
    return out;
  };

  while (done < problems.size()) {
    if (g_eval_stop) break;
    while (inflight.size() < size_t(o.concurrency) && next < problems.size()) {
      std::string id = client.send("solve", solve_fields(o, run, problems[next].problem));
      inflight[id] = {next++, Clock::now() + timeout};
    }
    Expected<std::optional<ServerFrame>> fr = std::optional<ServerFrame>();
    try {
      fr = client.recv(std::chrono::milliseconds(50));
      if (!fr) return fr.error();
      if (idle)
        if (auto why = idle()) return make_error(*why);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal interrupted the poll: loop and look
    }
    progress.tick();
    auto now = Clock::now();
    for (auto it = inflight.begin(); it != inflight.end();) {
      if (now < it->second.deadline) { ++it; continue; }
      msg::MapWriter c;
      c.put_raw("target", it->first);
      client.send("cancel", c);
      eval::Outcome out = fresh(it->second.k);
      out.failed = true;
      out.error = "timeout: no result within " + std::to_string(int64_t(o.timeout_s)) + " s (cancelled)";
      size_t k = it->second.k;
      it = inflight.erase(it);
      finish(k, std::move(out));
    }
    if (!fr->has_value()) continue;
    ServerFrame& f = **fr;
    auto it = inflight.find(f.id);
    if (it == inflight.end() || f.type == "progress") continue;  // a late reply to a cancelled request
    size_t k = it->second.k;
    inflight.erase(it);
    eval::Outcome out = fresh(k);
    if (f.type == "error") {
      out.failed = true;
      out.error = f.code + ": " + f.message;
    } else {
      read_result(f.body, &out, strategy);
    }
    finish(k, std::move(out));
  }
  progress.finish();
  for (const auto& [id, fl] : inflight) {  // interrupted: stop the work left
    msg::MapWriter c;
    c.put_raw("target", id);
    client.send("cancel", c);
  }
  std::vector<eval::Outcome> outs;
  for (auto& r : results)
    if (r) outs.push_back(std::move(*r));
  return outs;
}

bool write_file(const std::string& path, const std::string& text, std::string* err) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f.good()) *err = "cannot write '" + path + "'";
  return f.good();
}

int run_eval(const EvalOpts& o, const Globals& g) {
  auto ds = eval::read_dataset(o.dataset);
  if (!ds) return fail("eval", ds.error().message);
  std::vector<eval::Problem> problems;
  for (size_t i = size_t(o.offset); i < ds->problems.size(); ++i) {
    if (o.limit > 0 && int64_t(problems.size()) >= o.limit) break;
    problems.push_back(ds->problems[i]);
  }
  if (problems.empty())
    return fail("eval", o.dataset + " has " + std::to_string(ds->problems.size()) + " problems; none is left after --offset " +
                            std::to_string(o.offset));
  std::ofstream jsonl;
  if (!o.out.empty()) {
    jsonl.open(o.out, std::ios::binary | std::ios::trunc);
    if (!jsonl) return fail("eval", "cannot write '" + o.out + "'");
  }

  // Where the requests go: a running server, or a pipeline started here,
  // afresh for every N so that the caches one N leaves never serve the next.
  std::optional<Config> config;
  std::optional<LogSink> logs;
  std::string endpoint = o.endpoint, via = "server at " + o.endpoint;
  if (endpoint.empty()) {
    auto c = load_in_process_config(o.config, g, "eval");
    if (!c) return fail("eval", c.error().message);
    auto sink = make_log_sink(*c);
    if (!sink) return fail("eval", sink.error().message);
    logs.emplace(*sink);
    endpoint = "inproc://flashtts-eval";
    via = "in-process pipeline (" + c->source.string() + ")";
    config = std::move(*c);
  } else {
    zmq::context_t ctx;
    auto client = Client::connect(ctx, endpoint);
    if (!client) return fail("eval", client.error().message);
    auto pong = client->call("ping", msg::MapWriter(), std::chrono::seconds(10));
    if (!pong) return fail("eval", "no flashtts server answers at " + endpoint + " (" + pong.error().message + ")");
  }
  std::printf("flashtts eval: %s (%s layout), problems %lld..%lld of %zu, via %s\n", o.dataset.c_str(),
              ds->layout.c_str(), (long long)problems.front().index, (long long)problems.back().index,
              ds->problems.size(), via.c_str());
  std::fflush(stdout);

  std::signal(SIGINT, on_eval_signal);
  std::signal(SIGTERM, on_eval_signal);
  int rc = 0, ok_total = 0;
  std::string strategy = o.strategies.size() == 1 ? o.strategies[0] : "";
  std::vector<eval::Summary> rows;
  for (const Run& run : plan_runs(o)) {
    // A context per N: its end waits until every socket of the previous
    // pipeline is closed, so the next one can bind the same inproc names.
    zmq::context_t ctx;
    std::unique_ptr<Supervisor> sup;
    if (config) {
      auto s = Supervisor::start(ctx, *config, *logs);
      if (!s) {
        rc = fail("eval", s.error().message);
        break;
      }
      sup = std::move(*s);
    }
    Expected<std::vector<eval::Outcome>> outs = make_error("");
    {
      auto client = Client::connect(ctx, endpoint);
      if (!client) {
        outs = client.error();
      } else {
        std::function<std::optional<std::string>()> idle;
        if (sup) idle = [&] { return sup->watch(std::chrono::milliseconds(0)); };
        std::string* seen = compares(o) ? nullptr : &strategy;
        outs = run_one_n(*client, o, problems, run, o.out.empty() ? nullptr : &jsonl, seen, idle);
      }
    }  // the client socket closes before the actors stop
    if (sup) sup->shutdown();
    if (!outs) {
      rc = fail("eval", outs.error().message);
      break;
    }
    rows.push_back(eval::summarize(run.n, *outs, run.label));
    ok_total += rows.back().problems - rows.back().failed;
    std::printf("%s%s%s", g_eval_stop ? "(interrupted) " : "", run.label.empty() ? "" : (run.label + " ").c_str(),
                eval::summary_text(rows.back()).c_str());
    std::fflush(stdout);
    if (g_eval_stop) break;
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  if (!rows.empty()) {
    std::string table = eval::markdown_table(rows), err;
    std::printf("\n%s", table.c_str());
    std::string what = compares(o) ? "strategies compared" : strategy.empty() ? "default strategy" : strategy;
    std::string title = "flashtts eval: " + std::filesystem::path(o.dataset).filename().string() + ", " + what +
                        ", " + std::to_string(problems.size()) + " problems";
    if (!o.table.empty() && !write_file(o.table, table, &err)) rc = fail("eval", err);
    if (!o.plot.empty() && !write_file(o.plot, eval::svg_plot(rows, title), &err)) rc = fail("eval", err);
  }
  if (rc == 0 && ok_total == 0) rc = fail("eval", "every problem failed (see the errors above)");
  if (rc == 0 && g_eval_stop) rc = 130;
  return rc;
}

}  // namespace

void add_eval(CLI::App& app, int* rc, const Globals* g) {
  auto* sub = app.add_subcommand("eval", "Measure the accuracy of a search strategy on a math dataset (JSONL)");
  auto o = std::make_shared<EvalOpts>();
  sub->add_option("--dataset", o->dataset, "JSONL file: MATH-500, GSM8K, AIME24/25, AMC23 or {problem, answer} lines")
      ->required();
  sub->add_option("--limit", o->limit, "Most problems to run (0 = all)")->check(CLI::NonNegativeNumber);
  sub->add_option("--offset", o->offset, "Problems of the file to skip first")->check(CLI::NonNegativeNumber);
  sub->add_option("--strategy", o->strategies,
                  "Search strategy (default: the server's); several as beam_search,dvts,best_of_n run one after another")
      ->delimiter(',');
  sub->add_flag("--greedy", o->greedy, "First run greedy decoding (best_of_n, n=1, temperature 0) as the baseline");
  sub->add_option("--n", o->ns, "Number of samples / beams; several as 1,4,16 run one after another")
      ->required()
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--beam-width", o->beam_width, "Beam width M (beam search, DVTS); at N < M, N is used");
  sub->add_option("--max-steps", o->max_steps, "Most solution steps");
  sub->add_option("--max-tokens-per-step", o->max_tokens_per_step, "Most tokens of one step");
  sub->add_option("--temperature", o->temperature, "Sampling temperature (0 = greedy)");
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass");
  sub->add_option("--top-k", o->top_k, "Top-k sampling (0 = off)");
  sub->add_option("--seed", o->seed, "Random seed of every request");
  sub->add_option("--aggregation", o->aggregation, "Step score aggregation: last, min, prod, mean");
  auto* ep = sub->add_option("--endpoint", o->endpoint, "A running server's endpoint (else an in-process pipeline)");
  auto* cf = sub->add_option("--config", o->config, "TOML configuration of the in-process pipeline (default: $FLASHTTS_CONFIG, else configs/default.toml)");
  ep->excludes(cf);
  sub->add_option("--concurrency", o->concurrency, "Requests in flight")->check(CLI::Range(1, 1024));
  sub->add_option("--timeout", o->timeout_s, "Seconds one problem may take before it counts as failed")
      ->check(CLI::PositiveNumber);
  sub->add_option("--out", o->out, "Write one JSON line per problem and N here");
  sub->add_option("--plot", o->plot, "Write an SVG plot of accuracy and latency against N here");
  sub->add_option("--table", o->table, "Write the markdown table of all N here");
  sub->add_flag("--quiet", o->quiet, "No progress on stderr");
  sub->callback([o, rc, g] { *rc = run_eval(*o, *g); });
}

}  // namespace flashtts::cli
