#include "gpu/prm_format.h"

namespace flashtts {

namespace {

constexpr std::string_view kQwenPrmSystem =
    "Please reason step by step, and put your final answer within \\boxed{}.";

void append(std::vector<int32_t>& ids, const std::vector<int32_t>& more) {
  ids.insert(ids.end(), more.begin(), more.end());
}

Expected<int32_t> step_tag_id(const ModelConfig& cfg) {
  if (cfg.prm.kind == PrmKind::None) return make_error("score: " + cfg.architecture + " is not a process reward model");
  if (cfg.prm.step_tag_ids.empty())
    return make_error("score: the PRM's step tag '" + cfg.prm.step_tag + "' is not a token of its tokenizer");
  return cfg.prm.step_tag_ids.back();
}

}  // namespace

std::vector<std::string> split_steps(std::string_view s, std::string_view delim) {
  std::vector<std::string> steps;
  size_t start = 0;
  while (start <= s.size()) {
    size_t at = delim.empty() ? std::string_view::npos : s.find(delim, start);
    std::string_view piece = s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start);
    if (!piece.empty()) steps.emplace_back(piece);
    if (at == std::string_view::npos) break;
    start = at + delim.size();
  }
  return steps;
}

Expected<PrmInput> format_prm_input(const Tokenizer& tok, const ModelConfig& cfg, std::string_view problem,
                                    const std::vector<std::string>& steps) {
  auto tag = step_tag_id(cfg);
  if (!tag) return tag.error();
  if (steps.empty()) return make_error("score: the solution has no steps");
  PrmInput in;
  switch (cfg.prm.kind) {
    case PrmKind::Classifier: {
      std::string head = "<|im_start|>system\n" + std::string(kQwenPrmSystem) + "<|im_end|>\n<|im_start|>user\n" +
                         std::string(problem) + "<|im_end|>\n<|im_start|>assistant\n";
      in.ids = tok.encode(head);
      for (const std::string& step : steps) {
        append(in.ids, tok.encode(step, /*parse_special=*/false));
        in.ids.push_back(*tag);
        in.score_positions.push_back((int32_t)in.ids.size() - 1);
      }
      append(in.ids, tok.encode("<|im_end|>\n"));
      break;
    }
    case PrmKind::ValueHead: {
      if (cfg.bos_token_id >= 0) in.ids.push_back(cfg.bos_token_id);
      append(in.ids, tok.encode(std::string(problem) + "\n", false));
      for (const std::string& step : steps) {
        append(in.ids, tok.encode(step, false));
        in.ids.push_back(*tag);
        in.score_positions.push_back((int32_t)in.ids.size() - 1);
      }
      break;
    }
    case PrmKind::LmLogits: {
      append(in.ids, tok.encode(std::string(problem) + " ", false));
      for (const std::string& step : steps) {
        append(in.ids, tok.encode(step, false));
        append(in.ids, cfg.prm.step_tag_ids);
        in.score_positions.push_back((int32_t)in.ids.size() - 1);
        append(in.ids, tok.encode("\n", false));
      }
      break;
    }
    case PrmKind::None:
      break;  // rejected by step_tag_id()
  }
  return in;
}

Expected<PrmInput> raw_prm_input(const Tokenizer& tok, const ModelConfig& cfg, std::string_view text) {
  auto tag = step_tag_id(cfg);
  if (!tag) return tag.error();
  PrmInput in;
  in.ids = tok.encode(text);
  for (size_t i = 0; i < in.ids.size(); ++i)
    if (in.ids[i] == *tag) in.score_positions.push_back((int32_t)i);
  if (in.score_positions.empty())
    return make_error("score: the input holds no step tag '" + cfg.prm.step_tag + "'");
  return in;
}

}  // namespace flashtts
