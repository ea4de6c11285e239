#include "gpu/sim/sim_card.h"

#include <array>

#include "gpu/latency_model.h"

namespace flashtts {

namespace {

// Data-sheet figures (peak, dense; sparsity-doubled figures halved). The
// efficiencies and launch costs are assumptions, not data-sheet figures: they
// are what a lent GPU's measurements correct (docs/sim.md).
constexpr std::array<SimCard, 3> kCards{{
    {"rtx4090", "NVIDIA GeForce RTX 4090", 1008e9, 165.2e12, 24ll << 30, 0.80, 0.60, 40e-6, 4e-6, 0.8 * 31.5e9,
     "NVIDIA Ada Lovelace GPU Architecture whitepaper v2.1, Appendix A, Table 9 (GeForce RTX 4090): "
     "1008 GB/s GDDR6X, 24 GB; peak BF16 Tensor TFLOPS with FP32 accumulate 165.2 (330.4 sparse); "
     "PCIe 4.0 x16 (31.5 GB/s each way)"},
    {"orin-agx", "NVIDIA Jetson AGX Orin 64GB", 204.8e9, 42.5e12, 64ll << 30, 0.75, 0.50, 80e-6, 8e-6, 0,
     "NVIDIA Jetson AGX Orin Series data sheet (DS-10662-001): 204.8 GB/s LPDDR5, 64 GB; GPU 170 sparse "
     "INT8 TOPS, i.e. 85 dense INT8 and 42.5 dense FP16/BF16 tensor TFLOPS (Ampere: FP16 = INT8 / 2)"},
    {"h100", "NVIDIA H100 SXM5 80GB", 3.35e12, 989.4e12, 80ll << 30, 0.80, 0.60, 30e-6, 3e-6, 0.8 * 63e9,
     "NVIDIA H100 Tensor Core GPU data sheet (SXM5): 3.35 TB/s HBM3, 80 GB; BF16 Tensor Core 1,979 TFLOPS "
     "with sparsity, 989.4 dense; PCIe 5.0 x16 (63 GB/s each way)"},
}};

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

int64_t sim_weight_bytes(const ModelConfig& c) { return 2 * weight_params(c); }

int64_t sim_kv_bytes_per_token(const ModelConfig& c) {
  return 2ll * c.n_layers * c.n_kv_heads * c.head_dim * 2;
}

SimPassTime sim_pass_time(const SimCard& card, const ModelConfig& c, const PassShape& s) {
  SimPassTime t;
  if (s.tokens <= 0) return t;
  const ModelCost cost = model_cost(c, sim_weight_bytes(c), sim_kv_bytes_per_token(c));
  t.memory_s = cost.bytes(s) / (card.mem_bandwidth * card.mem_efficiency);
  t.compute_s = cost.flops(s) / (card.bf16_flops * card.flop_efficiency);
  t.overhead_s = card.pass_overhead_s + card.layer_overhead_s * c.n_layers;
  return t;
}

double sim_weight_upload_s(const SimCard& card, const ModelConfig& c) {
  return card.host_link_bandwidth > 0 ? (double)sim_weight_bytes(c) / card.host_link_bandwidth : 0;
}

}  // namespace flashtts
