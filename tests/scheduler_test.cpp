// The scheduler and the memory arbiter, through their messages: FIFO order,
// admission against the KV grant, immediate failure of jobs that can never
// fit, forget; admission by request (actors/request_gate.h, alone and through
// the scheduler's messages); the arbiter's static split and its failure on a
// budget that cannot hold the weights.
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "actors/memory_arbiter.h"
#include "actors/request_gate.h"
#include "actors/scheduler.h"
#include "messages/internal.h"
#include "runtime/base/mailbox.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

using test::Peers;

msg::GenJob job(uint64_t id, uint64_t rid, int n_context, int max_tokens) {
  msg::GenJob j;
  j.job_id = id, j.rid = rid, j.tokens.assign(n_context, 1), j.max_tokens = max_tokens;
  return j;
}

TEST(Scheduler, DispatchesInArrivalOrderOnlyWhatFitsTheGrant) {
  zmq::context_t ctx;
  Peers p(ctx, "sched1", {"beam_manager", "generator", "verifier", "intake"});
  LogSink logs(spdlog::level::off);
  SchedulerOptions o{"inproc://sched1", p.endpoints, "fifo", logs.make("scheduler")};
  auto a = Actor::start(ctx, "scheduler", [o](auto& c, auto& pipe) { return run_scheduler(c, pipe, o); });
  ASSERT_TRUE(a.ok());
  zmq::socket_t to(ctx, zmq::socket_type::push);
  to.set(zmq::sockopt::linger, 0);
  to.connect("inproc://sched1");
  auto post = [&](const auto& m) { to.send(zmq::buffer(msg::encode(m))); };

  post(job(1, 1, 30, 10));  // before the grant: held
  EXPECT_FALSE(p.next<msg::GenJob>("generator", 200ms));
  post(msg::Grant{"generator", 1 << 20, 100});
  EXPECT_EQ(p.next<msg::GenJob>("generator")->job_id, 1u);  // 40 of 100 tokens
  post(job(2, 1, 30, 10));
  EXPECT_EQ(p.next<msg::GenJob>("generator")->job_id, 2u);  // 80 of 100
  post(job(3, 2, 30, 10));
  EXPECT_FALSE(p.next<msg::GenJob>("generator", 200ms));    // would be 120
  post(job(4, 3, 5, 5));
  EXPECT_FALSE(p.next<msg::GenJob>("generator", 200ms));    // FIFO: no overtaking

  msg::GenDone d;
  d.job_id = 1, d.rid = 1, d.finish = "eos";
  post(d);
  EXPECT_EQ(p.next<msg::GenDone>("beam_manager")->job_id, 1u);  // forwarded
  EXPECT_EQ(p.next<msg::GenJob>("generator")->job_id, 3u);
  EXPECT_EQ(p.next<msg::GenJob>("generator")->job_id, 4u);

  post(job(5, 4, 150, 10));  // can never fit
  auto fail = p.next<msg::GenDone>("beam_manager");
  ASSERT_TRUE(fail);
  EXPECT_EQ(fail->job_id, 5u);
  EXPECT_EQ(fail->finish, "error");
  EXPECT_NE(fail->error.find("160 tokens"), std::string::npos) << fail->error;
  EXPECT_EQ(fail->code, "too_large");  // the request's size, not a fault of the engine

  post(job(6, 9, 50, 10));  // queued behind the others
  post(msg::Forget{9});
  EXPECT_EQ(p.next<msg::Forget>("generator")->rid, 9u);
  EXPECT_EQ(p.next<msg::Forget>("verifier")->rid, 9u);
  d.job_id = 2, d.rid = 1;
  post(d);
  d.job_id = 3, d.rid = 2;
  post(d);
  EXPECT_FALSE(p.next<msg::GenJob>("generator", 200ms));  // job 6 was forgotten
  EXPECT_TRUE((*a)->stop(2s));
}

// A context written as blocks: one character per block of 16 equal tokens.
msg::GenJob blocks_job(uint64_t id, uint64_t rid, std::string_view blocks, int max_tokens, int32_t priority = 0) {
  msg::GenJob j;
  j.job_id = id, j.rid = rid, j.max_tokens = max_tokens, j.priority = priority;
  for (char c : blocks) j.tokens.insert(j.tokens.end(), 16, (int32_t)c);
  return j;
}

