#include "gpu/sim/sim_backend.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "gpu/batch_check.h"
#include "gpu/pass_shape.h"
#include "gpu/sample_hash.h"

namespace flashtts {

namespace {

// Salt of the score stream, so that scores and tokens draw different numbers.
constexpr uint64_t kScoreSalt = 0x5c0e5c0e5c0e5c0eull;

class SimBackend : public Backend {
 public:
  SimBackend(ModelConfig c, const BackendOptions& o, const DeviceContext& d)
      : c_(std::move(c)), o_(o), card_(*d.sim_card()), timeline_(*d.sim_timeline()) {
    if (o_.max_blocks == 0) o_.max_blocks = o_.n_blocks;
    if (o_.sample_ids && !o_.sample_ids->empty()) sample_ids_ = o_.sample_ids.get();
  }

  Status forward(std::span<const BatchEntry> batch, OutputKind kind, ForwardOutput* out) override {
    if (!on_device_) return make_error("sim backend: the weights are in host memory (offloaded); load them first");
    FLASHTTS_TRY(check_batch(c_, /*has_lm_head=*/true, o_.n_blocks, o_.block_size, batch, kind));
    out->device_s = sim_pass_time(card_, c_, pass_shape_of(c_, batch, kind)).total();
    timeline_.run(out->device_s);
    int32_t rows = 0;
    for (const BatchEntry& e : batch) rows += (int32_t)e.out_rows.size();
    // Logits and hidden states are zeros (nothing is computed): only the
    // CLI's paths ask for them; the actors ask for Tokens and Score.
    out->n_rows = rows;
    out->width = kind == OutputKind::Logits ? c_.vocab_size : kind == OutputKind::Hidden ? c_.hidden_size : 1;
    out->data.assign((size_t)rows * out->width, 0.0f);
    if (kind != OutputKind::Tokens && kind != OutputKind::Score) return Status::success();
    int32_t k = 0;
    for (const BatchEntry& e : batch)
      for (int32_t r : e.out_rows) {
        const uint64_t position = (uint64_t)e.n_past + r;
        if (kind == OutputKind::Tokens) {
          // The token that takes position + 1, uniform over the sample ids
          // (else the vocabulary).
          const double u = uniform_of(e.sampling.seed, e.sample_id, position + 1);
          const int64_t n = sample_ids_ ? (int64_t)sample_ids_->size() : c_.vocab_size;
          const int64_t i = std::min<int64_t>(int64_t(u * (double)n), n - 1);
          out->data[k++] = (float)(sample_ids_ ? (*sample_ids_)[(size_t)i] : i);
        } else {
          // Keyed by the step's new tokens, so beams that differ score differently.
          uint64_t h = kScoreSalt;
          for (int32_t j = 0; j <= r; ++j) h = mix64(h ^ (uint64_t)(uint32_t)e.tokens[j]);
          out->data[k++] = (float)uniform_of(h, (uint64_t)e.n_past, position);
        }
      }
    return Status::success();
  }

  bool samples_tokens() const override { return true; }
  void copy_blocks(std::span<const BlockCopy>) override {}  // no KV memory to copy
  // No KV memory either: the size is what forward() checks block ids against.
  Status resize_kv(int32_t n_blocks) override {
    if (n_blocks < 1 || n_blocks > o_.max_blocks)
      return make_error("sim backend: a KV pool of " + std::to_string(n_blocks) + " blocks is outside the 1 to " +
                        std::to_string(o_.max_blocks) + " reserved");
    o_.n_blocks = n_blocks;
    return Status::success();
  }
  // Off: the host copy stays, so nothing moves. On: the card copies the
  // weights over its host link, holding the device meanwhile (the other
  // model's weights had to leave first to make room).
  Expected<double> set_weights_on_device(bool on) override {
    if (card_.host_link_bandwidth <= 0)
      return make_error(std::string("sim backend: ") + card_.display +
                        " shares the host's memory; offloading weights frees nothing");
    double s = 0;
    if (on && !on_device_) timeline_.run(s = sim_weight_upload_s(card_, c_));
    on_device_ = on;
    return s;
  }
  const ModelConfig& config() const override { return c_; }
  size_t kv_bytes_per_token() const override { return (size_t)sim_kv_bytes_per_token(c_); }

 private:
  ModelConfig c_;
  BackendOptions o_;  // n_blocks: the current size of the KV pool
  const SimCard& card_;
  SimTimeline& timeline_;
  bool on_device_ = true;  // the weights (set_weights_on_device)
  const std::vector<int32_t>* sample_ids_ = nullptr;  // o_.sample_ids when it holds any; else the vocabulary
};

}  // namespace

std::unique_ptr<Backend> make_sim_backend(ModelConfig config, const BackendOptions& options,
                                          const DeviceContext& device) {
  assert(device.simulated());
  return std::make_unique<SimBackend>(std::move(config), options, device);
}

}  // namespace flashtts
