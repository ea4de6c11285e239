// flashtts-tokenize-batch: JSON lines in, token ids out, for comparing our
// tokenizer with Hugging Face's (tests/reference/test_tokenizer_hf.py).
//
//   stdin:  {"text": "...", "parse_special": true}   (parse_special optional)
//   stdout: {"ids": [...], "decoded": "..."}          one line per input line
//
// --tokenizer takes a tokenizer.json, a .gguf, or a Hugging Face folder.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gpu/tokenizer.h"

int main(int argc, char** argv) {
  CLI::App app{"Tokenize JSON lines {\"text\": ...} from stdin; write {\"ids\": [...]} lines"};
  std::string path;
  app.add_option("--tokenizer", path, "tokenizer.json, .gguf, or a Hugging Face folder")->required();
  CLI11_PARSE(app, argc, argv);

  auto tok = flashtts::Tokenizer::load(path);
  if (!tok.ok()) {
    std::cerr << "flashtts-tokenize-batch: " << tok.error().message << "\n";
    return 2;
  }
  std::ios::sync_with_stdio(false);
  size_t line_no = 0;
  for (std::string line; std::getline(std::cin, line);) {
    ++line_no;
    if (line.empty()) continue;
    const auto in = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!in.is_object() || !in.contains("text") || !in["text"].is_string()) {
      std::cerr << "flashtts-tokenize-batch: stdin line " << line_no << " is not {\"text\": string}\n";
      return 2;
    }
    const std::string text = in["text"].get<std::string>();
    const bool parse_special = in.value("parse_special", true);
    const auto ids = tok->encode(text, parse_special);
    nlohmann::json out = {{"ids", ids}, {"decoded", tok->decode(ids)}};
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  return 0;
}
