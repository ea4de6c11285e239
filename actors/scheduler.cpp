#include "actors/scheduler.h"

#include <cstdint>
#include <functional>
#include <unordered_map>

#include "actors/sched_policy.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "runtime/mailbox.h"
#include "runtime/poll_set.h"

namespace flashtts {

namespace {

// One GPU actor's side of the scheduler: its queue, its grant, what is out.
struct Lane {
  std::string peer;
  std::unique_ptr<SchedulingPolicy> policy;
  int64_t capacity = -1;  // KV tokens granted; -1 until the grant arrives
  int64_t inflight_tokens = 0;
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> inflight{};  // job_id -> (rid, cost)
  uint64_t dispatched = 0, completed = 0, rejected = 0;
  // A release_kv must reach the actor after the jobs that fork the sequences
  // it frees: it waits here while jobs of its request are queued.
  std::unordered_map<uint64_t, int64_t> queued_of{};                 // rid -> queued jobs
  std::unordered_map<uint64_t, std::vector<std::string>> held_releases{};  // rid -> release_kv messages

  void push(QueuedJob q) {
    ++queued_of[q.rid];
    policy->push(std::move(q));
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
    auto it = inflight.find(job_id);
    if (it == inflight.end()) return;
    inflight_tokens -= it->second.second;
    inflight.erase(it);
    ++completed;
  }
  void forget(uint64_t rid) {
    policy->remove_request(rid);
    queued_of.erase(rid);
    held_releases.erase(rid);  // forget frees every kept sequence of the request
    std::erase_if(inflight, [&](const auto& kv) {
      if (kv.second.first != rid) return false;
      inflight_tokens -= kv.second.second;
      return true;
    });
  }
  // Sends queued jobs while they fit; at least one job runs whatever its
  // size (jobs bigger than the whole grant were rejected on arrival).
  // A head job bigger than the whole grant (queued before the grant came)
  // goes to `reject`.
  void dispatch(Mailbox& box, const std::function<void(const QueuedJob&)>& reject) {
    if (capacity < 0) return;
    for (;;) {
      int64_t room = inflight.empty() ? capacity : capacity - inflight_tokens;
      auto j = policy->pop(room);
      if (!j && inflight.empty() && policy->size() > 0) {
        j = policy->pop(INT64_MAX);
        ++rejected;
        reject(*j);
        left_queue(box, j->rid);
        continue;
      }
      if (!j) return;
      inflight[j->job_id] = {j->rid, j->cost_tokens};
      inflight_tokens += j->cost_tokens;
      box.send(peer, j->bytes);
      ++dispatched;
      left_queue(box, j->rid);
    }
  }
  msg::MapWriter stats() const {
    msg::MapWriter w;
    w.put("policy", policy->name()).put("queued", uint64_t(policy->size())).put("inflight", uint64_t(inflight.size()));
    w.put("inflight_tokens", inflight_tokens).put("capacity_tokens", capacity);
    w.put("dispatched", dispatched).put("completed", completed).put("rejected", rejected);
    return w;
  }
};

// Upper bound of the PRM tokens of a scoring job: byte-level BPE gives at
// most one token per byte, plus the template and one tag per step.
int64_t score_cost(const msg::ScoreJob& j) {
  int64_t bytes = (int64_t)j.problem.size();
  for (const auto& s : j.steps) bytes += (int64_t)s.size() + 1;
  return bytes + 256;
}

}  // namespace

Status run_scheduler(zmq::context_t& ctx, ActorPipe& pipe, const SchedulerOptions& o) {
  auto gp = make_scheduling_policy(o.policy);
  if (!gp) return gp.error();
  auto sp = make_scheduling_policy(o.policy);
  if (!sp) return sp.error();
  auto mb = Mailbox::open(ctx, o.inbox, o.peers);
  if (!mb) return mb.error();
  Mailbox& box = *mb;
  pipe.ready();

  Lane gen{.peer = "generator", .policy = std::move(*gp)}, ver{.peer = "verifier", .policy = std::move(*sp)};
  auto reject_gen = [&](const QueuedJob& q) {
    auto env = msg::open(q.bytes);
    auto j = env ? msg::decode<msg::GenJob>(*env) : Expected<msg::GenJob>(make_error("undecodable"));
    msg::GenDone d;
    d.job_id = q.job_id, d.rid = q.rid, d.beam = j ? j->beam : 0, d.finish = "error", d.code = msg::code::kTooLarge;
    d.error = "the job needs up to " + std::to_string(q.cost_tokens) + " tokens of KV cache but the generator holds " +
              std::to_string(gen.capacity) + "; shorten the problem or the token limits, or raise memory.budget_mb";
    box.post("beam_manager", d);
  };
  auto reject_score = [&](const QueuedJob& q) {
    msg::ScoreDone d;
    d.job_id = q.job_id, d.rid = q.rid, d.code = msg::code::kTooLarge;
    d.error = "the scoring job does not fit the verifier's KV cache; shorten the problem or raise memory.budget_mb";
    box.post("beam_manager", d);
  };
  PollSet poll(pipe, {&box.inbox()});
  while (poll.wait(std::chrono::milliseconds(-1))) {
    while (auto bytes = box.try_recv()) {
      auto env = msg::open(*bytes);
      if (!env) {
        o.log->warn("dropped a message: {}", env.error().message);
        continue;
      }
      const std::string& t = env->type;
      if (t == msg::GenJob::kType) {
        auto j = msg::decode<msg::GenJob>(*env);
        if (!j) { o.log->warn("{}", j.error().message); continue; }
        if (j->speculative) {
          // Speculation takes no room from real work: the generator runs it
          // only in what real work leaves, and stops it when real work waits.
          gen.inflight[j->job_id] = {j->rid, 0};
          box.send("generator", *bytes);
          continue;
        }
        int64_t cost = (int64_t)j->tokens.size() + j->max_tokens;  // max_tokens covers the prefix
        QueuedJob q{j->job_id, j->rid, j->priority, cost, std::move(j->tokens), std::move(*bytes)};
        if (gen.capacity >= 0 && cost > gen.capacity) {
          ++gen.rejected;
          reject_gen(q);
          continue;
        }
        gen.push(std::move(q));
        gen.dispatch(box, reject_gen);
      } else if (t == msg::ScoreJob::kType) {
        auto j = msg::decode<msg::ScoreJob>(*env);
        if (!j) { o.log->warn("{}", j.error().message); continue; }
        int64_t cost = score_cost(*j);
        if (ver.capacity >= 0 && cost > ver.capacity) {
          // The bound is loose; let the verifier decide on the exact count.
          cost = ver.capacity;
        }
        ver.push({j->job_id, j->rid, 0, cost, {}, std::move(*bytes)});
        ver.dispatch(box, reject_score);
      } else if (t == msg::GenDone::kType) {
        auto d = msg::decode<msg::GenDone>(*env);
        if (d) gen.done(d->job_id);
        box.send("beam_manager", *bytes);
        gen.dispatch(box, reject_gen);
      } else if (t == msg::ScoreDone::kType) {
        auto d = msg::decode<msg::ScoreDone>(*env);
        if (d) ver.done(d->job_id);
        box.send("beam_manager", *bytes);
        ver.dispatch(box, reject_score);
      } else if (t == msg::StopJobs::kType) {
        box.send("generator", *bytes);
      } else if (t == msg::ReleaseKv::kType) {
        auto r = msg::decode<msg::ReleaseKv>(*env);
        if (!r) continue;
        gen.release_kv(box, r->rid, *bytes);
        ver.release_kv(box, r->rid, *bytes);
      } else if (t == msg::GenProgress::kType) {
        box.send("beam_manager", *bytes);
      } else if (t == msg::Forget::kType) {
        auto f = msg::decode<msg::Forget>(*env);
        if (!f) continue;
        gen.forget(f->rid);
        ver.forget(f->rid);
        box.send("generator", *bytes);
        box.send("verifier", *bytes);
        gen.dispatch(box, reject_gen);
        ver.dispatch(box, reject_score);
      } else if (t == msg::Grant::kType) {
        auto g = msg::decode<msg::Grant>(*env);
        if (!g) continue;
        if (g->role == "generator") {
          gen.capacity = g->kv_tokens;
          gen.dispatch(box, reject_gen);
        } else {
          ver.capacity = g->kv_tokens;
          ver.dispatch(box, reject_score);
        }
      } else if (t == msg::StatsQuery::kType) {
        auto q = msg::decode<msg::StatsQuery>(*env);
        if (!q) continue;
        msg::MapWriter st;
        st.put("generator", gen.stats()).put("verifier", ver.stats());
        box.post("intake", msg::StatsReply{q->qid, "scheduler", st.bytes()});
      } else {
        o.log->warn("ignored a '{}' message", t);
      }
    }
  }
  return Status::success();
}

}  // namespace flashtts
