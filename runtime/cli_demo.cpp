// flashtts demo: what test-time scaling does, in a few seconds, with an
// in-process pipeline on the configuration (the shipped tiny models by
// default). Greedy decoding and beam search with the PRM solve a problem
// picked because search fixes greedy there, shown side by side; then both
// solve a dozen fresh problems (runtime/demo_problems.h, or --dataset), with
// a progress bar on stderr, and their accuracies are compared. Every request
// carries the same seed, so the run gives the same answers every time (the
// engine's results do not depend on batching or kernels). tools/run.sh runs it.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "runtime/cli.h"
#include "runtime/demo_problems.h"
#include "runtime/demo_report.h"
#include "runtime/eval_dataset.h"
#include "runtime/supervisor.h"

namespace flashtts::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct DemoOpts {
  std::string config, dataset;
  int32_t n = 16, beam_width = 4;
  uint64_t seed = 0;
  int concurrency = 4;
  double timeout_s = 300;
  bool quiet = false;
};

// One solve to run: a problem, greedy or search.
struct Job {
  std::string problem, gold;
  bool search = false;
};

msg::MapWriter fields(const DemoOpts& o, const Job& j) {
  msg::MapWriter w;
  w.put("problem", j.problem).put("seed", o.seed);
  if (j.search) w.put("strategy", "beam_search").put("n", o.n).put("beam_width", std::min(o.beam_width, o.n));
  else w.put("strategy", "best_of_n").put("n", 1).put("temperature", 0.0);
  return w;
}

// Runs every job, `concurrency` at a time; `done(k, outcome)` as each ends.
// Error only when the pipeline fails (`idle` says so) or a frame is unreadable.
Status run_jobs(Client& client, const DemoOpts& o, const std::vector<Job>& jobs,
                const std::function<void(size_t, const demo::Outcome&)>& done,
                const std::function<std::optional<std::string>()>& idle) {
  struct Flight {
    size_t k;
    Clock::time_point deadline;
  };
  std::map<std::string, Flight> inflight;  // msgpack-encoded request id -> job
  size_t next = 0, finished = 0;
  const auto timeout = std::chrono::milliseconds(int64_t(o.timeout_s * 1000));
  while (finished < jobs.size()) {
    while (inflight.size() < size_t(o.concurrency) && next < jobs.size()) {
      std::string id = client.send("solve", fields(o, jobs[next]));
      inflight[id] = {next++, Clock::now() + timeout};
    }
    auto fr = client.recv(std::chrono::milliseconds(50));
    if (!fr) return fr.error();
    if (auto why = idle()) return make_error(*why);
    for (auto it = inflight.begin(); it != inflight.end();) {
      if (Clock::now() < it->second.deadline) { ++it; continue; }
      msg::MapWriter c;
      c.put_raw("target", it->first);
      client.send("cancel", c);
      demo::Outcome late;
      late.failed = true;
      late.error = "timeout: no result within " + std::to_string(int64_t(o.timeout_s)) + " s (cancelled)";
      done(it->second.k, late);
      ++finished;
      it = inflight.erase(it);
    }
    if (!fr->has_value() || (*fr)->type == "progress") continue;
    auto it = inflight.find((*fr)->id);
    if (it == inflight.end()) continue;  // a late reply to a cancelled request
    done(it->second.k, demo::read_outcome(**fr, jobs[it->second.k].gold));
    ++finished;
    inflight.erase(it);
  }
  return Status::success();
}

// The progress on stderr: a bar redrawn in place on a terminal, a line per
// solve in a log.
class Progress {
 public:
  Progress(bool quiet, int total) : quiet_(quiet), tty_(isatty(STDERR_FILENO)), total_(total) {}
  void add(const Job& j, size_t index, const demo::Outcome& out, const demo::Tally& greedy, const demo::Tally& search) {
    if (quiet_) return;
    ++done_;
    char tallies[96];
    std::snprintf(tallies, sizeof tallies, "greedy %d/%d right, search %d/%d right", greedy.right, greedy.done,
                  search.right, search.done);
    std::string bar = demo::progress_bar(done_, total_);
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s  %s", bar.c_str(), tallies);
      if (done_ == total_) std::fprintf(stderr, "\n");
    } else {
      std::string what = out.failed ? "failed (" + out.error + ")"
                                    : (out.answer.empty() ? "(none)" : out.answer) + (out.right ? " right" : " wrong");
      std::fprintf(stderr, "%s %s #%zu: %s | %s\n", bar.c_str(), j.search ? "search" : "greedy", index + 1,
                   what.c_str(), tallies);
    }
    std::fflush(stderr);
  }

 private:
  bool quiet_, tty_;
  int total_, done_ = 0;
};

