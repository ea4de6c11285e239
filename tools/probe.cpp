// flashtts-probe: drives an Engine from a JSON script and prints what each
// step computed, so that tests can compare the engine with an independent
// reference (Hugging Face transformers) through the real load + run path.
//
//   flashtts-probe --model DIR [--kv-mb M] [--block-size B] [--threads T] < script.json
//
// script: {"ops": [op, ...]} with ops
//   {"op": "run", "kind": "logits"|"hidden"|"score",
//    "items": [{"seq": S, "tokens": [...], "rows": "last"|"all"|"none"|"step_tags"|[pos, ...],
//               "max_tokens": N}]}
//       tokens are appended to S (S is created, through the prefix cache, when new)
//   {"op": "fork", "parent": P, "child": C}
//   {"op": "truncate", "seq": S, "keep": N}
//   {"op": "release", "seq": S}
//   {"op": "generate", "prompt": [...], "max_tokens": N, "temperature": T, "top_p": P,
//    "top_k": K, "seed": X, "stop": [...]}
// output: {"results": [one object per op], "kv": {counters}}; "run" gives per
// item {"seq", "cached", "positions", "values": [[...] per row]}.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gpu/generate.h"
#include "gpu/model_loader.h"

using nlohmann::json;
using namespace flashtts;

