#include "gpu/sim/sim_card.h"

#include <algorithm>
#include <array>

namespace flashtts {

namespace {

// Data-sheet figures (peak, dense; sparsity-doubled figures halved). The
// efficiencies and launch costs are assumptions, not data-sheet figures: they
// are what a lent GPU's measurements correct (docs/sim.md).
constexpr std::array<SimCard, 3> kCards{{
    {"rtx4090", "NVIDIA GeForce RTX 4090", 1008e9, 165.2e12, 24ll << 30, 0.80, 0.60, 40e-6, 4e-6,
     "NVIDIA Ada Lovelace GPU Architecture whitepaper v2.1, Appendix A, Table 9 (GeForce RTX 4090): "
     "1008 GB/s GDDR6X, 24 GB; peak BF16 Tensor TFLOPS with FP32 accumulate 165.2 (330.4 sparse)"},
    {"orin-agx", "NVIDIA Jetson AGX Orin 64GB", 204.8e9, 42.5e12, 64ll << 30, 0.75, 0.50, 80e-6, 8e-6,
     "NVIDIA Jetson AGX Orin Series data sheet (DS-10662-001): 204.8 GB/s LPDDR5, 64 GB; GPU 170 sparse "
     "INT8 TOPS, i.e. 85 dense INT8 and 42.5 dense FP16/BF16 tensor TFLOPS (Ampere: FP16 = INT8 / 2)"},
    {"h100", "NVIDIA H100 SXM5 80GB", 3.35e12, 989.4e12, 80ll << 30, 0.80, 0.60, 30e-6, 3e-6,
     "NVIDIA H100 Tensor Core GPU data sheet (SXM5): 3.35 TB/s HBM3, 80 GB; BF16 Tensor Core 1,979 TFLOPS "
     "with sparsity, 989.4 dense"},
}};

// Weights of one layer's linear maps (elements).
int64_t layer_matrix_elems(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = int64_t(c.n_heads) * c.head_dim, kv = int64_t(c.n_kv_heads) * c.head_dim;
  return h * q + 2 * h * kv + q * h + 3 * h * int64_t(c.intermediate_size);
}

// Elements of the output head: the vocabulary matrix, or a PRM head (h, h).
int64_t head_elems(const ModelConfig& c, bool lm_head) {
  return lm_head ? int64_t(c.vocab_size) * c.hidden_size : int64_t(c.hidden_size) * c.hidden_size;
}

}  // namespace

const SimCard* find_sim_card(std::string_view name) {
  for (const SimCard& c : kCards)
    if (name == c.name) return &c;
  return nullptr;
}

std::string sim_card_names() {
  std::string s;
  for (const SimCard& c : kCards) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

int64_t sim_weight_bytes(const ModelConfig& c) {
  int64_t e = int64_t(c.vocab_size) * c.hidden_size + int64_t(c.n_layers) * layer_matrix_elems(c);
  if (!c.tie_embeddings && c.prm.kind != PrmKind::Classifier && c.prm.kind != PrmKind::ValueHead)
    e += int64_t(c.vocab_size) * c.hidden_size;
  if (c.prm.kind == PrmKind::Classifier || c.prm.kind == PrmKind::ValueHead) e += head_elems(c, false);
  return 2 * e;
}

int64_t sim_kv_bytes_per_token(const ModelConfig& c) {
  return 2ll * c.n_layers * c.n_kv_heads * c.head_dim * 2;
}

void add_sim_sequence(const ModelConfig& c, int64_t n_past, int64_t n_new, int64_t n_out, SimPassShape* s) {
  const int64_t w = c.sliding_window > 0 ? c.sliding_window : INT64_MAX;
  s->rows += 1;
  s->tokens += n_new;
  s->out_rows += n_out;
  s->kv_tokens += std::min(n_past + n_new, w);
  // Token i (0-based among the new ones) attends n_past + i + 1 keys, at most w.
  for (int64_t i = 0; i < n_new; ++i) s->attn_pairs += std::min(n_past + i + 1, w);
}

SimPassTime sim_pass_time(const SimCard& card, const ModelConfig& c, const SimPassShape& s) {
  SimPassTime t;
  if (s.tokens <= 0) return t;
  const int64_t layer = layer_matrix_elems(c), head = s.out_rows > 0 ? head_elems(c, s.lm_head) : 0;
  // Memory: every layer's weights once, the head once, the embedding rows
  // gathered, the KV each sequence attends read once and the new KV written.
  const double bytes = 2.0 * (double(c.n_layers) * layer + head + double(s.tokens) * c.hidden_size) +
                       double(sim_kv_bytes_per_token(c)) * (s.kv_tokens + s.tokens);
  // Compute: 2 FLOPs per weight per token (the head only for output rows);
  // attention's QK^T and PV, 4 FLOPs per (query, key) pair per head dim.
  const double flops = 2.0 * double(s.tokens) * c.n_layers * layer + 2.0 * double(s.out_rows) * head +
                       4.0 * double(s.attn_pairs) * c.n_layers * c.n_heads * c.head_dim;
  t.memory_s = bytes / (card.mem_bandwidth * card.mem_efficiency);
  t.compute_s = flops / (card.bf16_flops * card.flop_efficiency);
  t.overhead_s = card.pass_overhead_s + card.layer_overhead_s * c.n_layers;
  return t;
}

}  // namespace flashtts
