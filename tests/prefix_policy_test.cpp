// The prefix tree and the scheduling policies over it (issue 22): the greedy
// order on hand-built trees, ties by priority then age, a job's cost with
// shared prefixes, the wait bound under a stream of better-matching work,
// the worst and the random order, and a tree that is empty again once every
// job has left. Paths are written as strings, one character per chunk of 16
// tokens ("aab" = three blocks: a, a, b).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "actors/prefix_tree.h"
#include "actors/sched_policy.h"

namespace flashtts {
namespace {

constexpr int32_t kBlock = 16;

std::vector<Chunk> path(std::string_view s) {
  std::vector<Chunk> c;
  for (char ch : s) c.push_back({(uint64_t)ch, kBlock});
  return c;
}

QueuedJob job(uint64_t id, std::string_view p, int32_t priority = 0, uint64_t rid = 1, int64_t tail = 8) {
  QueuedJob q;
  q.job_id = id, q.rid = rid, q.priority = priority, q.chunks = path(p), q.tail_tokens = tail;
  q.cost_tokens = (int64_t)p.size() * kBlock + tail;
  q.bytes = std::to_string(id);
  return q;
}

std::unique_ptr<SchedulingPolicy> policy(const std::string& name, int64_t max_overtaken = 1 << 20, uint64_t seed = 1) {
  auto p = make_scheduling_policy({name, max_overtaken, seed});
  EXPECT_TRUE(p.ok());
  return std::move(*p);
}

// Pops everything (room for all), finishing each job at once; the order of ids.
std::vector<uint64_t> drain(SchedulingPolicy& p) {
  std::vector<uint64_t> order;
  while (auto j = p.pop(INT64_MAX)) {
    order.push_back(j->job_id);
    p.done(j->job_id);
  }
  return order;
}

TEST(PrefixTree, SharedChunksAreOneNodeAndLeaveWithTheirLastPath) {
  PrefixTree t;
  auto* a = t.acquire(path("xab"));
  auto* b = t.acquire(path("xac"));
  auto* c = t.acquire(path("xab"));
  EXPECT_EQ(a, c);
  EXPECT_NE(a, b);
  EXPECT_EQ(t.nodes(), 4u);  // x, a, b, c
  t.release(a);
  EXPECT_EQ(t.nodes(), 4u);
  t.release(c);
  EXPECT_EQ(t.nodes(), 3u);
  t.release(b);
  EXPECT_EQ(t.nodes(), 0u);
}

TEST(PrefixTree, HeldTokensCountSharedChunksOnce) {
  PrefixTree t;
  auto* a = t.acquire(path("xyab"));
  auto* b = t.acquire(path("xyc"));
  EXPECT_EQ(t.unheld_tokens(b), 3 * kBlock);
  t.hold(a);
  EXPECT_EQ(t.held_tokens(), 4 * kBlock);
  EXPECT_EQ(t.unheld_tokens(b), 1 * kBlock);  // x and y are held by a
  t.hold(b);
  EXPECT_EQ(t.held_tokens(), 5 * kBlock);
  t.unhold(a);
  EXPECT_EQ(t.held_tokens(), 3 * kBlock);  // b still holds x and y
  t.unhold(b);
  EXPECT_EQ(t.held_tokens(), 0);
  t.release(a), t.release(b);
  EXPECT_EQ(t.nodes(), 0u);
}

TEST(PrefixPolicy, NextIsTheJobSharingTheLongestPrefixWithTheOneBefore) {
  auto p = policy("prefix");
  // Two requests' beams, arriving interleaved (p = prompt of request 1, q of request 2).
  p->push(job(1, "pab"));
  p->push(job(2, "qcd", 0, 2));
  p->push(job(3, "pcx"));
  p->push(job(4, "qce", 0, 2));
  p->push(job(5, "pac"));
  p->push(job(6, "pcy"));
  // 1 first (oldest); then its sibling 5 (shares "pa"), then 3 and 6 (share
  // "p", then "pc"), then request 2's: 2, then its sibling 4.
  EXPECT_EQ(drain(*p), (std::vector<uint64_t>{1, 5, 3, 6, 2, 4}));
}

TEST(PrefixPolicy, TiesGoToTheHigherPriorityThenToTheOlder) {
  auto p = policy("prefix");
  p->push(job(1, "pa", 5));
  p->push(job(2, "pb", 1));
  p->push(job(3, "pc", 9));
  p->push(job(4, "pd", 9));
  p->push(job(5, "pbz", 1));
  // 3 and 4 tie at priority 9 (3 older); 1 (5) next; then 2 and its child 5.
  EXPECT_EQ(drain(*p), (std::vector<uint64_t>{3, 4, 1, 2, 5}));
}

// policies.request_order = "arrival": where the prefix does not decide, the
// older request (lower rid) first, whatever the priorities; within a request
// the prefix and the priorities decide as before.
TEST(PrefixPolicy, ByRequestTheOlderRequestGoesFirstWhereThePrefixDoesNotDecide) {
  for (bool by_request : {false, true}) {
    SCOPED_TRACE(by_request ? "arrival" : "interleaved");
    SchedulingOptions o{"prefix"};
    o.by_request = by_request;
    auto p = make_scheduling_policy(o);
    ASSERT_TRUE(p.ok());
    (*p)->push(job(1, "ab", 9, /*rid=*/2));
    (*p)->push(job(2, "cd", 0, /*rid=*/1));
    (*p)->push(job(3, "ae", 0, /*rid=*/2));
    (*p)->push(job(4, "cf", 0, /*rid=*/1));
    const std::vector<uint64_t> want = by_request ? std::vector<uint64_t>{2, 4, 1, 3} : std::vector<uint64_t>{1, 3, 2, 4};
    EXPECT_EQ(drain(**p), want);
  }
}

TEST(PrefixPolicy, ChildrenOfOneParentGoTogetherWhileParentsKeepTheirOrder) {
  auto p = policy("prefix");
  // Beams A (score 7) and B (score 3) each forked four children.
  for (uint64_t k = 0; k < 4; ++k) {
    p->push(job(10 + k, std::string("pB") + char('0' + k), 3));
    p->push(job(20 + k, std::string("pA") + char('0' + k), 7));
  }
  EXPECT_EQ(drain(*p), (std::vector<uint64_t>{20, 21, 22, 23, 10, 11, 12, 13}));
}

TEST(PrefixPolicy, AJobCostsOnlyTheTokensNoInFlightJobHolds) {
  auto p = policy("prefix");
  p->push(job(1, "pppab", 0, 1, 100));
  p->push(job(2, "pppac", 0, 1, 100));
  p->push(job(3, "qq", 0, 2, 100));
  auto a = p->pop(INT64_MAX);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->cost_tokens, 5 * kBlock + 100);
  EXPECT_EQ(p->held_tokens(), 5 * kBlock + 100);
  // 2 shares "pppa" with 1: only its last block and its tail are new.
  EXPECT_FALSE(p->pop(kBlock + 99));  // does not fit: stays queued
  auto b = p->pop(kBlock + 100);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->job_id, 2u);
  EXPECT_EQ(b->cost_tokens, kBlock + 100);
  EXPECT_EQ(p->held_tokens(), 6 * kBlock + 200);
  p->done(1);  // 2 still holds "pppa"
  EXPECT_EQ(p->held_tokens(), 5 * kBlock + 100);
  auto c = p->pop(INT64_MAX);
  EXPECT_EQ(c->cost_tokens, 2 * kBlock + 100);
  p->done(2), p->done(3);
  EXPECT_EQ(p->held_tokens(), 0);
  EXPECT_EQ(p->size(), 0u);

