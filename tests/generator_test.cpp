// The generator actor through its messages only: test-owned sockets stand in
// for the scheduler, the memory arbiter and the intake; the model is a tiny
// random Qwen2 folder written by flashtts-mkmodel. Token equality is checked
// against the synchronous generate() loop on a fresh engine.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include "actors/generator.h"
#include "gpu/generate.h"
#include "gpu/model_loader.h"
#include "messages/error_codes.h"
#include "messages/internal.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int64_t kBytesPerToken = test::kSmallKvBytesPerToken;
constexpr int64_t kBlockBytes = kBytesPerToken * 16;

const fs::path& model_dir() { return test::small_model("generator-qwen2", "qwen2", 5); }
const Tokenizer& tokenizer() { return test::model_tokenizer(model_dir()); }
std::vector<int32_t> encode(const std::string& text) { return tokenizer().encode(text); }

// generate() on a fresh engine: what the actor must reproduce token for token.
GenerateResult reference(const msg::GenJob& j) { return test::reference_generate(model_dir(), j); }

using test::recv_envelope;
using test::stat;

// A generator with test sockets at its peers' endpoints (bound before it starts).
struct Harness : test::EngineActorHarnessOf<GeneratorOptions> {
  Harness() : EngineActorHarnessOf("generator-test", "generator", run_generator, model_dir(), kBytesPerToken) {}

  // The next `n` GenDone messages in arrival order.
  std::vector<msg::GenDone> done(size_t n) { return test::recv_messages<msg::GenDone>(scheduler, n); }

  // Starts with `o`, queues `jobs` before the grant (1 MiB), so the queue
  // holds them all when the first runs however the machine schedules this
  // thread; their GenDones in arrival order (empty if it did not start).
  std::vector<msg::GenDone> run_queued(const GeneratorOptions& o, const std::vector<msg::GenJob>& jobs) {
    if (!start(o).ok() || !test::recv_message<msg::Weights>(arbiter)) return {};
    for (const auto& j : jobs) send(j);
    send(msg::Grant{"generator", 1 << 20, (1 << 20) / kBytesPerToken});
    return done(jobs.size());
  }
};

msg::GenJob job(uint64_t id, uint64_t rid, int32_t beam, const std::string& prompt, int32_t max_tokens,
                double temperature = 0.0, uint64_t seed = 0) {
  msg::GenJob j;
  j.job_id = id;
  j.rid = rid;
  j.beam = beam;
  j.tokens = encode(prompt);
  j.max_tokens = max_tokens;
  j.temperature = temperature;
  j.seed = seed;
  j.stop_at_delimiter = false;
  return j;
}

const char* finish_of(const GenerateResult& r) { return r.finish_reason == "stop" ? "eos" : "length"; }

TEST(Generator, ReportsItsWeightsFirstAndRunsNoJobBeforeItsGrant) {
  Harness h;
  ASSERT_TRUE(h.start(h.options()).ok());
  auto w = test::recv_message<msg::Weights>(h.arbiter);
  ASSERT_TRUE(w.has_value());
  auto cfg = load_model_config(model_dir());
  ASSERT_TRUE(cfg.ok());
  int64_t bytes = 0;
  for (const TensorSlot& s : model_tensor_slots(*cfg, nullptr)) {
    int64_t n = 4;
    for (int64_t d : s.shape) n *= d;
    bytes += n;
  }
  EXPECT_EQ(w->role, "generator");
  EXPECT_EQ(w->weight_bytes, bytes);
  EXPECT_EQ(w->kv_bytes_per_token, kBytesPerToken);
  EXPECT_EQ(w->block_size, 16);

  h.send(job(1, 1, 0, "Let a = 5.", 6));
  EXPECT_FALSE(test::recv_message<msg::GenDone>(h.scheduler, 200ms).has_value());  // waits for the grant
  h.send(msg::Grant{"generator", 1 << 20, (1 << 20) / kBytesPerToken});
  auto d = h.done(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].job_id, 1u);
  EXPECT_GE(d[0].queue_ms, 150.0);
}

