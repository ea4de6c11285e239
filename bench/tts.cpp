// The test-time-scaling benchmark (issue 20): the same problems, seeds and
// workload under several policy sets (variants, each a config overlay on one
// base config), runs interleaved and paired so machine noise falls on all:
// round r runs every variant once on the same problems, the order rotating
// from round to round. Each variant has its own in-process pipeline; only
// one is busy at a time.
//
//   flashtts-bench-tts [--workload arith|math-trace] [--config FILE]
//                      [--strategies beam_search,dvts,best_of_n] [--n 8,16,...,512]
//                      [--beam-width 4] [--concurrency 1,4] [--memory 100,25]
//                      [--variants baseline,flashtts,speculation] [--overlay NAME:section.key=value ...]
//                      [--budget-mb MB] [--splits 10,20,...,90]
//                      [--rounds 2] [--device sim:rtx4090] [--quick] [--json FILE] [--svg PREFIX] [--md FILE]
//
// Figures per run (runtime/tts_figures.h): goodput, latency p50/p90,
// generator and verifier busy time, mean rows per decode iteration and the
// idle share (decode iterations with fewer rows than the searches have
// beams) and idle slots (the beam slots of those iterations no row filled),
// the straggler chain (beam search: per iteration the most tokens a beam's
// step generated, summed), peak KV blocks per model, evictions, recomputed tokens,
// preemptions, speculative tokens generated / kept / dropped (and the
// speculations dropped early, their beam certain to be pruned), accuracy,
// pass@N and correct answers per minute (arith). Per
// cell: a markdown row per variant (medians over rounds) and each variant's
// paired ratio to the baseline (median [min, max]); one JSON line per run;
// per strategy x concurrency x memory an SVG of goodput and latency against
// N (baseline dashed).
//
// Workloads: arith, the shipped models on the held-out arith problems
// (tools/arith/data.py writes them); math-trace, random-weight models of
// about 35 M parameters (flashtts-mkmodel) whose steps end at lengths drawn
// from MATH-500 (bench/data/, the `trace` field of a solve).
//
// --memory P (1..1000; the memory-pressure workload: 25 and 50, and 100 as
// the control that just fits): each cell first runs once on the baseline
// variant with ample memory, a calibration that is not reported, and what
// each model's KV pool needed there is the cell's KV working set: the fewest
// blocks its LRU prefix cache needs to keep every block the run reused
// (kv_blocks_needed_peak), or with --working-set in-use the peak of blocks
// referenced at once (kv_blocks_peak). The cell's pipelines then get KV
// pools of P% of it, per model (at least one job's largest context plus a
// block, so no job is refused), and each JSON line carries the working set
// (ws_gen_blocks, ws_ver_blocks) and the pools the pipeline got
// (pool_gen_blocks, pool_ver_blocks). bench/tts_memory.h does the sizing.
//
// A variant whose warm-up or run fails (an actor that stops, a budget that
// holds neither model) is left out of the rest of its cell: its table row
// and a JSON line ({"failed": why}) say why, and the other variants and
// cells go on. The exit status is then 3, after every cell has run.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <toml.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "bench/tts_memory.h"
#include "runtime/client.h"
#include "runtime/eval_dataset.h"
#include "runtime/eval_metrics.h"
#include "runtime/supervisor.h"
#include "runtime/tts_figures.h"

using namespace flashtts;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// What this run leaves in the temporary folder: <prefix><pid> (its scratch
// folder) and <prefix><pid>-<k> (served variant k's client socket).
const std::string kTempPrefix = "flashtts-bench-tts-";

struct Options {
  std::string workload = "arith", device;
  fs::path config, policy, prm, problems_file, trace_table;
  std::vector<std::string> strategies = {"beam_search"}, variants = {"baseline", "flashtts"}, overlays;
  std::vector<int> ns = {8, 16, 32, 64, 128, 256, 512}, concurrency = {1}, memory, splits;
  double budget_mb = -1;  // -1: the config's
  int beam_width = 4, rounds = 2, max_steps = 0, max_tokens_per_step = 0;
  double end_prob = 1.0 / 6, step_scale = 0;  // step_scale 0: 1 on a GPU, 0.25 on the CPU
  bool quick = false;
  std::string json_out, svg_prefix, md_out;
  std::string log_level = "warn";  // the pipelines' (stderr)
  std::string working_set = "reuse";  // --memory's: "reuse" or "in-use"
};

fs::path build_dir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path();
}

// The built-in overlays: the baseline (what vLLM does: FIFO, prefix cache
// with LRU eviction, no live beams, a static memory split), flashtts (every
// optimization: speculation, live beams, prefix-aware scheduling with dead
// branches evicted first and admission by request, and the roofline memory
// split), one per optimization for the ablation, and the orders prefix is
// measured against (random, scatter: prefix's accounting and eviction in a
// random and in the worst order). --splits adds static<P>: the static split at P% (of the
// cell's budget under --memory).
std::map<std::string, std::vector<std::string>> builtin_overlays() {
  return {{"baseline",
           {"policies.scheduling=\"fifo\"", "policies.scheduling_reserve=1.0", "policies.memory_split=\"static\"",
            "policies.request_admission=\"all\"", "policies.eviction=\"lru\"",
            "policies.speculation=false", "policies.live_beams=false"}},
          {"flashtts",
           {"policies.scheduling=\"prefix\"", "policies.memory_split=\"roofline\"", "policies.speculation=true",
            "policies.live_beams=true", "policies.request_admission=\"fit\"", "policies.eviction=\"pruned\""}},
          {"roofline", {"policies.memory_split=\"roofline\""}},
          {"speculation", {"policies.speculation=true", "policies.live_beams=false"}},
          {"live_beams", {"policies.speculation=false", "policies.live_beams=true"}},
          {"prefix",
           {"policies.scheduling=\"prefix\"", "policies.eviction=\"pruned\"", "policies.speculation=false",
            "policies.live_beams=false"}},
          {"random",
           {"policies.scheduling=\"random\"", "policies.eviction=\"pruned\"", "policies.speculation=false",
            "policies.live_beams=false"}},
          {"scatter",
           {"policies.scheduling=\"scatter\"", "policies.eviction=\"pruned\"", "policies.speculation=false",
            "policies.live_beams=false"}}};
}