  // FIFO counts every job's whole context.
  auto f = policy("fifo");
  f->push(job(1, "pppab", 0, 1, 100));
  f->push(job(2, "pppac", 0, 1, 100));
  f->pop(INT64_MAX);
  EXPECT_FALSE(f->pop(kBlock + 100));
  EXPECT_EQ(f->pop(INT64_MAX)->cost_tokens, 5 * kBlock + 100);
  EXPECT_EQ(f->held_tokens(), 10 * kBlock + 200);
}

TEST(PrefixPolicy, TheOldestJobWaitsAtMostTheBoundUnderAStreamOfBetterMatches) {
  const int64_t bound = 5;
  auto p = policy("prefix", bound);
  p->push(job(1, "qz", 0, 2));  // another request's: it never matches the stream
  p->push(job(100, "pa", 9));
  uint64_t next = 101;
  std::vector<uint64_t> order;
  for (int k = 0; k < 20; ++k) {
    auto j = p->pop(INT64_MAX);
    ASSERT_TRUE(j);
    order.push_back(j->job_id);
    p->done(j->job_id);
    // Each dispatch brings a child of the path just dispatched: it always
    // shares more with the last job than job 1 does, and is better placed.
    p->push(job(next, "pa" + std::string(next - 100, 'a'), 9));
    ++next;
  }
  auto at = std::find(order.begin(), order.end(), 1u);
  ASSERT_NE(at, order.end());
  EXPECT_EQ(at - order.begin(), bound);  // dispatched once `bound` others went since it arrived
  // And with the bound far away, the stream would have starved it.
  auto q = policy("prefix");
  q->push(job(1, "qz", 0, 2));
  q->push(job(100, "pa", 9));
  next = 101;
  for (int k = 0; k < 20; ++k) {
    auto j = q->pop(INT64_MAX);
    EXPECT_NE(j->job_id, 1u);
    q->done(j->job_id);
    q->push(job(next, "pa" + std::string(next - 100, 'a'), 9));
    ++next;
  }
}

TEST(PrefixPolicy, ABigJobIsNotOvertakenByTheJobsBehindIt) {
  auto p = policy("prefix");
  p->push(job(1, "pab", 0, 1, 1000));
  p->push(job(2, "pac", 0, 1, 10));
  EXPECT_FALSE(p->pop(500));  // 1 is next and does not fit: nothing passes it
  EXPECT_EQ(p->size(), 2u);
}