TEST(Generator, GreedyAndSampledJobsGiveExactlyTheTokensOfGenerate) {
  Harness h;
  h.start_granted(1 << 20);
  std::vector<msg::GenJob> jobs = {job(1, 7, 0, "What is 2+3?", 24), job(2, 7, 1, "What is 2+3?", 24, 0.8, 11),
                                   job(3, 8, 2, "Solve x^2 = 4 step by step.", 24, 1.0, 11)};
  jobs[1].top_p = 0.9;
  jobs[2].top_k = 20;
  for (const auto& j : jobs) h.send(j);
  auto d = h.done(3);
  ASSERT_EQ(d.size(), 3u);
  for (const msg::GenDone& g : d) {
    const msg::GenJob& j = jobs[g.job_id - 1];
    GenerateResult ref = reference(j);
    EXPECT_EQ(g.tokens, ref.tokens) << "job " << g.job_id;
    EXPECT_EQ(g.finish, finish_of(ref));
    EXPECT_EQ(g.text, tokenizer().decode(ref.tokens, true));
    EXPECT_EQ(g.n_context, (int32_t)j.tokens.size());
    EXPECT_EQ(g.rid, j.rid);
    EXPECT_EQ(g.beam, j.beam);
    EXPECT_EQ(g.n_preempted, 0);
  }
}

TEST(Generator, ShortJobsAreReportedBeforeALongOneFinishes) {
  Harness h;
  // Queued before the grant, so that all three start together (sent after
  // it, the long job could run to its end before the others arrive).
  auto d = h.run_queued(h.options(), {job(1, 1, 0, "A long story:", 60), job(2, 1, 1, "Short:", 4),
                                      job(3, 1, 2, "Medium one:", 12)});
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].job_id, 2u);
  EXPECT_EQ(d[1].job_id, 3u);
  EXPECT_EQ(d[2].job_id, 1u);
  EXPECT_EQ(d[0].tokens.size(), 4u);
  EXPECT_EQ(d[1].tokens.size(), 12u);
}

TEST(Generator, ATightKvGrantPreemptsJobsAndTheirTokensStayTheSame) {
  Harness h;
  // 8 blocks of 16 tokens; four jobs that each grow to about 4 blocks.
  h.start_granted(8 * kBlockBytes);
  std::vector<msg::GenJob> jobs;
  const char* prompts[] = {"First: a b c", "Second: d e f", "Third: g h i", "Fourth: j k l"};
  for (int i = 0; i < 4; ++i) jobs.push_back(job(i + 1, 3, i, prompts[i], 40, i % 2 ? 0.9 : 0.0, 21));
  for (const auto& j : jobs) h.send(j);
  auto d = h.done(4);
  ASSERT_EQ(d.size(), 4u);
  int preempted = 0;
  for (const msg::GenDone& g : d) {
    GenerateResult ref = reference(jobs[g.job_id - 1]);
    EXPECT_EQ(g.tokens, ref.tokens) << "job " << g.job_id;
    EXPECT_EQ(g.finish, finish_of(ref));
    preempted += g.n_preempted;
  }
  EXPECT_GT(preempted, 0);
  auto st = h.stats();
  EXPECT_EQ(stat(st, "preemptions"), preempted);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
}

// Issue 22: under the prefix policy (by_priority) the lowest-priority job is
// preempted first (a beam likely to be pruned is the cheapest to lose), not
// the newest; the best one never is.
TEST(Generator, ByPriorityATightGrantPreemptsTheLowestPriorityJobsFirst) {
  for (bool by_priority : {false, true}) {
    SCOPED_TRACE(by_priority ? "by priority" : "newest first");
    Harness h;
    auto o = h.options();
    o.by_priority = by_priority;
    h.start_granted(8 * kBlockBytes, o);
    // Admitted in this order, each growing to 3 blocks: 12 of 8.
    const int32_t priority[] = {9, 1, 5, 7};
    std::vector<msg::GenJob> jobs;
    for (int i = 0; i < 4; ++i) {
      jobs.push_back(job(i + 1, 3, i, "Job " + std::to_string(i) + ": a b c", 40));
      jobs.back().priority = priority[i];
    }
    for (const auto& j : jobs) h.send(j);
    auto d = h.done(4);
    ASSERT_EQ(d.size(), 4u);
    std::map<uint64_t, int32_t> preempted;
    for (const msg::GenDone& g : d) {
      EXPECT_EQ(g.tokens, reference(jobs[g.job_id - 1]).tokens) << "job " << g.job_id;
      preempted[g.job_id] = g.n_preempted;
    }
    if (by_priority) {
      EXPECT_GT(preempted[2], 0);  // priority 1
      EXPECT_EQ(preempted[1], 0);  // priority 9
      EXPECT_EQ(preempted[4], 0);  // priority 7, admitted last
    } else {
      EXPECT_GT(preempted[4], 0);  // the newest
    }
    EXPECT_EQ(stat(h.stats(), "kv_blocks_used"), 0);
  }
}

