#include "gpu/generation_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace flashtts {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

Error bad_key(const fs::path& p, const char* key, const std::string& why) {
  return make_error(p.string() + ": key '" + key + "' " + why);
}

// A number key, null or absent = nullopt.
Status number(const json& j, const fs::path& p, const char* key, std::optional<double>* out) {
  if (!j.contains(key) || j[key].is_null()) return Status::success();
  if (!j[key].is_number()) return bad_key(p, key, std::string("must be a number, got ") + j[key].type_name());
  *out = j[key].get<double>();
  return Status::success();
}

}  // namespace

Expected<SamplingDefaults> read_sampling_defaults(const fs::path& dir) {
  SamplingDefaults d;
  const fs::path p = dir / "generation_config.json";
  std::error_code ec;
  if (!fs::exists(p, ec)) return d;
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error(p.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    return make_error(p.string() + ": bad JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  }
  if (!j.is_object()) return make_error(p.string() + ": the top level is not a JSON object");
  d.file = p;

  if (j.contains("do_sample") && !j["do_sample"].is_null()) {
    if (!j["do_sample"].is_boolean())
      return bad_key(p, "do_sample", std::string("must be true or false, got ") + j["do_sample"].type_name());
    if (!j["do_sample"].get<bool>()) return d;  // greedy: Hugging Face ignores the sampling keys
  }
  FLASHTTS_TRY(number(j, p, "temperature", &d.temperature));
  if (d.temperature && !(*d.temperature >= 0 && *d.temperature <= 100))
    return bad_key(p, "temperature", "= " + j["temperature"].dump() + " is out of range [0, 100]");
  FLASHTTS_TRY(number(j, p, "top_p", &d.top_p));
  if (d.top_p && !(*d.top_p > 0 && *d.top_p <= 1))
    return bad_key(p, "top_p", "= " + j["top_p"].dump() + " is out of range (0, 1]");
  std::optional<double> k;
  FLASHTTS_TRY(number(j, p, "top_k", &k));
  if (k) {
    if (std::floor(*k) != *k || *k < 0 || *k > 2147483647.0)
      return bad_key(p, "top_k", "= " + j["top_k"].dump() + " must be an integer >= 0 (0 = off)");
    d.top_k = int32_t(*k);
  }
  return d;
}

}  // namespace flashtts
