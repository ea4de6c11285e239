// Admission by request (policies.request_admission = "fit"): a request's
// work reaches the models only while at least half of its KV footprint fits
// in what the footprints of the requests already admitted leave of each
// model's grant (the estimate is good to a few tens of percent, and a small
// overflow costs less than a whole request's wait); otherwise it waits
// whole, in arrival order, until an admitted request ends. Requests that
// share a pool too small for all of them then take turns instead of
// evicting each other's prefixes between their iterations
// (docs/pipeline.md, "Between requests").
//
// Taking turns without a gap: a request's footprint grows with its search,
// so one that starts while the admitted ones finish holds only part of its
// own when they end. Once every admitted request is more than half through
// (its finished jobs in its first lane against the jobs per beam learned
// from the requests that completed), a waiting request needs only the part
// it will hold by then to fit: 1 - (the least progress) of its footprint.
//
// A request's footprint in a model is the most KV the contexts of its
// latest `beams` jobs there held together (a beam search's live beams: the
// KV its next iteration reuses), shared chunks once (the chunks of
// actors/prefix_tree.h, chained by position, plus each generation context
// past its last chunk, and a scoring input's template once); what a job
// writes counts once it is the next job's context.
// What a new request will need is learned from the requests that
// completed: their footprint per beam (msg::GenJob::request_beams, a
// search's n; else the jobs of its first arrival), for requests whose first
// jobs went to the same model. Before any request has completed there is
// nothing to judge by, and every request is admitted; one admitted request
// is never held back, however large.
//
// "all" (the baseline) admits every request at once and tracks nothing.
//
// Owner: the scheduler actor. Thread contract: called on its thread only.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/sched_policy.h"

namespace flashtts {

class RequestGate {
 public:
  enum Lane : int { kGen = 0, kVer = 1 };
  struct Job {  // a job held while its request waits
    Lane lane;
    QueuedJob job;
    int64_t ctx_tokens;  // what the lane counts as its context (Lane::push)
  };

  explicit RequestGate(bool enabled) : enabled_(enabled) {}

  // Whether a job of `rid` (of a request of `beams` jobs at once; 0 =
  // unknown) goes to its lane now. A request not seen before is pending
  // until the next admit(), which then knows its first jobs.
  bool open_for(uint64_t rid, int32_t beams);
  // Keeps a job of a request that is pending (open_for was false).
  void hold(uint64_t rid, Job j);
  // A job entered its lane: its context joins its request's footprint there
  // (and the oldest of more than `beams` leaves it).
  void opened(Lane lane, const QueuedJob& q, int64_t ctx_tokens);
  // A job of `rid` that entered `lane` finished (its request's progress).
  void finished(uint64_t rid, Lane lane);
  // Admits pending requests in arrival order while half of each (less once
  // the admitted are more than half through) fits the free part of
  // `capacity` (each model's KV tokens; < 0: unknown, fits); returns the
  // jobs they held, in the order they came, for their lanes.
  // `why`, when given, gets a line on the first request that waits.
  std::vector<Job> admit(std::array<int64_t, 2> capacity, std::string* why = nullptr);
  // The request ended, `completed` with its result (its footprint then
  // teaches the estimate), or failed or was cancelled (a part of its work,
  // which would teach too little); its held jobs are dropped.
  void forget(uint64_t rid, bool completed);

  size_t pending() const { return pending_.size(); }
  uint64_t held_total() const { return held_total_; }  // requests that ever waited
  // The estimate per beam, by the lane of the first jobs (for stats and tests; < 0: none yet).
  double per_beam(Lane first, Lane lane) const { return learned_[first] ? per_beam_[first][lane] : -1.0; }
  // Jobs per beam in the first lane, learned likewise (< 0: none yet).
  double jobs_per_beam(Lane first) const { return jobs_learned_[first] ? jobs_per_beam_[first] : -1.0; }

 private:
  struct Context {
    std::vector<std::pair<uint64_t, int32_t>> chunks;  // (key, chained by position; tokens)
    int64_t tail = 0;                                  // tokens past them, its own
  };
  struct Footprint {
    std::deque<Context> latest;  // the request's latest jobs' contexts, oldest first
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> chunks;  // chained key -> (contexts holding it, tokens)
    int64_t tokens = 0, peak = 0;
    void add(Context c);
    void drop_oldest();
  };
  struct Request {
    uint64_t seq = 0;              // arrival order
    bool admitted = false;
    bool waited = false;
    Lane first = kGen;             // the lane of its first job
    int64_t beams = 0;             // its request_beams, else the jobs it had when admitted
    bool beams_known = false;      // from request_beams: its progress can be told
    std::array<int64_t, 2> finished{0, 0};  // its jobs finished, per lane
    std::array<int64_t, 2> estimate{-1, -1};
    std::array<Footprint, 2> fp;
    std::vector<Job> held;
  };
  // What an admitted request is counted at: its estimate or more if it grew past it.
  static int64_t need(const Request& r, Lane lane) { return std::max(r.estimate[lane], r.fp[lane].peak); }
  // The share of its work an admitted request has done, by its finished jobs
  // against those its beams are expected to run (0 when that is not known).
  double progress(const Request& r) const;

  bool enabled_;
  uint64_t next_seq_ = 0, held_total_ = 0;
  std::unordered_map<uint64_t, Request> requests_;
  std::map<uint64_t, uint64_t> pending_;  // seq -> rid
  std::array<std::array<double, 2>, 2> per_beam_{};  // [first lane][lane]: KV tokens per beam
  std::array<bool, 2> learned_{false, false};
  std::array<double, 2> jobs_per_beam_{};  // [first lane]: finished jobs there per beam
  std::array<bool, 2> jobs_learned_{false, false};
};

}  // namespace flashtts
