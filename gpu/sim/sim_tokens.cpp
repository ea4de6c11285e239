#include "gpu/sim/sim_tokens.h"

namespace flashtts {

std::vector<int32_t> standalone_token_ids(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  const int32_t n = tok.vocab_size();
  for (int32_t id = 0; id < n; ++id) {
    if (tok.is_special(id) || tok.token_bytes(id).empty()) continue;
    const int32_t one[1] = {id};
    const std::vector<int32_t> back = tok.encode(tok.decode(one), /*parse_special=*/false);
    if (back.size() == 1 && back[0] == id) ids.push_back(id);
  }
  return ids;
}

}  // namespace flashtts