// The base TOML with `section.key=value` lines set, parsed as a Config.
Expected<Config> overlay(const fs::path& base, const std::vector<std::string>& sets) {
  toml::value v;
  try {
    v = toml::parse(base.string());
    for (const auto& s : sets) {
      size_t dot = s.find('.'), eq = s.find('=');
      if (dot == std::string::npos || eq == std::string::npos || dot > eq)
        return make_error("overlay '" + s + "' is not section.key=value");
      std::istringstream in("x = " + s.substr(eq + 1));
      toml::value one = toml::parse(in, "--overlay");
      v[s.substr(0, dot)][s.substr(dot + 1, eq - dot - 1)] = one.at("x");
    }
  } catch (const std::exception& e) {
    return make_error(std::string("overlay: ") + e.what());
  }
  return parse_config(toml::format(v), base);
}

// One variant's pipeline, in this process.
struct Served {
  explicit Served(LogSink l) : logs(std::move(l)) {}
  std::string name;
  Config cfg;
  zmq::context_t ctx;
  LogSink logs;
  std::unique_ptr<Supervisor> sup;
};

Expected<std::unique_ptr<Served>> serve(const std::string& name, Config cfg, int k) {
  auto level = parse_log_level(cfg.log_level);
  if (!level) return level.error();
  auto s = std::make_unique<Served>(LogSink(*level));
  s->name = name;
  for (auto& [actor, ep] : cfg.endpoints.actors) ep = "inproc://bench-tts-" + std::to_string(k) + "-" + actor;
  cfg.endpoints.clients = {
      "ipc://" + (fs::temp_directory_path() / (kTempPrefix + std::to_string(getpid()) + "-" + std::to_string(k))).string()};
  s->cfg = std::move(cfg);
  auto sup = Supervisor::start(s->ctx, s->cfg, s->logs);
  if (!sup) return make_error(name + ": " + sup.error().message);
  s->sup = std::move(*sup);
  return s;
}

// Both GPU actors' counters; `reset` starts their peaks afresh afterwards.
Expected<std::pair<tts::Counters, tts::Counters>> counters(Client& c, bool reset) {
  auto st = bench::gpu_stats(c, reset);
  if (!st) return st.error();
  auto gc = tts::read_counters(st->gen);
  if (!gc) return gc.error();
  auto vc = tts::read_counters(st->ver);
  if (!vc) return vc.error();
  return std::make_pair(*gc, *vc);
}

struct Problem {
  std::string text, gold;  // gold "" = no answer to check
};

struct Cell {
  std::string strategy;
  int n = 0, concurrency = 1, memory = 0;  // memory 0 = the config's budget
};

std::string cell_name(const Cell& c) {
  return c.strategy + " N=" + std::to_string(c.n) + " c=" + std::to_string(c.concurrency) +
         (c.memory ? " mem=" + std::to_string(c.memory) + "%" : "");
}

// Runs `problems` (one per request, all at once) on `s`.
Expected<tts::RunFigures> run(Served& s, const Options& o, const Cell& cell, const std::vector<Problem>& problems,
                              const std::vector<int32_t>& trace, uint64_t seed) {
  auto c = Client::connect(s.ctx, s.cfg.endpoints.clients.front());
  if (!c) return c.error();
  auto before = counters(*c, true);
  if (!before) return before.error();
  tts::RunFigures r;
  r.beams = int64_t(cell.n) * cell.concurrency;
  std::map<std::string, size_t> ids;  // request id -> problem
  auto t0 = Clock::now();
  for (size_t i = 0; i < problems.size(); ++i) {
    msg::MapWriter w;
    w.put("problem", problems[i].text).put("strategy", cell.strategy).put("n", int64_t(cell.n));
    if (cell.strategy != "best_of_n") w.put("beam_width", int64_t(o.beam_width));
    w.put("seed", seed + i).put("return_completions", true);
    if (o.max_steps) w.put("max_steps", int64_t(o.max_steps));
    if (o.max_tokens_per_step) w.put("max_tokens_per_step", int64_t(o.max_tokens_per_step));
    if (!trace.empty()) {
      msg::MapWriter t;
      t.put("step_tokens", trace).put("end_prob", o.end_prob).put("seed", seed + i);
      w.put("trace", t);
    }
    ids[c->send("solve", w)] = i;
  }
  r.solves.resize(problems.size());
  size_t open = ids.size();
  for (auto deadline = Clock::now() + 3600s; open > 0 && Clock::now() < deadline;) {
    auto f = c->recv(1s);
    if (!f) return f.error();
    // An actor that failed (a memory budget that holds neither model, say)
    // answers nothing: say why instead of waiting for the deadline.
    if (auto failed = s.sup->watch(std::chrono::milliseconds(0))) return make_error(*failed);
    if (!f->has_value() || (*f)->type == "progress" || !ids.count((*f)->id)) continue;
    tts::SolveFigures& sf = r.solves[ids[(*f)->id]];
    --open;
    if ((*f)->type == "error") {
      sf.failed = true;
      sf.error = (*f)->code + ": " + (*f)->message;
      continue;
    }
    msg::MapReader st;
    FLASHTTS_TRY((*f)->body.get("stats", &st));
    (void)st.get("latency_ms", &sf.latency_ms);
    (void)st.get("goodput_tokens_per_s", &sf.goodput);
    (void)st.get("policy_tokens", &sf.policy_tokens);
    (void)st.get("prompt_tokens", &sf.prompt_tokens);
    (void)st.get("straggler_chain_tokens", &sf.chain_tokens);
    if (msg::MapReader sp; st.get("speculation", &sp).ok()) {
      (void)sp.get("tokens_generated", &sf.spec_generated);
      (void)sp.get("tokens_kept", &sf.spec_kept);
      (void)sp.get("tokens_dropped", &sf.spec_dropped);
      (void)sp.get("pruned_early", &sf.spec_pruned_early);
      (void)sp.get("tokens_pruned_early", &sf.spec_pruned_early_tokens);
    }
    const std::string& gold = problems[ids[(*f)->id]].gold;
    if (!gold.empty()) {
      std::vector<msg::MapReader> comps;
      FLASHTTS_TRY((*f)->body.get("completions", &comps));
      std::vector<eval::CompletionAnswer> answers;
      for (const auto& m : comps) {
        eval::CompletionAnswer a;
        (void)m.get("answer", &a.answer);
        (void)m.get("score", &a.score);
        answers.push_back(a);
      }
      eval::Selection sel = eval::select_answers(gold, answers);
      sf.correct = sel.correct[1];
      sf.pass = sel.pass;
    }
  }
  if (open > 0) return make_error(cell_name(cell) + ": " + std::to_string(open) + " solve(s) got no reply in an hour");
  r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  auto after = counters(*c, false);
  if (!after) return after.error();
  r.gen = tts::delta(after->first, before->first);
  r.ver = tts::delta(after->second, before->second);
  return r;
}

