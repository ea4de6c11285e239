// A search strategy: the per-request algorithm that turns generation and
// scoring jobs into completed solutions. The beam manager drives it: start()
// once, then on_generated()/on_scored() as results come back (in any order),
// until finished(). best_of_n.cpp, beam_search.cpp and dvts.cpp implement it.
//
// Thread contract: owned and called by the beam_manager actor only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "messages/internal.h"
#include "messages/msgpack_io.h"

namespace flashtts {

// A finished solution path.
struct Completion {
  int32_t beam = 0;
  std::string text;                // the whole generated solution
  std::vector<std::string> steps;  // text split at the step delimiter
  std::vector<float> step_scores;  // PRM score of each step
  std::string finish;              // how its generation ended ("eos", "length", ...)
  std::vector<int32_t> step_tokens;  // trace mode: the token count of each step
  int32_t n_tokens = 0;            // policy tokens of its whole text (shared ancestors' too)
  double done_ms = 0;              // when it completed, from the request's start (goodput)
};

// One policy generation a strategy asks for (a GenJob's search-side fields).
struct GenRequest {
  int32_t beam = 0;              // names the random stream
  std::vector<int32_t> tokens;   // the whole context (prompt and steps), `prefix` excluded
  std::vector<int32_t> prefix;   // tokens of this step written earlier (GenJob::prefix)
  int32_t max_tokens = 0;
  bool stop_at_delimiter = true;
  bool greedy = false;           // temperature 0 (look-ahead steps)
  int32_t forced_tokens = 0;     // trace mode: exactly this many tokens (GenJob::forced_tokens)
  bool speculative = false;      // lowest priority; may end early, finish "stopped"
  // Live beams (SearchSetup::live_beams; GenJob's fields): keep the job's
  // sequence for the beams that continue it; start from a kept one.
  bool keep_kv = false;
  uint64_t from_job = 0;
  // GenJob::priority: the beam's standing (beam_priority), so that under the
  // prefix policy the better beams go first and are preempted last.
  int32_t priority = 0;
};

// One PRM scoring a strategy asks for (a ScoreJob's search-side fields).
struct ScoreRequest {
  int32_t beam = 0;
  std::vector<std::string> steps;  // of this request's problem
  bool keep_kv = false;            // as GenRequest's, for the PRM's sequence
  uint64_t from_job = 0;
  int32_t priority = 0;            // as GenRequest's
};

// What a strategy may ask of the beam manager.
class SearchHost {
 public:
  virtual ~SearchHost() = default;
  // Queues a generation; returns the job id.
  virtual uint64_t submit(GenRequest g) = 0;
  // Ends speculative jobs: job_ids[i] stops once it holds at_tokens[i]
  // generated tokens (0 = now; msg::StopJobs). Their GenDones follow.
  virtual void stop(std::vector<uint64_t> job_ids, std::vector<int32_t> at_tokens) = 0;
  // Queues a PRM scoring; returns the job id.
  virtual uint64_t submit_score(ScoreRequest s) = 0;
  // Live beams: frees the sequences kept for this request's finished jobs
  // (keep_kv), except those of the jobs in `referenced` (msg::ReleaseKv).
  virtual void keep_kv_only(const std::unordered_set<uint64_t>& referenced) = 0;
  // These finished jobs' beams end (pruned or set aside): the engines free
  // the KV only they wrote (msg::DropKv). 0s (steps carried from a
  // speculation, which no job of the beam wrote) are left out.
  virtual void drop_kv(std::vector<uint64_t> job_ids) = 0;
  // A progress event for streaming clients (sent only when they asked).
  virtual void progress(const msg::MapWriter& event) = 0;
  // Milliseconds since the request started.
  virtual double elapsed_ms() const = 0;

  // PRM scoring of `steps` (of this request's problem) for `beam`.
  uint64_t score(int32_t beam, std::vector<std::string> steps) { return submit_score({beam, std::move(steps)}); }

