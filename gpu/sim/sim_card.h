// A simulated GPU: a card's data-sheet figures and the time model of one
// forward pass on it (docs/sim.md). The model is a roofline: a pass streams
// the weights once and reads the KV its rows attend over, does 2 FLOPs per
// weight per token plus attention's, and takes whichever of the memory time
// and the compute time is larger, plus a fixed launch cost per pass and per
// layer. Every figure it yields is a simulation, and is labelled so.
//
// Thread contract: the card table is constant; the functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gpu/model_config.h"
#include "gpu/pass_shape.h"

namespace flashtts {

struct SimCard {
  const char* name;            // as in `device = "sim:<name>"`
  const char* display;         // e.g. "NVIDIA GeForce RTX 4090"
  double mem_bandwidth;        // bytes/s, peak (data sheet)
  double bf16_flops;           // FLOP/s, dense bf16 tensor, fp32 accumulate (data sheet)
  int64_t memory_bytes;        // device memory (data sheet)
  double mem_efficiency;       // fraction of peak bandwidth a decode GEMV reaches (assumed)
  double flop_efficiency;      // fraction of peak FLOPs a prefill GEMM reaches (assumed)
  double pass_overhead_s;      // fixed cost per pass: launch, sync, sampling (assumed)
  double layer_overhead_s;     // per layer and pass: ~8 kernel launches (assumed)
  // bytes/s a host-to-device copy reaches (weights coming back from host
  // memory; assumed 80% of the link's peak); 0: the card shares the host's
  // memory, and moving weights "off" it frees nothing.
  double host_link_bandwidth;
  const char* source;          // where the data-sheet figures come from
};

// nullptr when `name` is not a known card.
const SimCard* find_sim_card(std::string_view name);
// "rtx4090, orin-agx, h100": for error messages.
std::string sim_card_names();

// Bytes of bf16 weights a model with config c holds (what the card would).
int64_t sim_weight_bytes(const ModelConfig& c);
// Bytes of bf16 KV one token takes (K and V, all layers).
int64_t sim_kv_bytes_per_token(const ModelConfig& c);

// The model's time for one pass, in seconds: the bytes and FLOPs its shape
// costs (ModelCost, gpu/latency_model.h) at the card's achieved rates.
struct SimPassTime {
  double memory_s = 0;    // bytes moved / achieved bandwidth
  double compute_s = 0;   // FLOPs / achieved bf16 rate
  double overhead_s = 0;  // launches
  double total() const { return overhead_s + (memory_s > compute_s ? memory_s : compute_s); }
};
SimPassTime sim_pass_time(const SimCard& card, const ModelConfig& c, const PassShape& shape);

// Seconds the card takes to copy a model's bf16 weights back from host
// memory (memory.offload); 0 when it has no host link.
double sim_weight_upload_s(const SimCard& card, const ModelConfig& c);

}  // namespace flashtts
