// Live beams (policies.live_beams) in the engine actors, through their
// messages only (as tests/generator_test.cpp): a job with keep_kv leaves its
// sequence kept; a job naming it in from_job forks it, computing only what
// it does not share, with the tokens and scores a fresh engine gives;
// release_kv frees it, after the jobs still queued to fork it, and its
// blocks leave the prefix cache; Forget and memory pressure free kept
// sequences; the pools return to their starting counts.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "actors/generator.h"
#include "actors/verifier.h"
#include "gpu/engine.h"
#include "gpu/generate.h"
#include "gpu/model_loader.h"
#include "gpu/prm_format.h"
#include "messages/internal.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::stat;

constexpr int64_t kBytesPerToken = test::kSmallKvBytesPerToken;
constexpr int64_t kBlockBytes = kBytesPerToken * 16;

const fs::path& model_dir(const std::string& arch) { return test::small_model("live-beams-" + arch, arch, 11); }
const fs::path& policy_dir() { return model_dir("qwen2"); }
const fs::path& prm_dir() { return model_dir("qwen2-prm"); }
std::vector<int32_t> encode(const std::string& text) { return test::model_tokenizer(policy_dir()).encode(text); }

// ------------------------------------------------------------------ generator

struct GenHarness : test::EngineActorHarnessOf<GeneratorOptions> {
  GenHarness() : EngineActorHarnessOf("live-beams-gen", "generator", run_generator, policy_dir(), kBytesPerToken) {}
  GeneratorOptions options() const {
    GeneratorOptions o = EngineActorHarnessOf::options();
    o.speculation_max_slowdown = 0;
    return o;
  }
  msg::GenDone done() { return EngineActorHarness::done<msg::GenDone>(); }
};

msg::GenJob job(uint64_t id, std::vector<int32_t> tokens, int32_t n, bool keep, uint64_t from = 0) {
  msg::GenJob j;
  j.job_id = id, j.rid = 1, j.beam = (int32_t)id, j.tokens = std::move(tokens);
  j.max_tokens = j.forced_tokens = n;
  j.stop_at_delimiter = false;
  j.temperature = 0.7, j.seed = 5;
  j.keep_kv = keep, j.from_job = from;
  return j;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b, size_t n) {
  a.insert(a.end(), b.begin(), b.begin() + (ptrdiff_t)std::min(n, b.size()));
  return a;
}

