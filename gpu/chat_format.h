// Chat templates for the policy prompt, chosen from the tokenizer's special
// tokens: ChatML (Qwen2/Qwen2.5) or the Llama 3 header format.
//
// Thread contract: pure functions; any thread.
#pragma once

#include <string>
#include <string_view>

#include "gpu/tokenizer.h"
#include "runtime/base/status.h"

namespace flashtts {

enum class ChatFormat { ChatML, Llama3 };

// Which format a tokenizer's special tokens imply; Error when neither.
Expected<ChatFormat> detect_chat_format(const Tokenizer& tok);

// One user turn (after an optional system turn), ending with the opening of
// the assistant turn so generation continues as the assistant.
std::string format_chat_prompt(ChatFormat f, std::string_view system, std::string_view user);

}  // namespace flashtts
