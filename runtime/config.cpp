#include "runtime/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include <toml.hpp>

#include "gpu/sim/sim_card.h"

namespace flashtts {

namespace {

namespace fs = std::filesystem;

// std::map rather than toml11's unordered default: the known-key lists and
// the first-unknown-key search then behave the same on every run.
using Value = toml::basic_value<toml::discard_comments, std::map, std::vector>;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

const char* a_type(toml::value_t t) {
  switch (t) {
    case toml::value_t::boolean: return "a boolean";
    case toml::value_t::integer: return "an integer";
    case toml::value_t::floating: return "a float";
    case toml::value_t::string: return "a string";
    case toml::value_t::offset_datetime: return "a date-time";
    case toml::value_t::local_datetime: return "a local date-time";
    case toml::value_t::local_date: return "a date";
    case toml::value_t::local_time: return "a time";
    case toml::value_t::array: return "an array";
    case toml::value_t::table: return "a table";
    default: return "nothing";
  }
}

std::string join(const std::vector<std::string>& items, const char* quote = "") {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + (quote + i + quote);
  return s;
}

std::string show(double d) {
  std::ostringstream os;
  os << d;
  return os.str();
}

std::string line_of(const Value& v) {
  auto line = v.location().line();
  return line > 0 ? " on line " + std::to_string(line) : "";
}

// One table of the file ([memory], or the top level): reads its keys with
// type and range checks. Every error starts with the file and names the key
// as `section.key`, with the line it is on; a key that is absent leaves the
// caller's default untouched.
class Section {
 public:
  Section(std::string file, std::string name, const Value* table, std::vector<std::string> known)
      : file_(std::move(file)), name_(std::move(name)), table_(table), known_(std::move(known)) {}

  const Value* find(const std::string& key) const {
    if (!table_) return nullptr;
    const auto& t = table_->as_table();
    auto it = t.find(key);
    return it == t.end() ? nullptr : &it->second;
  }

  std::string full(const std::string& key) const { return name_.empty() ? key : name_ + "." + key; }

  // "<file>: section.key[ = shown][ on line N] <what>"
  Error fail(const std::string& key, const std::string& shown, const std::string& what) const {
    const Value* v = find(key);
    return make_error(file_ + ": " + full(key) + (shown.empty() ? "" : " = " + shown) + (v ? line_of(*v) : "") +
                      " " + what);
  }

  // Reports the first unknown key in file order, so a typo is found where
  // the user is most likely to look.
  Status check_unknown() const {
    if (!table_) return Status::success();
    const Value* first = nullptr;
    std::string first_key;
    for (const auto& [k, v] : table_->as_table()) {
      if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
      if (!first || v.location().line() < first->location().line()) first = &v, first_key = k;
    }
    if (!first) return Status::success();
    return make_error(file_ + ": unknown key '" + full(first_key) + "'" + line_of(*first) + " (known: " +
                      join(known_) + ")");
  }

  Status read(const std::string& key, std::string* out) const {
    const Value* v = find(key);
    if (!v) return Status::success();
    if (!v->is_string()) return type_error(key, *v, "a string");
    *out = v->as_string().str;
    return Status::success();
  }

  Status read(const std::string& key, bool* out) const {
    const Value* v = find(key);
    if (!v) return Status::success();
    if (!v->is_boolean()) return type_error(key, *v, "a boolean (true or false)");
    *out = v->as_boolean();
    return Status::success();
  }

  // Integers are taken where a float is expected (budget_mb = 1024).
  Status read(const std::string& key, double* out) const {
    const Value* v = find(key);
    if (!v) return Status::success();
    double d;
    if (v->is_floating()) d = v->as_floating();
    else if (v->is_integer()) d = static_cast<double>(v->as_integer());
    else return type_error(key, *v, "a number");
    if (!std::isfinite(d)) return fail(key, "", "must be a finite number");
    *out = d;
    return Status::success();
  }

