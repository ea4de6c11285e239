// How well the roofline latency model (gpu/latency_model.h) predicts a
// model's passes on its device: calibrate() at start-up, then a mixed
// workload run twice (decodes of 1 to 64 rows at a short and a long context,
// prefills after no and after some context, decodes with a prefill chunk in
// the same pass). The first round only feeds the online model (add() after
// each pass); over the second, per regime, the median and p90 of
// |predicted / measured - 1| from the calibrated constants and from the
// online ones (predicted before each add()).
//
//   flashtts-bench-latency [--model DIR] [--device cpu|cuda|sim:rtx4090]
//                          [--max-tokens N] [--kv-mib N] [--threads N]
//
// The default model is the shipped policy (models/policy). A simulated card
// needs only the folder's config.json: a real model's folder will do.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "gpu/latency_model.h"
#include "gpu/open_model.h"
#include "gpu/sample_hash.h"

using namespace flashtts;
using Clock = std::chrono::steady_clock;

namespace {

// One kind of pass: `rows` decode rows after `ctx` tokens, plus a prefill of
// `prefill` tokens after `past` (none when prefill is 0).
struct Spec {
  const char* regime;
  int32_t rows, ctx, prefill, past;
};

struct Measured {
  const char* regime;
  double calibrated, refined;  // |predicted / measured - 1|
};

// Distinct token ids, so that nothing comes from the prefix cache.
class Tokens {
 public:
  explicit Tokens(int32_t vocab) : vocab_(vocab) {}
  std::vector<int32_t> next(int32_t n) {
    std::vector<int32_t> v(n);
    for (int32_t& t : v) t = (int32_t)(mix64(counter_++) % (uint64_t)vocab_);
    return v;
  }

