// flashtts generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T]
//                   [--top-p P] [--top-k K] [--seed S] [--chat [--system S | --config FILE]] [--json]
//
// --chat puts the configuration's system_prompt before the prompt, as the
// pipeline does for a solve, unless --system gives another one ("" = none).
//
// Sampling: a flag given > DIR's generation_config.json (temperature, top_p,
// top_k) > greedy decoding, as a served generate request takes the policy's
// (runtime/generation_defaults.h).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "gpu/chat_format.h"
#include "gpu/generate.h"
#include "gpu/open_model.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/generation_defaults.h"

namespace flashtts::cli {

namespace {

struct GenerateOpts {
  std::string model, prompt, config;
  std::optional<std::string> system;  // unset: the configuration's system_prompt
  // A served generate request's default (GenerateParams, [generate] max_tokens).
  int max_tokens = msg::GenerateParams{}.max_tokens;
  // Unset: DIR's generation_config.json, else greedy.
  std::optional<double> temperature, top_p;
  std::optional<int32_t> top_k;
  uint64_t seed = 0;
  bool json = false, chat = false, stats = false;
  EngineFlags engine;
};

// The system message of --chat: --system when given; else the system_prompt
// of --config, of $FLASHTTS_CONFIG or of configs/default.toml. A --config
// that does not load is an error; a default one that does not (a binary
// moved away from its tree) leaves the built-in prompt, which is the shipped
// file's.
Expected<std::string> chat_system_prompt(const GenerateOpts& o) {
  if (o.system) return *o.system;
  auto c = load_config(o.config.empty() ? default_config_path() : std::filesystem::path(o.config),
                       /*check_models=*/false);
  if (c) return c->models.system_prompt;
  if (!o.config.empty()) return c.error();
  return default_config().models.system_prompt;
}

int run_generate(const GenerateOpts& o) {
  std::string system;
  if (o.chat) {
    auto s = chat_system_prompt(o);
    if (!s) return fail("generate", s.error().message);
    system = std::move(*s);
  } else if (o.system || !o.config.empty()) {
    return fail("generate", std::string(o.system ? "--system" : "--config") + " applies only with --chat");
  }
  msg::GenerateParams sampling;  // a generate request's built-in defaults: greedy
  auto file = read_sampling_defaults(o.model);
  if (!file) return fail("generate", file.error().message);
  apply_sampling_defaults(*file, &sampling);
  const EngineOptions eo = o.engine.options();
  auto t0 = std::chrono::steady_clock::now();
  auto m = open_model(o.model, eo);
  if (!m) return fail("generate", m.error().message);
  if (m->config().prm.kind != PrmKind::None && m->config().prm.kind != PrmKind::LmLogits)
    return fail("generate", o.model + " is a process reward model (" + m->config().architecture +
                                ") without a language-model head; use `flashtts score`");
  const Tokenizer& tok = *m->tokenizer;

  std::string text = o.prompt;
  if (o.chat) {
    auto fmt = detect_chat_format(tok);
    if (!fmt) return fail("generate", fmt.error().message);
    text = format_chat_prompt(*fmt, system, o.prompt);
  }
  GenerateRequest req;
  req.prompt = tok.encode(text);
  if (req.prompt.empty()) return fail("generate", "the prompt encodes to no tokens");
  req.sampling = {float(o.temperature.value_or(sampling.temperature)), float(o.top_p.value_or(sampling.top_p)),
                  o.top_k.value_or(sampling.top_k), o.seed};
  req.max_tokens = o.max_tokens;
  req.stop_ids = m->config().eos_token_ids;
  if (o.chat) {
    for (const char* end : {"<|im_end|>", "<|eot_id|>"})
      if (int32_t id = tok.token_to_id(end); id >= 0) req.stop_ids.push_back(id);
  }

  auto t1 = std::chrono::steady_clock::now();
  StreamDecoder stream(tok);
  auto on_token = [&](size_t, int32_t id) {
    if (o.json || tok.is_special(id)) return;
    std::cout << stream.push(id) << std::flush;
  };
  auto res = generate(*m->engine, std::span<const GenerateRequest>(&req, 1), on_token);
  if (!res) return fail("generate", res.error().message);
  auto t2 = std::chrono::steady_clock::now();
  const GenerateResult& g = (*res)[0];

  if (o.json) {
    nlohmann::json j = {{"prompt_ids", req.prompt},
                        {"token_ids", g.tokens},
                        {"text", tok.decode(g.tokens, /*skip_special=*/true)},
                        {"finish_reason", g.finish_reason}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << stream.flush() << "\n";
  }
  std::cout.flush();  // the stats line on stderr must come after the text
  if (o.stats) {
    double load_s = std::chrono::duration<double>(t1 - t0).count();
    double gen_s = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr, "flashtts generate: %zu prompt + %zu generated tokens, load %.2f s, generate %.2f s (%.1f tok/s), finish=%s\n",
                 req.prompt.size(), g.tokens.size(), load_s, gen_s, g.tokens.size() / std::max(gen_s, 1e-9),
                 g.finish_reason.c_str());
  }
  return 0;
}

}  // namespace

void add_generate(CLI::App& app, int* rc) {
  auto o = std::make_shared<GenerateOpts>();
  CLI::App* sub = app.add_subcommand("generate", "complete a prompt with a causal LM");
  sub->add_option("--model", o->model, "Hugging Face model folder")->required();
  sub->add_option("--prompt", o->prompt, "prompt text (raw unless --chat)")->required();
  sub->add_option("--max-tokens", o->max_tokens, "tokens to generate at most (as a served request)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  sub->add_option("--temperature", o->temperature,
                  "0 = greedy (default: the model folder's generation_config.json, else 0)")
      ->check(CLI::Range(0.0, 100.0));
  sub->add_option("--top-p", o->top_p, "nucleus mass, (0, 1] (default: generation_config.json, else 1)")
      ->check(CLI::Range(1e-6, 1.0));
  sub->add_option("--top-k", o->top_k,
                  "keep the k most likely tokens, 0 = off (default: generation_config.json, else 0)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", o->seed, "random seed");
  sub->add_flag("--chat", o->chat, "wrap the prompt in the model's chat format");
  sub->add_option("--system", o->system,
                  "system message for --chat (default: the configuration's system_prompt; \"\" = none)");
  sub->add_option("--config", o->config,
                  "--chat: take the system message from this TOML configuration (default: $FLASHTTS_CONFIG, "
                  "else configs/default.toml)");
  sub->add_flag("--json", o->json, "print prompt_ids, token_ids, text, finish_reason as JSON");
  sub->add_flag("--stats", o->stats, "print token counts and speed to stderr");
  o->engine.add(sub);
  sub->callback([o, rc] { *rc = run_generate(*o); });
}

}  // namespace flashtts::cli
