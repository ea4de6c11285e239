#include "actors/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <unordered_map>

#include "actors/request_gate.h"
#include "actors/sched_policy.h"
#include "gpu/kv_block_pool.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/poll_set.h"
#include "runtime/base/routes.h"

namespace flashtts {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kLoadInterval{100};
constexpr int64_t kTemplateBytes = 256;  // a PRM input's template, around the problem and steps

// Each request's most jobs open at once, generation and scoring together:
// its beams, including those that wait at their iteration's barrier while
// none of their jobs is open (QueueLoad::live_jobs).
struct RequestPeaks {
  struct Count {
    int32_t open = 0, peak = 0;
  };
  std::unordered_map<uint64_t, Count> of;
  int32_t total = 0;  // of the peaks
  void opened(uint64_t rid) {
    Count& c = of[rid];
    if (++c.open > c.peak) ++c.peak, ++total;
  }
  void closed(uint64_t rid) {
    auto it = of.find(rid);
    if (it != of.end() && it->second.open > 0) --it->second.open;
  }
  void forget(uint64_t rid) {
    auto it = of.find(rid);
    if (it == of.end()) return;
    total -= it->second.peak;
    of.erase(it);
  }
};

// One GPU actor's side of the scheduler: its queue, its grant, what is out.
struct Lane {
  std::string peer;
  std::unique_ptr<SchedulingPolicy> policy;
  int32_t window = 0;     // most real jobs out at once; 0 = no limit
  int64_t capacity = -1;  // KV tokens granted; -1 until the grant arrives
  int64_t max_capacity = -1;  // what the grant may grow to (an elastic split), else capacity
  int64_t max_position = 0;   // the model's positions (the grant's); 0 = unknown or no limit
  // Real jobs not finished (queued or out): job_id -> (rid, context tokens),
  // what the memory arbiter hears of (QueueLoad).
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> open{};
  int64_t open_ctx_tokens = 0;
  std::unordered_map<uint64_t, uint64_t> speculative{};  // job_id -> rid, past the queue (the policy has the rest)
  uint64_t dispatched = 0, completed = 0, rejected = 0;
  // A release_kv must reach the actor after the jobs that fork the sequences
  // it frees: it waits here while jobs of its request are queued.
  std::unordered_map<uint64_t, int64_t> queued_of{};                       // rid -> queued jobs
  std::unordered_map<uint64_t, std::vector<std::string>> held_releases{};  // rid -> release_kv messages
  RequestPeaks* peaks = nullptr;  // shared by both lanes
  RequestGate* gate = nullptr;    // shared by both lanes
  RequestGate::Lane gate_lane = RequestGate::kGen;

  void push(QueuedJob q, int64_t ctx_tokens) {
    ++queued_of[q.rid];
    peaks->opened(q.rid);
    gate->opened(gate_lane, q, ctx_tokens);
    open[q.job_id] = {q.rid, ctx_tokens};
    open_ctx_tokens += ctx_tokens;
    policy->push(std::move(q));
  }
  void close(uint64_t job_id) {
    auto it = open.find(job_id);
    if (it == open.end()) return;
    open_ctx_tokens -= it->second.second;
    peaks->closed(it->second.first);
    open.erase(it);
  }
  void release_kv(Mailbox& box, uint64_t rid, const std::string& bytes) {
    if (queued_of.count(rid)) held_releases[rid].push_back(bytes);
    else box.send(peer, bytes);
  }
  // A queued job of `rid` left the queue (after it was sent, if it was).
  void left_queue(Mailbox& box, uint64_t rid) {
    auto it = queued_of.find(rid);
    if (it == queued_of.end() || --it->second > 0) return;
    queued_of.erase(it);
    auto h = held_releases.find(rid);
    if (h == held_releases.end()) return;
    for (const std::string& b : h->second) box.send(peer, b);
    held_releases.erase(h);
  }

