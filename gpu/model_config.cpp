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
