// Speculative beam extension for one barrier group of a search: the n beams
// of a beam-search iteration, or the beam_width candidates of a DVTS
// subtree's iteration (docs/pipeline.md, "A beam's life").
//
// A member whose real step is written while others of its group still write
// goes on into its next step as a speculative job (a stream of its own).
// When every member has written, each speculation is capped at what the
// lockstep would have given it: the longest real step's generated tokens
// less the member's own, times its score bin (the members' priors, i.e. their
// parents' scores, in quarters: 100%, 75%, 50%, 25%; 100% for every member
// without SearchSetup::speculation_bins). Without a cost bound the
// generator runs each to its cap and the barrier waits, so what is kept does
// not depend on timing: a part the generator stopped short of its cap to make
// room for real work (memory pressure) is sent again, once the cap is known,
// from where it stopped and on its stream. With a cost bound
// (SearchSetup::speculation_bounded) the barrier ends what still runs. A
// speculation whose first part ended on its own within its cap is a whole
// step, scored at once after the member's real steps (look-ahead
// verification). In trace mode (actors/trace.h) it goes on past copy 0's
// drawn length toward the longest step of the member's copies, so each copy
// can take over most of its own step.
//
// At the barrier the strategy picks its survivors; carry() gives each copy
// what it takes over (DuplicateThenTruncate): copy 0 continues the whole
// speculation on its stream (the same tokens an uninterrupted job samples),
// and a whole verified step needs no generation; copy c >= 1 keeps a prefix
// of ratio r ~ N(0.85, 0.1) clipped to [0, 1], at least one token and at most
// all but one, drawn from (seed, its lineage, iteration), and writes on with
// its own stream. A pruned member's speculation is dropped.
//
// A member the strategy finds certain to be pruned before the barrier
// (SearchSetup::speculation_prune; prune()) drops its speculation at once:
// the running part is stopped now, nothing more is sent for it (no second
// part, no resumption, no look-ahead verification; one already running is
// ignored); its GenDone still settles the barrier, and it never survives
// (carry() of it gives nothing). Survivors' speculations are untouched, so
// what they keep, and the search, are the same as without.
//
// Dead branches first (SearchSetup::drop_dead_kv): once nothing can continue
// a member (drop(): certain to be pruned, or not kept at the selection), its
// speculation's finished jobs (every part, and its look-ahead scoring) are
// named in drop_kv, and those still running as they finish. A survivor's
// speculation is never named: its copies go on from it, as from the step
// before it.
//
// Thread contract: owned by one strategy, on the beam_manager's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/search_path.h"
#include "actors/strategy.h"
#include "actors/trace.h"

namespace flashtts {

// What a copy takes over from its parent's speculation.
struct Carry {
  int32_t stream = -1;                // the stream to continue; -1: the copy's own
  std::vector<int32_t> prefix;        // a partial step: generate on after it
  std::optional<msg::GenDone> step;   // a whole step: nothing to generate
  uint64_t score_job = 0;             // its look-ahead scoring, still running
  std::vector<std::string> scored_steps;
  std::vector<float> scores;
  bool scored = false;
  uint64_t kv_job = 0;                // live beams: the kept sequence holding what it takes (0: none)
};

// The job that writes the step after `path` on `stream`, going on after
// `carry`'s prefix (which it takes). In the last iteration, outside trace
// mode, a whole carried step becomes the prefix: that iteration writes to the
// end, and the same stream continues the step. nullopt when `carry` holds
// the whole step: nothing to generate.
std::optional<GenRequest> step_job(const SearchSetup& setup, const SearchPath& path, Carry& carry, int32_t stream,
                                   bool last_iteration);

// What look-ahead verification left for `path` once its carried step is
// appended: the scores (taken into `path`), a scoring job still running
// (carry.score_job), or nothing (the step must be scored).
enum class Verified { kNo, kScored, kRunning };
Verified take_verified(const SearchSetup& setup, const Carry& carry, SearchPath& path);

// The stream of the speculative job of the real job on `stream`: apart from
// every real job's stream_id of the search.
inline int32_t speculative_stream(const msg::SolveParams& p, int32_t stream) { return p.n * p.max_steps + stream; }

// Speculation figures of a whole search (a solve's stats.speculation).
struct SpecTally {
  int64_t jobs = 0, generated = 0, kept = 0, steps_reused = 0;
  // Speculations of members certain to be pruned, dropped before the
  // barrier; of them, those still running then (stopped at once); and the
  // tokens they had generated when they ended (part of `generated`).
  int64_t pruned_early = 0, pruned_early_stopped = 0, pruned_early_tokens = 0;
  void add_stats(msg::MapWriter& st) const;
};

class SpecGroup {
 public:
  // `copies`: how many copies a surviving member makes.
  SpecGroup(const SearchSetup& setup, int32_t copies, SpecTally* tally);

  // A new iteration of `members` members; every speculation is forgotten.
  void begin(size_t members);