  // Generation from `tokens` (the whole context) for `beam`. `greedy`
  // overrides the request's sampling with temperature 0 (look-ahead steps).
  uint64_t generate(int32_t beam, std::vector<int32_t> tokens, int32_t max_tokens, bool stop_at_delimiter,
                    bool greedy) {
    return submit({beam, std::move(tokens), {}, max_tokens, stop_at_delimiter, greedy, 0, false, false, 0});
  }
  // The math-trace workload (SolveParams::trace): generation of exactly
  // `n_tokens` new tokens, EOS and the delimiter ignored (GenJob::forced_tokens).
  uint64_t generate_forced(int32_t beam, std::vector<int32_t> tokens, int32_t n_tokens, bool greedy) {
    return submit({beam, std::move(tokens), {}, n_tokens, false, greedy, n_tokens, false, false, 0});
  }
};

// What every strategy starts from.
struct SearchSetup {
  msg::SolveParams params;
  std::vector<int32_t> prompt;  // the policy prompt, chat template applied
  std::string delimiter;        // the step delimiter
  bool speculation = false;     // policies.speculation: speculative beam extension (beam search, DVTS)
  // policies.speculation_max_slowdown > 0: the generator may hold speculation
  // back, so the iteration's barrier ends what is still running instead of
  // waiting for it to reach its cap.
  bool speculation_bounded = false;
  // policies.speculation_prune: a beam already certain to be pruned (its
  // strategy's selection rule, before every beam has its score) drops its
  // speculation at once (SpecGroup::prune).
  bool speculation_prune = false;
  // policies.live_beams: a beam's sequences (policy and PRM) live in the
  // engines across iterations; its continuations fork them (GenJob::keep_kv).
  bool live_beams = false;
  // policies.speculation_bins: the paper's score bins cap a member's
  // speculation at 100/75/50/25% of what the lockstep would give it, by the
  // quarter its parent's score ranks in; false: every member gets all of it.
  bool speculation_bins = true;
  // policies.eviction = "pruned": the search names the finished jobs of the
  // beams it drops (pruned or set aside) in SearchHost::drop_kv.
  bool drop_dead_kv = false;
};

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  virtual void start(SearchHost& host) = 0;
  virtual void on_generated(SearchHost& host, const msg::GenDone& done) = 0;
  virtual void on_scored(SearchHost& host, const msg::ScoreDone& done) = 0;
  virtual bool finished() const = 0;
  // REQUIRES: finished().
  virtual std::vector<Completion> completions() const = 0;
  // Strategy-specific figures for the result's stats (iterations, ...).
  virtual void add_stats(msg::MapWriter& /*stats*/) const {}
};

// best_of_n: n independent samples to EOS or the token limit
// (max_steps * max_tokens_per_step), each scored step by step by the PRM.
std::unique_ptr<SearchStrategy> make_best_of_n(const SearchSetup& setup);

// beam_search (Hugging Face search-and-learn's beam search): n beams each
// generate one step per iteration; the PRM scores them; beams that ended
// (EOS, the step's token limit, an empty step, the answer marker) are set
// aside; the n / beam_width best of the rest survive and are copied back to n.
// The last of max_steps iterations generates to the end. Options: look-ahead,
// duplicate filtering, sorted completions (SolveParams).
std::unique_ptr<SearchStrategy> make_beam_search(const SearchSetup& setup);

// dvts (diverse verifier tree search): n / beam_width independent subtrees;
// each iteration a subtree samples beam_width candidate steps and keeps the
// best-scored one, until its kept step ends the solution. Each subtree yields
// its last beam_width candidates, so the result has n completions.
std::unique_ptr<SearchStrategy> make_dvts(const SearchSetup& setup);

// By the request's strategy name (validated by SolveParams::validate).
std::unique_ptr<SearchStrategy> make_strategy(const SearchSetup& setup);

}  // namespace flashtts