struct SchedulerRun {
  zmq::context_t ctx;
  Peers p;
  LogSink logs{spdlog::level::off};
  std::optional<std::unique_ptr<Actor>> a;
  zmq::socket_t to{ctx, zmq::socket_type::push};
  SchedulerRun(const std::string& tag, const std::string& policy, int32_t window,
               std::vector<std::string> peers = {"beam_manager", "generator", "verifier", "intake"},
               const std::function<void(SchedulerOptions&)>& set = {})
      : p(ctx, tag, std::move(peers)) {
    SchedulerOptions o{"inproc://" + tag, p.endpoints, policy, logs.make("scheduler")};
    o.window = window;
    if (set) set(o);
    auto s = Actor::start(ctx, "scheduler", [o](auto& c, auto& pipe) { return run_scheduler(c, pipe, o); });
    EXPECT_TRUE(s.ok());
    a.emplace(std::move(*s));
    to.set(zmq::sockopt::linger, 0);
    to.connect("inproc://" + tag);
  }
  ~SchedulerRun() { EXPECT_TRUE((*a)->stop(2s)); }
  template <class M>
  void post(const M& m) { to.send(zmq::buffer(msg::encode(m))); }
  void done(uint64_t job_id) {
    msg::GenDone d;
    d.job_id = job_id, d.rid = 1, d.finish = "eos";
    post(d);
  }
  // The ids the generator receives until it is quiet for 200 ms.
  std::vector<uint64_t> sent() {
    std::vector<uint64_t> ids;
    while (auto j = p.next<msg::GenJob>("generator", 200ms)) ids.push_back(j->job_id);
    return ids;
  }
};

TEST(Scheduler, UnderPrefixJobsThatArriveTogetherGoOutInThePrefixOrder) {
  SchedulerRun s("sched-prefix1", "prefix", 0);
  // One burst (before the grant): two parents' children, interleaved.
  s.post(blocks_job(1, 1, "pab", 8, 5));
  s.post(blocks_job(2, 1, "pcd", 8, 9));
  s.post(blocks_job(3, 1, "pae", 8, 5));
  s.post(blocks_job(4, 1, "pcf", 8, 9));
  s.post(msg::Grant{"generator", 1 << 20, 100000});
  // The better parent's children first, each parent's together.
  EXPECT_EQ(s.sent(), (std::vector<uint64_t>{2, 4, 1, 3}));

  // FIFO keeps the arrival order.
  SchedulerRun f("sched-fifo1", "fifo", 0);
  for (auto j : {blocks_job(1, 1, "pab", 8, 5), blocks_job(2, 1, "pcd", 8, 9), blocks_job(3, 1, "pae", 8, 5)}) f.post(j);
  f.post(msg::Grant{"generator", 1 << 20, 100000});
  EXPECT_EQ(f.sent(), (std::vector<uint64_t>{1, 2, 3}));
}

TEST(Scheduler, UnderPrefixAWindowOfJobsIsOutAndTheRestWaitInOrder) {
  SchedulerRun s("sched-prefix2", "prefix", 2);
  s.post(blocks_job(1, 1, "pab", 8));
  s.post(blocks_job(2, 1, "qcd", 8));
  s.post(blocks_job(3, 1, "pae", 8));
  s.post(blocks_job(4, 1, "qcf", 8));
  s.post(msg::Grant{"generator", 1 << 20, 100000});
  EXPECT_EQ(s.sent(), (std::vector<uint64_t>{1, 3}));  // the window is full
  s.done(3);
  EXPECT_EQ(s.sent(), (std::vector<uint64_t>{2}));  // nothing queued shares with 3: the oldest
  s.done(1);
  EXPECT_EQ(s.sent(), (std::vector<uint64_t>{4}));  // 2's sibling
}

TEST(Scheduler, UnderPrefixSharedBlocksAreCountedOnceSoMoreWorkIsAdmitted) {
  // Jobs of 4 blocks (64 tokens) + 10 new, sharing 3 blocks: FIFO counts
  // 74 each, so only one fits 110 tokens; prefix counts the second at 26.
  for (const char* policy : {"fifo", "prefix"}) {
    SCOPED_TRACE(policy);
    SchedulerRun s(std::string("sched-cost-") + policy, policy, 0);
    s.post(msg::Grant{"generator", 1 << 20, 110});
    s.post(blocks_job(1, 1, "pppa", 10));
    s.post(blocks_job(2, 1, "pppb", 10));
    EXPECT_EQ(s.sent().size(), std::string(policy) == "fifo" ? 1u : 2u);
  }
}