// policies.request_order = "arrival": a job queues ahead of the queued jobs
// of younger requests (higher rids), so the oldest request's work runs first;
// "interleaved" keeps the order the jobs came in. One job at a time.
TEST(Generator, ByRequestTheOlderRequestsJobsRunFirst) {
  for (bool by_request : {false, true}) {
    SCOPED_TRACE(by_request ? "arrival" : "interleaved");
    Harness h;
    auto o = h.options();
    o.max_batch = 1;
    o.by_request = by_request;
    auto d = h.run_queued(o, {job(1, 5, 0, "First of five:", 4), job(2, 5, 1, "Second of five:", 4),
                              job(3, 4, 0, "Four is older:", 4), job(4, 5, 2, "Third of five:", 4)});
    ASSERT_EQ(d.size(), 4u);
    std::vector<uint64_t> order;
    for (const auto& g : d) order.push_back(g.job_id);
    const std::vector<uint64_t> want = by_request ? std::vector<uint64_t>{3, 1, 2, 4} : std::vector<uint64_t>{1, 2, 3, 4};
    EXPECT_EQ(order, want);
  }
}

TEST(Generator, AJobStopsRightAfterTheTokenThatCompletesTheStepDelimiter) {
  // Pick as delimiter a piece of text the model is known to produce.
  msg::GenJob j = job(1, 1, 0, "Count: 1, 2, 3,", 40);
  GenerateResult ref = reference(j);
  ASSERT_GE(ref.tokens.size(), 12u);
  std::string delim;
  for (size_t k = 6; k < ref.tokens.size() && delim.empty(); ++k) {
    std::string piece(tokenizer().token_bytes(ref.tokens[k]));
    if (!piece.empty() && std::all_of(piece.begin(), piece.end(), [](char c) { return c > ' ' && c < 127; }))
      delim = piece.substr(piece.size() - 1);
  }
  ASSERT_FALSE(delim.empty()) << "no ASCII token in the reference output";
  size_t stop = 0;
  while (tokenizer().decode(std::span(ref.tokens).first(stop + 1), true).find(delim) == std::string::npos) ++stop;

  Harness h;
  GeneratorOptions o = h.options();
  o.step_delimiter = delim;
  h.start_granted(1 << 20, o);
  j.stop_at_delimiter = true;
  h.send(j);
  msg::GenJob free_running = j;
  free_running.job_id = 2;
  free_running.stop_at_delimiter = false;
  h.send(free_running);
  auto d = h.done(2);
  ASSERT_EQ(d.size(), 2u);
  const msg::GenDone& stopped = d[0].job_id == 1 ? d[0] : d[1];
  const msg::GenDone& full = d[0].job_id == 1 ? d[1] : d[0];
  EXPECT_EQ(stopped.finish, "delimiter") << "delimiter '" << delim << "'";
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(ref.tokens.begin(), ref.tokens.begin() + stop + 1));
  EXPECT_NE(stopped.text.find(delim), std::string::npos);
  EXPECT_EQ(full.tokens, ref.tokens);
  EXPECT_EQ(full.finish, finish_of(ref));
}

TEST(Generator, ProgressReportsCarryTheNewTextEveryFewTokens) {
  Harness h;
  h.start_granted(1 << 20);
  msg::GenJob j = job(1, 4, 0, "Tell me more:", 20);
  j.report_every = 4;
  h.send(j);
  std::string streamed;
  int reports = 0;
  std::optional<msg::GenDone> done;
  while (!done) {
    auto env = recv_envelope(h.scheduler, 10s);
    ASSERT_TRUE(env.has_value());
    if (env->type == msg::GenProgress::kType) {
      auto p = msg::decode<msg::GenProgress>(*env);
      ASSERT_TRUE(p.ok());
      EXPECT_EQ(p->job_id, 1u);
      EXPECT_EQ(p->rid, 4u);
      EXPECT_FALSE(p->text.empty());
      streamed += p->text;
      ++reports;
    } else if (env->type == msg::GenDone::kType) {
      done = msg::decode<msg::GenDone>(*env).value();
    }
  }
  EXPECT_GE(reports, 1);
  EXPECT_LE(reports, 4);  // every 4th of at most 20 tokens, the last one reported by gen_done
  EXPECT_EQ(done->text.substr(0, streamed.size()), streamed);
}

