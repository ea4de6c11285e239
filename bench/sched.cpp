// The cost of choosing the next job (issue 22): a scheduling policy with
// Q jobs queued, shaped like beam searches (R requests x N beams, each a
// prompt of P blocks and a tree of steps below it), pops one job and takes
// a new one in, over and over. Reports the mean time of a pop and of a push
// for fifo and prefix side by side, so the ratio says what the tree costs.
//
//   flashtts-bench-sched [--queued 10000] [--requests 4] [--prompt-blocks 16]
//                        [--steps 40] [--step-blocks 4] [--ops 50000]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>

#include "actors/sched_policy.h"

using namespace flashtts;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int queued = 10000, requests = 4, prompt_blocks = 16, steps = 40, step_blocks = 4, ops = 50000;
};

// A job of request r: its prompt, then `depth` steps, each of step_blocks
// blocks, whose branch at each level is drawn from a small fan-out (beams
// sharing ancestors as a beam search's do).
QueuedJob make_job(std::mt19937_64& rng, const Options& o, uint64_t id) {
  QueuedJob q;
  q.job_id = id;
  q.rid = rng() % (uint64_t)o.requests;
  q.priority = (int32_t)(rng() % 1000);
  for (int b = 0; b < o.prompt_blocks; ++b) q.chunks.push_back({q.rid * 1000003u + (uint64_t)b, 16});
  const int depth = 1 + (int)(rng() % (uint64_t)o.steps);
  uint64_t branch = q.rid;
  for (int s = 0; s < depth; ++s) {
    branch = branch * 4 + rng() % 4;
    for (int b = 0; b < o.step_blocks; ++b) q.chunks.push_back({branch * 31 + (uint64_t)b, 16});
  }
  q.tail_tokens = 8 + 256;
  q.cost_tokens = (int64_t)q.chunks.size() * 16 + q.tail_tokens;
  return q;
}

void run(const std::string& name, const Options& o) {
  auto p = make_scheduling_policy({name, int64_t(1) << 40, 1});
  if (!p) {
    std::fprintf(stderr, "%s\n", p.error().message.c_str());
    return;
  }
  SchedulingPolicy& pol = **p;
  std::mt19937_64 rng(7);
  uint64_t id = 0;
  for (int k = 0; k < o.queued; ++k) pol.push(make_job(rng, o, ++id));
  std::vector<QueuedJob> fresh;
  fresh.reserve((size_t)o.ops);
  for (int k = 0; k < o.ops; ++k) fresh.push_back(make_job(rng, o, ++id));

  double pop_s = 0, push_s = 0;
  for (int k = 0; k < o.ops; ++k) {
    auto t0 = Clock::now();
    auto j = pol.pop(INT64_MAX);
    pol.done(j->job_id);
    auto t1 = Clock::now();
    pol.push(std::move(fresh[(size_t)k]));
    auto t2 = Clock::now();
    pop_s += std::chrono::duration<double>(t1 - t0).count();
    push_s += std::chrono::duration<double>(t2 - t1).count();
  }
  std::printf("| %s | %d | %.2f | %.2f |\n", name.c_str(), o.queued, pop_s / o.ops * 1e6, push_s / o.ops * 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"The cost of choosing the next job: fifo vs prefix"};
  app.add_option("--queued", o.queued, "Jobs queued")->check(CLI::Range(1, 10000000));
  app.add_option("--requests", o.requests, "Requests the jobs belong to")->check(CLI::Range(1, 1000000));
  app.add_option("--prompt-blocks", o.prompt_blocks, "KV blocks of each prompt")->check(CLI::Range(0, 100000));
  app.add_option("--steps", o.steps, "Most steps of a job's context")->check(CLI::Range(1, 10000));
  app.add_option("--step-blocks", o.step_blocks, "KV blocks of a step")->check(CLI::Range(1, 10000));
  app.add_option("--ops", o.ops, "Pops (each followed by a push)")->check(CLI::Range(1, 100000000));
  CLI11_PARSE(app, argc, argv);
  std::printf("| policy | queued | pop + done (us) | push (us) |\n|:--|--:|--:|--:|\n");
  for (const char* name : {"fifo", "prefix", "scatter", "random"}) run(name, o);
  return 0;
}