// The generator ends a sequence at the model's last position, so a job
// with a max_tokens past it reserves only up to the positions the grant
// names: admitted, not rejected as too large.
TEST(Scheduler, AJobReservesNoMoreThanTheModelsPositions) {
  SchedulerRun s("sched_pos", "fifo", 0);
  msg::Grant g{"generator", 1 << 20, 100};
  g.max_position = 64;
  s.post(g);
  s.post(job(1, 1, 30, 4000));  // 30 + 4000 tokens asked, 64 at most held
  s.post(job(2, 1, 30, 4000));  // 64 + 64 > 100: waits
  EXPECT_EQ(s.sent(), std::vector<uint64_t>({1}));
  EXPECT_FALSE(s.p.next<msg::GenDone>("beam_manager", 100ms)) << "nothing is rejected";
  s.done(1);
  EXPECT_EQ(s.p.next<msg::GenDone>("beam_manager")->job_id, 1u);
  EXPECT_EQ(s.sent(), std::vector<uint64_t>({2}));
  // Without the model's positions all of max_tokens counts: too large.
  g.max_position = 0;
  s.post(g);
  s.post(job(3, 2, 30, 4000));
  auto fail = s.p.next<msg::GenDone>("beam_manager");
  ASSERT_TRUE(fail);
  EXPECT_EQ(fail->job_id, 3u);
  EXPECT_EQ(fail->code, "too_large");
  EXPECT_NE(fail->error.find("4030 tokens"), std::string::npos) << fail->error;
}

// policies.scheduling_reserve: of the tokens a job may write, only the
// reserved share counts while it is out, so more jobs go out at once; a job
// that could never fit in all is still refused at once, with its whole size.
TEST(Scheduler, OnlyTheReservedShareOfWhatAJobMayWriteCounts) {
  SchedulerRun s("sched_res", "fifo", 0, {"beam_manager", "generator", "verifier", "intake"},
                 [](SchedulerOptions& o) { o.reserve = 0.25; });
  s.post(msg::Grant{"generator", 1 << 20, 190});
  for (uint64_t id = 1; id <= 4; ++id) s.post(job(id, 1, 30, 40));  // 30 + 10 of 40 each: 160 of 190
  EXPECT_EQ(s.sent(), (std::vector<uint64_t>{1, 2, 3, 4}));
  s.post(job(5, 1, 30, 40));
  EXPECT_TRUE(s.sent().empty());  // 200 > 190 (all of it: 280)
  s.post(job(6, 2, 100, 150));    // 100 + 38 counted, but 250 in all: never fits
  auto fail = s.p.next<msg::GenDone>("beam_manager");
  ASSERT_TRUE(fail);
  EXPECT_EQ(fail->job_id, 6u);
  EXPECT_NE(fail->error.find("250 tokens"), std::string::npos) << fail->error;
}

// Under an elastic split the memory arbiter hears each model's jobs, the
// beams of the requests in flight (each request's most jobs open at once,
// so beams that wait at their iteration's barrier count), and what the
// scheduler's admission counts for the jobs out.
// The scheduler sees a scoring job's text, not its PRM tokens: it counts a
// job at its bytes (a bound) until scored jobs tell it the PRM tokens per
// byte, and then counts it at that rate, so a tight verifier grant lets out
// as many jobs as it holds instead of one at a time.
TEST(Scheduler, ScoringJobsAreCountedAtThePrmTokensPerByteMeasured) {
  SchedulerRun s("sched_rate", "fifo", 0);
  s.post(msg::Grant{"verifier", 1 << 20, 12000});
  auto score = [](uint64_t id, uint64_t rid) {
    msg::ScoreJob j;
    j.job_id = id, j.rid = rid, j.problem = std::string(3000, 'p') + std::to_string(rid);
    j.steps = {std::string(2000, 's') + std::to_string(id)};
    return j;
  };
  auto scored = [&]() {
    std::vector<uint64_t> ids;
    while (auto j = s.p.next<msg::ScoreJob>("verifier", 200ms)) ids.push_back(j->job_id);
    return ids;
  };
  auto finish = [&](uint64_t id, uint64_t rid, int32_t n_tokens) {
    msg::ScoreDone d;
    d.job_id = id, d.rid = rid, d.scores = {0.5f}, d.n_tokens = n_tokens;
    s.post(d);
    EXPECT_TRUE(s.p.next<msg::ScoreDone>("beam_manager"));  // forwarded
  };
  // About 5,260 bytes each (the template counted as 256): two of 12,000.
  for (uint64_t id = 1; id <= 4; ++id) s.post(score(id, id));
  EXPECT_EQ(scored(), (std::vector<uint64_t>{1, 2}));
  finish(1, 1, 1300);  // a quarter of their bytes: enough bytes measured after four
  finish(2, 2, 1300);
  EXPECT_EQ(scored(), (std::vector<uint64_t>{3, 4}));
  finish(3, 3, 1300);
  finish(4, 4, 1300);
  // Now about 1,300 tokens each: nine of 12,000.
  for (uint64_t id = 5; id <= 16; ++id) s.post(score(id, id));
  EXPECT_EQ(scored().size(), 9u);
}

