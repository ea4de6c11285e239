// The verifier actor through its messages only: test-owned sockets stand in
// for the scheduler, the memory arbiter and the intake; the PRM is a tiny
// random Qwen2.5-Math-PRM-shaped folder written by flashtts-mkmodel. Scores
// are checked against score_positions() on a fresh engine.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "actors/verifier.h"
#include "gpu/generate.h"
#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "gpu/prm_format.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int64_t kBytesPerToken = test::kSmallKvBytesPerToken;
constexpr int64_t kBlockBytes = kBytesPerToken * 16;

const fs::path& model_dir(const std::string& arch) { return test::small_model("verifier-" + arch, arch, 9); }
const fs::path& prm_dir() { return model_dir("qwen2-prm"); }

const std::string kProblem = "What is 12 times 7, minus 4?";
const std::string kS1 = "12 times 7 is 84.";
const std::string kS2 = "84 minus 4 is 80.";
const std::string kS2b = "Subtracting 4 from 84 leaves 80.";
const std::string kS3 = "The answer is \\boxed{80}.";

// The PRM input and score_positions() on a fresh engine: what the actor must give.
struct Reference {
  PrmInput in;
  std::vector<float> scores;
};

// The PRM's input for `steps` of `problem`, and the model it is formatted for.
PrmInput prm_input(const std::string& problem, const std::vector<std::string>& steps, LoadedModel* model = nullptr) {
  auto m = load_model(prm_dir());
  EXPECT_TRUE(m.ok());
  auto tok = open_tokenizer(prm_dir());
  EXPECT_TRUE(tok.ok());
  EXPECT_TRUE(resolve_prm_tokens(**tok, &m->config).ok());
  auto in = format_prm_input(**tok, m->config, problem, steps);
  EXPECT_TRUE(in.ok());
  if (model) *model = std::move(*m);
  return in ? *in : PrmInput{};
}
std::vector<int32_t> prm_ids(const std::string& problem, const std::vector<std::string>& steps) {
  return prm_input(problem, steps).ids;
}

Reference reference(const std::vector<std::string>& steps) {
  LoadedModel m;
  const PrmInput in = prm_input(kProblem, steps, &m);
  EngineOptions eo;
  eo.kv_bytes = 4 << 20;
  eo.n_threads = 1;
  auto e = Engine::create(m.config, std::move(m.weights), eo);
  EXPECT_TRUE(e.ok());
  auto s = score_positions(**e, in.ids, in.score_positions);
  EXPECT_TRUE(s.ok());
  return {in, *s};
}

void expect_scores(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << "step " << i;
}

using test::stat;

// A verifier with test sockets at its peers' endpoints (bound before it starts).
struct Harness : test::EngineActorHarnessOf<VerifierOptions> {
  Harness() : EngineActorHarnessOf("verifier-test", "verifier", run_verifier, prm_dir(), kBytesPerToken) {}

  msg::ScoreDone score(uint64_t job_id, uint64_t rid, int32_t beam, const std::vector<std::string>& steps) {
    send(msg::ScoreJob{job_id, rid, beam, kProblem, steps});
    auto d = test::recv_message<msg::ScoreDone>(scheduler);
    EXPECT_TRUE(d.has_value());
    if (!d) return {};
    EXPECT_EQ(d->job_id, job_id);
    EXPECT_EQ(d->rid, rid);
    EXPECT_EQ(d->beam, beam);
    EXPECT_TRUE(d->error.empty()) << d->error;
    return *d;
  }
};

TEST(Verifier, ScoresEqualScorePositionsOnAFreshEngine) {
  Harness h;
  h.start_granted();
  Reference ref = reference({kS1, kS2, kS3});
  msg::ScoreDone d = h.score(1, 1, 0, {kS1, kS2, kS3});
  expect_scores(d.scores, ref.scores);
  EXPECT_EQ(d.n_tokens, (int32_t)ref.in.ids.size());
  EXPECT_EQ(d.n_computed, d.n_tokens);  // nothing to reuse yet
  auto st = h.stats();
  EXPECT_EQ(stat(st, "jobs_done"), 1);
  EXPECT_EQ(stat(st, "tokens_scored"), d.n_tokens);
  EXPECT_EQ(stat(st, "tokens_computed"), d.n_tokens);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
  EXPECT_GT(stat(st, "kv_blocks_cached"), 0);
}