json summary_json(const tts::RunSummary& s) {
  return {{"latency_p50_ms", s.latency_p50_ms}, {"latency_p90_ms", s.latency_p90_ms}, {"goodput", s.goodput},
          {"gen_busy_ms", s.gen_busy_ms},       {"ver_busy_ms", s.ver_busy_ms},       {"mean_rows", s.mean_rows},
          {"idle_share", s.idle_share},         {"idle_slots", s.idle_slots},
          {"gen_peak_blocks", s.gen_peak_blocks},
          {"ver_peak_blocks", s.ver_peak_blocks}, {"evictions", s.evictions},
          {"recomputed_tokens", s.recomputed_tokens}, {"gen_kv_recomputed", s.gen_kv_recomputed},
          {"ver_kv_recomputed", s.ver_kv_recomputed}, {"preemptions", s.preemptions},
          {"gen_pool_blocks", s.gen_pool_blocks}, {"ver_pool_blocks", s.ver_pool_blocks}, {"resizes", s.resizes},
          {"weight_uploads", s.weight_uploads}, {"weight_upload_s", s.weight_upload_s},
          {"gen_passes", s.gen_passes}, {"gen_decode_passes", s.gen_decode_passes},
          {"ver_tokens_computed", s.ver_tokens_computed},
          {"straggler_chain_tokens", s.chain_tokens < 0 ? json(nullptr) : json(s.chain_tokens)},
          {"speculative_tokens", s.spec_generated < 0 ? json(nullptr)
                                                      : json{{"generated", s.spec_generated},
                                                             {"kept", s.spec_kept},
                                                             {"dropped", s.spec_dropped},
                                                             {"pruned_early", s.spec_pruned_early},
                                                             {"pruned_early_tokens", s.spec_pruned_early_tokens}}},
          {"accuracy", s.accuracy}, {"pass_at_n", s.pass_at_n},
          {"correct_per_min", s.correct_per_min}, {"failed", s.failed}};
}