TEST(Scheduler, TellsTheArbiterOfBeamsWaitingAtTheirBarrierAndWhatAdmissionCounts) {
  SchedulerRun s("sched_load", "fifo", 0, {"beam_manager", "generator", "verifier", "intake", "memory_arbiter"});
  s.post(msg::Grant{"generator", 1 << 20, 1000, 2 << 20, 2000});
  s.post(msg::Grant{"verifier", 1 << 20, 1000, 2 << 20, 2000});
  for (uint64_t id = 1; id <= 4; ++id) s.post(job(id, 1, 30, 10));  // request 1: 4 beams
  s.post(job(5, 2, 50, 10));                                          // request 2: 2 beams
  s.post(job(6, 2, 50, 10));
  EXPECT_EQ(s.sent().size(), 6u);
  for (uint64_t id = 1; id <= 4; ++id) s.done(id);  // request 1 waits at its barrier
  auto load_where = [&](const std::function<bool(const msg::QueueLoad&)>& want) {
    std::optional<msg::QueueLoad> q;
    for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;)
      if ((q = s.p.next<msg::QueueLoad>("memory_arbiter", 500ms)) && want(*q)) return q;
    return std::optional<msg::QueueLoad>();
  };
  auto q = load_where([](const msg::QueueLoad& q) { return q.gen_jobs == 2; });
  ASSERT_TRUE(q.has_value()) << "no queue_load with request 1's jobs done";
  EXPECT_EQ(q->live_jobs, 6);
  EXPECT_EQ(q->gen_out_jobs, 2);
  EXPECT_EQ(q->gen_out_tokens, 2 * (50 + 10));  // fifo: the whole context and max_tokens
  EXPECT_EQ(q->score_out_jobs, 0);
  // A request that ends leaves the count.
  s.post(msg::Forget{1});
  q = load_where([](const msg::QueueLoad& q) { return q.live_jobs == 2; });
  EXPECT_TRUE(q.has_value()) << "request 1's beams still counted after its forget";
}

// --- Admission by request (policies.request_admission = "fit") ---

// A queue entry of chunks of 16 tokens, keyed by character.
QueuedJob gate_job(uint64_t id, uint64_t rid, std::string_view chunks) {
  QueuedJob q{id, rid, 0, {}, 0, 0, {}};
  for (char c : chunks) q.chunks.push_back({(uint64_t)c, 16});
  return q;
}

// Enters jobs of a request of `beams` jobs at once (0: unknown) the way the
// scheduler does; returns whether they went straight to a lane.
bool gate_enter(RequestGate& g, std::vector<QueuedJob> jobs, int32_t beams = 0) {
  bool open = true;
  for (QueuedJob& q : jobs) {
    const int64_t ctx = (int64_t)q.chunks.size() * 16 + 8;  // 8 tokens past the last chunk
    if (g.open_for(q.rid, beams)) g.opened(RequestGate::kGen, q, ctx);
    else open = false, g.hold(q.rid, {RequestGate::kGen, std::move(q), ctx});
  }
  return open;
}

