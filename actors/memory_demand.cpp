#include "actors/memory_demand.h"

#include <algorithm>

namespace flashtts {

DemandWindow::Clock::time_point DemandWindow::since(Clock::time_point now) const {
  return now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window_s_));
}

void DemandWindow::trim(Side& s, Clock::time_point now) {
  const auto horizon = since(now);
  while (!s.queue.empty() && s.queue.front().at < horizon) s.queue.pop_front();
  // The latest largest context and working set stay, however old: a model
  // whose next job waits for its pool to grow runs no pass and reports
  // nothing more, and its pool must not be taken below that job meanwhile.
  while (s.max_ctx.size() > 1 && s.max_ctx.front().first < horizon) s.max_ctx.pop_front();
  while (s.windows.size() > 1 && s.windows.front().first < horizon) s.windows.pop_front();
}

void DemandWindow::add(const msg::QueueLoad& q, Clock::time_point now) {
  // The beams being scored generate next: the generator's pool keeps their
  // contexts from their last step, or computes them again. And the beams
  // still generating are scored next: the verifier's pool keeps their
  // contexts from their previous scoring, or computes them again. So do the
  // beams that wait at their iteration's barrier for its stragglers, which
  // neither model has a job of (live_jobs counts them).
  const int32_t held = std::max(q.gen_jobs + q.score_jobs, q.live_jobs);
  gen_.queue.push_back({now, q.gen_jobs, q.gen_ctx_tokens, held, q.gen_out_jobs, q.gen_out_tokens});
  ver_.queue.push_back({now, q.score_jobs, q.score_ctx_tokens, held, q.score_out_jobs, q.score_out_tokens});
  trim(gen_, now);
  trim(ver_, now);
}

void DemandWindow::add(const msg::EngineLoad& e, Clock::time_point now) {
  Side& s = side(e.role == "generator");
  if (e.tokens_per_job > 0) s.tokens_per_job = e.tokens_per_job;
  // Misses are a pair (pool size, misses per job): one of a few jobs since a
  // resize would tell the previous size's misses as this one's; the pair
  // measured before stays until enough jobs ran.
  if (e.miss_jobs >= kMinMissJobs) s.miss_per_job = e.miss_tokens_per_job, s.pool_tokens = e.pool_tokens;
  if (e.running > 0 && e.kv_used_tokens > 0)
    s.sharing = std::max(1.0, (double)e.running_ctx_tokens / (double)e.kv_used_tokens);
  if (!e.window_jobs.empty()) {
    std::vector<std::pair<int32_t, int32_t>> w;
    for (size_t i = 0; i < e.window_jobs.size(); ++i) w.push_back({e.window_jobs[i], e.window_unique_tokens[i]});
    s.windows.push_back({now, std::move(w)});
  }
  if (e.s_per_byte > 0 || e.s_per_flop > 0) s.latency = {e.overhead_s, e.s_per_byte, e.s_per_flop};
  s.max_ctx.push_back({now, e.max_ctx_tokens});
  s.pinned_tokens = e.pinned_tokens;
  trim(s, now);
}

ModelDemand DemandWindow::demand(const Side& s, Clock::time_point now) const {
  ModelDemand d;
  d.max_batch = max_batch_;
  d.cost = s.cost;
  d.latency = s.latency;
  d.new_tokens = s.tokens_per_job;
  d.miss_tokens = s.miss_per_job;
  d.miss_pool_tokens = s.pool_tokens;
  d.sharing = s.sharing;
  d.pinned_tokens = s.pinned_tokens;
  const auto horizon = since(now);
  int64_t out_jobs = 0, out_tokens = 0;
  for (const Sample& q : s.queue) {
    if (q.at < horizon) continue;
    d.held_jobs = std::max(d.held_jobs, (double)q.held);
    out_jobs += q.out_jobs, out_tokens += q.out_tokens;
    if (q.jobs <= 0) continue;
    if (q.jobs >= d.jobs) {
      d.jobs = q.jobs;
      d.ctx_tokens = (double)q.ctx_tokens / q.jobs;
    }
  }
  if (out_jobs > 0) d.admit_tokens = (double)out_tokens / (double)out_jobs;
  // Reports within the window, and the latest however old (trim).
  auto counts = [&](size_t i, size_t size, Clock::time_point at) { return at >= horizon || i + 1 == size; };
  for (size_t i = 0; i < s.max_ctx.size(); ++i)
    if (counts(i, s.max_ctx.size(), s.max_ctx[i].first)) d.min_tokens = std::max(d.min_tokens, s.max_ctx[i].second);
  // The working-set window of about one iteration's jobs: the largest that
  // holds no more jobs than the pool keeps (a longer one would count the
  // next iteration's contexts, which extend this one's, as shared), and at
  // least the smallest, once it has filled. The peak over the reports in the
  // window, like the jobs: a window of jobs from two iterations reads less
  // than one iteration's (the later contexts extend the earlier ones).
  for (size_t i = 0; i < s.windows.size(); ++i) {
    if (!counts(i, s.windows.size(), s.windows[i].first)) continue;
    const std::pair<int32_t, int32_t>* w = nullptr;
    for (const auto& x : s.windows[i].second)
      if (w == nullptr || x.first <= d.held()) w = &x;
    if (w && w->first >= kMinWindowJobs) d.job_kv_tokens = std::max(d.job_kv_tokens, (double)w->second / w->first);
  }
  return d;
}

}  // namespace flashtts