TEST(Generator, BeamsWithOnePromptComputeItOnce) {
  Harness h;
  h.start_granted(1 << 20);
  const std::string prompt =
      "Problem: a train leaves at noon at 60 miles per hour and another at one at 80; when does the second "
      "catch up with the first? Think step by step.";
  std::vector<msg::GenJob> jobs;
  for (int b = 0; b < 4; ++b) jobs.push_back(job(b + 1, 5, b, prompt, 6, 0.8, 3));
  ASSERT_GT(jobs[0].tokens.size(), 33u);
  for (const auto& j : jobs) h.send(j);
  auto d = h.done(4);
  ASSERT_EQ(d.size(), 4u);
  const int32_t reusable = ((int32_t)jobs[0].tokens.size() - 1) / 16 * 16;
  int computed_fully = 0;
  for (const msg::GenDone& g : d) {
    EXPECT_EQ(g.tokens, reference(jobs[g.job_id - 1]).tokens);
    if (g.n_cached == 0) ++computed_fully;
    else EXPECT_EQ(g.n_cached, reusable);
  }
  EXPECT_EQ(computed_fully, 1);  // the siblings waited for the first one's KV
}

TEST(Generator, ForgetDropsARunningJobAndItsBlocksComeBack) {
  Harness h;
  h.start_granted(4 << 20);
  msg::GenJob j = job(1, 9, 0, "Once upon a time", 3000);
  j.report_every = 1;
  h.send(j);
  ASSERT_TRUE(test::recv_message<msg::GenProgress>(h.scheduler).has_value());  // it runs
  h.send(msg::Forget{9});
  auto st = h.stats();
  EXPECT_EQ(stat(st, "running"), 0);
  EXPECT_EQ(stat(st, "queued"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
  EXPECT_GT(stat(st, "kv_blocks_total"), 0);
  EXPECT_FALSE(test::recv_message<msg::GenDone>(h.scheduler, 300ms).has_value());
  // The actor is still serving.
  h.send(job(2, 10, 0, "Next", 3));
  auto d = h.done(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].job_id, 2u);
}

TEST(Generator, TermWhileJobsRunStopsPromptly) {
  Harness h;
  h.start_granted(4 << 20);
  for (int b = 0; b < 4; ++b) {
    msg::GenJob j = job(b + 1, 1, b, "Go on and on", 3000, 1.0, 1);
    j.report_every = 1;
    h.send(j);
  }
  ASSERT_TRUE(test::recv_message<msg::GenProgress>(h.scheduler).has_value());
  auto t0 = Clock::now();
  EXPECT_TRUE(h.actor->stop(5s));
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_FALSE(h.actor->poll_failure().has_value());
}

TEST(Generator, AMissingModelFolderFailsStartWithAMessageNamingIt) {
  Harness h;
  GeneratorOptions o = h.options();
  o.model_dir = test::scratch_dir("generator-missing") / "no-such-model";
  Status s = h.start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(o.model_dir.string()), std::string::npos) << s.message();
}

TEST(Generator, AContextLargerThanTheWholeKvPoolFinishesWithAnError) {
  Harness h;
  h.start_granted(2 * kBlockBytes);  // 32 tokens
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += " word" + std::to_string(i);
  h.send(job(1, 1, 0, long_prompt, 4));
  h.send(job(2, 1, 1, "Fits", 4));
  auto d = h.done(2);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].job_id, 1u);
  EXPECT_EQ(d[0].finish, "error");
  EXPECT_NE(d[0].error.find("KV capacity"), std::string::npos) << d[0].error;
  EXPECT_EQ(d[0].code, msg::code::kTooLarge);  // the input's fault, not the engine's
  EXPECT_EQ(d[1].finish, "length");
}