  template <class Int>
  Status read(const std::string& key, Int* out, int64_t lo, int64_t hi) const {
    const Value* v = find(key);
    if (!v) return Status::success();
    if (!v->is_integer()) return type_error(key, *v, "an integer");
    int64_t i = v->as_integer();
    if (i < lo || i > hi) {
      bool open_above = i < lo && (hi == kInt32Max || hi == kInt64Max);
      return fail(key, std::to_string(i),
                  open_above ? "must be >= " + std::to_string(lo)
                             : "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *out = static_cast<Int>(i);
    return Status::success();
  }

  Status read(const std::string& key, std::vector<std::string>* out) const {
    const Value* v = find(key);
    if (!v) return Status::success();
    if (!v->is_array()) return type_error(key, *v, "an array of strings");
    std::vector<std::string> items;
    for (const auto& e : v->as_array()) {
      if (!e.is_string()) return type_error(key, *v, "an array of strings");
      items.push_back(e.as_string().str);
    }
    *out = std::move(items);
    return Status::success();
  }

  // A string that must be one of `allowed`.
  Status read_enum(const std::string& key, std::string* out, const std::vector<std::string>& allowed) const {
    FLASHTTS_TRY(read(key, out));
    if (std::find(allowed.begin(), allowed.end(), *out) != allowed.end()) return Status::success();
    return fail(key, "'" + *out + "'", "is not one of: " + join(allowed, "'"));
  }

 private:
  Error type_error(const std::string& key, const Value& v, const char* expected) const {
    return fail(key, "", std::string("must be ") + expected + ", not " + a_type(v.type()));
  }

  std::string file_;
  std::string name_;
  const Value* table_;
  std::vector<std::string> known_;
};

// ---------------------------------------------------------------- sections

fs::path resolve(const fs::path& base_dir, const std::string& p) {
  if (p.empty()) return {};
  fs::path path = fs::path(p).is_relative() ? base_dir / p : fs::path(p);
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  return (ec ? path : abs).lexically_normal();
}

Status check_model_folder(const Section& s, const std::string& key, const fs::path& dir) {
  if (dir.empty()) return s.fail(key, "", "is not set; give the folder of a Hugging Face model");
  std::error_code ec;
  const char* why = nullptr;
  if (!fs::exists(dir, ec)) why = "it does not exist";
  else if (!fs::is_directory(dir, ec)) why = "not a folder";
  else if (!fs::is_regular_file(dir / "config.json", ec)) why = "no config.json";
  if (!why) return Status::success();
  return s.fail(key, "'" + dir.string() + "'", std::string("is not a model folder (") + why + ")");
}

Status read_models(const Section& s, const fs::path& base_dir, ModelsConfig* m) {
  FLASHTTS_TRY(s.check_unknown());
  std::string policy, prm;
  FLASHTTS_TRY(s.read("policy", &policy));
  FLASHTTS_TRY(s.read("prm", &prm));
  m->policy = resolve(base_dir, policy);
  m->prm = resolve(base_dir, prm);
  // The documented names, or the loader's own (flashtts score --family,
  // flashtts_prm.json); kept as the loader's, which the verifier parses.
  static const std::vector<std::pair<std::string, std::string>> kFamilies = {
      {"qwen", "classifier"}, {"skywork", "value_head"}, {"lm", "lm_logits"}};
  std::vector<std::string> families = {""};
  for (const auto& [name, loader_name] : kFamilies) families.push_back(name);
  for (const auto& [name, loader_name] : kFamilies) families.push_back(loader_name);
  FLASHTTS_TRY(s.read_enum("prm_family", &m->prm_family, families));
  for (const auto& [name, loader_name] : kFamilies)
    if (m->prm_family == name) m->prm_family = loader_name;
  FLASHTTS_TRY(s.read_enum("prompt_format", &m->prompt_format, {"auto", "chatml", "llama3", "raw"}));
  return s.read("system_prompt", &m->system_prompt);
}

Status read_memory(const Section& s, MemoryConfig* m) {
  FLASHTTS_TRY(s.check_unknown());
  FLASHTTS_TRY(s.read("budget_mb", &m->budget_mb));
  if (m->budget_mb < 0) return s.fail("budget_mb", show(m->budget_mb), "must be >= 0 (0: from the device)");
  // 2^30 MiB (1 PiB) is more than one machine holds, and keeps the budget in
  // bytes (budget_mb * 2^20, an int64 in the memory arbiter) and the sums and
  // shares made of it far inside 64 bits.
  constexpr double kMaxBudgetMb = double(int64_t(1) << 30);
  if (m->budget_mb > kMaxBudgetMb)
    return s.fail("budget_mb", show(m->budget_mb),
                  "is over the largest accepted value, 1073741824 (MiB, that is 1 PiB); give the memory in MiB");
  FLASHTTS_TRY(s.read("generator_share", &m->generator_share));
  if (!(m->generator_share > 0 && m->generator_share < 1))
    return s.fail("generator_share", show(m->generator_share), "must be in (0, 1)");
  FLASHTTS_TRY(s.read_enum("offload", &m->offload, {"auto", "adaptive", "on", "off"}));
  FLASHTTS_TRY(s.read("block_size", &m->block_size, kInt32Min, kInt32Max));
  int32_t b = m->block_size;
  if (b < 1 || b > 256 || (b & (b - 1)) != 0)
    return s.fail("block_size", std::to_string(b), "must be a power of two in [1, 256]");
  return Status::success();
}

Status read_engine(const Section& s, EngineConfig* e) {
  FLASHTTS_TRY(s.check_unknown());
  // "sim:<card>" is a simulated GPU (gpu/sim/, docs/sim.md).
  FLASHTTS_TRY(s.read("device", &e->device));
  if (e->device.rfind("sim:", 0) == 0) {
    if (!find_sim_card(std::string_view(e->device).substr(4)))
      return s.fail("device", "'" + e->device + "'", "names no simulated card; known: " + sim_card_names());
  } else {
    FLASHTTS_TRY(s.read_enum("device", &e->device, {"cpu", "auto", "cuda"}));
  }
  FLASHTTS_TRY(s.read("generator_threads", &e->generator_threads, 0, kInt32Max));
  FLASHTTS_TRY(s.read("verifier_threads", &e->verifier_threads, 0, kInt32Max));
  FLASHTTS_TRY(s.read("prefill_chunk", &e->prefill_chunk, 1, kInt32Max));
  return s.read("max_batch", &e->max_batch, 1, kInt32Max);
}

Status read_policies(const Section& s, PolicyConfig* p) {
  FLASHTTS_TRY(s.check_unknown());
  FLASHTTS_TRY(s.read_enum("scheduling", &p->scheduling, {"fifo", "prefix", "random", "scatter"}));
  FLASHTTS_TRY(s.read("scheduling_max_overtaken", &p->scheduling_max_overtaken, 1, kInt32Max));
  FLASHTTS_TRY(s.read_enum("request_order", &p->request_order, {"interleaved", "arrival"}));
  FLASHTTS_TRY(s.read_enum("request_admission", &p->request_admission, {"all", "fit"}));
  FLASHTTS_TRY(s.read_enum("eviction", &p->eviction, {"lru", "pruned"}));
  FLASHTTS_TRY(s.read("scheduling_reserve", &p->scheduling_reserve));
  if (!(p->scheduling_reserve >= 0 && p->scheduling_reserve <= 1))
    return s.fail("scheduling_reserve", show(p->scheduling_reserve),
                  "must be in [0, 1] (the share of a job's new tokens counted at admission)");
  FLASHTTS_TRY(s.read_enum("memory_split", &p->memory_split, {"static", "roofline"}));
  FLASHTTS_TRY(s.read("speculation", &p->speculation));
  FLASHTTS_TRY(s.read("speculation_max_slowdown", &p->speculation_max_slowdown));
  FLASHTTS_TRY(s.read("speculation_prune", &p->speculation_prune));
  FLASHTTS_TRY(s.read("speculation_bins", &p->speculation_bins));
  FLASHTTS_TRY(s.read("live_beams", &p->live_beams));
  if (!(p->speculation_max_slowdown >= 0 && p->speculation_max_slowdown <= 10))
    return s.fail("speculation_max_slowdown", show(p->speculation_max_slowdown),
                  "must be in [0, 10] (a fraction of a decode pass; 0 = no bound)");
  return Status::success();
}

// The range checks of the solve defaults are SolveParams::validate's, run
// once the limits are known (parse_config); here only types and int widths.
Status read_search(const Section& s, std::string* step_delimiter, msg::SolveParams* p) {
  FLASHTTS_TRY(s.check_unknown());
  FLASHTTS_TRY(s.read("step_delimiter", step_delimiter));
  if (step_delimiter->empty()) return s.fail("step_delimiter", "\"\"", "must not be empty");
  FLASHTTS_TRY(s.read("strategy", &p->strategy));
  FLASHTTS_TRY(s.read("n", &p->n, kInt32Min, kInt32Max));
  FLASHTTS_TRY(s.read("beam_width", &p->beam_width, kInt32Min, kInt32Max));
  FLASHTTS_TRY(s.read("max_steps", &p->max_steps, kInt32Min, kInt32Max));
  FLASHTTS_TRY(s.read("max_tokens_per_step", &p->max_tokens_per_step, kInt32Min, kInt32Max));
  FLASHTTS_TRY(s.read("temperature", &p->temperature));
  FLASHTTS_TRY(s.read("top_p", &p->top_p));
  FLASHTTS_TRY(s.read("top_k", &p->top_k, kInt32Min, kInt32Max));
  FLASHTTS_TRY(s.read("seed", &p->seed, 0, kInt64Max));
  FLASHTTS_TRY(s.read("aggregation", &p->aggregation));
  FLASHTTS_TRY(s.read("selection", &p->selection));
  FLASHTTS_TRY(s.read("lookahead", &p->lookahead, kInt32Min, kInt32Max));
  FLASHTTS_TRY(s.read("filter_duplicates", &p->filter_duplicates));
  FLASHTTS_TRY(s.read("sort_completed", &p->sort_completed));
  return s.read("answer_marker", &p->answer_marker);
}

Status read_limits(const Section& s, msg::Limits* l) {
  FLASHTTS_TRY(s.check_unknown());
  FLASHTTS_TRY(s.read("max_message_bytes", &l->max_message_bytes, 1, kInt64Max));
  FLASHTTS_TRY(s.read("max_problem_bytes", &l->max_problem_bytes, 1, kInt64Max));
  FLASHTTS_TRY(s.read("max_n", &l->max_n, 1, kInt32Max));
  FLASHTTS_TRY(s.read("max_steps", &l->max_steps, 1, kInt32Max));
  FLASHTTS_TRY(s.read("max_tokens_per_step", &l->max_tokens_per_step, 1, kInt32Max));
  FLASHTTS_TRY(s.read("max_tokens", &l->max_tokens, 1, kInt32Max));
  FLASHTTS_TRY(s.read("max_score_steps", &l->max_score_steps, 1, kInt32Max));
  FLASHTTS_TRY(s.read("max_live_requests", &l->max_live_requests, 1, kInt32Max));
  return s.read("max_deadline_ms", &l->max_deadline_ms, 1, kInt64Max);
}

Status check_endpoint(const Section& s, const std::string& key, const std::string& ep, bool client) {
  for (const char* scheme : {"inproc://", "ipc://", "tcp://"}) {
    std::string_view sv(scheme);
    if (ep.size() <= sv.size() || ep.compare(0, sv.size(), sv) != 0) continue;
    // Only this process can reach an inproc:// endpoint; a client is another process.
    if (client && sv == "inproc://")
      return s.fail(key, "'" + ep + "'", "cannot be inproc:// (other processes cannot reach it); use ipc:// or tcp://");
    return Status::success();
  }
  return s.fail(key, "'" + ep + "'", "must start with inproc://, ipc:// or tcp:// followed by an address");
}

Status read_endpoints(const Section& s, EndpointsConfig* e) {
  FLASHTTS_TRY(s.check_unknown());
  FLASHTTS_TRY(s.read("clients", &e->clients));
  if (e->clients.empty()) return s.fail("clients", "[]", "must list at least one endpoint");
  FLASHTTS_TRY(s.read("heartbeat_ms", &e->heartbeat_ms, 10, 60000));
  FLASHTTS_TRY(s.read("peer_timeout_ms", &e->peer_timeout_ms, 1, 3600000));
  if (e->peer_timeout_ms < 2 * e->heartbeat_ms)
    return s.fail("peer_timeout_ms", std::to_string(e->peer_timeout_ms),
                  "must be at least twice endpoints.heartbeat_ms (" + std::to_string(e->heartbeat_ms) +
                      "), or one late heartbeat would count as a lost process");
  // Two sockets cannot bind one address; catch it here rather than as a
  // ZeroMQ error at start-up.
  std::map<std::string, std::string> owner;
  for (const auto& c : e->clients) {
    FLASHTTS_TRY(check_endpoint(s, "clients", c, /*client=*/true));
    if (!owner.emplace(c, "endpoints.clients").second)
      return s.fail("clients", "", "lists '" + c + "' twice");
  }
  for (const auto& name : actor_names()) {
    std::string& ep = e->actors[name];
    FLASHTTS_TRY(s.read(name, &ep));
    FLASHTTS_TRY(check_endpoint(s, name, ep, /*client=*/false));
    auto [it, fresh] = owner.emplace(ep, s.full(name));
    if (!fresh) return s.fail(name, "'" + ep + "'", "is also " + it->second + "; each needs its own endpoint");
  }
  return Status::success();
}

const Value* section_table(const Value& root, const std::string& name) {
  const auto& t = root.as_table();
  auto it = t.find(name);
  return it == t.end() ? nullptr : &it->second;
}

Expected<Config> parse_document(const Value& root, const std::string& file, const fs::path& source,
                                bool check_models) {
  static const std::vector<std::string> sections = {"models", "memory", "engine",    "policies",
                                                    "search", "generate", "limits", "endpoints"};
  std::vector<std::string> top_keys = {"log_level"};
  top_keys.insert(top_keys.end(), sections.begin(), sections.end());
  top_keys.push_back("log_format");
  Section top(file, "", &root, top_keys);
  FLASHTTS_TRY(top.check_unknown());
  for (const auto& name : sections)
    if (const Value* v = section_table(root, name); v && !v->is_table())
      return top.fail(name, "", std::string("must be a table ([") + name + "]), not " + a_type(v->type()));
  auto section = [&](const std::string& name, std::vector<std::string> known) {
    return Section(file, name, section_table(root, name), std::move(known));
  };

  const Section models = section("models", {"policy", "prm", "prm_family", "prompt_format", "system_prompt"});
  Config c = default_config();
  c.source = source;
  FLASHTTS_TRY(top.read_enum("log_level", &c.log_level, {"trace", "debug", "info", "warn", "error", "off"}));
  FLASHTTS_TRY(top.read_enum("log_format", &c.log_format, {"text", "json"}));
  FLASHTTS_TRY(read_models(models, source.parent_path(), &c.models));
  FLASHTTS_TRY(read_memory(section("memory", {"budget_mb", "generator_share", "block_size", "offload"}), &c.memory));
  FLASHTTS_TRY(read_engine(
      section("engine", {"device", "generator_threads", "verifier_threads", "prefill_chunk", "max_batch"}),
      &c.engine));
  FLASHTTS_TRY(read_policies(
      section("policies", {"scheduling", "scheduling_max_overtaken", "request_order", "request_admission", "eviction",
                           "scheduling_reserve", "memory_split", "speculation", "speculation_max_slowdown",
                           "speculation_prune", "speculation_bins", "live_beams"}),
      &c.policies));
  FLASHTTS_TRY(read_search(section("search", {"step_delimiter", "strategy", "n", "beam_width", "max_steps",
                                              "max_tokens_per_step", "temperature", "top_p", "top_k", "seed",
                                              "aggregation", "selection", "lookahead", "filter_duplicates",
                                              "sort_completed", "answer_marker"}),
                           &c.step_delimiter, &c.defaults.solve));
  if (const Value* t = section_table(root, "search"))
    for (const auto& [k, v] : t->as_table()) c.search_keys.insert(k);
  FLASHTTS_TRY(read_limits(section("limits", {"max_message_bytes", "max_problem_bytes", "max_n", "max_steps",
                                              "max_tokens_per_step", "max_tokens", "max_score_steps",
                                              "max_live_requests", "max_deadline_ms"}),
                           &c.limits));
  // [generate]: the defaults of a generate request (a plain OpenAI request
  // is one), after the limits it must keep to.
  const Section generate = section("generate", {"max_tokens"});
  FLASHTTS_TRY(generate.check_unknown());
  FLASHTTS_TRY(generate.read("max_tokens", &c.defaults.generate.max_tokens, 1, c.limits.max_tokens));
  std::vector<std::string> endpoint_keys = {"clients", "heartbeat_ms", "peer_timeout_ms"};
  endpoint_keys.insert(endpoint_keys.end(), actor_names().begin(), actor_names().end());
  FLASHTTS_TRY(read_endpoints(section("endpoints", endpoint_keys), &c.endpoints));

  // The defaults must pass the same checks a client's request does; only the
  // problem is the client's to give.
  msg::SolveParams probe = c.defaults.solve;
  probe.problem = "(placeholder)";
  // The beam-search keys are the defaults of beam_search requests whatever
  // the default strategy; requests of other strategies switch them off
  // (SolveParams::read), so check them as a beam_search request would.
  if (probe.strategy != "beam_search") {
    msg::SolveParams beam = probe;
    beam.strategy = "beam_search";
    beam.beam_width = 1;  // n % beam_width is checked below, for the default strategy
    if (Status st = beam.validate(c.limits); !st.ok()) return make_error(file + ": [search]: " + st.message());
    probe.lookahead = 0, probe.filter_duplicates = false, probe.sort_completed = false;
  }
  if (Status st = probe.validate(c.limits); !st.ok()) return make_error(file + ": [search]: " + st.message());

  // Last: a mistake in the text is worth reporting before a missing folder.
  if (check_models) {
    FLASHTTS_TRY(check_model_folder(models, "policy", c.models.policy));
    FLASHTTS_TRY(check_model_folder(models, "prm", c.models.prm));
  }
  return c;
}

// toml11's messages start "[error] toml::parse_xxx: "; the function name
// means nothing to a user.
std::string syntax_message(const std::string& what) {
  std::string first = what.substr(0, what.find('\n'));
  if (first.rfind("[error] ", 0) == 0) first.erase(0, 8);
  if (first.rfind("toml::", 0) == 0) {
    auto colon = first.find(": ");
    if (colon != std::string::npos) first.erase(0, colon + 2);
  }
  return first;
}

}  // namespace

Config default_config() {
  Config c;
  for (const auto& name : actor_names()) c.endpoints.actors[name] = "inproc://flashtts-" + name;
  return c;
}

Expected<Config> parse_config(const std::string& text, const fs::path& source, bool check_models) {
  const std::string file = source.empty() ? "<config>" : source.string();
  try {
    std::istringstream is(text);
    Value root = toml::parse<toml::discard_comments, std::map, std::vector>(is, file);
    return parse_document(root, file, source, check_models);
  } catch (const toml::exception& e) {
    auto line = e.location().line();
    return make_error(file + ": invalid TOML" + (line > 0 ? " on line " + std::to_string(line) : "") + ": " +
                      syntax_message(e.what()));
  } catch (const std::exception& e) {
    return make_error(file + ": " + e.what());
  }
}

Expected<Config> load_config(const fs::path& file, bool check_models) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    return make_error("cannot read config file '" + file.string() + "': " +
                      (fs::exists(file, ec) ? "not a regular file" : "no such file"));
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) return make_error("cannot read config file '" + file.string() + "'");
  return parse_config(text, file, check_models);
}

fs::path default_config_path() {
  if (const char* env = std::getenv("FLASHTTS_CONFIG"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path beside = (exe.parent_path() / ".." / "configs" / "default.toml").lexically_normal();
    if (fs::exists(beside, ec)) return beside;
    // An installed binary: PREFIX/bin/flashtts, PREFIX/share/flashtts/configs (cmake --install).
    fs::path installed = (exe.parent_path() / ".." / "share" / "flashtts" / "configs" / "default.toml").lexically_normal();
    if (fs::exists(installed, ec)) return installed;
  }
  return fs::path(FLASHTTS_SOURCE_DIR) / "configs" / "default.toml";
}

}  // namespace flashtts
