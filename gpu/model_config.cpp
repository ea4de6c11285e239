#include "gpu/model_config.h"

namespace flashtts {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Qwen2: return "qwen2";
    case Arch::Llama: return "llama";
    case Arch::Mistral: return "mistral";
  }
  return "?";
}

const char* prm_format_name(PrmFormat f) {
  switch (f) {
    case PrmFormat::Default: return "default";
    case PrmFormat::QwenChat: return "qwen_chat";
    case PrmFormat::Skywork: return "skywork";
    case PrmFormat::MathShepherd: return "math_shepherd";
    case PrmFormat::RlhFlow: return "rlhflow";
  }
  return "?";
}

PrmFormat resolved_prm_format(PrmKind k, PrmFormat f) {
  if (f != PrmFormat::Default) return f;
  switch (k) {
    case PrmKind::Classifier: return PrmFormat::QwenChat;
    case PrmKind::ValueHead: return PrmFormat::Skywork;
    case PrmKind::LmLogits: return PrmFormat::MathShepherd;
    case PrmKind::None: break;
  }
  return PrmFormat::Default;
}

const char* prm_kind_name(PrmKind k) {
  switch (k) {
    case PrmKind::None: return "none";
    case PrmKind::Classifier: return "classifier";
    case PrmKind::ValueHead: return "value_head";
    case PrmKind::LmLogits: return "lm_logits";
  }
  return "?";
}

}  // namespace flashtts