std::string f1(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}
std::string f2(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

// One variant's run summaries over the rounds: medians (accuracy, pass@N
// and correct answers per minute: means).
tts::RunSummary median(const std::vector<tts::RunSummary>& v) {
  auto med = [&](auto get) {
    std::vector<double> x;
    for (const auto& s : v) x.push_back(double(get(s)));
    return tts::percentile(x, 50);
  };
  tts::RunSummary m;
  m.latency_p50_ms = med([](auto& s) { return s.latency_p50_ms; });
  m.latency_p90_ms = med([](auto& s) { return s.latency_p90_ms; });
  m.goodput = med([](auto& s) { return s.goodput; });
  m.gen_busy_ms = med([](auto& s) { return s.gen_busy_ms; });
  m.ver_busy_ms = med([](auto& s) { return s.ver_busy_ms; });
  m.mean_rows = med([](auto& s) { return s.mean_rows; });
  m.idle_share = med([](auto& s) { return s.idle_share; });
  m.idle_slots = med([](auto& s) { return s.idle_slots; });
  m.gen_peak_blocks = (int64_t)med([](auto& s) { return s.gen_peak_blocks; });
  m.ver_peak_blocks = (int64_t)med([](auto& s) { return s.ver_peak_blocks; });
  m.evictions = (int64_t)med([](auto& s) { return s.evictions; });
  m.recomputed_tokens = (int64_t)med([](auto& s) { return s.recomputed_tokens; });
  m.gen_kv_recomputed = (int64_t)med([](auto& s) { return s.gen_kv_recomputed; });
  m.ver_kv_recomputed = (int64_t)med([](auto& s) { return s.ver_kv_recomputed; });
  m.preemptions = (int64_t)med([](auto& s) { return s.preemptions; });
  m.gen_pool_blocks = (int64_t)med([](auto& s) { return s.gen_pool_blocks; });
  m.ver_pool_blocks = (int64_t)med([](auto& s) { return s.ver_pool_blocks; });
  m.resizes = (int64_t)med([](auto& s) { return s.resizes; });
  m.weight_uploads = (int64_t)med([](auto& s) { return s.weight_uploads; });
  m.weight_upload_s = med([](auto& s) { return s.weight_upload_s; });
  m.spec_generated = (int64_t)med([](auto& s) { return s.spec_generated; });
  m.spec_kept = (int64_t)med([](auto& s) { return s.spec_kept; });
  m.spec_dropped = (int64_t)med([](auto& s) { return s.spec_dropped; });
  m.spec_pruned_early = (int64_t)med([](auto& s) { return s.spec_pruned_early; });
  m.spec_pruned_early_tokens = (int64_t)med([](auto& s) { return s.spec_pruned_early_tokens; });
  m.chain_tokens = med([](auto& s) { return s.chain_tokens; });
  // Shares of problems solved are means over the rounds, not medians.
  auto mean = [&](auto get) {
    double x = 0;
    for (const auto& s : v) x += get(s);
    return v.empty() ? 0.0 : x / double(v.size());
  };
  m.accuracy = mean([](auto& s) { return s.accuracy; });
  m.pass_at_n = mean([](auto& s) { return s.pass_at_n; });
  m.correct_per_min = mean([](auto& s) { return s.correct_per_min; });
  for (const auto& s : v) m.failed += s.failed;
  return m;
}

Expected<std::vector<Problem>> load_problems(const Options& o, const fs::path& scratch) {
  std::vector<Problem> out;
  if (o.workload == "math-trace") {
    for (int i = 0; i < 64; ++i)
      out.push_back({"Problem " + std::to_string(i + 1) + ": find the value of the expression in exercise " +
                         std::to_string(7 * i + 3) + ", and explain each step.",
                     ""});
    return out;
  }
  fs::path file = o.problems_file;
  if (file.empty()) {
    file = scratch / "arith.jsonl";
    std::string cmd = "/usr/bin/python3 " + (fs::path(FLASHTTS_SOURCE_DIR) / "tools/arith/data.py").string() +
                      " --n 200 --out " + file.string();
    if (std::system(cmd.c_str()) != 0) return make_error("could not write the arith problems: " + cmd);
  }
  auto ds = eval::read_dataset(file);
  if (!ds) return ds.error();
  for (const auto& p : ds->problems) out.push_back({p.problem, p.answer});
  if (out.empty()) return make_error(file.string() + " holds no problems");
  return out;
}

// The token lengths of the table's steps (first column; '#' starts a comment).
Expected<std::vector<int32_t>> load_trace(const fs::path& file) {
  std::ifstream f(file);
  if (!f) return make_error("cannot read the step-length table " + file.string());
  std::vector<int32_t> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#' || !std::isdigit((unsigned char)line[0])) continue;
    out.push_back(std::stoi(line));
  }
  if (out.empty()) return make_error(file.string() + " holds no step lengths");
  return out;
}

Status make_trace_models(const fs::path& dir) {
  const std::string shape = " --hidden 384 --layers 6 --heads 6 --kv-heads 2 --intermediate 1152 --vocab 32000";
  for (auto [name, arch] : {std::pair{"policy", "qwen2"}, {"prm", "qwen2-prm"}}) {
    if (fs::exists(dir / name / "config.json")) continue;
    std::string cmd = (build_dir() / "flashtts-mkmodel").string() + " --out " + (dir / name).string() + " --arch " +
                      arch + shape + " --seed 11 > /dev/null";
    if (std::system(cmd.c_str()) != 0) return make_error("flashtts-mkmodel failed: " + cmd);
  }
  return Status::success();
}