TEST(Verifier, ScoringOneMoreStepComputesOnlyTheNewTokens) {
  Harness h;
  h.start_granted();
  msg::ScoreDone first = h.score(1, 4, 0, {kS1});
  msg::ScoreDone second = h.score(2, 4, 0, {kS1, kS2});
  expect_scores(first.scores, reference({kS1}).scores);
  expect_scores(second.scores, reference({kS1, kS2}).scores);
  ASSERT_EQ(second.scores.size(), 2u);
  EXPECT_EQ(second.scores[0], first.scores[0]);
  EXPECT_LT(second.n_computed, second.n_tokens);
  EXPECT_GT(second.n_computed, 0);
}

TEST(Verifier, TwoBeamsOfARequestShareTheirCommonPrefix) {
  Harness h;
  h.start_granted();
  h.send(msg::ScoreJob{1, 6, 0, kProblem, {kS1, kS2}});
  h.send(msg::ScoreJob{2, 6, 1, kProblem, {kS1, kS2b}});
  std::map<uint64_t, msg::ScoreDone> done;
  for (int i = 0; i < 2; ++i) {
    auto d = test::recv_message<msg::ScoreDone>(h.scheduler);
    ASSERT_TRUE(d.has_value());
    done[d->job_id] = *d;
  }
  expect_scores(done[1].scores, reference({kS1, kS2}).scores);
  expect_scores(done[2].scores, reference({kS1, kS2b}).scores);
  // The first computes everything; the second only what follows the blocks
  // they share (it waits for them rather than computing them twice).
  EXPECT_EQ(done[1].n_computed, done[1].n_tokens);
  EXPECT_LT(done[2].n_computed, done[2].n_tokens);
  EXPECT_EQ(done[1].scores[0], done[2].scores[0]);
}

TEST(Verifier, ForgetClearsTheScoreCacheAndRescoringStillMatches) {
  Harness h;
  h.start_granted();
  h.score(1, 8, 0, {kS1, kS2});
  EXPECT_EQ(stat(h.stats(), "score_cache_entries"), 2);
  h.send(msg::Forget{8});
  auto st = h.stats();
  EXPECT_EQ(stat(st, "score_cache_entries"), 0);
  EXPECT_EQ(stat(st, "score_cache_requests"), 0);
  // The KV of the prefix is still cached but its scores are gone: the steps
  // inside it are recomputed, not read from stale state.
  msg::ScoreDone again = h.score(2, 8, 0, {kS1, kS2, kS3});
  expect_scores(again.scores, reference({kS1, kS2, kS3}).scores);
  EXPECT_LT(again.n_computed, again.n_tokens);
}

TEST(Verifier, ChunkedPrefillGivesTheSameScores) {
  Harness h;
  VerifierOptions o = h.options();
  o.prefill_chunk = 7;
  h.start_granted(1 << 20, o);
  msg::ScoreDone d = h.score(1, 1, 0, {kS1, kS2, kS3});
  expect_scores(d.scores, reference({kS1, kS2, kS3}).scores);
  EXPECT_GT(stat(h.stats(), "iterations"), d.n_tokens / 7);
}

TEST(Verifier, AnInputLargerThanTheWholeKvPoolGetsAnErrorAndTheNextJobStillRuns) {
  Harness h;
  h.start_granted(2 * kBlockBytes);  // 32 tokens: less than the PRM's prompt alone
  h.send(msg::ScoreJob{1, 1, 0, kProblem, {kS1, kS2, kS3}});
  auto d = test::recv_message<msg::ScoreDone>(h.scheduler);
  ASSERT_TRUE(d.has_value());
  EXPECT_NE(d->error.find("KV capacity"), std::string::npos) << d->error;
  EXPECT_EQ(d->code, msg::code::kTooLarge);
  EXPECT_TRUE(d->scores.empty());
  h.send(msg::ScoreJob{2, 1, 0, kProblem, {}});  // no steps: an error too, not a crash
  auto e = test::recv_message<msg::ScoreDone>(h.scheduler);
  ASSERT_TRUE(e.has_value());
  EXPECT_FALSE(e->error.empty());
  EXPECT_EQ(e->code, msg::code::kBadRequest);  // steps the PRM's format cannot hold
  EXPECT_FALSE(h.actor->poll_failure().has_value());
}