// Issue 19: over the model's positions is too_large; a job the beam manager
// should never have built carries no code (internal).
TEST(Generator, AContextThatFillsThePositionsIsTooLargeAndABrokenJobIsInternal) {
  Harness h;
  h.start_granted(1 << 20);
  msg::GenJob full = job(1, 1, 0, "x", 4);
  full.tokens.assign(4096, full.tokens[0]);  // the model's max_position_embeddings
  h.send(full);
  msg::GenJob broken = job(2, 1, 1, "x", 4);
  broken.tokens.push_back(1 << 20);  // outside the vocabulary
  h.send(broken);
  auto d = h.done(2);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].finish, "error");
  EXPECT_EQ(d[0].code, msg::code::kTooLarge);
  EXPECT_NE(d[0].error.find("at most 4096 positions (max_position_embeddings)"), std::string::npos) << d[0].error;
  EXPECT_EQ(d[1].finish, "error");
  EXPECT_EQ(d[1].code, "");
  EXPECT_NE(d[1].error.find("outside the vocabulary"), std::string::npos) << d[1].error;
}

// math-trace (GenJob::forced_tokens): a copy of the model whose EOS is a
// token the greedy output writes early, and a delimiter it writes early; the
// forced job runs past both and ends at exactly its length, the same job
// unforced stops at them.
TEST(Generator, AForcedJobIgnoresEosAndTheDelimiterAndEndsAtExactlyItsLength) {
  constexpr int32_t kForced = 21;
  msg::GenJob j = job(1, 1, 0, "Count: 1, 2, 3,", kForced);
  GenerateResult ref = reference(j);
  ASSERT_EQ(ref.tokens.size(), size_t(kForced)) << "the model's own EOS came first";
  size_t at = 3;  // the first token (from the 4th) not written before: the new EOS
  while (at < 10 && std::find(ref.tokens.begin(), ref.tokens.begin() + at, ref.tokens[at]) != ref.tokens.begin() + at)
    ++at;
  ASSERT_LT(at, 10u);
  const std::string early = tokenizer().decode(std::span(ref.tokens).first(6), true);
  std::string delim;
  for (char ch : early)
    if (ch > ' ' && ch < 127 && delim.empty()) delim = std::string(1, ch);
  ASSERT_FALSE(delim.empty()) << "no ASCII in '" << early << "'";

  const fs::path model = test::scratch_dir("generator-forced");
  fs::copy(model_dir(), model, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::ofstream(model / "generation_config.json") << "{\"eos_token_id\": [" << ref.tokens[at] << "]}\n";

  Harness h;
  GeneratorOptions o = h.options();
  o.model_dir = model;
  o.step_delimiter = delim;
  h.start_granted(1 << 20, o);
  msg::GenJob forced = j, plain = j;
  forced.stop_at_delimiter = plain.stop_at_delimiter = true;
  forced.forced_tokens = kForced;
  plain.job_id = 2;
  h.send(forced);
  h.send(plain);
  auto d = h.done(2);
  ASSERT_EQ(d.size(), 2u);
  const msg::GenDone& f = d[0].job_id == 1 ? d[0] : d[1];
  const msg::GenDone& p = d[0].job_id == 1 ? d[1] : d[0];
  EXPECT_EQ(f.finish, "forced");
  EXPECT_EQ(f.tokens, ref.tokens) << "exactly its length, EOS and the delimiter inside";
  EXPECT_NE(f.text.find(delim), std::string::npos);
  EXPECT_TRUE(p.finish == "eos" || p.finish == "delimiter") << p.finish;
  EXPECT_LE(p.tokens.size(), at + 1);

  // Only the model's last position stops a forced job early.
  msg::GenJob edge = job(3, 1, 0, "x", kForced);
  edge.tokens.assign(4096 - 5, edge.tokens[0]);
  edge.forced_tokens = kForced;
  Harness h2;
  h2.start_granted(int64_t(4200) * kBytesPerToken, h2.options());
  h2.send(edge);
  auto e = h2.done(1);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].finish, "length");
  EXPECT_EQ(e[0].tokens.size(), 5u);
}

TEST(Generator, AGrantTooSmallForOneBlockFailsTheActor) {
  Harness h;
  h.start_granted(kBlockBytes - 1);
  auto failure = h.actor->poll_failure(5s);
  ASSERT_TRUE(failure.has_value());
  EXPECT_NE(failure->find("holds no block"), std::string::npos) << *failure;
}

