// flashtts-prm-input: prints the token ids a PRM family reads for a problem
// and its steps, and the positions where the step scores are read, as JSON.
// The reference test tests/reference/test_prm_formats.py compares them with
// the published reference code run through Hugging Face tokenizers.
//
//   flashtts-prm-input --tokenizer DIR --family classifier|value_head|lm_logits
//                      [--format qwen_chat|skywork|math_shepherd|rlhflow]
//                      [--step-tag T] [--good +] [--bad -] [--bos-id N]
//                      --problem TEXT --step TEXT [--step TEXT ...]
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gpu/model_loader.h"
#include "gpu/open_model.h"
#include "gpu/prm_format.h"

int main(int argc, char** argv) {
  using namespace flashtts;
  CLI::App app{"Print a PRM family's input ids and score positions"};
  std::string dir, family, format = "default", step_tag, good = "+", bad = "-", problem;
  std::vector<std::string> steps;
  int bos = -1;
  app.add_option("--tokenizer", dir, "Folder with tokenizer.json (or vocab.json + merges.txt)")->required();
  app.add_option("--family", family, "classifier, value_head or lm_logits")->required();
  app.add_option("--format", format, "qwen_chat, skywork, math_shepherd, rlhflow (default: the family's)");
  app.add_option("--step-tag", step_tag, "Step tag (default: the family's)");
  app.add_option("--good", good, "LM-logit PRMs: the good label");
  app.add_option("--bad", bad, "LM-logit PRMs: the bad label");
  app.add_option("--bos-id", bos, "BOS token id (Skywork)");
  app.add_option("--problem", problem, "Problem text")->required();
  app.add_option("--step", steps, "A solution step (repeat)")->required();
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& m) {
    std::cerr << "flashtts-prm-input: error: " << m << "\n";
    return 1;
  };
  auto kind = parse_prm_family(family);
  if (!kind) return fail(kind.error().message);
  ModelConfig cfg;
  cfg.architecture = "flashtts-prm-input";
  cfg.bos_token_id = bos;
  cfg.prm.kind = *kind;
  if (format != "default") {
    bool found = false;
    for (PrmFormat f : {PrmFormat::QwenChat, PrmFormat::Skywork, PrmFormat::MathShepherd, PrmFormat::RlhFlow})
      if (format == prm_format_name(f)) cfg.prm.format = f, found = true;
    if (!found) return fail("unknown format '" + format + "'");
  }
  PrmFormat f = resolved_prm_format(cfg.prm.kind, cfg.prm.format);
  cfg.prm.step_tag = !step_tag.empty()            ? step_tag
                     : f == PrmFormat::QwenChat     ? "<extra_0>"
                     : f == PrmFormat::Skywork      ? "\n"
                     : f == PrmFormat::MathShepherd ? " ки"
                                                    : "<|start_header_id|>assistant<|end_header_id|>\n\n";
  cfg.prm.good_token = good;
  cfg.prm.bad_token = bad;
  auto tok = open_tokenizer(dir);
  if (!tok) return fail(tok.error().message);
  if (Status s = resolve_prm_tokens(**tok, &cfg); !s.ok()) return fail(s.message());
  auto in = format_prm_input(**tok, cfg, problem, steps);
  if (!in) return fail(in.error().message);
  std::cout << nlohmann::json{{"ids", in->ids}, {"score_positions", in->score_positions}}.dump() << "\n";
  return 0;
}