// Admits what fits and opens the released jobs in their lane; returns their ids.
std::vector<uint64_t> gate_admit(RequestGate& g, int64_t gen_capacity, int64_t ver_capacity = -1) {
  std::vector<uint64_t> ids;
  for (RequestGate::Job& j : g.admit({gen_capacity, ver_capacity})) {
    g.opened(j.lane, j.job, j.ctx_tokens);
    ids.push_back(j.job.job_id);
  }
  return ids;
}

TEST(RequestGate, AllAdmitsEveryRequestAtOnceAndLearnsNothing) {
  RequestGate g(false);
  EXPECT_TRUE(gate_enter(g, {gate_job(1, 1, "pa"), gate_job(2, 1, "pb")}));
  EXPECT_TRUE(gate_enter(g, {gate_job(3, 2, "pa")}));
  EXPECT_TRUE(gate_admit(g, 1).empty());
  g.forget(1, true);
  EXPECT_LT(g.per_beam(RequestGate::kGen, RequestGate::kGen), 0);
}

// The footprint is the most KV the contexts of the request's latest `beams`
// jobs held together, a shared chunk once and a chunk's content at another
// position apart; the estimate is that per beam.
TEST(RequestGate, ARequestsFootprintIsItsLatestBeamsContextsSharedPrefixesOnce) {
  RequestGate g(true);
  EXPECT_FALSE(gate_enter(g, {gate_job(1, 1, "pa"), gate_job(2, 1, "pb")}, 2));  // pending until admit
  EXPECT_EQ(gate_admit(g, 1000), (std::vector<uint64_t>{1, 2}));
  // p, a, b: 48 tokens, and 8 past the chunks of each: 64.
  // The next iteration: "pap" holds p at a second position (its own KV) and
  // takes the place of the oldest, "pa": p, b, a, p' and two tails, 80.
  EXPECT_TRUE(gate_enter(g, {gate_job(3, 1, "pap")}, 2));
  // "pab" takes the place of "pb": p, a, p', b, 80 again.
  EXPECT_TRUE(gate_enter(g, {gate_job(4, 1, "pab")}, 2));
  g.forget(1, true);
  EXPECT_DOUBLE_EQ(g.per_beam(RequestGate::kGen, RequestGate::kGen), 80.0 / 2);
  EXPECT_DOUBLE_EQ(g.per_beam(RequestGate::kGen, RequestGate::kVer), 0.0);
}

// A scoring input's tail is its template, the same for every beam: once.
TEST(RequestGate, AScoringFootprintCountsTheTemplateOnce) {
  RequestGate g(true);
  for (uint64_t id : {1, 2}) {
    QueuedJob q = gate_job(id, 1, id == 1 ? "pa" : "pb");
    ASSERT_FALSE(g.open_for(1, 2));
    g.hold(1, {RequestGate::kVer, std::move(q), 32 + 100});  // 2 chunks and a template of 100
  }
  for (RequestGate::Job& j : g.admit({-1, -1})) g.opened(j.lane, j.job, j.ctx_tokens);
  g.forget(1, true);
  EXPECT_DOUBLE_EQ(g.per_beam(RequestGate::kVer, RequestGate::kVer), (48.0 + 100) / 2);  // p, a, b, the template
  EXPECT_DOUBLE_EQ(g.per_beam(RequestGate::kVer, RequestGate::kGen), 0.0);
}

