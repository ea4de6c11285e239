// Dead branches first (policies.eviction = "pruned"; actors/job_tails.h), in
// the engine actors, through their messages only (as tests/live_beams_test.cpp):
// drop_kv frees the blocks a finished job wrote, so a tight pool keeps a live
// beam's blocks instead of evicting them; a block another job wrote too, and
// the context the jobs shared, stay; the verifier frees a scoring job's last
// step and keeps the steps its beam shares.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "actors/generator.h"
#include "actors/verifier.h"
#include "messages/internal.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::stat;

constexpr int64_t kBytesPerToken = test::kSmallKvBytesPerToken;
constexpr int64_t kBlockBytes = kBytesPerToken * 16;

const fs::path& model_dir(const std::string& arch) { return test::small_model("dead-branches-" + arch, arch, 11); }
std::vector<int32_t> encode(const std::string& text) { return test::model_tokenizer(model_dir("qwen2")).encode(text); }
int64_t blocks(size_t tokens) { return (int64_t)(tokens + 15) / 16; }

struct GenHarness : test::EngineActorHarnessOf<GeneratorOptions> {
  GenHarness() : EngineActorHarnessOf("dead-gen", "generator", run_generator, model_dir("qwen2"), kBytesPerToken) {}
  msg::GenDone done() { return EngineActorHarness::done<msg::GenDone>(); }
};

