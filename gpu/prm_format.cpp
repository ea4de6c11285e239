#include "gpu/prm_format.h"

#include <algorithm>
#include <cctype>

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

namespace {

// Positions of the last token of every occurrence of `tag` in `ids`.
std::vector<int32_t> tag_ends(const std::vector<int32_t>& ids, const std::vector<int32_t>& tag) {
  std::vector<int32_t> out;
  if (tag.empty() || ids.size() < tag.size()) return out;
  for (size_t i = 0; i + tag.size() <= ids.size(); ++i)
    if (std::equal(tag.begin(), tag.end(), ids.begin() + i)) {
      out.push_back(int32_t(i + tag.size() - 1));
      i += tag.size() - 1;
    }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return std::string(s.substr(a, b - a));
}

// The whole text encoded at once (as Hugging Face encodes a chat-template
// string), with a score at every step tag; error unless that is one per step.
Expected<PrmInput> encode_tagged(const Tokenizer& tok, const ModelConfig& cfg, const std::string& text,
                                 size_t n_steps) {
  PrmInput in;
  in.ids = tok.encode(text);
  in.score_positions = tag_ends(in.ids, cfg.prm.step_tag_ids);
  if (in.score_positions.size() != n_steps)
    return make_error("score: the PRM input holds " + std::to_string(in.score_positions.size()) +
                      " step tags for " + std::to_string(n_steps) + " steps (does a step contain the tag '" +
                      cfg.prm.step_tag + "'?)");
  return in;
}

}  // namespace

Expected<PrmInput> format_prm_input(const Tokenizer& tok, const ModelConfig& cfg, std::string_view problem,
                                    const std::vector<std::string>& steps) {
  auto tag = step_tag_id(cfg);
  if (!tag) return tag.error();
  if (steps.empty()) return make_error("score: the solution has no steps");
  const std::string& t = cfg.prm.step_tag;
  switch (resolved_prm_format(cfg.prm.kind, cfg.prm.format)) {
    case PrmFormat::QwenChat:
      // Qwen2.5-Math-PRM's model card: system, user, and the assistant turn
      // holding the steps joined and ended by <extra_0>.
      return encode_tagged(tok, cfg,
                           "<|im_start|>system\n" + std::string(kQwenPrmSystem) + "<|im_end|>\n<|im_start|>user\n" +
                               std::string(problem) + "<|im_end|>\n<|im_start|>assistant\n" + join(steps, t) + t +
                               "<|im_end|>\n",
                           steps.size());
    case PrmFormat::Skywork: {
      // Skywork's prepare_input: BOS + problem + "\n", then the response
      // (steps joined by "\n\n") split at the step tag, every piece (empty
      // ones too) encoded on its own and followed by the tag. A step's score
      // is read at the tag that closes the piece holding its last character.
      PrmInput in;
      if (cfg.bos_token_id >= 0) in.ids.push_back(cfg.bos_token_id);
      append(in.ids, tok.encode(std::string(problem) + "\n", false));
      const std::string response = join(steps, "\n\n");
      std::vector<size_t> step_end;  // offset one past each step's last character
      for (size_t i = 0, off = 0; i < steps.size(); ++i) {
        off += steps[i].size();
        step_end.push_back(off);
        off += 2;
      }
      size_t start = 0, next_step = 0;
      for (;;) {
        size_t at = response.find(t, start);
        size_t piece_end = at == std::string::npos ? response.size() : at;
        std::string_view piece = std::string_view(response).substr(start, piece_end - start);
        if (!piece.empty()) append(in.ids, tok.encode(piece, false));
        in.ids.push_back(*tag);
        while (next_step < step_end.size() && step_end[next_step] <= piece_end && step_end[next_step] >= start) {
          in.score_positions.push_back((int32_t)in.ids.size() - 1);
          ++next_step;
        }
        if (at == std::string::npos) break;
        start = at + t.size();
      }
      if (in.score_positions.size() != steps.size())
        return make_error("score: a step of the solution is empty or made only of step tags");
      return in;
    }
    case PrmFormat::MathShepherd:
      // search-and-learn's MathShepherd.score: "\n\n" between steps becomes
      // " ки\n\n", the last step ends in " ки", and the question leads.
      return encode_tagged(tok, cfg, std::string(problem) + "\n " + join(steps, t + "\n\n") + t, steps.size());
    case PrmFormat::RlhFlow: {
      // RLHFlow's prm_evaluate: the Llama 3 chat template over turns
      // user = (problem + " " + step 1 | step k), assistant = the good label;
      // the score is read where the assistant turn opens (the step tag).
      std::string text = "<|begin_of_text|>";
      for (size_t i = 0; i < steps.size(); ++i) {
        std::string user = i == 0 ? std::string(problem) + " " + steps[0] : steps[i];
        text += "<|start_header_id|>user<|end_header_id|>\n\n" + trim(user) + "<|eot_id|>" + t + trim(cfg.prm.good_token) +
                "<|eot_id|>";
      }
      auto in = encode_tagged(tok, cfg, text, steps.size());
      // The Llama 3 template RLHFlow inherits always ends by opening another
      // assistant turn; after every score position, so the scores do not
      // depend on it, but the ids then equal the reference's.
      if (in) append(in->ids, cfg.prm.step_tag_ids);
      return in;
    }
    case PrmFormat::Default:
      break;
  }
  return make_error("score: " + cfg.architecture + " is not a process reward model");
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