TEST(RequestGate, ARequestWaitsWholeInArrivalOrderUntilItFitsBesideThoseAdmitted) {
  RequestGate g(true);
  // Nothing learned yet: every request is admitted.
  EXPECT_FALSE(gate_enter(g, {gate_job(1, 1, "pa"), gate_job(2, 1, "pb")}));
  EXPECT_FALSE(gate_enter(g, {gate_job(3, 2, "q")}));
  EXPECT_EQ(gate_admit(g, 10), (std::vector<uint64_t>{1, 2, 3}));
  g.forget(1, true);  // 64 tokens over 2 first jobs: 32 a job
  g.forget(2, true);  // 24 over 1: the estimate moves 30% of the way, to 29.6
  EXPECT_NEAR(g.per_beam(RequestGate::kGen, RequestGate::kGen), 29.6, 1e-9);

  // Requests 3 (2 jobs: 60 tokens by the estimate) and 4 (3 beams: 89): not
  // even half of 4 fits what 3 leaves of 100.
  EXPECT_FALSE(gate_enter(g, {gate_job(10, 3, "xa"), gate_job(11, 3, "xb")}));
  EXPECT_FALSE(gate_enter(g, {gate_job(20, 4, "ya"), gate_job(21, 4, "yb")}, 3));  // a third beam to come
  EXPECT_EQ(gate_admit(g, 100), (std::vector<uint64_t>{10, 11}));
  EXPECT_EQ(g.pending(), 1u);
  // A small request behind the waiting one does not overtake it.
  EXPECT_FALSE(gate_enter(g, {gate_job(30, 5, "z")}));
  EXPECT_TRUE(gate_admit(g, 100).empty());
  EXPECT_FALSE(gate_enter(g, {gate_job(22, 4, "yc")}, 3));  // a later job of a waiting request waits too
  // Request 3's footprint stays counted until it ends.
  EXPECT_TRUE(gate_admit(g, 100).empty());
  g.forget(3, true);
  // Request 5 (30, half of it 15) now waits on request 4, counted at its
  // estimate (89) before its jobs open.
  EXPECT_EQ(gate_admit(g, 100), (std::vector<uint64_t>{20, 21, 22}));
  EXPECT_EQ(g.pending(), 1u);
  EXPECT_EQ(g.held_total(), 2u);
  // Cancelling a waiting request drops its jobs; a running one's part of
  // its work teaches nothing; an unknown pool (-1) holds no one.
  const double before = g.per_beam(RequestGate::kGen, RequestGate::kGen);
  g.forget(5, false);
  EXPECT_EQ(g.pending(), 0u);
  g.forget(4, false);
  EXPECT_DOUBLE_EQ(g.per_beam(RequestGate::kGen, RequestGate::kGen), before);
  EXPECT_FALSE(gate_enter(g, {gate_job(40, 6, "w")}));
  EXPECT_EQ(gate_admit(g, -1), (std::vector<uint64_t>{40}));
}

// The estimate is good to a few tens of percent: a request half of whose
// footprint fits in what the others leave goes in.
TEST(RequestGate, ARequestHalfOfWhichFitsIsAdmitted) {
  RequestGate g(true);
  gate_enter(g, {gate_job(1, 1, "pa")});
  gate_admit(g, 1000);
  g.forget(1, true);  // 40 tokens a beam
  EXPECT_FALSE(gate_enter(g, {gate_job(10, 2, "qa"), gate_job(11, 2, "qb")}, 2));  // 80
  EXPECT_FALSE(gate_enter(g, {gate_job(20, 3, "ra"), gate_job(21, 3, "rb")}, 2));  // 80, half 40
  EXPECT_FALSE(gate_enter(g, {gate_job(30, 4, "sa"), gate_job(31, 4, "sb")}, 2));
  EXPECT_EQ(gate_admit(g, 120), (std::vector<uint64_t>{10, 11, 20, 21}));  // 80 + 40 <= 120; then 160 + 40 > 120
  EXPECT_EQ(g.pending(), 1u);
}

// A request's footprint grows with its search: once the admitted one is
// more than half through (its finished jobs against the jobs per beam the
// completed requests ran), the next needs room only for the part it will
// hold when that one ends. Without request_beams nothing tells progress.
TEST(RequestGate, ARequestFarEnoughThroughLeavesRoomForWhatTheNextHoldsWhenItEnds) {
  RequestGate g(true);
  EXPECT_FALSE(gate_enter(g, {gate_job(1, 1, "pa"), gate_job(2, 1, "pb")}, 2));
  gate_admit(g, 1000);
  for (int i = 0; i < 4; ++i) g.finished(1, RequestGate::kGen);
  g.forget(1, true);  // 32 tokens and 2 jobs a beam
  EXPECT_DOUBLE_EQ(g.jobs_per_beam(RequestGate::kGen), 2.0);
  EXPECT_FALSE(gate_enter(g, {gate_job(10, 2, "qa"), gate_job(11, 2, "qb")}, 2));  // 64
  EXPECT_EQ(gate_admit(g, 90).size(), 2u);
  EXPECT_FALSE(gate_enter(g, {gate_job(20, 3, "ra"), gate_job(21, 3, "rb")}, 2));  // 64, half 32
  EXPECT_TRUE(gate_admit(g, 90).empty());  // 64 + 32 > 90
  g.finished(2, RequestGate::kGen), g.finished(2, RequestGate::kGen);
  g.finished(2, RequestGate::kVer);  // another lane's jobs do not count
  EXPECT_TRUE(gate_admit(g, 90).empty()) << "half through: still half";
  g.finished(2, RequestGate::kGen);
  EXPECT_EQ(gate_admit(g, 90), (std::vector<uint64_t>{20, 21})) << "3/4 through: 64 + 16 <= 90";

  RequestGate unknown(true);
  gate_enter(unknown, {gate_job(1, 1, "pa"), gate_job(2, 1, "pb")});
  gate_admit(unknown, 1000);
  for (int i = 0; i < 4; ++i) unknown.finished(1, RequestGate::kGen);
  unknown.forget(1, true);
  EXPECT_LT(unknown.jobs_per_beam(RequestGate::kGen), 0);
}

