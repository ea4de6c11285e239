// flashtts tokenize --model DIR --text TEXT [--json] [--no-special]
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "gpu/open_model.h"
#include "runtime/cli.h"

namespace flashtts::cli {

void add_tokenize(CLI::App& app, int* rc) {
  struct Opts {
    std::string model, text;
    bool json = false, no_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("tokenize", "print the token ids of a text");
  sub->add_option("--model", o->model, "Hugging Face model folder")->required();
  sub->add_option("--text", o->text, "text to tokenize")->required();
  sub->add_flag("--json", o->json, "print {\"ids\": [...]}");
  sub->add_flag("--no-special", o->no_special, "treat special-token text as plain text");
  sub->callback([o, rc] {
    auto tok = open_tokenizer(o->model);
    if (!tok) {
      *rc = fail("tokenize", tok.error().message);
      return;
    }
    std::vector<int32_t> ids = (*tok)->encode(o->text, !o->no_special);
    if (o->json) {
      std::cout << nlohmann::json{{"ids", ids}}.dump() << "\n";
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << "\n";
    }
    *rc = 0;
  });
}

}  // namespace flashtts::cli