  void done(uint64_t job_id) {
    if (speculative.erase(job_id)) return;
    if (auto it = open.find(job_id); it != open.end()) gate->finished(it->second.first, gate_lane);
    close(job_id);
    if (policy->done(job_id)) ++completed;
  }
  void forget(uint64_t rid) {
    for (auto it = open.begin(); it != open.end();) {
      if (it->second.first == rid) open_ctx_tokens -= it->second.second, it = open.erase(it);
      else ++it;
    }
    policy->remove_request(rid);
    queued_of.erase(rid);
    held_releases.erase(rid);  // forget frees every kept sequence of the request
    std::erase_if(speculative, [&](const auto& kv) { return kv.second == rid; });
  }
  // Sends queued jobs while they fit (and the window has room). A job bigger
  // than the whole grant, next when nothing is out, goes to `oversize`, which
  // fails it (false) or lets it run alone (true: the model's exact count decides).
  void dispatch(Mailbox& box, const std::function<bool(const QueuedJob&)>& oversize) {
    if (capacity < 0) return;
    while (window <= 0 || (int64_t)policy->inflight() < window) {
      const bool idle = policy->inflight() == 0;
      auto j = policy->pop(idle ? capacity : capacity - policy->held_tokens());
      if (!j && idle && policy->size() > 0) {
        j = policy->pop(INT64_MAX);
        if (!oversize(*j)) {
          close(j->job_id);
          policy->done(j->job_id);
          ++rejected;
          left_queue(box, j->rid);
          continue;
        }
      }
      if (!j) return;
      box.send(peer, j->bytes);
      ++dispatched;
      left_queue(box, j->rid);
    }
  }
  msg::MapWriter stats() const {
    msg::MapWriter w;
    w.put("policy", policy->name()).put("queued", uint64_t(policy->size())).put("inflight", uint64_t(policy->inflight()));
    w.put("inflight_tokens", policy->held_tokens()).put("capacity_tokens", capacity);
    w.put("dispatched", dispatched).put("completed", completed).put("rejected", rejected);
    return w;
  }
};

// A generation job's queue entry: its context's full KV blocks are the
// chunks (keyed as the engine's prefix cache keys them); the rest of the
// context and max_tokens (which covers `prefix`) are its tail. The generator
// ends a sequence at the model's positions, so a job never holds more KV
// than max_position tokens (when known: a job queued before the grant
// counts all of max_tokens). Of the tokens it may write, `reserve` counts;
// `holds` gets what it may hold in all.
QueuedJob gen_entry(const msg::GenJob& j, std::string bytes, int32_t block_size, int64_t max_position,
                    double reserve, int64_t* holds) {
  QueuedJob q{j.job_id, j.rid, j.priority, {}, 0, 0, std::move(bytes)};
  const size_t full = j.tokens.size() / (size_t)block_size;
  q.chunks.reserve(full);
  for (size_t b = 0; b < full; ++b) {
    std::span<const int32_t> block(j.tokens.data() + b * block_size, (size_t)block_size);
    q.chunks.push_back({kv_block_hash(0, block), block_size});
  }
  const int64_t context = (int64_t)j.tokens.size();
  int64_t need = context + j.max_tokens;
  if (max_position > 0) need = std::min(need, std::max(max_position, context));
  *holds = need;
  need = context + (int64_t)std::ceil(reserve * (double)(need - context));
  q.tail_tokens = need - (int64_t)(full * block_size);
  q.cost_tokens = need;
  return q;
}

// PRM tokens per byte of scoring input, measured on the jobs scored: the
// scheduler sees a scoring job's text, not its PRM tokens. Until enough
// came back, 1 (byte-level BPE gives at most one token per byte: a bound,
// several times the tokens of most text, so a tight pool would run one
// scoring job at a time).
class TokensPerByte {
 public:
  double rate() const { return bytes_ >= kMinBytes ? std::min(1.0, tokens_ / bytes_) : 1.0; }
  void add(int64_t bytes, int32_t tokens) {
    if (bytes <= 0 || tokens <= 0) return;
    bytes_ += (double)bytes, tokens_ += (double)tokens;
    if (bytes_ > kDecayBytes) bytes_ /= 2, tokens_ /= 2;  // recent work weighs more
  }

 private:
  static constexpr double kMinBytes = 16384, kDecayBytes = 64e6;
  double bytes_ = 0, tokens_ = 0;
};

// A scoring job's queue entry: the problem and each step are chunks weighted
// by their bytes (plus one tag per step) times `rate`, the measured PRM
// tokens per byte; the template is the tail. Its bytes in all go to `bytes_in`.
QueuedJob score_entry(const msg::ScoreJob& j, std::string bytes, double rate, int64_t* bytes_in) {
  auto tokens = [rate](int64_t n) { return std::max<int32_t>(1, (int32_t)std::ceil((double)n * rate)); };
  QueuedJob q{j.job_id, j.rid, j.priority, {}, tokens(kTemplateBytes), 0, std::move(bytes)};
  *bytes_in = kTemplateBytes;
  auto chunk = [&](std::string_view s, int32_t extra) {
    *bytes_in += (int64_t)s.size() + extra;
    return Chunk{std::hash<std::string_view>{}(s), tokens((int64_t)s.size() + extra)};
  };
  q.chunks.push_back(chunk(j.problem, 0));
  for (const auto& s : j.steps) q.chunks.push_back(chunk(s, 1));
  q.cost_tokens = q.tail_tokens;
  for (const Chunk& c : q.chunks) q.cost_tokens += c.tokens;
  return q;
}

}  // namespace

