#include "actors/trace.h"

#include <cassert>
#include <charconv>
#include <fstream>

#include "gpu/sample_hash.h"

namespace flashtts {

namespace {

// A uniform double in [0, 1) from the top 53 bits.
double unit(uint64_t h) { return double(h >> 11) * 0x1.0p-53; }

}  // namespace

uint64_t lineage_root(int32_t index) { return mix64(0x6c696e65616765ull ^ (uint64_t)(uint32_t)index); }

uint64_t lineage_child(uint64_t parent, int32_t copy) {
  return copy == 0 ? parent : mix64(parent ^ mix64((uint64_t)(uint32_t)copy));
}

TraceDraw trace_draw(const msg::TraceParams& trace, uint64_t lineage, int32_t step, int32_t max_steps) {
  assert(trace.on());
  const uint64_t h = mix64(mix64(trace.seed) ^ mix64(lineage ^ mix64((uint64_t)(uint32_t)step)));
  TraceDraw d;
  d.tokens = trace.step_tokens[h % trace.step_tokens.size()];
  // A second, independent stream for the end decision.
  d.ends = step + 1 >= max_steps || unit(mix64(h ^ 0x656e64ull)) < trace.end_prob;
  d.score = (float)unit(mix64(h ^ 0x73636f7265ull));
  return d;
}

Expected<std::vector<int32_t>> read_step_table(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read the step-length table " + path.string());
  std::vector<int32_t> out;
  std::string line;
  bool header = false;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      header = true;
      if (line.rfind("tokens", 0) == 0) continue;
    }
    int32_t v = 0;
    const char* end = line.data() + line.size();
    auto [p, ec] = std::from_chars(line.data(), end, v);
    if (ec != std::errc() || v < 1 || (p != end && *p != '\t'))
      return make_error(path.string() + ":" + std::to_string(n) + ": the first column must be a token count >= 1");
    out.push_back(v);
  }
  if (out.empty()) return make_error("the step-length table " + path.string() + " holds no step");
  return out;
}

}  // namespace flashtts
