#include "runtime/generation_defaults.h"

#include <sstream>

namespace flashtts {

void apply_sampling_defaults(const SamplingDefaults& d, msg::GenerateParams* g) {
  if (d.temperature) g->temperature = *d.temperature;
  if (d.top_p) g->top_p = *d.top_p;
  if (d.top_k) g->top_k = *d.top_k;
}

Expected<std::string> apply_generation_defaults(Config* c) {
  if (c->models.policy.empty()) return std::string();
  auto d = read_sampling_defaults(c->models.policy);
  if (!d) return d.error();
  if (d->empty()) return std::string();
  apply_sampling_defaults(*d, &c->defaults.generate);  // generate takes every key
  msg::SolveParams& s = c->defaults.solve;
  std::ostringstream used, kept;  // "key value, ..." for the log line
  // One key: solve takes it unless [search] writes the key.
  auto take = [&](const char* key, const auto& value, auto* solve_field) {
    if (!value) return;
    const bool given = c->search_keys.count(key) > 0;
    if (!given) *solve_field = *value;
    std::ostringstream& os = given ? kept : used;
    os << (os.tellp() > 0 ? ", " : "") << key << " " << *value;
  };
  take("temperature", d->temperature, &s.temperature);
  take("top_p", d->top_p, &s.top_p);
  take("top_k", d->top_k, &s.top_k);
  std::string line = d->file.string() + ": ";
  if (used.tellp() > 0) line += "solve and generate requests default to " + used.str();
  if (kept.tellp() > 0)
    line += std::string(used.tellp() > 0 ? "; " : "") + "generate requests to " + kept.str() +
            " (the configuration's [search] sets solve's)";
  return line;
}

}  // namespace flashtts
