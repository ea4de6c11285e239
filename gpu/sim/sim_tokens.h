// The token ids a simulated device samples from (docs/sim.md, "What is real,
// what is not").
//
// Draws over the whole vocabulary write byte fragments (half a UTF-8
// character) and, with flashtts-mkmodel's tokenizers, tokens no merge path
// reaches: decoded to text and read back by the PRM's tokenizer, the
// benchmark's simulated folders came to 2.1 tokens per token, so the
// simulated PRM scored about twice the text a real policy writes. Draws over
// these ids read back at 1.17 there (the generated merges still split some
// pairs), and at 1.03 on Qwen2's tokenizer (1.06 over its whole vocabulary);
// tests/sim_test.cpp measures both.
//
// Thread contract: pure functions over a const Tokenizer; any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "gpu/tokenizer.h"

namespace flashtts {

// The ids that stand alone as text: not special, and encode(decode({id})) is
// {id} (valid UTF-8 on their own, reachable by the merges), ascending. Empty
// when none is (the device then draws over the whole vocabulary).
std::vector<int32_t> standalone_token_ids(const Tokenizer& tok);

}  // namespace flashtts
