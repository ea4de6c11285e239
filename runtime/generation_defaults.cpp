#include "runtime/generation_defaults.h"

#include <sstream>

#include "gpu/generation_config.h"

namespace flashtts {

Expected<std::string> apply_generation_defaults(Config* c) {
  if (c->models.policy.empty()) return std::string();
  auto d = read_sampling_defaults(c->models.policy);
  if (!d) return d.error();
  if (d->empty()) return std::string();
  msg::SolveParams& s = c->defaults.solve;
  msg::GenerateParams& g = c->defaults.generate;
  std::ostringstream used, kept;  // "key value, ..." for the log line
  // One key: generate always takes it; solve unless [search] writes the key.
  auto take = [&](const char* key, const auto& value, auto* solve_field, auto* generate_field) {
    if (!value) return;
    const bool given = c->search_keys.count(key) > 0;
    *generate_field = *value;
    if (!given) *solve_field = *value;
    std::ostringstream& os = given ? kept : used;
    os << (os.tellp() > 0 ? ", " : "") << key << " " << *value;
  };
  take("temperature", d->temperature, &s.temperature, &g.temperature);
  take("top_p", d->top_p, &s.top_p, &g.top_p);
  take("top_k", d->top_k, &s.top_k, &g.top_k);
  std::string line = d->file.string() + ": ";
  if (used.tellp() > 0) line += "solve and generate requests default to " + used.str();
  if (kept.tellp() > 0)
    line += std::string(used.tellp() > 0 ? "; " : "") + "generate requests to " + kept.str() +
            " (the configuration's [search] sets solve's)";
  return line;
}

}  // namespace flashtts
