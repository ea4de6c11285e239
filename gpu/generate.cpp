#include "gpu/generate.h"

#include <algorithm>

namespace flashtts {

namespace {

// Sequence ids inside the engine for one call; released on every exit path.
class SequenceScope {
 public:
  explicit SequenceScope(Engine& e) : e_(e) {}
  ~SequenceScope() {
    for (int64_t s : ids_) e_.release(s);
  }
  int64_t next() {
    int64_t id = base_ + (int64_t)ids_.size();
    ids_.push_back(id);
    return id;
  }

 private:
  Engine& e_;
  int64_t base_ = 1ll << 40;  // out of the way of actor-assigned ids
  std::vector<int64_t> ids_;
};

}  // namespace

Expected<std::vector<GenerateResult>> generate(Engine& engine, std::span<const GenerateRequest> reqs,
                                               const std::function<void(size_t, int32_t)>& on_token) {
  std::vector<GenerateResult> results(reqs.size());
  SequenceScope scope(engine);
  std::vector<int64_t> seq(reqs.size());
  std::vector<size_t> active;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].prompt.empty()) return make_error("generate: request " + std::to_string(i) + " has an empty prompt");
    seq[i] = scope.next();
    auto added = engine.add_sequence(seq[i], reqs[i].prompt);
    if (!added) return make_error("generate: " + added.error().message);
    if (reqs[i].max_tokens <= 0) {
      results[i].finish_reason = "length";
      continue;
    }
    active.push_back(i);
  }

  std::vector<RunItem> items;
  RunResult run;
  while (!active.empty()) {
    items.clear();
    for (size_t i : active) items.push_back({seq[i], RowSelect::Last, 0, {}});
    FLASHTTS_TRY(engine.run(items, OutputKind::Logits, &run));
    if (!run.starved.empty())
      return make_error("generate: the KV budget cannot hold " + std::to_string(active.size()) +
                        " sequences of this length; raise it or shorten the batch");
    std::vector<size_t> still;
    for (size_t k = 0; k < active.size(); ++k) {
      size_t i = active[k];
      const GenerateRequest& q = reqs[i];
      GenerateResult& res = results[i];
      uint64_t position = engine.tokens(seq[i]).size();
      int32_t tok = sample_token(run.out.row(run.item_first_row[k]), q.sampling, q.seq_id, position);
      res.tokens.push_back(tok);
      if (on_token) on_token(i, tok);
      if (std::find(q.stop_ids.begin(), q.stop_ids.end(), tok) != q.stop_ids.end()) {
        res.finish_reason = "stop";
      } else if ((int32_t)res.tokens.size() >= q.max_tokens) {
        res.finish_reason = "length";
      } else {
        engine.append(seq[i], std::span<const int32_t>(&tok, 1));
        still.push_back(i);
      }
    }
    active.swap(still);
  }
  return results;
}

Expected<std::vector<float>> score_positions(Engine& engine, std::span<const int32_t> ids,
                                             std::span<const int32_t> positions) {
  if (ids.empty()) return make_error("score: empty input");
  for (int32_t p : positions)
    if (p < 0 || p >= (int32_t)ids.size())
      return make_error("score: position " + std::to_string(p) + " outside the " + std::to_string(ids.size()) +
                        "-token input");
  SequenceScope scope(engine);
  int64_t s = scope.next();
  // Hidden states are needed at every position, so nothing may come from the
  // prefix cache here (the verifier actor reuses scored prefixes its own way).
  auto added = engine.add_sequence(s, ids, /*reuse_prefix=*/false);
  if (!added) return make_error("score: " + added.error().message);
  RunItem item{s, RowSelect::Explicit, 0, std::vector<int32_t>(positions.begin(), positions.end())};
  RunResult run;
  FLASHTTS_TRY(engine.run(std::span<const RunItem>(&item, 1), OutputKind::Score, &run));
  if (!run.starved.empty()) return make_error("score: the KV budget cannot hold " + std::to_string(ids.size()) + " tokens");
  return std::vector<float>(run.out.data.begin(), run.out.data.end());
}

}  // namespace flashtts
