#include "actors/engine_load.h"

namespace flashtts {

Status LoadMeter::start(const msg::Grant& g, Engine& engine, const ModelCost& cost, bool cpu, const Logger& log) {
  if (on_ || g.kv_bytes_max <= g.kv_bytes) return Status::success();
  on_ = true;
  model_ = LatencyModel(cost);
  const auto t0 = Clock::now();
  // Prefill tokens cost 2 FLOPs per weight: a CPU measures few.
  FLASHTTS_TRY(calibrate(engine, &model_, cpu ? 64 : 512));
  log->info("latency model calibrated in {:.0f} ms: {}",
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), model_.describe());
  return Status::success();
}

}  // namespace flashtts