TEST(RequestGate, OneRequestAloneIsAdmittedHoweverLarge) {
  RequestGate g(true);
  gate_enter(g, {gate_job(1, 1, "pa")});
  gate_admit(g, 1000);
  g.forget(1, true);  // 40 tokens a beam
  std::vector<QueuedJob> big;
  for (uint64_t id = 10; id < 20; ++id) big.push_back(gate_job(id, 2, "qa"));
  gate_enter(g, std::move(big));
  EXPECT_EQ(gate_admit(g, 100).size(), 10u);  // 10 x 40 > 100, but nothing else runs
}

// Through the scheduler's messages: under "fit" a request whose footprint
// would not fit beside the running one waits whole until that one is far
// enough through that the part it will hold when that one ends fits; under
// "all" its jobs go out as soon as the grant holds them.
TEST(Scheduler, UnderFitARequestWaitsWholeUntilTheOneBeforeItIsFarEnoughThrough) {
  for (const char* admission : {"all", "fit"}) {
    SCOPED_TRACE(admission);
    const bool fit = std::string(admission) == "fit";
    SchedulerRun s(std::string("sched-gate-") + admission, "fifo", 0,
                   {"beam_manager", "generator", "verifier", "intake"},
                   [&](SchedulerOptions& o) { o.request_admission = admission; });
    s.post(msg::Grant{"generator", 1 << 20, 180});
    auto beams = [](msg::GenJob j, int32_t n) {
      j.request_beams = n;
      return j;
    };
    // Request 1 teaches the estimate: p, a, b = 48 tokens over 2 beams, and
    // one job per beam.
    s.post(beams(blocks_job(1, 1, "pa", 8), 2));
    s.post(beams(blocks_job(2, 1, "pb", 8), 2));
    EXPECT_EQ(s.sent(), (std::vector<uint64_t>{1, 2}));
    s.done(1), s.done(2);
    auto forget = [&](uint64_t rid) {
      s.post(msg::Forget{rid, true});
      EXPECT_TRUE(s.p.next<msg::Forget>("generator"));
      EXPECT_TRUE(s.p.next<msg::Forget>("verifier"));
    };
    forget(1);
    // Requests 2 (4 beams: 96 tokens by the estimate, 112 as its jobs hold
    // them) and 3 (8 beams: 192, of which half, 96, does not fit the 68
    // request 2 leaves of 180).
    for (uint64_t id = 10; id < 14; ++id)
      s.post(beams(blocks_job(id, 2, std::string("q") + char('a' + id - 10), 8), 4));
    for (uint64_t id = 20; id < 24; ++id)
      s.post(beams(blocks_job(id, 3, std::string("r") + char('a' + id - 20), 8), 8));
    EXPECT_EQ(s.sent(), (std::vector<uint64_t>{10, 11, 12, 13}));  // 4 x 40 of 180 tokens
    s.done(10), s.done(11);
    if (fit) {
      EXPECT_TRUE(s.sent().empty());  // request 2 is half through
      s.post(msg::StatsQuery{7});
      auto st = s.p.next<msg::StatsReply>("intake");
      ASSERT_TRUE(st);
      auto m = msg::MapReader::parse(st->stats);
      ASSERT_TRUE(m);
      uint64_t waiting = 0;
      EXPECT_TRUE(m->get("requests_waiting", &waiting).ok());
      EXPECT_EQ(waiting, 1u);
    }
    // Three quarters through, request 2 ends before request 3 holds more
    // than a quarter of its footprint (48 tokens), which fits; its jobs go
    // out as the grant holds them (job 13 is still out).
    s.done(12);
    EXPECT_EQ(s.sent(), (std::vector<uint64_t>{20, 21, 22}));
    s.done(13);
    EXPECT_EQ(s.sent(), (std::vector<uint64_t>{23}));
    if (fit) forget(2);
  }
}