  // Member m's real step is written: `path` holds it, `generated` tokens of
  // it were generated in this iteration; `goes_on`: the member may have a
  // next step; `stream` the speculative stream; `prior` its parent's score;
  // `kv_job` (live beams) the job whose kept sequence holds its path.
  void written(SearchHost& host, size_t m, const SearchPath& path, int32_t generated, bool goes_on, int32_t stream,
               float prior, uint64_t kv_job);

  // Live beams: adds the jobs whose kept sequences its speculations hold.
  void add_kv_jobs(std::unordered_set<uint64_t>* ids) const;

  // Takes the result of one of its jobs; false when the job is not its own.
  bool on_generated(SearchHost& host, const msg::GenDone& d);
  bool on_scored(SearchHost& host, const msg::ScoreDone& d);

  // Member m is certain to be pruned at this iteration's selection: its
  // speculation is dropped now (its GenDone still settles it).
  // REQUIRES: m has written; m is not pruned already.
  void prune(SearchHost& host, size_t m);

  // Nothing continues member m (dead branches first): its speculation's jobs
  // are named in drop_kv, the finished ones now and the rest as they finish.
  // Idempotent. REQUIRES: m is not a survivor of this iteration.
  void drop(SearchHost& host, size_t m);

  // Every member is resolved. True when no speculation is running (the
  // barrier is passed); else, with a cost bound, it ends the running ones,
  // and settled() turns true when their results are back.
  bool at_barrier(SearchHost& host);
  bool settled() const { return pending_ == 0; }

  // What copy `copy` (with `copy_path`, its own lineage) of surviving member
  // `parent` takes over. Also counts the kept tokens (the most a copy of
  // `parent` took). A pruned `parent` gives nothing.
  Carry carry(size_t parent, const SearchPath& copy_path, int32_t copy, int32_t iteration);

 private:
  struct Speculation;
  bool trace() const { return s_.params.trace.on(); }
  TraceDraw draw(const SearchPath& path, int32_t ahead) const;
  std::vector<int32_t> context(const SearchPath& path, const std::vector<int32_t>& ahead) const;
  void speculate(SearchHost& host, size_t m, int32_t stream);
  // Submits `g` as the speculation's running part.
  void send(SearchHost& host, Speculation& sp, GenRequest g);
  // Sends the part that was cut short again, its tokens so far as the prefix.
  void resume(SearchHost& host, Speculation& sp);
  void cap(SearchHost& host);
  void verify_ahead(SearchHost& host, Speculation& sp);
  void end_running(SearchHost& host);
  // Marks a pruned member's speculation settled, its tokens counted.
  void settle_pruned(Speculation& sp);

  struct Member {
    SearchPath path;
    int32_t generated = 0;
    bool goes_on = false;
    int32_t stream = 0;
    float prior = 0;
    uint64_t kv_job = 0;
    bool pruned = false;  // certain to be pruned: its speculation is dropped
    bool dropped = false;  // drop(): its speculation's jobs go to drop_kv as they finish
  };
  struct Speculation {
    size_t member = 0;
    uint64_t job = 0;             // the part running
    uint64_t kv_job = 0;          // live beams: the last part's job, whose kept sequence holds it all
    int32_t stream = 0;           // copy 0 continues it
    bool settled = false;         // its last GenDone is back
    // No cost bound: its part was stopped short before the cap was known
    // (the generator made room); cap() resumes it. It has not settled.
    bool cut = false;
    GenRequest part;              // the running part's job as sent, to resume it from where it stopped
    bool second = false;          // trace mode: the second part is (or was) running
    std::vector<int32_t> tokens;  // what it wrote, both parts
    int32_t first = 0;            // tokens of the first part (copy 0's step); 0 until it is back
    std::string text, finish;     // the first part's text and how it ended
    int32_t target = 0;           // trace mode: the longest step of the copies it serves
    int32_t cap = -1;             // tokens it may keep; -1 until every member has written
    uint64_t score_job = 0;       // look-ahead verification of a whole step
    std::vector<std::string> scored_steps;
    std::vector<float> scores;
    bool scored = false;
    int64_t taken = 0;            // the most a copy took over
    std::vector<uint64_t> done;   // its finished jobs not yet named in drop_kv (dead branches first)

    int32_t kept() const;
    int32_t point() const;  // the running part's stop point (its own tokens) at the cap
    bool complete() const;  // its first part ended on its own within its cap
  };

  const SearchSetup& s_;
  int32_t copies_;
  SpecTally* tally_;
  std::vector<Member> members_;
  std::vector<std::optional<Speculation>> specs_;  // per member
  std::unordered_map<uint64_t, size_t> jobs_;      // speculative job -> member
  std::unordered_map<uint64_t, size_t> scorings_;  // look-ahead scoring job -> member
  // Look-ahead scorings of dropped members still running: named in drop_kv
  // when they finish, in this iteration or a later one.
  std::unordered_set<uint64_t> dead_scorings_;
  size_t written_ = 0, pending_ = 0;
  bool at_barrier_ = false;
};

}  // namespace flashtts