TEST(Verifier, UnderAnElasticGrantItReportsTheContextItComputedAgainAtItsPoolsSize) {
  // A pool that holds one job: another request's job in between evicts the
  // first's KV, so the job continuing it computes its context again. The
  // memory arbiter hears those misses and the pool they happened at
  // (EngineLoad), apart from the new tokens.
  Harness h;
  const int64_t n3 = (int64_t)reference({kS1, kS2, kS3}).in.ids.size();
  const int64_t pool = (n3 + 16) / 16 * 16 + 16;
  ASSERT_TRUE(h.start(h.options()).ok());
  ASSERT_TRUE(test::recv_message<msg::Weights>(h.arbiter).has_value());
  h.send(msg::Grant{"verifier", pool * kBytesPerToken, pool, 4 * pool * kBytesPerToken, 4 * pool, 1});

  const msg::ScoreDone d1 = h.score(1, 1, 0, {kS1, kS2});
  EXPECT_EQ(d1.n_computed, d1.n_tokens);
  // As long as the continuing job: it fits the pool, and evicts what the first left there.
  h.send(msg::ScoreJob{2, 2, 0, "What is 12 times 7, minus 5?",
                       {kS1, "84 minus 5 is 79.", "The answer is \\boxed{79}."}});
  auto d2 = test::recv_message<msg::ScoreDone>(h.scheduler);
  ASSERT_TRUE(d2.has_value());
  ASSERT_TRUE(d2->error.empty()) << d2->error;
  // Steps 1 and 2 were scored before: its new tokens are step 3's.
  const msg::ScoreDone d3 = h.score(3, 1, 0, {kS1, kS2, kS3});
  const Reference ref = reference({kS1, kS2, kS3});
  const int32_t fresh = (int32_t)ref.in.ids.size() - (ref.in.score_positions[1] + 1);
  ASSERT_GT(d3.n_computed, fresh) << "the pool kept the first job's context: nothing was evicted";
  std::this_thread::sleep_for(150ms);  // past the report interval
  const msg::ScoreDone d4 = h.score(4, 3, 0, {kS1});

  std::optional<msg::EngineLoad> last;
  while (auto l = test::recv_message<msg::EngineLoad>(h.arbiter, 500ms)) last = l;
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->role, "verifier");
  EXPECT_EQ(last->pool_tokens, pool);
  EXPECT_EQ(last->miss_jobs, 4);  // all at this pool's size
  // Means over the four jobs.
  EXPECT_NEAR(last->tokens_per_job, (d1.n_computed + d2->n_computed + fresh + d4.n_computed) / 4.0, 1e-9);
  EXPECT_NEAR(last->miss_tokens_per_job, (d3.n_computed - fresh) / 4.0, 1e-9);
  EXPECT_GT(last->miss_tokens_per_job, 0);
  // The working set of those four jobs (fewer than the smallest window's 8:
  // one window): their contexts, and the distinct KV they take, a full block
  // told by the tokens up to its end, a partial one counted each time.
  const std::vector<std::vector<int32_t>> contexts = {
      prm_ids(kProblem, {kS1, kS2}),
      prm_ids("What is 12 times 7, minus 5?", {kS1, "84 minus 5 is 79.", "The answer is \\boxed{79}."}),
      ref.in.ids, prm_ids(kProblem, {kS1})};
  int64_t ctx = 0, tails = 0;
  std::set<std::vector<int32_t>> blocks;
  for (const auto& c : contexts) {
    ctx += (int64_t)c.size(), tails += (int64_t)c.size() % 16;
    for (size_t end = 16; end <= c.size(); end += 16) blocks.insert(std::vector<int32_t>(c.begin(), c.begin() + end));
  }
  ASSERT_EQ(last->window_jobs, std::vector<int32_t>{4});
  EXPECT_EQ(last->window_ctx_tokens, std::vector<int32_t>{(int32_t)ctx});
  EXPECT_EQ(last->window_unique_tokens, std::vector<int32_t>{(int32_t)(16 * (int64_t)blocks.size() + tails)});
  EXPECT_LT(last->window_unique_tokens[0], ctx) << "job 3 continues job 1, and job 4 shares their prompt";

  // A grant that moves memory names the jobs to finish before the misses
  // at the new size count: the first of two does not.
  h.send(msg::Grant{"verifier", 2 * pool * kBytesPerToken, 2 * pool, 4 * pool * kBytesPerToken, 4 * pool, 2, 0, 1});
  ASSERT_TRUE(test::recv_message<msg::PoolSize>(h.arbiter).has_value());
  h.score(5, 1, 0, {kS1, kS2});
  std::this_thread::sleep_for(150ms);
  h.score(6, 3, 0, {kS1, kS2});
  last.reset();
  while (auto l = test::recv_message<msg::EngineLoad>(h.arbiter, 500ms)) last = l;
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->pool_tokens, 2 * pool);
  EXPECT_EQ(last->miss_jobs, 1);
}

