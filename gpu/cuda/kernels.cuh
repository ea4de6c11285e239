// The CUDA kernels of the forward pass, as host-side launchers. Every one
// follows its CPU counterpart in gpu/cpu/kernels.cpp (same formulas, same
// order of bias, rotation and normalisation) with float32 arithmetic; S is
// the storage type of weights, KV and GEMM inputs (float or __nv_bfloat16).
//
// Shapes use T = tokens of the batch piece, R = output rows, E = entries,
// h, f, hd, nh, nkv, V as in gpu/weights.h. "Batch metadata" is the device
// copy of one piece's BatchMeta (gpu/cuda/batch_meta.h).
//
// Thread contract: launchers enqueue on the given stream and return; call
// from the owning backend's thread.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace flashtts::cuda {

// Device view of one piece's batch metadata (all device pointers).
struct MetaView {
  const int32_t* tokens;     // (T) token ids
  const int32_t* pos;        // (T) absolute position of each token
  const int32_t* entry;      // (T) piece-local entry of each token
  const int32_t* table_off;  // (E) start of each entry's block table in `tables`
  const int32_t* tables;     // block ids, entries' tables back to back
  const int32_t* out_idx;    // (R) token row of each output row
};

// Where a layer's KV lives: (n_blocks, 2 [K,V], block_size, nkv*hd) of S.
template <class S>
struct KvView {
  S* base;             // this layer's first block
  int32_t block_size;
  int32_t kv_dim;      // nkv * hd
};

// x (T,h) f32 = embedding rows of tokens.
template <class S>
void embed(const S* tok_embd, MetaView m, int32_t T, int32_t h, float* x, cudaStream_t st);

// Per row: x += add + bias (each optional: null skips it), then
// out = w * (x * rsqrt(mean(x^2) + eps)). When rows != null, row r reads
// x[rows[r]] instead (and add must be null): the final norm of output rows.
template <class O>
void residual_rmsnorm(float* x, const float* add, const float* bias, const float* w, const int32_t* rows,
                      int32_t n_rows, int32_t h, float eps, O* out, cudaStream_t st);

// qkv (T, nh*hd + 2*kv_dim) f32 from the fused projection: adds the bias,
// rotates q and k (rotate_half, angle = pos * inv_freq in float32), writes
// q (T, nh*hd) f32 and the K/V of each token into its paged slot.
template <class S>
void qkv_rope_store(const float* qkv, const float* bias, const float* inv_freq, MetaView m, int32_t T, int32_t nh,
                    int32_t nkv, int32_t hd, KvView<S> kv, float* q, cudaStream_t st);

// act (T,f) = silu(gate + b_gate) * (up + b_up), gu = (T, 2f) [gate | up].
template <class S>
void silu_mul(const float* gu, const float* bias, int32_t T, int32_t f, S* act, cudaStream_t st);

// Copies whole KV blocks of every layer: pairs (src,dst) of block ids;
// layer l's blocks start at kv + l * layer_bytes.
void copy_kv_blocks(void* kv, const int32_t* pairs, int32_t n_pairs, int32_t n_layers, size_t layer_bytes,
                    size_t block_bytes, cudaStream_t st);

// PRM heads over R rows of final-normed hidden states (f32, (R,h)).
// Classifier: mid (R,h) = relu(hidden W1^T + b1) is computed by a GEMM
// before; here softmax(mid W2^T + b2)[1].
void prm_classifier(const float* mid, const float* w2, const float* b2, int32_t R, int32_t h, float* out,
                    cudaStream_t st);
// ValueHead: sigmoid(hidden . w2 + b2).
void prm_value(const float* hidden, const float* w2, const float* b2, int32_t R, int32_t h, float* out,
               cudaStream_t st);
// LmLogits: softmax over the LM logits of the good and bad tokens, [good].
template <class S>
void prm_lm_logits(const float* hidden, const S* lm_head, int32_t good, int32_t bad, int32_t R, int32_t h, float* out,
                   cudaStream_t st);

// x (T,h) += y + b (b optional): the last layer's residual, before the
// final norm reads the output rows.
void residual_add(float* x, const float* y, const float* b, int32_t T, int32_t h, cudaStream_t st);

// y (n) += b, rows of width `width`; then optional ReLU. For the classifier's
// first layer, whose GEMM writes without bias.
void bias_act(float* y, const float* b, int32_t rows, int32_t width, bool relu, cudaStream_t st);

// Float32 -> S, n values (weights at upload; activations).
template <class S>
void convert(const float* in, S* out, size_t n, cudaStream_t st);

}  // namespace flashtts::cuda