// The run's scratch folder (its configurations), removed when the run ends
// however main() returns. The folders and client sockets of earlier runs
// whose process is gone (killed, interrupted) are removed when the next
// starts.
class Scratch {
 public:
  Scratch() : dir_(fs::temp_directory_path() / (kTempPrefix + std::to_string(getpid()))) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(kTempPrefix, 0) != 0) continue;
      const std::string rest = name.substr(kTempPrefix.size()), pid = rest.substr(0, rest.find('-'));
      if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (kill((pid_t)std::stol(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
    fs::create_directories(dir_);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"flashtts-bench-tts: baseline and flashtts policies side by side on the same searches"};
  app.add_option("--workload", o.workload, "arith | math-trace")->check(CLI::IsMember({"arith", "math-trace"}));
  app.add_option("--config", o.config, "Base configuration (default: configs/default.toml)");
  app.add_option("--device", o.device, "engine.device for every variant: cpu, cuda, sim:rtx4090, sim:orin-agx, sim:h100");
  app.add_option("--policy", o.policy, "Policy folder (default: the workload's)");
  app.add_option("--prm", o.prm, "PRM folder (default: the workload's)");
  app.add_option("--problems", o.problems_file, "arith: a problem file in a `flashtts eval` layout");
  app.add_option("--trace-table", o.trace_table, "math-trace: the step-length table");
  app.add_option("--step-scale", o.step_scale,
                 "math-trace: every drawn step length times this (default 1 on a GPU or sim, 0.25 on the CPU)")
      ->check(CLI::Range(0.01, 1.0));
  app.add_option("--end-prob", o.end_prob, "math-trace: the chance a solution ends after a step")->check(CLI::Range(0.01, 1.0));
  app.add_option("--strategies", o.strategies, "Strategies")->delimiter(',');
  app.add_option("--n", o.ns, "N values")->delimiter(',');
  app.add_option("--beam-width", o.beam_width, "Beam width (M)");
  app.add_option("--concurrency", o.concurrency, "Requests at once")->delimiter(',');
  app.add_option("--budget-mb", o.budget_mb, "memory.budget_mb for every variant (0: from the device)");
  app.add_option("--splits", o.splits,
                 "Adds a variant static<P> per P: the static split with generator_share P% (the roofline oracle; "
                 "under --memory, P% of the cell's budget)")
      ->delimiter(',');
  app.add_option("--memory", o.memory,
                 "KV pools as % of the cell's KV working set, measured per model by a calibration run of the "
                 "baseline with ample memory (empty: the config's budget)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000));
  app.add_option("--working-set", o.working_set,
                 "What --memory's working set counts: reuse (the blocks in use and those the LRU prefix cache "
                 "must keep for their reuse) or in-use (the peak of blocks in use at once; the figures before "
                 "2026-12-07 evening)")
      ->check(CLI::IsMember({"reuse", "in-use"}));
  app.add_option("--variants", o.variants, "Variants to run (the first is the baseline of the ratios)")->delimiter(',');
  app.add_option("--overlay", o.overlays, "NAME:section.key=value, adds to (or defines) variant NAME");
  app.add_option("--rounds", o.rounds, "Rounds per cell (each runs every variant once, order rotating)");
  app.add_option("--max-steps", o.max_steps, "Override the workload's max_steps");
  app.add_option("--max-tokens-per-step", o.max_tokens_per_step, "Override the workload's max_tokens_per_step");
  app.add_option("--log-level", o.log_level, "The pipelines' log level (e.g. debug: the memory split's decisions)")
      ->capture_default_str();
  app.add_flag("--quick", o.quick, "A smoke run for the test suite: N=8,16, one round, arith");
  app.add_option("--json", o.json_out, "Append one JSON line per run to this file");
  app.add_option("--svg", o.svg_prefix, "Write PREFIX-<strategy>-c<k>[-m<p>].svg");
  app.add_option("--md", o.md_out, "Also write the tables to this file");
  CLI11_PARSE(app, argc, argv);
  if (o.quick) {
    if (!app.count("--n")) o.ns = {8, 16};
    if (!app.count("--rounds")) o.rounds = 1;
  }

  const Scratch scratch_dir;
  const fs::path& scratch = scratch_dir.path();
  fs::path base_file = o.config.empty() ? default_config_path() : o.config;
  std::vector<std::string> base_sets;
  if (o.workload == "math-trace") {
    if (o.policy.empty() || o.prm.empty()) {
      fs::path models = build_dir() / "bench-models" / "trace-35m";
      if (Status st = make_trace_models(models); !st.ok()) {
        std::fprintf(stderr, "flashtts-bench-tts: %s\n", st.message().c_str());
        return 2;
      }
      if (o.policy.empty()) o.policy = models / "policy";
      if (o.prm.empty()) o.prm = models / "prm";
    }
    // A whole solution must fit the real models' 4096 positions: 7 steps
    // of at most 512 tokens after a prompt of about 100. On the CPU the steps
    // are scaled to a quarter by default, keeping their spread (the
    // stragglers), so the sweep to N = 512 fits in well under an hour.
    const bool cpu = o.device.empty() || o.device == "cpu";
    if (o.step_scale == 0) o.step_scale = cpu ? 0.25 : 1.0;
    // On two CPU cores a decode pass of 256 or 512 rows of the 35 M models
    // is compute-bound and one such solve takes minutes a variant: the
    // default CPU sweep stops at N = 128 (ask for more with --n).
    if (cpu && !app.count("--n") && !o.quick) o.ns = {8, 16, 32, 64, 128};
    if (!o.max_steps) o.max_steps = 7;
    if (!o.max_tokens_per_step) o.max_tokens_per_step = (int)std::ceil(512 * o.step_scale);
    if (o.trace_table.empty()) o.trace_table = fs::path(FLASHTTS_SOURCE_DIR) / "bench/data/math500_step_lengths.tsv";
  }
  if (!o.policy.empty()) base_sets.push_back("models.policy=\"" + fs::absolute(o.policy).string() + "\"");
  if (!o.prm.empty()) base_sets.push_back("models.prm=\"" + fs::absolute(o.prm).string() + "\"");
  if (!o.device.empty()) base_sets.push_back("engine.device=\"" + o.device + "\"");
  if (o.budget_mb >= 0) base_sets.push_back("memory.budget_mb=" + std::to_string(o.budget_mb));
  int max_n = *std::max_element(o.ns.begin(), o.ns.end());
  base_sets.push_back("limits.max_n=" + std::to_string(std::max(max_n, 256)));

  auto problems = load_problems(o, scratch);
  if (!problems) {
    std::fprintf(stderr, "flashtts-bench-tts: %s\n", problems.error().message.c_str());
    return 2;
  }
  std::vector<int32_t> trace;
  if (o.workload == "math-trace") {
    auto t = load_trace(o.trace_table);
    if (!t) {
      std::fprintf(stderr, "flashtts-bench-tts: %s\n", t.error().message.c_str());
      return 2;
    }
    // Steps longer than a step may be are left out of the draw (MATH-500:
    // 2% of its steps are over 512 tokens).
    for (int32_t& n : *t) n = std::max<int32_t>(1, (int32_t)std::lround(n * o.step_scale));
    std::erase_if(*t, [&](int32_t n) { return n > o.max_tokens_per_step; });
    trace = std::move(*t);
  }
  auto overlays = builtin_overlays();
  std::set<std::string> splits;  // the variants --splits added
  for (int p : o.splits) {
    const std::string name = "static" + std::to_string(p);
    splits.insert(name);
    overlays[name] = {"policies.memory_split=\"static\"", "memory.generator_share=" + std::to_string(p / 100.0)};
    if (std::find(o.variants.begin(), o.variants.end(), name) == o.variants.end()) o.variants.push_back(name);
  }
  for (const auto& s : o.overlays) {
    size_t colon = s.find(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "flashtts-bench-tts: --overlay '%s' is not NAME:section.key=value\n", s.c_str());
      return 2;
    }
    overlays[s.substr(0, colon)].push_back(s.substr(colon + 1));
  }
  for (const auto& v : o.variants)
    if (!overlays.count(v)) {
      std::fprintf(stderr, "flashtts-bench-tts: variant '%s' has no overlay (known: baseline, flashtts, speculation, live_beams, prefix, random, scatter, roofline, static<P> with --splits, or give --overlay)\n",
                   v.c_str());
      return 2;
    }
  auto base = overlay(base_file, base_sets);
  if (!base) {
    std::fprintf(stderr, "flashtts-bench-tts: %s\n", base.error().message.c_str());
    return 2;
  }
  const bool simulated = base->engine.device.rfind("sim:", 0) == 0;
  std::string scale_note;
  if (o.workload == "math-trace" && o.step_scale != 1.0) {
    char b[64];
    std::snprintf(b, sizeof b, " (step lengths x %.2f)", o.step_scale);
    scale_note = b;
  }
  std::printf("# flashtts-bench-tts: workload %s%s, device %s%s, policy %s, PRM %s, %d round(s) per cell\n",
              o.workload.c_str(), scale_note.c_str(), base->engine.device.c_str(), simulated ? " (SIMULATED: every time is a model's)" : "",
              base->models.policy.c_str(), base->models.prm.c_str(), o.rounds);
  std::vector<int> memories = o.memory.empty() ? std::vector<int>{0} : o.memory;
  std::optional<bench::MemoryModel> mem_model;
  if (!o.memory.empty()) {
    auto m = bench::memory_model(*base);
    if (!m) {
      std::fprintf(stderr, "flashtts-bench-tts: %s\n", m.error().message.c_str());
      return 2;
    }
    mem_model = *m;
  }
  std::vector<tts::Point> points;
  std::string tables;
  std::vector<std::string> failures;  // "cell, variant" of every variant that failed
  uint64_t next_problem = 0;
  const size_t n_cells = memories.size() * o.ns.size() * o.strategies.size() * o.concurrency.size();
  size_t cell_k = 0;
  auto t_start = Clock::now();
  std::map<std::string, std::vector<tts::Point>> plots;  // svg name -> points
  std::map<std::tuple<std::string, int, int>, bench::WorkingSet> working_sets;  // by strategy, N, concurrency
  for (int mem : memories) {
    // Every memory setting runs the same problems and seeds: its cells pair
    // with the other settings' and share their calibration.
    next_problem = 0;
    for (int n : o.ns) {
      for (const auto& strategy : o.strategies)
        for (int conc : o.concurrency) {
          Cell cell{strategy, n, conc, mem};
          ++cell_k;
          // The rounds' problems and seeds, drawn first: the calibration
          // runs round 0's.
          std::vector<std::vector<Problem>> round_ps(o.rounds);
          std::vector<uint64_t> seeds(o.rounds);
          for (int round = 0; round < o.rounds; ++round) {
            for (int j = 0; j < conc; ++j) round_ps[round].push_back((*problems)[next_problem++ % problems->size()]);
            seeds[round] = 1000 + 17 * next_problem;
          }
          // --memory: the working set from a calibration run, then pools of
          // mem% of it for every variant.
          std::vector<std::string> memory_sets;
          bench::WorkingSet ws;
          bench::PoolTarget target;
          if (mem) {
            const bench::SearchShape shape{int64_t(n) * conc, o.max_steps ? o.max_steps : base->defaults.solve.max_steps,
                                           o.max_tokens_per_step ? o.max_tokens_per_step
                                                                 : base->defaults.solve.max_tokens_per_step};
            const auto key = std::tuple{strategy, n, conc};
            if (!working_sets.count(key)) {
              auto run_with = [&](const std::vector<std::string>& msets) -> Expected<bench::Observed> {
                std::vector<std::string> sets = base_sets;
                for (const auto& s : overlays[o.variants[0]]) sets.push_back(s);
                sets.insert(sets.end(), msets.begin(), msets.end());
                auto cfg = overlay(base_file, sets);
                if (!cfg) return make_error(o.variants[0] + ": " + cfg.error().message);
                cfg->log_level = o.log_level;
                auto s = serve(o.variants[0], *cfg, int(o.variants.size()));
                if (!s) return s.error();
                std::fprintf(stderr, "\r[%zu/%zu] %s: calibration on %s        ", cell_k, n_cells,
                             cell_name(cell).c_str(), o.variants[0].c_str());
                auto r = run(**s, o, cell, round_ps[0], trace, seeds[0]);
                if (!r) return r.error();
                auto pools = bench::read_pools((*s)->ctx, (*s)->cfg.endpoints.clients.front());
                if (!pools) return pools.error();
                return bench::Observed{std::move(*r), *pools};
              };
              auto w = bench::calibrate(&*mem_model, shape, run_with, o.working_set == "reuse");
              if (!w) {
                std::fprintf(stderr, "\nflashtts-bench-tts: calibration of %s: %s\n", cell_name(cell).c_str(),
                             w.error().message.c_str());
                return 1;
              }
              working_sets[key] = *w;
              std::fprintf(stderr, "\n%s N=%d c=%d: %s", strategy.c_str(), n, conc, bench::describe(*w).c_str());
            }
            ws = working_sets[key];
            target = bench::size_pools(*mem_model, ws, shape, mem);
            memory_sets = bench::pool_overlay(*mem_model, target);
            std::fprintf(stderr, "\n%s: %s\n", cell_name(cell).c_str(), bench::describe(target, ws).c_str());
          }
          // A variant that fails (its start, warm-up or a round) is left out of
          // the rest of the cell and its table says why; the others go on.
          // A JSON line of variant v in this cell (--json): the cell's and
          // variant's names, then what the caller adds.
          auto variant_json = [&](size_t v) {
            return json{{"bench", "tts"},       {"workload", o.workload}, {"device", base->engine.device},
                        {"simulated", simulated},
                        {"strategy", strategy}, {"n", n},                 {"beam_width", o.beam_width},
                        {"concurrency", conc},  {"memory_pct", mem ? json(mem) : json(nullptr)},
                        {"variant", o.variants[v]}};
          };
          auto write_json = [&](const json& j) {
            if (!o.json_out.empty()) std::ofstream(o.json_out, std::ios::app) << j.dump() << "\n";
          };
          std::vector<std::string> failed(o.variants.size());
          auto fail = [&](size_t v, const std::string& what, const std::string& why) {
            failed[v] = what + ": " + why;
            std::fprintf(stderr, "\nflashtts-bench-tts: %s, %s: %s\n", cell_name(cell).c_str(), o.variants[v].c_str(),
                         failed[v].c_str());
            failures.push_back(cell_name(cell) + ", " + o.variants[v]);
            json j = variant_json(v);
            j["failed"] = failed[v];
            write_json(j);
          };
          // Fresh pipelines per cell: the budget may follow N and the
          // concurrency, and no cell inherits another's prefix cache.
          std::vector<std::unique_ptr<Served>> served;
          for (size_t v = 0; v < o.variants.size(); ++v) {
            std::vector<std::string> sets = base_sets;
            for (const auto& s : overlays[o.variants[v]]) sets.push_back(s);
            // A static<P> of --splits keeps its share of the cell's budget:
            // under --memory the splits are the oracle at that budget.
            const bool own_share = splits.count(o.variants[v]) > 0;
            for (const auto& s : memory_sets)
              if (!own_share || !s.starts_with("memory.generator_share=")) sets.push_back(s);
            auto cfg = overlay(base_file, sets);
            if (!cfg) {
              std::fprintf(stderr, "flashtts-bench-tts: %s: %s\n", o.variants[v].c_str(), cfg.error().message.c_str());
              return 2;
            }
            cfg->log_level = o.log_level;
            auto s = serve(o.variants[v], *cfg, int(v));
            served.push_back(s ? std::move(*s) : nullptr);
            if (!s) fail(v, "start", s.error().message);
          }
          // One untimed solve per pipeline first: threads, page faults and
          // caches warm up there, not in the first variant's measured run.
          for (size_t v = 0; v < served.size(); ++v) {
            if (!served[v]) continue;
            if (auto w = run(*served[v], o, cell, {(*problems)[0]}, trace, 1); !w) fail(v, "warm-up", w.error().message);
          }
          // The pools each pipeline really got (a variant with a split
          // policy of its own may differ from the target: it is warned of).
          std::vector<bench::Pools> pools(served.size());
          for (size_t v = 0; mem && v < served.size(); ++v) {
            if (!failed[v].empty()) continue;
            auto p = bench::read_pools(served[v]->ctx, served[v]->cfg.endpoints.clients.front());
            if (!p) {
              fail(v, "reading its pools", p.error().message);
              continue;
            }
            pools[v] = *p;
            if (std::string w = bench::check_pools(target, *p); !w.empty())
              std::fprintf(stderr, "\nflashtts-bench-tts: warning: %s, %s: %s\n", cell_name(cell).c_str(),
                           o.variants[v].c_str(), w.c_str());
          }
          std::vector<std::vector<tts::RunSummary>> by_variant(o.variants.size());
          for (int round = 0; round < o.rounds; ++round) {
            const std::vector<Problem>& ps = round_ps[round];
            const uint64_t seed = seeds[round];
            for (size_t k = 0; k < served.size(); ++k) {
              size_t v = (k + size_t(round)) % served.size();  // the order rotates
              if (!failed[v].empty()) continue;
              std::fprintf(stderr, "\r[%zu/%zu] %s round %d/%d: %s        ", cell_k, n_cells, cell_name(cell).c_str(),
                           round + 1, o.rounds, o.variants[v].c_str());
              auto r = run(*served[v], o, cell, ps, trace, seed);
              if (!r) {
                fail(v, "round " + std::to_string(round + 1), r.error().message);
                continue;
              }
              tts::RunSummary s = tts::summarize(*r);
              for (const auto& f : r->solves)
                if (f.failed) std::fprintf(stderr, "\n%s: a solve failed: %s\n", o.variants[v].c_str(), f.error.c_str());
              by_variant[v].push_back(s);
              json j = variant_json(v);
              j["round"] = round, j["position"] = k, j["wall_ms"] = r->wall_ms;
              if (mem) {
                j["ws_gen_blocks"] = ws.gen_blocks, j["ws_ver_blocks"] = ws.ver_blocks;
                j["pool_gen_blocks"] = pools[v].gen_blocks, j["pool_ver_blocks"] = pools[v].ver_blocks;
              }
              j["figures"] = summary_json(s);
              write_json(j);
            }
          }
          // The table of this cell.
          std::string t = "\n### " + cell_name(cell) + " (beam width " + std::to_string(o.beam_width) + ", " +
                          std::to_string(o.rounds) + " round(s))\n\n";
          if (mem)
            t += bench::describe(ws) + " on " + o.variants[0] + " with ample memory; at " + std::to_string(mem) + "%: " +
                 bench::describe(target, ws) + "\n\n";
          t += "| variant | latency p50 / p90 (ms) | goodput (tok/s) | gen / ver busy (ms) | rows per decode | "
               "idle share | idle slots | straggler chain (tokens) | peak blocks gen / ver | "
               "pool at end gen / ver (resizes) | evictions | recomputed (gen prefill) | KV recomputed gen / ver | "
               "preemptions | "
               "spec. tokens gen / kept / dropped | spec. pruned early (tokens) | "
               "accuracy | pass@N | correct/min | failed |\n";
          t += "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
          for (size_t v = 0; v < served.size(); ++v) {
            if (!failed[v].empty()) {
              std::string why = failed[v];
              std::replace(why.begin(), why.end(), '|', '/');
              std::replace(why.begin(), why.end(), '\n', ' ');
              t += "| " + o.variants[v] + " | failed (" + why + ") |\n";
              continue;
            }
            tts::RunSummary m = median(by_variant[v]);
            const bool has_answers = !(*problems)[0].gold.empty();
            t += "| " + o.variants[v] + " | " + f1(m.latency_p50_ms) + " / " + f1(m.latency_p90_ms) + " | " +
                 f1(m.goodput) + " | " + f1(m.gen_busy_ms) + " / " + f1(m.ver_busy_ms) + " | " + f1(m.mean_rows) +
                 " | " + f2(m.idle_share) + " | " + f2(m.idle_slots) + " | " +
                 (m.chain_tokens < 0 ? std::string("-") : f1(m.chain_tokens)) + " | " +
                 std::to_string(m.gen_peak_blocks) + " / " + std::to_string(m.ver_peak_blocks) + " | " + std::to_string(m.gen_pool_blocks) + " / " +
                 std::to_string(m.ver_pool_blocks) + " (" + std::to_string(m.resizes) +
                 (m.weight_uploads > 0 ? "; " + std::to_string(m.weight_uploads) + " turns, " +
                                             f1(m.weight_upload_s) + " s uploads"
                                       : std::string()) +
                 ") | " +
                 std::to_string(m.evictions) + " | " +
                 std::to_string(m.recomputed_tokens) + " | " + std::to_string(m.gen_kv_recomputed) + " / " +
                 std::to_string(m.ver_kv_recomputed) + " | " + std::to_string(m.preemptions) + " | " +
                 (m.spec_generated < 0 ? std::string("-")
                                       : std::to_string(m.spec_generated) + " / " + std::to_string(m.spec_kept) +
                                             " / " + std::to_string(m.spec_dropped)) +
                 " | " +
                 (m.spec_pruned_early < 0 ? std::string("-")
                                          : std::to_string(m.spec_pruned_early) + " (" +
                                                std::to_string(m.spec_pruned_early_tokens) + ")") +
                 " | " + (has_answers ? f2(m.accuracy) : "-") + " | " + (has_answers ? f2(m.pass_at_n) : "-") + " | " +
                 (has_answers ? f1(m.correct_per_min) : "-") + " | " + std::to_string(m.failed) + " |\n";
            std::string plot = strategy + "-c" + std::to_string(conc) + (mem ? "-m" + std::to_string(mem) : "");
            plots[plot].push_back({o.variants[v], n, m.goodput, m.latency_p50_ms});
          }
          if (!failed[0].empty()) t += "\nno ratios: " + o.variants[0] + " failed\n";
          for (size_t v = 1; v < served.size() && failed[0].empty(); ++v) {
            if (!failed[v].empty()) continue;
            std::vector<double> ga, gb, la, lb, ca, cb;
            for (size_t r = 0; r < by_variant[v].size(); ++r) {
              ga.push_back(by_variant[v][r].goodput), gb.push_back(by_variant[0][r].goodput);
              la.push_back(by_variant[v][r].latency_p50_ms), lb.push_back(by_variant[0][r].latency_p50_ms);
              if (by_variant[v][r].chain_tokens >= 0 && by_variant[0][r].chain_tokens >= 0)
                ca.push_back(by_variant[v][r].chain_tokens), cb.push_back(by_variant[0][r].chain_tokens);
            }
            tts::Ratio g = tts::paired_ratio(ga, gb), l = tts::paired_ratio(la, lb), c = tts::paired_ratio(ca, cb);
            t += "\n" + o.variants[v] + " / " + o.variants[0] + ", paired over " + std::to_string(g.pairs) +
                 " round(s): goodput " + f2(g.median) + " [" + f2(g.min) + ", " + f2(g.max) + "], latency " +
                 f2(l.median) + " [" + f2(l.min) + ", " + f2(l.max) + "]";
            if (c.pairs > 0)
              t += ", straggler chain " + f2(c.median) + " [" + f2(c.min) + ", " + f2(c.max) + "]";
            if (!(*problems)[0].gold.empty()) {
              std::vector<double> aa, ab;
              for (size_t r = 0; r < by_variant[v].size(); ++r)
                aa.push_back(by_variant[v][r].accuracy), ab.push_back(by_variant[0][r].accuracy);
              tts::Difference d = tts::paired_difference(aa, ab);
              char b[128];
              std::snprintf(b, sizeof b, "; accuracy difference %+.3f [%+.3f, %+.3f] (95%%)", d.mean, d.lo, d.hi);
              t += b;
            }
            t += "\n";
          }
          std::printf("%s", t.c_str());
          std::fflush(stdout);
          tables += t;
        }
    }
  }
  std::fprintf(stderr, "\n%.1f s in all\n", std::chrono::duration<double>(Clock::now() - t_start).count());
  if (!o.md_out.empty()) std::ofstream(o.md_out) << tables;
  if (!o.svg_prefix.empty())
    for (const auto& [name, pts] : plots)
      std::ofstream(o.svg_prefix + "-" + name + ".svg")
          << tts::svg_plot(pts, "flashtts-bench-tts: " + o.workload + ", " + name + " (" + base->engine.device + ")");
  if (!failures.empty()) {
    std::fprintf(stderr, "flashtts-bench-tts: %zu variant(s) failed (their tables say why):", failures.size());
    for (const auto& f : failures) std::fprintf(stderr, " [%s]", f.c_str());
    std::fprintf(stderr, "\n");
    return 3;
  }
  return 0;
}