 private:
  int32_t vocab_;
  uint64_t counter_ = 0x6265'6e63'6800'0000ull;
};

// Runs the spec's passes (three of each), timing only the spec's own passes
// (not the set-up prefills of contexts), and scores both models on them.
Status run_spec(Engine& e, OutputKind kind, const Spec& s, Tokens& tok, const LatencyModel& calibrated,
                LatencyModel* online, bool score, std::vector<Measured>* out) {
  int64_t next_id = 1;
  std::vector<int64_t> seqs;
  auto compute = [&](const std::vector<int64_t>& ids) -> Expected<std::pair<PassShape, double>> {
    std::vector<RunItem> items(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) items[i].seq = ids[i], items[i].sample_id = (uint64_t)ids[i];
    RunResult r;
    const auto t0 = Clock::now();
    FLASHTTS_TRY(e.run(items, kind, &r));
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!r.starved.empty()) return make_error("the KV pool is too small for the workload: raise --kv-mib");
    return std::pair{r.shape, t};
  };
  auto add = [&](int32_t n) -> Expected<int64_t> {
    const int64_t id = next_id++;
    auto a = e.add_sequence(id, tok.next(n), false);
    if (!a) return a.error();
    seqs.push_back(id);
    return id;
  };
  Status st = Status::success();
  std::vector<int64_t> decode;
  if (s.rows > 0) {
    auto parent = add(s.ctx);
    if (!parent) return parent.error();
    if (auto r = compute({*parent}); !r) return r.error();
    for (int32_t r = 0; r < s.rows && st.ok(); ++r) {
      const int64_t id = next_id++;
      st = e.fork(*parent, id);
      if (st.ok()) seqs.push_back(id), decode.push_back(id);
    }
  }
  for (int rep = 0; rep < 3 && st.ok(); ++rep) {
    std::vector<int64_t> ids = decode;
    for (int64_t id : decode) e.append(id, tok.next(1));
    if (s.prefill > 0) {
      auto p = add(s.past > 0 ? s.past : s.prefill);
      if (!p) return p.error();
      if (s.past > 0) {
        if (auto r = compute({*p}); !r) return r.error();
        e.append(*p, tok.next(s.prefill));
      }
      ids.push_back(*p);
    }
    auto r = compute(ids);
    if (!r) return r.error();
    const auto [shape, t] = *r;
    if (score)
      out->push_back({s.regime, std::abs(calibrated.predict(shape) / t - 1), std::abs(online->predict(shape) / t - 1)});
    online->add(shape, t);
  }
  for (auto it = seqs.rbegin(); it != seqs.rend(); ++it) e.release(*it, true);
  return st;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, (size_t)std::floor(q * (double)(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(FLASHTTS_SOURCE_DIR) + "/models/policy", device = "cpu";
  int32_t max_tokens = 0, kv_mib = 256, threads = 0;
  CLI::App app{"flashtts-bench-latency: the roofline latency model's predictions against measured passes"};
  app.add_option("--model", model, "Model folder (default: the shipped policy)");
  app.add_option("--device", device, "cpu, cuda, sim:rtx4090, sim:orin-agx, sim:h100");
  app.add_option("--max-tokens", max_tokens, "Calibration's longest prefill (default 128 on the CPU, 1024 elsewhere)");
  app.add_option("--kv-mib", kv_mib, "KV pool (MiB)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  CLI11_PARSE(app, argc, argv);

  auto dev = DeviceContext::open(device);
  if (!dev) return std::fprintf(stderr, "flashtts-bench-latency: %s\n", dev.error().message.c_str()), 2;
  auto loaded = load_model_for(model, dev->get());
  if (!loaded) return std::fprintf(stderr, "flashtts-bench-latency: %s\n", loaded.error().message.c_str()), 2;
  const ModelConfig cfg = loaded->config;
  const ModelCost cost = model_cost(cfg, weight_bytes_on(cfg, loaded->weights, dev->get()),
                                    (int64_t)kv_bytes_per_token_on(cfg, dev->get()));
  EngineOptions o;
  o.kv_bytes = (size_t)kv_mib << 20;
  o.n_threads = threads;
  o.device = *dev;
  auto engine = Engine::create(cfg, std::move(loaded->weights), o);
  if (!engine) return std::fprintf(stderr, "flashtts-bench-latency: %s\n", engine.error().message.c_str()), 2;
  Engine& e = **engine;
  const bool cpu = (*dev)->kind() == DeviceKind::Cpu;
  if (max_tokens <= 0) max_tokens = cpu ? 128 : 1024;

  // A simulated device's description says that its timings are simulated.
  std::printf("# flashtts-bench-latency: %s (%s, %d layers, hidden %d, %.1f MiB of weights), device %s\n",
              model.c_str(), cfg.architecture.c_str(), cfg.n_layers, cfg.hidden_size, cost.weight_bytes / (1 << 20),
              (*dev)->description().c_str());
  LatencyModel calibrated(cost);
  const auto t0 = Clock::now();
  if (Status st = calibrate(e, &calibrated, max_tokens); !st.ok())
    return std::fprintf(stderr, "flashtts-bench-latency: %s\n", st.message().c_str()), 1;
  std::printf("calibration (longest prefill %d): %.2f s, %s\n", max_tokens,
              std::chrono::duration<double>(Clock::now() - t0).count(), calibrated.describe().c_str());
  if (const SimCard* card = (*dev)->sim_card())
    std::printf("the card's model:                  overhead %.1f us, %.1f GB/s, %.1f GFLOP/s\n",
                1e6 * (card->pass_overhead_s + card->layer_overhead_s * cfg.n_layers),
                1e-9 * card->mem_bandwidth * card->mem_efficiency, 1e-9 * card->bf16_flops * card->flop_efficiency);
  if (!calibrated.known()) return std::fprintf(stderr, "flashtts-bench-latency: calibration told no slopes apart\n"), 1;

  // Lengths scale with the calibration's and stay within the model's positions.
  const int32_t max_pos = cfg.max_position > 0 ? cfg.max_position : 1 << 20;
  const auto cap = [&](int32_t n) { return std::max(1, std::min(n, max_pos - 8)); };
  const int32_t m = max_tokens, shortc = cap(m / 4), longc = cap(4 * m);
  std::vector<Spec> specs;
  for (int32_t rows : {1, 4, 16, 64})
    for (int32_t ctx : {shortc, longc}) specs.push_back({"decode", rows, ctx, 0, 0});
  for (int32_t t : {cap(m / 8), cap(3 * m / 8), cap(3 * m / 4)})
    for (int32_t past : {0, std::min(m / 2, max_pos - 8 - t)}) specs.push_back({"prefill", 0, 0, t, past});
  for (int32_t rows : {4, 16})
    for (int32_t chunk : {cap(m / 4), cap(m / 2)}) specs.push_back({"mixed", rows, shortc, chunk, 0});

  const OutputKind kind = serving_output_kind(cfg);
  Tokens tok(cfg.vocab_size);
  LatencyModel online = calibrated;
  std::vector<Measured> measured;
  for (int round = 0; round < 2; ++round)
    for (const Spec& s : specs)
      if (Status st = run_spec(e, kind, s, tok, calibrated, &online, round == 1, &measured); !st.ok())
        return std::fprintf(stderr, "flashtts-bench-latency: %s\n", st.message().c_str()), 1;
  std::printf("refined online:                    %s\n", online.describe().c_str());

  std::printf("\n| regime | passes | calibrated: median | p90 | refined: median | p90 |\n| --- | --: | --: | --: | --: | --: |\n");
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> by;
  for (const Measured& x : measured) {
    for (const std::string& k : {std::string(x.regime), std::string("all")}) {
      by[k].first.push_back(x.calibrated);
      by[k].second.push_back(x.refined);
    }
  }
  for (const char* k : {"decode", "prefill", "mixed", "all"}) {
    const auto& [c, r] = by[k];
    std::printf("| %s | %zu | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", k, c.size(), 100 * quantile(c, 0.5),
                100 * quantile(c, 0.9), 100 * quantile(r, 0.5), 100 * quantile(r, 0.9));
  }
  return 0;
}