TEST(Verifier, AJobWaitingForItsPoolToGrowIsReportedThoughNoPassRuns) {
  // Under an elastic grant a job larger than the pool (not than what it may
  // grow to) waits for a grant; the memory arbiter must hear of it, or it
  // may never give the pool what the job needs.
  Harness h;
  const int64_t n3 = (int64_t)reference({kS1, kS2, kS3}).in.ids.size();
  const int64_t pool = 32;
  ASSERT_LT(pool, n3);
  ASSERT_TRUE(h.start(h.options()).ok());
  ASSERT_TRUE(test::recv_message<msg::Weights>(h.arbiter).has_value());
  h.send(msg::Grant{"verifier", pool * kBytesPerToken, pool, 8 * n3 * kBytesPerToken, 8 * n3 / 16 * 16, 1});
  h.send(msg::ScoreJob{1, 1, 0, kProblem, {kS1, kS2, kS3}});
  std::optional<msg::EngineLoad> load;
  using Clock = std::chrono::steady_clock;
  for (auto until = Clock::now() + 2s; Clock::now() < until && !(load && load->max_ctx_tokens >= n3);)
    load = test::recv_message<msg::EngineLoad>(h.arbiter, 500ms);
  ASSERT_TRUE(load.has_value()) << "no engine_load while the job waits";
  EXPECT_GE(load->max_ctx_tokens, n3);
  EXPECT_EQ(load->running, 0);
  // Meanwhile it keeps reporting, and waits for messages between reports
  // instead of stepping again and again (it used to spin a core here).
  const auto cpu0 = test::process_cpu_seconds();
  int reports = 0;
  for (auto until = Clock::now() + 1s; Clock::now() < until;)
    reports += test::recv_message<msg::EngineLoad>(h.arbiter, 200ms).has_value();
  EXPECT_GE(reports, 3);
  EXPECT_LT(test::process_cpu_seconds() - cpu0, 0.25) << "the verifier spins while its job waits";
  // The grant that holds it lets it run.
  h.send(msg::Grant{"verifier", 2 * n3 * kBytesPerToken, 2 * n3 / 16 * 16 + 16, 8 * n3 * kBytesPerToken, 8 * n3 / 16 * 16, 2});
  auto d = test::recv_message<msg::ScoreDone>(h.scheduler, 5s);
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->error.empty()) << d->error;
}

TEST(Verifier, AFolderThatIsNotAPrmFailsStartNamingIt) {
  Harness h;
  VerifierOptions o = h.options();
  o.model_dir = model_dir("qwen2");
  Status s = h.start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(o.model_dir.string()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not a process reward model"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace flashtts