msg::GenJob job(uint64_t id, std::vector<int32_t> tokens, int32_t n, double temperature = 0.7) {
  msg::GenJob j;
  j.job_id = id, j.rid = 1, j.beam = (int32_t)id, j.tokens = std::move(tokens);
  j.max_tokens = j.forced_tokens = n;
  j.stop_at_delimiter = false;
  j.temperature = temperature, j.seed = 5;
  return j;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Two beams write their steps from one prompt; one is pruned; a new job then
// needs the room. With drop_kv the pruned beam's blocks make it; without, LRU
// evicts the live beam's step (released first, so least recently used) and
// the live beam's next job computes it again.
TEST(DeadBranches, ADroppedJobsOwnBlocksMakeRoomAndTheLiveBeamsStepStays) {
  const std::vector<int32_t> prompt = encode("Two beams of one search share this prompt:");
  const std::vector<int32_t> other = encode("An unrelated job that needs the room now:");
  // The full blocks each beam leaves cached (its last token's KV is never
  // written), and the pruned beam's own. The pool holds the live beam's and
  // the new job's: not the pruned beam's too.
  const int64_t live_full = (int64_t)(prompt.size() + 23) / 16;
  const int64_t own = live_full - (int64_t)prompt.size() / 16;
  ASSERT_GE(own, 1);
  const int64_t pool = live_full + blocks(other.size() + 40);
  for (bool drop : {true, false}) {
    SCOPED_TRACE(drop ? "eviction = pruned" : "eviction = lru");
    GenHarness h;
    auto o = h.options();
    o.max_batch = 1;
    o.drop_dead_kv = drop;
    h.start_granted(pool * kBlockBytes, o);
    h.send(job(1, prompt, 24));
    msg::GenDone live = h.done();
    h.send(job(2, prompt, 24));
    h.done();
    EXPECT_EQ(stat(h.stats(), "tails_recorded"), drop ? 2 : 0);
    h.send(msg::DropKv{1, {2, 99}});  // 99: unknown, ignored
    h.send(job(7, other, 40));
    h.done();
    msg::GenJob next = job(3, concat(prompt, live.tokens), 4);
    h.send(next);
    msg::GenDone n = h.done();
    const int32_t whole = 16 * (((int32_t)next.tokens.size() - 1) / 16);  // all a cache can give
    auto st = h.stats();
    if (drop) {
      EXPECT_EQ(stat(st, "kv_dropped_blocks"), own);
      EXPECT_EQ(stat(st, "evictions"), 0);
      EXPECT_EQ(n.n_cached, whole);
      EXPECT_EQ(stat(st, "recomputed_tokens"), 0);
    } else {
      EXPECT_EQ(stat(st, "kv_dropped_blocks"), 0);
      EXPECT_GT(stat(st, "evictions"), 0);
      EXPECT_LT(n.n_cached, whole);
      EXPECT_GT(stat(st, "recomputed_tokens"), 0);
    }
    h.send(msg::Forget{1});
    st = h.stats();
    EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
    EXPECT_EQ(stat(st, "tails_recorded"), 0);
  }
}

// Greedy beams of one parent write the same tokens, so they hold the same
// blocks: dropping one leaves what the other wrote too; dropping both frees it.
TEST(DeadBranches, ABlockAnotherJobAlsoWroteStaysUntilBothAreDropped) {
  const std::vector<int32_t> prompt = encode("Greedy beams of one parent write the same step:");
  const int64_t own = (int64_t)(prompt.size() + 39) / 16 - (int64_t)prompt.size() / 16;
  ASSERT_GE(own, 2);
  GenHarness h;
  auto o = h.options();
  o.drop_dead_kv = true;
  h.start_granted(4 << 20, o);
  h.send(job(1, prompt, 40, 0.0));
  msg::GenDone a = h.done();
  h.send(job(2, prompt, 40, 0.0));
  msg::GenDone b = h.done();
  ASSERT_EQ(a.tokens, b.tokens);
  const int64_t cached = stat(h.stats(), "kv_blocks_cached");
  h.send(msg::DropKv{1, {2}});
  EXPECT_EQ(stat(h.stats(), "kv_dropped_blocks"), 0);
  EXPECT_EQ(stat(h.stats(), "kv_blocks_cached"), cached);
  h.send(msg::DropKv{1, {1}});
  auto st = h.stats();
  EXPECT_EQ(stat(st, "kv_dropped_blocks"), own);
  EXPECT_EQ(stat(st, "kv_blocks_cached"), cached - own);
  // The prompt's blocks stay: a job from it finds them.
  msg::GenJob again = job(3, prompt, 1);
  h.send(again);
  EXPECT_EQ(h.done().n_cached, 16 * (((int32_t)prompt.size() - 1) / 16));
}

// ------------------------------------------------------------------- verifier

struct VerHarness : test::EngineActorHarnessOf<VerifierOptions> {
  VerHarness() : EngineActorHarnessOf("dead-ver", "verifier", run_verifier, model_dir("qwen2-prm"), kBytesPerToken) {}
  msg::ScoreDone done() { return EngineActorHarness::done<msg::ScoreDone>(); }
};

std::vector<std::string> concat_steps(std::vector<std::string> steps, const std::string& next) {
  steps.push_back(next);
  return steps;
}

msg::ScoreJob score_job(uint64_t id, uint64_t rid, std::vector<std::string> steps) {
  msg::ScoreJob j;
  j.job_id = id, j.rid = rid, j.problem = "What is 12 times 7, minus 4?", j.steps = std::move(steps);
  return j;
}

// Two beams share their first step; the pruned one's last step leaves the
// cache, the first step and the live beam's steps stay: the live beam's next
// step computes only that step (and a partial block), the pruned beam's
// computes its dropped step again, counted as recomputed.
TEST(DeadBranches, AScoringJobsLastStepLeavesAndTheStepsItSharedStay) {
  const std::string first = "12 times 7 is 84, since 10 times 7 is 70 and 2 times 7 is 14, and 70 plus 14 is 84.";
  const std::vector<std::string> live = {first, "84 minus 4 is 80, so the answer is 80."};
  const std::vector<std::string> pruned = {
      first, "Then 84 minus 4: take 4 from 84 one at a time, 83, 82, 81, 80, which leaves 80 in the end."};
  VerHarness h;
  auto o = h.options();
  o.drop_dead_kv = true;
  h.start_granted(4 << 20, o);
  h.send(score_job(1, 1, live));
  const msg::ScoreDone l0 = h.done();
  h.send(score_job(2, 1, pruned));
  h.done();
  h.send(msg::DropKv{1, {2}});
  EXPECT_GE(stat(h.stats(), "kv_dropped_blocks"), 2);
  const std::string next = "So the answer is 80.";
  h.send(score_job(3, 1, concat_steps(live, next)));
  const msg::ScoreDone l = h.done();
  h.send(score_job(4, 1, concat_steps(pruned, next)));
  const msg::ScoreDone again = h.done();
  const int32_t step = l.n_tokens - l0.n_tokens;  // the new step's tokens (the same text after both)
  EXPECT_LE(l.n_computed, step + 16);
  EXPECT_GT(again.n_computed, step + 16);
  EXPECT_LT(again.n_computed, again.n_tokens - 16) << "the problem and first step are still cached";
  EXPECT_GT(stat(h.stats(), "recomputed_tokens"), 0);
  EXPECT_EQ(stat(h.stats(), "evictions"), 0);
}

}  // namespace
}  // namespace flashtts