Status run_scheduler(zmq::context_t& ctx, ActorPipe& pipe, const SchedulerOptions& o) {
  const SchedulingOptions so{.name = o.policy, .max_overtaken = o.max_overtaken, .by_request = o.by_request};
  auto gp = make_scheduling_policy(so);
  if (!gp) return gp.error();
  auto sp = make_scheduling_policy(so);
  if (!sp) return sp.error();
  auto mb = Mailbox::open(ctx, o.inbox, o.peers);
  if (!mb) return mb.error();
  Mailbox& box = *mb;
  pipe.ready();

  const int32_t window = is_tree_policy(o.policy) ? o.window : 0;
  RequestPeaks peaks;
  RequestGate gate(o.request_admission == "fit");
  Lane gen{.peer = "generator", .policy = std::move(*gp), .window = window, .peaks = &peaks, .gate = &gate,
           .gate_lane = RequestGate::kGen};
  Lane ver{.peer = "verifier", .policy = std::move(*sp), .window = window, .peaks = &peaks, .gate = &gate,
           .gate_lane = RequestGate::kVer};
  // A job of a request the gate holds waits there, outside the lanes.
  auto enter = [&](Lane& l, QueuedJob q, int64_t ctx_tokens, int32_t request_beams) {
    if (gate.open_for(q.rid, request_beams)) l.push(std::move(q), ctx_tokens);
    else gate.hold(q.rid, {l.gate_lane, std::move(q), ctx_tokens});
  };
  auto reject_gen = [&](const QueuedJob& q, int64_t need) {
    auto env = msg::open(q.bytes);
    auto j = env ? msg::decode<msg::GenJob>(*env) : Expected<msg::GenJob>(make_error("undecodable"));
    msg::GenDone d;
    d.job_id = q.job_id, d.rid = q.rid, d.beam = j ? j->beam : 0, d.finish = "error", d.code = msg::code::kTooLarge;
    d.error = "the job needs up to " + std::to_string(need) + " tokens of KV cache but the generator holds " +
              std::to_string(gen.capacity) + "; shorten the problem or the token limits, or raise memory.budget_mb";
    box.post("beam_manager", d);
    return false;
  };
  // A generation job bigger than the pool can ever grow fails; one that
  // only the current grant cannot hold runs alone, and the generator holds
  // it until the memory arbiter grows its pool.
  auto oversize_gen = [&](const QueuedJob& q) {
    return q.cost_tokens <= gen.max_capacity || reject_gen(q, q.cost_tokens);
  };
  // A scoring job's size is a loose bound: one bigger than the grant runs
  // alone and the verifier decides on the exact count.
  auto run_alone = [](const QueuedJob&) { return true; };
  // Under an elastic split the memory arbiter hears the open jobs every
  // interval while there are any, and once more when they are gone.
  bool elastic = false;
  bool reported_idle = true;
  Clock::time_point last_load{};
  auto report_load = [&] {
    const bool idle = gen.open.empty() && ver.open.empty();
    if (!elastic || !o.peers.count("memory_arbiter") || (idle && reported_idle)) return;
    if (Clock::now() - last_load < kLoadInterval) return;
    last_load = Clock::now();
    reported_idle = idle;
    msg::QueueLoad q;
    q.gen_jobs = (int32_t)gen.open.size(), q.gen_ctx_tokens = gen.open_ctx_tokens;
    q.score_jobs = (int32_t)ver.open.size(), q.score_ctx_tokens = ver.open_ctx_tokens;
    q.live_jobs = peaks.total;
    q.gen_out_jobs = (int32_t)gen.policy->inflight(), q.gen_out_tokens = gen.policy->held_tokens();
    q.score_out_jobs = (int32_t)ver.policy->inflight(), q.score_out_tokens = ver.policy->held_tokens();
    box.post("memory_arbiter", q);
  };
  auto forward = [&](const char* peer) { return [&box, peer](const std::string& bytes) { box.send(peer, bytes); }; };
  TokensPerByte prm_rate;
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> score_bytes;  // open scoring job -> (rid, input bytes)
  Routes routes(o.log);
  routes
      .on<msg::GenJob>([&](msg::GenJob j, std::string& bytes) {
        if (j.speculative) {
          // Speculation takes no room from real work: the generator runs it
          // only in what real work leaves, and stops it when real work waits.
          gen.speculative[j.job_id] = j.rid;
          box.send("generator", bytes);
          return;
        }
        int64_t full = 0;
        QueuedJob q = gen_entry(j, std::move(bytes), o.block_size, gen.max_position, o.reserve, &full);
        if (gen.max_capacity >= 0 && full > gen.max_capacity) {
          ++gen.rejected;
          reject_gen(q, full);
          return;
        }
        enter(gen, std::move(q), (int64_t)j.tokens.size(), j.request_beams);
      })
      .on<msg::ScoreJob>([&](msg::ScoreJob j, std::string& bytes) {
        int64_t in_bytes = 0;
        QueuedJob q = score_entry(j, std::move(bytes), prm_rate.rate(), &in_bytes);
        const int64_t cost = q.cost_tokens;
        score_bytes[j.job_id] = {j.rid, in_bytes};
        enter(ver, std::move(q), cost, j.request_beams);
      })
      .on<msg::GenDone>([&](const msg::GenDone& d, const std::string& bytes) {
        gen.done(d.job_id);
        box.send("beam_manager", bytes);
      })
      .on<msg::ScoreDone>([&](const msg::ScoreDone& d, const std::string& bytes) {
        if (auto b = score_bytes.find(d.job_id); b != score_bytes.end()) {
          if (d.error.empty()) prm_rate.add(b->second.second, d.n_tokens);
          score_bytes.erase(b);
        }
        ver.done(d.job_id);
        box.send("beam_manager", bytes);
      })
      .pass(msg::StopJobs::kType, forward("generator"))
      .pass(msg::GenProgress::kType, forward("beam_manager"))
      .pass(msg::DropKv::kType,  // the jobs named are done: no fork waits for their blocks
            [&](const std::string& bytes) {
              box.send("generator", bytes);
              box.send("verifier", bytes);
            })
      .on<msg::ReleaseKv>([&](const msg::ReleaseKv& r, const std::string& bytes) {
        gen.release_kv(box, r.rid, bytes);
        ver.release_kv(box, r.rid, bytes);
      })
      .on<msg::Forget>([&](const msg::Forget& f, const std::string& bytes) {
        gen.forget(f.rid);
        ver.forget(f.rid);
        peaks.forget(f.rid);
        gate.forget(f.rid, f.completed);
        std::erase_if(score_bytes, [&](const auto& kv) { return kv.second.first == f.rid; });
        box.send("generator", bytes);
        box.send("verifier", bytes);
      })
      .on<msg::Grant>([&](const msg::Grant& g) {
        Lane& l = g.role == "generator" ? gen : ver;
        l.capacity = g.kv_tokens;
        l.max_capacity = std::max(g.kv_tokens, g.kv_tokens_max);
        l.max_position = g.max_position;
        elastic = elastic || g.kv_tokens_max > g.kv_tokens;
      })
      .on<msg::StatsQuery>([&](const msg::StatsQuery& q) {
        msg::MapWriter st;
        st.put("generator", gen.stats()).put("verifier", ver.stats());
        st.put("requests_waiting", uint64_t(gate.pending())).put("requests_held", gate.held_total());
        box.post("intake", msg::StatsReply{q.qid, "scheduler", st.bytes()});
      });
  size_t waiting = 0;  // requests the gate held at the last look
  PollSet poll(pipe, {&box.inbox()});
  while (poll.wait(elastic && !reported_idle ? kLoadInterval : std::chrono::milliseconds(-1))) {
    FLASHTTS_TRY(routes.drain(box));
    // After the inbox is drained: jobs that arrived together are ordered
    // together, and a new request's first jobs are all known to the gate.
    if (gate.pending() > 0) {
      std::string why;
      for (RequestGate::Job& j : gate.admit({gen.capacity, ver.capacity}, &why))
        (j.lane == RequestGate::kGen ? gen : ver).push(std::move(j.job), j.ctx_tokens);
      if (gate.pending() != waiting) {
        waiting = gate.pending();
        o.log->debug("{} request(s) wait for KV room beside those running (request_admission = \"fit\"){}{}",
                     waiting, why.empty() ? "" : ": ", why);
      }
    }
    gen.dispatch(box, oversize_gen);
    ver.dispatch(box, run_alone);
    report_load();
  }
  return Status::success();
}

}  // namespace flashtts