TEST(LiveBeams, AForkOfAKeptSequenceComputesOnlyWhatItDoesNotShareAndSamplesAsAFreshEngine) {
  GenHarness h;
  h.start_granted(4 << 20, h.options());
  const std::vector<int32_t> prompt = encode("Let a = 5. Let b = a * 3. What is b? Step by step:");
  msg::GenJob parent = job(1, prompt, 40, /*keep=*/true);
  h.send(parent);
  msg::GenDone p = h.done();
  ASSERT_EQ(p.tokens.size(), 40u);
  EXPECT_EQ(stat(h.stats(), "kv_kept"), 1);

  // Its continuation (all but the last sampled token are kept) and a copy
  // that keeps only part of its step, as DuplicateThenTruncate does.
  msg::GenJob next = job(2, concat(prompt, p.tokens, 40), 12, true, /*from=*/1);
  msg::GenJob cut = job(3, concat(prompt, p.tokens, 23), 12, true, /*from=*/1);
  h.send(next);
  msg::GenDone dn = h.done();
  h.send(cut);
  msg::GenDone dc = h.done();
  EXPECT_EQ(dn.tokens, test::reference_generate(policy_dir(), next).tokens);
  EXPECT_EQ(dc.tokens, test::reference_generate(policy_dir(), cut).tokens);
  EXPECT_EQ(dn.n_cached, (int32_t)next.tokens.size() - 1) << "only the token the parent sampled last is computed";
  // A cut inside a block the parent still holds gives that block up.
  EXPECT_GT(dc.n_cached, (int32_t)cut.tokens.size() - 1 - 16);
  auto st = h.stats();
  EXPECT_EQ(stat(st, "kv_kept"), 3);
  EXPECT_EQ(stat(st, "kept_forked_tokens"), dn.n_cached + dc.n_cached);
  EXPECT_EQ(stat(st, "prefill_tokens"), (int64_t)prompt.size() + 1 + (int64_t)cut.tokens.size() - dc.n_cached);

  // Released, a kept sequence's blocks that no other holds leave the cache.
  h.send(msg::ReleaseKv{1, {1, 2, 3, 99}});
  st = h.stats();
  EXPECT_EQ(stat(st, "kv_kept"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_cached"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_free"), stat(st, "kv_blocks_total"));

  // Without keep_kv a job's full blocks stay in the prefix cache, as before.
  h.send(job(4, prompt, 40, /*keep=*/false));
  h.done();
  st = h.stats();
  EXPECT_EQ(stat(st, "kv_kept"), 0);
  EXPECT_GT(stat(st, "kv_blocks_cached"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
}

TEST(LiveBeams, AReleaseWaitsForTheQueuedJobsThatForkItAndTheLastTakesItOver) {
  GenHarness h;
  GeneratorOptions o = h.options();
  o.max_batch = 1;  // the forks queue behind a running job
  h.start_granted(4 << 20, o);
  const std::vector<int32_t> prompt = encode("Count the apples in three baskets of four:");
  h.send(job(1, prompt, 30, /*keep=*/true));
  msg::GenDone p = h.done();
  h.send(job(9, encode("Something else entirely, to keep the batch busy"), 30, false));
  msg::GenJob a = job(2, concat(prompt, p.tokens, 30), 8, false, 1);
  msg::GenJob b = job(3, concat(prompt, p.tokens, 17), 8, false, 1);
  h.send(a);
  h.send(b);
  h.send(msg::ReleaseKv{1, {1}});  // arrives while both wait
  auto d = test::recv_messages<msg::GenDone>(h.scheduler, 3, 20s);
  ASSERT_EQ(d.size(), 3u);
  for (const msg::GenDone& g : d) {
    if (g.job_id == 2) {
      EXPECT_EQ(g.tokens, test::reference_generate(policy_dir(), a).tokens);
      EXPECT_EQ(g.n_cached, (int32_t)a.tokens.size() - 1);
    }
    if (g.job_id == 3) {
      EXPECT_EQ(g.tokens, test::reference_generate(policy_dir(), b).tokens);
      EXPECT_GT(g.n_cached, (int32_t)b.tokens.size() - 1 - 16);
    }
  }
  auto st = h.stats();
  EXPECT_EQ(stat(st, "kv_kept"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
}

TEST(LiveBeams, ForgetFreesKeptSequencesAndAForkOfAFreedOneUsesThePrefixCache) {
  GenHarness h;
  h.start_granted(4 << 20, h.options());
  const std::vector<int32_t> prompt = encode("A problem whose beams will be forgotten:");
  h.send(job(1, prompt, 40, true));
  msg::GenDone p = h.done();
  h.send(msg::Forget{1});
  auto st = h.stats();
  EXPECT_EQ(stat(st, "kv_kept"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
  EXPECT_GT(stat(st, "kv_blocks_cached"), 0) << "a forgotten request's blocks stay in the prefix cache";
  msg::GenJob late = job(2, concat(prompt, p.tokens, 40), 8, false, 1);
  h.send(late);
  msg::GenDone d = h.done();
  EXPECT_EQ(d.tokens, test::reference_generate(policy_dir(), late).tokens);
  EXPECT_EQ(d.n_cached % 16, 0) << "whole blocks from the prefix cache";
  EXPECT_GT(d.n_cached, 0);
  EXPECT_EQ(stat(h.stats(), "kept_forked_tokens"), 0);
}

TEST(LiveBeams, WhenBlocksRunShortKeptSequencesAreFreedBeforeAnyJobIsPreempted) {
  GenHarness h;
  // 12 blocks: three kept sequences of 3 blocks each leave too few for a
  // new job of 4 blocks.
  h.start_granted(12 * kBlockBytes, h.options());
  for (uint64_t id = 1; id <= 3; ++id) {
    h.send(job(id, encode("Kept beam number " + std::to_string(id) + " says:"), 36, true));
    h.done();
  }
  EXPECT_EQ(stat(h.stats(), "kv_kept"), 3);
  msg::GenJob big = job(7, encode("A real job that needs the room:"), 50, false);
  h.send(big);
  msg::GenDone d = h.done();
  EXPECT_EQ(d.finish, "forced");
  EXPECT_EQ(d.tokens, test::reference_generate(policy_dir(), big).tokens);
  EXPECT_EQ(d.n_preempted, 0);
  auto st = h.stats();
  EXPECT_GT(stat(st, "kept_freed_for_room"), 0);
  EXPECT_LT(stat(st, "kv_kept"), 3);
  EXPECT_EQ(stat(st, "preemptions"), 0);
  h.send(msg::Forget{1});
  EXPECT_EQ(stat(h.stats(), "kv_blocks_used"), 0);
}

// Issue 22: under the prefix policy (by_priority) the kept sequence of the
// worst-scored beam is freed first, not the oldest.
TEST(LiveBeams, ByPriorityTheLowestPriorityKeptSequenceIsFreedFirst) {
  GenHarness h;
  auto o = h.options();
  o.by_priority = true;
  h.start_granted(12 * kBlockBytes, o);
  const int32_t priority[] = {5, 1, 9};
  std::vector<std::vector<int32_t>> context;
  for (uint64_t id = 1; id <= 3; ++id) {
    msg::GenJob j = job(id, encode("Kept beam number " + std::to_string(id) + " says:"), 36, true);
    j.priority = priority[id - 1];
    h.send(j);
    context.push_back(concat(j.tokens, h.done().tokens, 36));
  }
  h.send(job(7, encode("A real job that needs the room:"), 50, false));
  EXPECT_EQ(h.done().n_preempted, 0);
  auto st = h.stats();
  EXPECT_EQ(stat(st, "kept_freed_for_room"), 1);
  const int64_t forked = stat(st, "kept_forked_tokens");
  // Beams 1 and 3 are still kept: their continuations fork them.
  for (uint64_t id : {1u, 3u}) {
    h.send(job(10 + id, context[id - 1], 4, false, id));
    h.done();
  }
  const int64_t forked_1_3 = stat(h.stats(), "kept_forked_tokens") - forked;
  EXPECT_GT(forked_1_3, 60);
  // Beam 2's was freed: its continuation finds its context elsewhere.
  h.send(job(12, context[1], 4, false, 2));
  h.done();
  EXPECT_EQ(stat(h.stats(), "kept_forked_tokens") - forked, forked_1_3);
  h.send(msg::Forget{1});
  EXPECT_EQ(stat(h.stats(), "kv_blocks_used"), 0);
}

// Issue 22: when blocks run short, a pruned branch's blocks go before the
// shared ancestors of a live beam. The pruned beam's release frees its blocks
// at once, so a new job that needs the room takes them, evicts nothing, and
// the live beam's continuation still computes only the token sampled last.
TEST(LiveBeams, EvictionTakesDeadBranchesBeforeTheAncestorsOfLiveBeams) {
  auto blocks = [](size_t tokens) { return (int64_t)(tokens + 15) / 16; };
  const std::vector<int32_t> prompt = encode("Two beams of one search share this prompt:");
  const std::vector<int32_t> other = encode("An unrelated job that needs the room now:");
  // The live beam, then the new job, and one block to spare: no room for the
  // pruned beam's own blocks unless they are freed.
  const int64_t pool = blocks(prompt.size() + 24) + blocks(other.size() + 40) + 1;
  GenHarness h;
  auto o = h.options();
  o.by_priority = true;
  o.max_batch = 1;
  h.start_granted(pool * kBlockBytes, o);
  msg::GenJob live = job(1, prompt, 24, true), pruned = job(2, prompt, 24, true);
  h.send(live);
  msg::GenDone a = h.done();
  h.send(pruned);
  h.done();
  h.send(msg::ReleaseKv{1, {2}});
  h.send(job(7, other, 40, false));
  EXPECT_EQ(h.done().n_preempted, 0);
  msg::GenJob next = job(3, concat(prompt, a.tokens, 24), 4, false, 1);
  h.send(next);
  msg::GenDone n = h.done();
  EXPECT_EQ(n.tokens, test::reference_generate(policy_dir(), next).tokens);
  EXPECT_EQ(n.n_cached, (int32_t)next.tokens.size() - 1);
  auto st = h.stats();
  EXPECT_EQ(stat(st, "evictions"), 0);
  EXPECT_EQ(stat(st, "kept_freed_for_room"), 0);
  h.send(msg::Forget{1});
  EXPECT_EQ(stat(h.stats(), "kv_blocks_used"), 0);
}

// Under memory pressure the engine counts the KV it computes again: the full
// blocks of a context whose blocks were evicted (the bench's recomputed
// tokens); nothing for a context computed the first time.
TEST(LiveBeams, AContextComputedAgainAfterItsEvictionIsCountedAsRecomputed) {
  auto blocks = [](size_t tokens) { return (int64_t)(tokens + 15) / 16; };
  const std::vector<int32_t> prompt = encode("A context that is evicted and then computed once more:");
  const std::vector<int32_t> other = encode("An unrelated job whose blocks fill the whole pool, all of them, now:");
  GenHarness h;
  auto o = h.options();
  o.max_batch = 1;
  // The other job takes every block (its last token's KV is never written).
  h.start_granted(blocks(other.size() + 39) * kBlockBytes, o);
  h.send(job(1, prompt, 8, false));
  h.done();
  h.send(job(2, other, 40, false));
  h.done();
  auto st = h.stats();
  EXPECT_GT(stat(st, "evictions"), 0);
  EXPECT_EQ(stat(st, "recomputed_tokens"), 0) << "every context so far was computed the first time";
  h.send(job(3, prompt, 8, false));
  h.done();
  const int64_t full = 16 * (int64_t)(prompt.size() / 16);
  EXPECT_GE(stat(h.stats(), "recomputed_tokens"), full);  // the prompt's full blocks, and maybe one it wrote
  EXPECT_LE(stat(h.stats(), "recomputed_tokens"), 16 * (int64_t)((prompt.size() + 8) / 16));
}

// ------------------------------------------------------------------- verifier

struct VerHarness : test::EngineActorHarnessOf<VerifierOptions> {
  VerHarness() : EngineActorHarnessOf("live-beams-ver", "verifier", run_verifier, prm_dir(), kBytesPerToken) {}
  msg::ScoreDone done() { return EngineActorHarness::done<msg::ScoreDone>(); }
};

const std::string kProblem = "What is 12 times 7, minus 4?";

msg::ScoreJob score_job(uint64_t id, uint64_t rid, std::vector<std::string> steps, bool keep, uint64_t from = 0) {
  msg::ScoreJob j;
  j.job_id = id, j.rid = rid, j.problem = kProblem, j.steps = std::move(steps);
  j.keep_kv = keep, j.from_job = from;
  return j;
}

TEST(LiveBeams, APrmSequenceForkedForTheNextStepComputesOnlyThatStepWithTheFreshScores) {
  VerHarness h;
  h.start_granted(4 << 20);
  const std::vector<std::string> s1 = {"12 times 7 is 84.", "84 minus 4 is 80."};
  std::vector<std::string> s2 = s1;
  s2.push_back("The answer is \\boxed{80}.");
  h.send(score_job(1, 1, s1, /*keep=*/true));
  msg::ScoreDone a = h.done();
  h.send(score_job(2, 1, s2, true, /*from=*/1));
  msg::ScoreDone b = h.done();
  // The same input in another request, on no kept sequence and no score cache.
  h.send(msg::Forget{1});
  h.send(score_job(3, 2, s2, false));
  msg::ScoreDone fresh = h.done();
  ASSERT_EQ(b.scores.size(), 3u);
  ASSERT_EQ(fresh.scores.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(b.scores[i], fresh.scores[i], 1e-5) << "step " << i;
  EXPECT_LT(b.n_computed, b.n_tokens - a.n_tokens + 16) << "only the new step (and a partial block) is computed";
  auto st = h.stats();
  EXPECT_GT(stat(st, "kept_forked_tokens"), 0);
  EXPECT_EQ(stat(st, "kv_kept"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
}

TEST(LiveBeams, AScoringContextComputedAgainAfterItsEvictionIsCountedAsRecomputed) {
  const std::vector<std::string> steps = {"12 times 7 is 84.", "84 minus 4 is 80.", "The answer is 80."};
  msg::ScoreJob other = score_job(2, 2, {"Seven squared is forty-nine, and forty-nine plus one is fifty."}, false);
  other.problem = "What is seven squared plus one? Answer with care, and show every step of the work.";
  // How many PRM tokens each takes, on a pool that holds both.
  int32_t tokens = 0, other_tokens = 0;
  {
    VerHarness probe;
    probe.start_granted(4 << 20);
    probe.send(score_job(1, 1, steps, false));
    tokens = probe.done().n_tokens;
    probe.send(other);
    other_tokens = probe.done().n_tokens;
  }
  ASSERT_GT(tokens, 32);
  ASSERT_GT(other_tokens, tokens);
  VerHarness h;
  h.start_granted((other_tokens + 15) / 16 * kBlockBytes);  // the other job takes every block
  h.send(score_job(1, 1, steps, false));
  h.done();
  h.send(other);
  h.done();
  EXPECT_GT(stat(h.stats(), "evictions"), 0);
  EXPECT_EQ(stat(h.stats(), "recomputed_tokens"), 0);
  h.send(msg::Forget{1});
  h.send(score_job(3, 3, steps, false));  // another request: no score cache
  msg::ScoreDone again = h.done();
  // Every full block it did not find again (the template's, which the other
  // job shared, it found) was evicted and is counted.
  const int32_t found = tokens - again.n_computed;
  ASSERT_EQ(found % 16, 0);
  ASSERT_LT(found, 16 * (tokens / 16));
  EXPECT_EQ(stat(h.stats(), "recomputed_tokens"), 16 * (tokens / 16) - found);
}

}  // namespace
}  // namespace flashtts
