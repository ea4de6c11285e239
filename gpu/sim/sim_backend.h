// The simulated device's backend: holds no weights and no KV memory, computes
// nothing, and for every forward pass waits the time its card's model
// predicts (gpu/sim/sim_card.h) on the device's one timeline. Its outputs come
// from seeded streams: sampled token ids keyed like the host sampler's draw
// (seed, sample id, position), PRM scores keyed by the pass's tokens up to
// the scored one and its position. The
// engine around it keeps the real KV bookkeeping with bf16 sizes.
//
// Thread contract: as every Backend: owned by one actor and called from its
// thread only; the timeline it waits on is shared and thread-safe.
#pragma once

#include <memory>

#include "gpu/backend.h"
#include "gpu/device_context.h"

namespace flashtts {

// REQUIRES: device.simulated().
std::unique_ptr<Backend> make_sim_backend(ModelConfig config, const BackendOptions& options,
                                          const DeviceContext& device);

}  // namespace flashtts