// An elastic pool (memory.split = roofline): the memory arbiter shrinks it
// under load and grows it back. Jobs holding blocks above the cut are
// preempted, not failed; every job still gives generate()'s tokens, and no
// block is left used.
TEST(Generator, APoolShrunkUnderLoadPreemptsAndGrowsBackLosingNothing) {
  Harness h;
  ASSERT_TRUE(h.start(h.options()).ok());
  ASSERT_TRUE(test::recv_message<msg::Weights>(h.arbiter).has_value());
  auto grant = [&](int64_t blocks, uint64_t serial) {
    msg::Grant g{"generator", blocks * kBlockBytes, blocks * 16, 256 * kBlockBytes, 256 * 16, serial};
    h.send(g);
    return test::recv_message<msg::PoolSize>(h.arbiter);
  };
  // The jobs are queued before the first grant, so that all eight start
  // together, and long enough that they still run when the shrink comes.
  std::vector<msg::GenJob> jobs;
  for (int b = 0; b < 8; ++b) {
    jobs.push_back(job(b + 1, 3, b, "Job " + std::to_string(b) + ": count the apples in the basket.", 160));
    jobs.back().report_every = 4;
    h.send(jobs.back());
  }
  auto first = grant(96, 1);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->kv_tokens, 96 * 16);
  // Once they run (two blocks each at least), the pool shrinks to 8 blocks.
  ASSERT_TRUE(test::recv_message<msg::GenProgress>(h.scheduler).has_value());
  // The arbiter hears how far down a shrink goes without preempting: past
  // the highest block a running job holds.
  std::optional<msg::EngineLoad> load;
  for (int i = 0; i < 20 && !(load && load->running == 8); ++i) load = test::recv_message<msg::EngineLoad>(h.arbiter, 1s);
  ASSERT_TRUE(load && load->running == 8) << "no engine_load with the eight jobs running";
  EXPECT_EQ(load->pinned_tokens % 16, 0);
  EXPECT_GE(load->pinned_tokens, 8 * 16);  // eight jobs, a block each at least
  EXPECT_LE(load->pinned_tokens, 96 * 16);
  auto shrunk = grant(8, 2);
  ASSERT_TRUE(shrunk.has_value());
  EXPECT_EQ(shrunk->serial, 2u);
  EXPECT_EQ(shrunk->kv_tokens, 8 * 16);
  EXPECT_TRUE(shrunk->error.empty()) << shrunk->error;
  EXPECT_GT(shrunk->preempted, 0);
  EXPECT_EQ(test::stat(h.stats(), "kv_blocks_total"), 8);
  auto grown = grant(128, 3);
  ASSERT_TRUE(grown.has_value());
  EXPECT_EQ(grown->kv_tokens, 128 * 16);
  auto d = h.done(8);
  ASSERT_EQ(d.size(), 8u);
  for (const msg::GenDone& g : d) {
    EXPECT_TRUE(g.error.empty()) << g.error;
    EXPECT_EQ(g.tokens, reference(jobs[g.job_id - 1]).tokens) << "job " << g.job_id;
  }
  msg::MapReader st = h.stats();
  EXPECT_EQ(test::stat(st, "kv_blocks_total"), 128);
  EXPECT_EQ(test::stat(st, "kv_blocks_used"), 0);
  EXPECT_GT(test::stat(st, "preemptions"), 0);
}

// Under an elastic pool the memory arbiter hears the generator's load while
// jobs run, and once more when the last has gone, though that is sooner
// than the report interval after the one before: the generator then waits
// for a message and reports nothing, and the arbiter would keep the last
// busy report's largest context as a floor under the pool.
TEST(Generator, TheArbiterHearsAtOnceWhenTheLastJobHasGone) {
  Harness h;
  ASSERT_TRUE(h.start(h.options()).ok());
  ASSERT_TRUE(test::recv_message<msg::Weights>(h.arbiter).has_value());
  h.send(msg::Grant{"generator", 32 * kBlockBytes, 32 * 16, 64 * kBlockBytes, 64 * 16, 1});
  ASSERT_TRUE(test::recv_message<msg::PoolSize>(h.arbiter).has_value());
  // The idle report the grant brought, and the interval past it, so that the
  // job's first pass reports it running.
  while (test::recv_message<msg::EngineLoad>(h.arbiter, 300ms)) {
  }
  h.send(job(1, 3, 0, "Count the apples.", 3));
  ASSERT_EQ(h.done(1).size(), 1u);
  std::optional<msg::EngineLoad> last;
  while (auto l = test::recv_message<msg::EngineLoad>(h.arbiter, 500ms)) last = l;
  ASSERT_TRUE(last.has_value()) << "no engine_load at all";
  EXPECT_EQ(last->running, 0);
  EXPECT_EQ(last->max_ctx_tokens, 0);
}

}  // namespace
}  // namespace flashtts
