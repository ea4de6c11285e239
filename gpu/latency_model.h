// The time of one forward pass as a roofline whose constants are measured on
// the device that runs it: a pass moves bytes (weights once, the KV it reads
// and writes) and does FLOPs, and takes a fixed overhead plus the larger of
// bytes x s_per_byte and FLOPs x s_per_flop. ModelCost counts a pass's bytes
// and FLOPs (the simulated card times its passes by these same counts);
// LatencyModel fits the three constants to measured passes, and calibrate()
// measures a few at start-up. The memory arbiter predicts pass times from
// them to split KV memory between the models.
//
// Thread contract: ModelCost and LatencyConstants are plain values; a
// LatencyModel is owned by the actor that runs its engine and used from its
// thread only, as is calibrate()'s engine.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "gpu/model_config.h"
#include "gpu/pass_shape.h"
#include "runtime/base/status.h"

namespace flashtts {

class Engine;
enum class OutputKind;

// Weights of a model with config c (elements): the embedding, every layer's
// linear maps, an untied LM head or a PRM head.
int64_t weight_params(const ModelConfig& c);

// What a model's passes cost in bytes and FLOPs on one device.
struct ModelCost {
  double weight_bytes = 0;         // every weight, as stored on the device
  double params = 0;               // the weights weight_bytes holds (weight_params)
  double kv_bytes_per_token = 0;   // K and V of all layers, as stored
  double layer_params = 0;         // all layers' linear maps: read once per pass, 2 FLOPs per token each
  double lm_head_params = 0;       // vocabulary x hidden (the embedding when tied)
  double prm_head_params = 0;      // hidden x hidden: a PRM head's first map dominates
  double hidden = 0;               // an embedding row, gathered per token
  double attn_flops_per_pair = 0;  // QK^T and PV: 4 x n_layers x n_heads x head_dim

  // Weights read (the layers, the head when a row needs it, the tokens'
  // embedding rows), the KV read (kv_tokens) and the new KV written.
  double bytes(const PassShape& s) const;
  // 2 per weight per token, the head per output row, attention per pair.
  double flops(const PassShape& s) const;
};

ModelCost model_cost(const ModelConfig& c, int64_t weight_bytes, int64_t kv_bytes_per_token);

// The roofline's constants; all zero until measured.
struct LatencyConstants {
  double overhead_s = 0;  // per pass: launches, synchronisation, host work
  double s_per_byte = 0;  // 1 / achieved memory bandwidth
  double s_per_flop = 0;  // 1 / achieved FLOP rate
  bool known() const { return s_per_byte > 0 && s_per_flop > 0; }
  double seconds(double bytes, double flops) const;
};

class LatencyModel {
 public:
  explicit LatencyModel(ModelCost cost, int32_t window = 256) : cost_(cost), window_(window) {}

  const ModelCost& cost() const { return cost_; }
  const LatencyConstants& constants() const { return c_; }
  bool known() const { return c_.known(); }

  // Seconds one pass of shape s takes; 0 while !known().
  double predict(const PassShape& s) const { return c_.seconds(cost_.bytes(s), cost_.flops(s)); }

  // A measured pass: joins the window of the last `window` passes, and the
  // constants are fitted again: at once when they mispredict it by more than
  // 5%, else after window / 8 such passes (the fit is O(window) splits, each
  // a small NNLS, and this runs after every pass of the engine). They
  // change when the window holds memory-bound and compute-bound passes that
  // tell the two slopes apart; otherwise the last known ones stay, except
  // that before two slopes were ever told apart, passes of one regime
  // spanning a wide range of FLOPs per byte set that regime's slope and
  // bound the other (the largest that keeps them all on their side). A pass
  // with no tokens or no positive time is ignored.
  void add(const PassShape& s, double seconds);

  // "overhead 41.2 us, 806.4 GB/s, 99120.0 GFLOP/s (fitted to 30 passes)"
  // (saying so when one rate is a bound), or "not measured yet": for logs.
  std::string describe() const;

 private:
  struct Sample {
    double bytes, flops, seconds;
  };

  ModelCost cost_;
  int32_t window_;
  std::deque<Sample> samples_;
  LatencyConstants c_;
  int32_t fitted_on_ = 0;  // samples of the fit that set c_
  bool bounded_ = false;   // c_'s slopes were not told apart: one is a bound from one regime
  int32_t added_since_fit_ = 0;  // passes added since the last fit
};

// What the model's own actor asks its passes for, so that measured passes
// read the head served ones read: Tokens from a policy, Score from a PRM
// (Logits from an LM-logit PRM whose label ids are unresolved: the same head).
OutputKind serving_output_kind(const ModelConfig& c);

// Measures passes of `e` through its public API and adds them to *m:
// decodes of 1, 4 and 16 rows after a short context (memory-bound on a GPU)
// and prefills of `max_tokens` tokens and halves of it down to 64
// (compute-bound), two or three of each; on a CPU keep max_tokens small (a
// prefill token costs 2 FLOPs per weight). The probe shrinks to the pool's
// free blocks, evicts nothing, and releases what it used, dropping its blocks
// from the prefix cache. Error when no block is free or a pass fails;
// m->known() then says whether the passes told the two slopes apart (the few
// passes a pool of a few blocks allows may not).
// REQUIRES: max_tokens >= 1.
Status calibrate(Engine& e, LatencyModel* m, int32_t max_tokens);

}  // namespace flashtts
