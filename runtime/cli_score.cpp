// flashtts score --prm DIR (--problem TEXT --solution TEXT | --raw TEXT) [--json]
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "gpu/generate.h"
#include "gpu/open_model.h"
#include "gpu/prm_format.h"
#include "runtime/cli.h"

namespace flashtts::cli {

namespace {

struct ScoreOpts {
  std::string prm, problem, solution, raw, delimiter = "\n\n";
  std::string family, step_tag, good_token, bad_token;
  bool json = false;
  EngineFlags engine;
};

int run_score(const ScoreOpts& o) {
  if (o.raw.empty() == (o.problem.empty() && o.solution.empty()))
    return fail("score", "give either --raw TEXT, or --problem TEXT with --solution TEXT");
  if (o.raw.empty() && (o.problem.empty() || o.solution.empty()))
    return fail("score", "--problem and --solution go together");
  const EngineOptions eo = o.engine.options();
  PrmOverride ovr;
  if (!o.family.empty()) {
    auto fam = parse_prm_family(o.family);
    if (!fam) return fail("score", fam.error().message);
    ovr.family = *fam;
  }
  if (!o.step_tag.empty()) ovr.step_tag = o.step_tag;
  if (!o.good_token.empty()) ovr.good_token = o.good_token;
  if (!o.bad_token.empty()) ovr.bad_token = o.bad_token;
  auto m = open_model(o.prm, eo, ovr);
  if (!m) return fail("score", m.error().message);

  std::vector<std::string> steps;
  auto input = o.raw.empty()
                   ? format_prm_input(*m->tokenizer, m->config(), o.problem, steps = split_steps(o.solution, o.delimiter))
                   : raw_prm_input(*m->tokenizer, m->config(), o.raw);
  if (!input) return fail("score", input.error().message);
  auto scores = score_positions(*m->engine, input->ids, input->score_positions);
  if (!scores) return fail("score", scores.error().message);

  if (o.json) {
    std::cout << nlohmann::json{{"step_scores", *scores}}.dump() << "\n";
    return 0;
  }
  for (size_t i = 0; i < scores->size(); ++i) {
    std::printf("step %zu: %.6f", i + 1, (*scores)[i]);
    if (i < steps.size()) {
      std::string head = steps[i].substr(0, 60);
      for (char& c : head)
        if (c == '\n') c = ' ';
      std::printf("  %s%s", head.c_str(), steps[i].size() > 60 ? "..." : "");
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void add_score(CLI::App& app, int* rc) {
  auto o = std::make_shared<ScoreOpts>();
  CLI::App* sub = app.add_subcommand("score", "score each step of a solution with a process reward model");
  sub->add_option("--prm", o->prm, "Hugging Face PRM folder")->required();
  sub->add_option("--problem", o->problem, "the problem text");
  sub->add_option("--solution", o->solution, "the solution; steps separated by --delimiter");
  sub->add_option("--raw", o->raw, "an already-formatted PRM input; every step tag is scored");
  sub->add_option("--delimiter", o->delimiter, "step separator in --solution (default: blank line)");
  sub->add_option("--family", o->family, "override the PRM family: classifier, value_head, lm_logits");
  sub->add_option("--step-tag", o->step_tag, "override the step tag text");
  sub->add_option("--good-token", o->good_token, "lm_logits: the 'good step' token");
  sub->add_option("--bad-token", o->bad_token, "lm_logits: the 'bad step' token");
  sub->add_flag("--json", o->json, "print {\"step_scores\": [...]}");
  o->engine.add(sub);
  sub->callback([o, rc] { *rc = run_score(*o); });
}

}  // namespace flashtts::cli
