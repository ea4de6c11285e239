#include "gpu/chat_format.h"

namespace flashtts {

Expected<ChatFormat> detect_chat_format(const Tokenizer& tok) {
  if (tok.token_to_id("<|im_start|>") >= 0 && tok.token_to_id("<|im_end|>") >= 0) return ChatFormat::ChatML;
  if (tok.token_to_id("<|start_header_id|>") >= 0 && tok.token_to_id("<|eot_id|>") >= 0) return ChatFormat::Llama3;
  return make_error("no chat format: the tokenizer has neither <|im_start|>/<|im_end|> (ChatML) nor "
                    "<|start_header_id|>/<|eot_id|> (Llama 3); use a raw prompt");
}

std::string format_chat_prompt(ChatFormat f, std::string_view system, std::string_view user) {
  std::string s;
  if (f == ChatFormat::ChatML) {
    if (!system.empty()) s += "<|im_start|>system\n" + std::string(system) + "<|im_end|>\n";
    s += "<|im_start|>user\n" + std::string(user) + "<|im_end|>\n<|im_start|>assistant\n";
  } else {
    s = "<|begin_of_text|>";
    if (!system.empty()) s += "<|start_header_id|>system<|end_header_id|>\n\n" + std::string(system) + "<|eot_id|>";
    s += "<|start_header_id|>user<|end_header_id|>\n\n" + std::string(user) +
         "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  return s;
}

}  // namespace flashtts