TEST(MemoryArbiter, SplitsWhatTheWeightsLeaveAndGrantsBothModels) {
  zmq::context_t ctx;
  Peers p(ctx, "arb1", {"generator", "verifier", "scheduler", "intake"});
  LogSink logs(spdlog::level::off);
  MemoryArbiterOptions o{"inproc://arb1", p.endpoints, 1000 * 1024, 0.75, "static", logs.make("memory_arbiter")};
  auto a = Actor::start(ctx, "memory_arbiter", [o](auto& c, auto& pipe) { return run_memory_arbiter(c, pipe, o); });
  ASSERT_TRUE(a.ok());
  zmq::socket_t to(ctx, zmq::socket_type::push);
  to.set(zmq::sockopt::linger, 0);
  to.connect("inproc://arb1");
  // A starting arbiter asks the models already loaded to announce themselves.
  EXPECT_TRUE(p.next<msg::WeightsQuery>("generator"));
  EXPECT_TRUE(p.next<msg::WeightsQuery>("verifier"));
  to.send(zmq::buffer(msg::encode(msg::Weights{"generator", 400 * 1024, 1024, 16})));
  EXPECT_FALSE(p.next<msg::Grant>("generator", 200ms));  // waits for both
  to.send(zmq::buffer(msg::encode(msg::Weights{"verifier", 200 * 1024, 512, 16})));
  auto g = p.next<msg::Grant>("generator"), v = p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g && v);
  EXPECT_EQ(g->kv_bytes, 300 * 1024);  // 0.75 of the 400 KiB left
  EXPECT_EQ(v->kv_bytes, 100 * 1024);
  EXPECT_EQ(g->kv_tokens, 288);        // 300 tokens, whole 16-token blocks
  EXPECT_EQ(v->kv_tokens, 192);        // 200 tokens -> 12 blocks
  EXPECT_TRUE(p.next<msg::Grant>("scheduler"));
  EXPECT_TRUE(p.next<msg::Grant>("scheduler"));
  // A new verifier process announces itself: it gets the same share again.
  to.send(zmq::buffer(msg::encode(msg::Weights{"verifier", 200 * 1024, 512, 16})));
  v = p.next<msg::Grant>("verifier");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->kv_bytes, 100 * 1024);
  auto s = p.next<msg::Grant>("scheduler");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->role, "verifier");
  EXPECT_FALSE(p.next<msg::Grant>("generator", 100ms));  // the generator's pool is left alone
  EXPECT_TRUE((*a)->stop(2s));
}

TEST(MemoryArbiter, ABudgetSmallerThanTheWeightsFailsTheActorWithTheNumbers) {
  zmq::context_t ctx;
  Peers p(ctx, "arb2", {"generator", "verifier", "scheduler", "intake"});
  LogSink logs(spdlog::level::off);
  MemoryArbiterOptions o{"inproc://arb2", p.endpoints, 1 << 20, 0.75, "static", logs.make("memory_arbiter")};
  auto a = Actor::start(ctx, "memory_arbiter", [o](auto& c, auto& pipe) { return run_memory_arbiter(c, pipe, o); });
  ASSERT_TRUE(a.ok());
  zmq::socket_t to(ctx, zmq::socket_type::push);
  to.set(zmq::sockopt::linger, 0);
  to.connect("inproc://arb2");
  EXPECT_TRUE(p.next<msg::WeightsQuery>("generator"));
  to.send(zmq::buffer(msg::encode(msg::Weights{"generator", 3 << 20, 1024, 16})));
  to.send(zmq::buffer(msg::encode(msg::Weights{"verifier", 1 << 20, 512, 16})));
  auto why = (*a)->poll_failure(2s);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("1.0 MiB"), std::string::npos) << *why;
  EXPECT_NE(why->find("memory.budget_mb"), std::string::npos) << *why;
  EXPECT_FALSE(p.next<msg::Grant>("generator", 100ms));
}

}  // namespace
}  // namespace flashtts