namespace {

Expected<json> run_op(Engine& engine, const json& op) {
  const std::string name = op.value("op", "");
  if (name == "fork") {
    FLASHTTS_TRY(engine.fork(op.at("parent").get<int64_t>(), op.at("child").get<int64_t>()));
    return json::object();
  }
  if (name == "release") {
    engine.release(op.at("seq").get<int64_t>());
    return json::object();
  }
  if (name == "truncate") {
    engine.truncate(op.at("seq").get<int64_t>(), op.at("keep").get<int32_t>());
    return json::object();
  }
  if (name == "generate") {
    GenerateRequest q;
    q.prompt = op.at("prompt").get<std::vector<int32_t>>();
    q.max_tokens = op.value("max_tokens", 16);
    q.sampling.temperature = op.value("temperature", 0.0f);
    q.sampling.top_p = op.value("top_p", 1.0f);
    q.sampling.top_k = op.value("top_k", 0);
    q.sampling.seed = op.value("seed", 0ull);
    q.stop_ids = op.value("stop", std::vector<int32_t>{});
    auto res = generate(engine, std::span<const GenerateRequest>(&q, 1));
    if (!res) return res.error();
    return json{{"tokens", (*res)[0].tokens}, {"finish_reason", (*res)[0].finish_reason}};
  }
  if (name != "run") return make_error("unknown op '" + name + "'");

  const std::string kind_s = op.value("kind", "logits");
  OutputKind kind = kind_s == "hidden" ? OutputKind::Hidden : kind_s == "score" ? OutputKind::Score : OutputKind::Logits;
  std::vector<RunItem> items;
  json out_items = json::array();
  for (const json& it : op.at("items")) {
    RunItem ri;
    ri.seq = it.at("seq").get<int64_t>();
    ri.max_tokens = it.value("max_tokens", 0);
    auto toks = it.value("tokens", std::vector<int32_t>{});
    int32_t cached = 0;
    if (!engine.has(ri.seq)) {
      auto added = engine.add_sequence(ri.seq, toks, it.value("reuse_prefix", true));
      if (!added) return added.error();
      cached = *added;
    } else {
      engine.append(ri.seq, toks);
    }
    const json& rows = it.contains("rows") ? it.at("rows") : json("last");
    if (rows.is_array()) {
      ri.rows = RowSelect::Explicit;
      ri.positions = rows.get<std::vector<int32_t>>();
    } else {
      std::string r = rows.get<std::string>();
      if (r == "all") {
        ri.rows = RowSelect::Explicit;
        for (int32_t p = engine.n_computed(ri.seq); p < (int32_t)engine.tokens(ri.seq).size(); ++p)
          ri.positions.push_back(p);
      } else {
        ri.rows = r == "none" ? RowSelect::None : r == "step_tags" ? RowSelect::StepTags : RowSelect::Last;
      }
    }
    items.push_back(std::move(ri));
    out_items.push_back({{"seq", items.back().seq}, {"cached", cached}});
  }
  RunResult rr;
  FLASHTTS_TRY(engine.run(items, kind, &rr));
  for (size_t i = 0; i < items.size(); ++i) {
    json values = json::array(), positions = json::array();
    for (int32_t r = 0; r < rr.item_n_rows[i]; ++r) {
      int32_t row = rr.item_first_row[i] + r;
      auto v = rr.out.row(row);
      values.push_back(std::vector<float>(v.begin(), v.end()));
      positions.push_back(rr.row_position[row]);
    }
    out_items[i]["values"] = values;
    out_items[i]["positions"] = positions;
  }
  return json{{"items", out_items}, {"starved", rr.starved}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flashtts-probe: run an engine script (JSON on stdin) and print its outputs"};
  std::string model, family, step_tag, good, bad;
  double kv_mb = 64;
  int block_size = 16, threads = 0;
  app.add_option("--model", model, "Hugging Face model folder")->required();
  app.add_option("--kv-mb", kv_mb, "KV budget in MiB");
  app.add_option("--block-size", block_size, "tokens per KV block");
  app.add_option("--threads", threads, "CPU threads (0 = all)");
  app.add_option("--family", family, "PRM family override");
  app.add_option("--step-tag-id", step_tag, "PRM step tag token id (no tokenizer needed)");
  app.add_option("--good-id", good, "LM-logit PRM good token id");
  app.add_option("--bad-id", bad, "LM-logit PRM bad token id");
  CLI11_PARSE(app, argc, argv);

  PrmOverride ovr;
  if (!family.empty()) {
    auto f = parse_prm_family(family);
    if (!f) return std::cerr << "flashtts-probe: " << f.error().message << "\n", 1;
    ovr.family = *f;
  }
  auto loaded = load_model(model, ovr);
  if (!loaded) return std::cerr << "flashtts-probe: " << loaded.error().message << "\n", 1;
  ModelConfig cfg = loaded->config;
  // Token ids come straight from the command line so folders without a
  // tokenizer (converted checkpoints) can be probed too.
  if (!step_tag.empty()) cfg.prm.step_tag_ids = {std::stoi(step_tag)};
  if (!good.empty()) cfg.prm.good_token_id = std::stoi(good);
  if (!bad.empty()) cfg.prm.bad_token_id = std::stoi(bad);

  EngineOptions eo;
  eo.kv_bytes = (size_t)(kv_mb * (1 << 20));
  eo.block_size = block_size;
  eo.n_threads = threads;
  auto engine = Engine::create(cfg, std::move(loaded->weights), eo);
  if (!engine) return std::cerr << "flashtts-probe: " << engine.error().message << "\n", 1;

  json script;
  try {
    script = json::parse(std::cin);
  } catch (const json::exception& e) {
    return std::cerr << "flashtts-probe: bad script JSON: " << e.what() << "\n", 1;
  }
  json results = json::array();
  for (const json& op : script.at("ops")) {
    Expected<json> r = [&]() -> Expected<json> {
      try {
        return run_op(**engine, op);
      } catch (const json::exception& e) {
        return make_error(std::string("bad op ") + op.dump() + ": " + e.what());
      }
    }();
    if (!r) return std::cerr << "flashtts-probe: " << r.error().message << "\n", 1;
    results.push_back(*r);
  }
  KvCacheStats st = (*engine)->kv_stats();
  std::cout << json{{"results", results},
                    {"kv", {{"hit_blocks", st.hit_blocks}, {"miss_blocks", st.miss_blocks},
                            {"evictions", st.evictions}, {"n_blocks", st.n_blocks}}}}
                   .dump()
            << "\n";
  return 0;
}
