// Paged attention for a ragged batch piece: every token (a prefill chunk's
// or a decode step's) attends causally over its own sequence's KV through
// the block table, with grouped-query heads and an optional sliding window,
// exactly the positions the CPU backend attends over.
//
// One CTA serves one token and up to kGroup query heads of one KV head, so
// each K/V vector is read once for the whole group; warps split the context
// and merge their online-softmax states at the end. When the piece has few
// tokens (decode at small batch), the context is also split across CTAs
// (`splits`) into partial states that a second kernel merges.
//
// Thread contract: enqueues on the given stream; call from the owning
// backend's thread.
#pragma once

#include <cstdint>

#include "gpu/cuda/kernels.cuh"

namespace flashtts::cuda {

inline constexpr int kAttnGroup = 8;       // query heads per CTA
inline constexpr int kAttnMaxSplits = 16;  // context splits per token

struct AttnShape {
  int32_t T = 0, nh = 0, nkv = 0, hd = 0;  // REQUIRES: hd <= 256, nh % nkv == 0
  int32_t sliding_window = 0;              // 0 = full causal attention
  int32_t splits = 1;                      // 1..kAttnMaxSplits
};

// Floats of partial-state workspace the launch needs (0 when splits == 1).
size_t attention_workspace_floats(const AttnShape& s);

// How many context splits fill `n_sms` multiprocessors for a piece of T tokens.
int32_t attention_splits(int32_t T, int32_t nh, int32_t nkv, int32_t n_sms);

// out (T, nh*hd) = softmax(q k^T / sqrt(hd)) v per head, q (T, nh*hd) f32.
template <class S>
void paged_attention(const float* q, KvView<S> kv, MetaView m, const AttnShape& s, float* workspace, S* out,
                     cudaStream_t st);

}  // namespace flashtts::cuda
