#include "gpu/pass_shape.h"

#include <algorithm>

#include "gpu/backend.h"

namespace flashtts {

void add_pass_sequence(const ModelConfig& c, int64_t n_past, int64_t n_new, int64_t n_out, PassShape* s) {
  const int64_t w = c.sliding_window > 0 ? c.sliding_window : INT64_MAX;
  s->rows += 1;
  s->tokens += n_new;
  s->out_rows += n_out;
  s->kv_tokens += std::min(n_past + n_new, w);
  // Token i (0-based among the new ones) attends n_past + i + 1 keys, at most w.
  for (int64_t i = 0; i < n_new; ++i) s->attn_pairs += std::min(n_past + i + 1, w);
}

PassShape pass_shape_of(const ModelConfig& c, std::span<const BatchEntry> batch, OutputKind kind) {
  PassShape s;
  s.lm_head = kind == OutputKind::Logits || kind == OutputKind::Tokens ||
              (kind == OutputKind::Score && c.prm.kind == PrmKind::LmLogits);
  for (const BatchEntry& e : batch)
    add_pass_sequence(c, e.n_past, (int64_t)e.tokens.size(),
                      kind == OutputKind::Hidden ? 0 : (int64_t)e.out_rows.size(), &s);
  return s;
}

}  // namespace flashtts