int run_demo(const DemoOpts& o, const Globals& g) {
  const auto t0 = Clock::now();
  const int32_t width = std::min(o.beam_width, o.n);
  if (o.n % width != 0)
    return fail("demo", "--n " + std::to_string(o.n) + " is not a multiple of the beam width " + std::to_string(width) +
                            " (beam search keeps N / M beams, each copied M times)");
  // The problems first: a bad --dataset fails before any model loads.
  std::vector<Job> fresh;
  std::string source;
  if (o.dataset.empty()) {
    for (const auto& p : demo::kFresh) fresh.push_back({p.text, p.answer});
    source = "tools/arith/data.py --n 12 --seed " + std::to_string(demo::kFreshSeed);
  } else {
    auto ds = eval::read_dataset(o.dataset);
    if (!ds) return fail("demo", ds.error().message);
    for (const auto& p : ds->problems) fresh.push_back({p.problem, p.answer});
    source = o.dataset;
  }
  std::vector<Job> jobs;
  for (const Job& j : fresh) {
    jobs.push_back({j.problem, j.gold, false});
    jobs.push_back({j.problem, j.gold, true});
  }

  auto c = load_in_process_config(o.config, g, "demo");
  if (!c) return fail("demo", c.error().message);
  auto sink = make_log_sink(*c);
  if (!sink) return fail("demo", sink.error().message);
  const LogSink& logs = *sink;
  zmq::context_t ctx;
  auto sup = Supervisor::start(ctx, *c, logs);
  if (!sup) return fail("demo", sup.error().message);
  auto idle = [&] { return (*sup)->watch(std::chrono::milliseconds(0)); };

  Status st = Status::success();
  {
    auto client = Client::connect(ctx, "inproc://flashtts-demo");
    if (!client) return fail("demo", client.error().message);
    const std::string search_name = "beam search with the PRM (N=" + std::to_string(o.n) +
                                    ", M=" + std::to_string(std::min(o.beam_width, o.n)) + ")";
    std::printf("flashtts demo: what test-time scaling does, with the policy and the PRM of %s\n\n",
                c->source.c_str());

    // The picked problem, greedy beside search.
    std::vector<Job> picked = {{demo::kPicked.text, demo::kPicked.answer, false},
                               {demo::kPicked.text, demo::kPicked.answer, true}};
    demo::Outcome side[2];
    st = run_jobs(*client, o, picked, [&](size_t k, const demo::Outcome& out) { side[k] = out; }, idle);
    if (st) {
      std::printf("%s (%s), answer %s:\n  %s\n", demo::kPickedFrom,
                  "picked because greedy decoding gets it wrong and search gets it right", demo::kPicked.answer,
                  demo::kPicked.text);
      if (side[0].right || !side[1].right)
        std::printf("  (not so with these models and settings: see below)\n");
      std::printf("\n%s\n", demo::side_by_side("greedy decoding (1 sample, temperature 0)", side[0],
                                              search_name, side[1]).c_str());
      std::fflush(stdout);
    }

    // The fresh problems, both ways.
    demo::Tally greedy, search;
    Progress progress(o.quiet, int(jobs.size()));
    if (st)
      st = run_jobs(*client, o, jobs, [&](size_t k, const demo::Outcome& out) {
        (jobs[k].search ? search : greedy).add(out);
        progress.add(jobs[k], k / 2, out, greedy, search);
      }, idle);
    if (st) {
      const int total = int(fresh.size());
      std::printf("accuracy on %d %sproblems (%s; %s selection):\n", total, o.dataset.empty() ? "fresh " : "",
                  source.c_str(), c->defaults.solve.selection.c_str());
      std::printf("%s", demo::accuracy_line("greedy decoding", greedy, total, int(search_name.size())).c_str());
      std::printf("%s", demo::accuracy_line(search_name, search, total, int(search_name.size())).c_str());
      if (greedy.policy_tokens > 0)
        std::printf("search: %+.1f points for %.1fx the policy tokens\n", search.percent() - greedy.percent(),
                    double(search.policy_tokens) / double(greedy.policy_tokens));
      if (total < 100)
        std::printf("(%d problems are a small sample: the README's table has 500 held-out ones)\n", total);
    }
  }  // the client socket closes before the actors stop
  (*sup)->shutdown();
  if (!st) return fail("demo", st.message());
  std::printf("time: %.1f s, models loaded and everything solved on this machine's %u CPU cores\n",
              std::chrono::duration<double>(Clock::now() - t0).count(), std::thread::hardware_concurrency());
  return 0;
}

}  // namespace

void add_demo(CLI::App& app, int* rc, const Globals* g) {
  auto* sub = app.add_subcommand(
      "demo", "Show what test-time scaling does: greedy decoding vs beam search with the PRM (tools/run.sh)");
  auto o = std::make_shared<DemoOpts>();
  sub->add_option("--config", o->config, "TOML configuration (default: $FLASHTTS_CONFIG, else configs/default.toml)");
  sub->add_option("--dataset", o->dataset, "Compare on these problems (a JSONL file as eval reads) instead of the built-in dozen");
  sub->add_option("--n", o->n, "Beams of the search")->check(CLI::Range(1, 1024));
  sub->add_option("--beam-width", o->beam_width, "Beam width M (at N < M, N)")->check(CLI::Range(1, 1024));
  sub->add_option("--seed", o->seed, "Random seed of every request");
  sub->add_option("--concurrency", o->concurrency, "Requests in flight")->check(CLI::Range(1, 1024));
  sub->add_option("--timeout", o->timeout_s, "Seconds one solve may take before it counts as failed")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--quiet", o->quiet, "No progress on stderr");
  sub->callback([o, rc, g] { *rc = run_demo(*o, *g); });
}

}  // namespace flashtts::cli