TEST(PrefixPolicy, ScatterTakesTheJobSharingTheLeast) {
  auto p = policy("scatter");
  p->push(job(1, "pab"));
  p->push(job(2, "pac"));
  p->push(job(3, "pdx"));
  p->push(job(4, "qa", 0, 2));
  p->push(job(5, "pdy"));
  // Each next job shares as little as possible with the one before.
  auto order = drain(*p);
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[0], 1u);
  EXPECT_EQ(order[1], 4u);  // another request: shares nothing
  // The greedy order of the same jobs keeps siblings together instead.
  auto g = policy("prefix");
  for (auto j : {job(1, "pab"), job(2, "pac"), job(3, "pdx"), job(4, "qa", 0, 2), job(5, "pdy")}) g->push(j);
  EXPECT_EQ(drain(*g), (std::vector<uint64_t>{1, 2, 3, 5, 4}));
}

TEST(PrefixPolicy, RandomIsSeededAndTakesEveryJobOnce) {
  auto run = [](uint64_t seed) {
    auto p = policy("random", 1 << 20, seed);
    for (uint64_t k = 1; k <= 50; ++k) p->push(job(k, "p" + std::string(1, char('a' + k % 7))));
    return drain(*p);
  };
  auto a = run(7), b = run(7), c = run(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<uint64_t> all(a.begin(), a.end());
  EXPECT_EQ(all.size(), 50u);
}

// The scheduler takes the job that did not fit the room, when nothing is
// out, as too big for the whole grant: the next pop must mean that job.
TEST(PrefixPolicy, AJobThatDidNotFitIsTheNextOneWhateverTheOrder) {
  for (const char* name : {"fifo", "prefix", "random", "scatter"}) {
    SCOPED_TRACE(name);
    auto p = policy(name, 1 << 20, 5);
    for (uint64_t k = 1; k <= 20; ++k) p->push(job(k, "p" + std::string(1, char('a' + k)), 0, 1, k % 2 ? 8 : 1000));
    int refused = 0;
    while (p->size() > 0) {
      auto j = p->pop(100);
      if (!j) {
        ++refused;
        j = p->pop(INT64_MAX);
        ASSERT_TRUE(j);
        EXPECT_GT(j->cost_tokens, 100);
      }
      p->done(j->job_id);
    }
    EXPECT_GT(refused, 0);
  }
}

TEST(PrefixPolicy, RemovingARequestDropsItsQueuedAndInFlightJobs) {
  for (const char* name : {"fifo", "prefix", "random", "scatter"}) {
    SCOPED_TRACE(name);
    auto p = policy(name);
    p->push(job(1, "pab", 0, 1));
    p->push(job(2, "qab", 0, 2));
    p->push(job(3, "pac", 0, 1));
    auto first = p->pop(INT64_MAX);
    ASSERT_TRUE(first);
    const uint64_t rid = first->rid;
    const size_t queued_of_rid = rid == 1 ? 1 : 0;
    EXPECT_EQ(p->remove_request(rid), queued_of_rid);
    EXPECT_EQ(p->held_tokens(), 0);
    p->done(first->job_id);  // already gone: ignored
    const std::vector<uint64_t> others = rid == 1 ? std::vector<uint64_t>{2} : std::vector<uint64_t>{1, 3};
    auto left = drain(*p);
    std::sort(left.begin(), left.end());
    EXPECT_EQ(left, others);
    EXPECT_EQ(p->size(), 0u);
    EXPECT_EQ(p->held_tokens(), 0);
  }
}

TEST(PrefixPolicy, RandomizedAgainstABruteForceOrder) {
  // Many random trees: every pick of `prefix` shares the longest prefix any
  // queued job shares with the last one, and no better-ranked job ties it.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    auto p = policy("prefix");
    struct J { std::string path; int32_t prio; uint64_t seq; };
    std::map<uint64_t, J> queued;
    uint64_t id = 0;
    auto add = [&] {
      std::string s;
      const int len = 1 + (int)(rng() % 6);
      for (int k = 0; k < len; ++k) s += char('a' + rng() % 3);
      const int32_t prio = (int32_t)(rng() % 3);
      ++id;
      queued[id] = {s, prio, id};
      p->push(job(id, s, prio));
    };
    for (int k = 0; k < 30; ++k) add();
    std::string last;
    bool first = true;
    while (!queued.empty()) {
      auto shared = [&](const std::string& s) {
        size_t n = 0;
        while (n < s.size() && n < last.size() && s[n] == last[n]) ++n;
        return first ? 0 : (int)n;
      };
      auto j = p->pop(INT64_MAX);
      ASSERT_TRUE(j);
      const J got = queued.at(j->job_id);
      for (const auto& [k, o] : queued) {
        ASSERT_LE(shared(o.path), shared(got.path)) << "trial " << trial;
        if (shared(o.path) == shared(got.path))
          ASSERT_TRUE(std::pair(-got.prio, got.seq) <= std::pair(-o.prio, o.seq)) << "trial " << trial;
      }
      p->done(j->job_id);
      last = got.path, first = false;
      queued.erase(j->job_id);
      if (rng() % 3 == 0) add();
    }
    EXPECT_EQ(p->held_tokens(), 0);
  }
}

}  // namespace
}  // namespace flashtts
