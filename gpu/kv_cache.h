// The paged KV cache of one model: which fixed-size token blocks each sequence
// uses. Forked beams share their full blocks; a prefix cache lets a new
// sequence whose tokens start like an earlier one reuse its blocks, across
// beams and across requests; unreferenced cached blocks are evicted least
// recently used first. Running out of blocks is an error value or `false`
// (the caller preempts and retries), never a crash.
//
// Pure bookkeeping: the K/V numbers live in the backend's storage, indexed by
// block id. When block contents must be duplicated (fork of a partial block)
// the call returns BlockCopy operations for the caller to perform before its
// next forward pass.
//
// Rules the caller relies on:
//  - A sequence's KV is written in the blocks of block_table() at the time of
//    the forward pass, then recorded with append(). The table may change in
//    any non-const call (append may swap a block that just became full for an
//    identical cached one), so read it again before each forward pass.
//  - Full blocks are immutable once registered; a partial block (and any
//    reserved block) belongs to one sequence only.
//
// Thread contract: owned by one actor (the generator or the verifier, one
// cache per model) and used from its thread only; not thread-safe. Spans it
// returns stay valid until the next non-const call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "gpu/kv_block_pool.h"
#include "runtime/base/status.h"

namespace flashtts {

struct KvCacheOptions {
  int32_t block_size = 16;     // tokens per block
  size_t bytes_per_token = 0;  // 2 (K, V) * n_layers * n_kv_heads * head_dim * sizeof(element)
  size_t byte_budget = 0;      // KV memory of this model; n_blocks = budget / (bytes_per_token * block_size)
                               // at creation (resize() changes it)
};

// A registered block as a sequence held it: still that content while the
// pool's cache_id(block) is id (cache ids are never reused).
struct CachedBlock {
  int32_t block = 0;
  uint64_t id = 0;
};

// Copy every layer's K and V of block `src` into block `dst`.
struct BlockCopy {
  int32_t src = 0;
  int32_t dst = 0;
};

struct KvCacheStats {
  int64_t hit_blocks = 0;           // prompt blocks found in the prefix cache
  int64_t miss_blocks = 0;          // prompt blocks that could have been reused but were not cached
  int64_t evictions = 0;            // cached blocks evicted to make room
  int64_t deduplicated_blocks = 0;  // blocks append() swapped for an identical cached one
  // Tokens of full blocks computed again after their content was evicted (as
  // far back as the pool remembers: KvBlockPool::take_evicted). A partial
  // last block computed again is not counted.
  int64_t recomputed_tokens = 0;
  // The fewest blocks this pool's LRU eviction needs for the same work without
  // evicting a block it reused (KvBlockPool::needed_peak), since the last
  // reset_needed_peak(): the KV working set counted with its reuse.
  int32_t needed_peak_blocks = 0;
  int32_t n_blocks = 0;
  int32_t free_blocks = 0;
  int32_t cached_blocks = 0;        // unreferenced but kept for reuse (evictable)
  int32_t used_blocks = 0;          // referenced by at least one sequence
  double hit_rate() const;          // hits / (hits + misses); 0 before any
};

class KvCache {
 public:
  using SeqId = int64_t;

  // Error when the block size is not positive, bytes_per_token is 0, or the
  // budget holds no block.
  static Expected<KvCache> create(const KvCacheOptions& options);

  // A new sequence that will hold `prompt`. Reuses cached full blocks whose
  // chain matches the prompt's start, at most (prompt.size() - 1) / block_size
  // of them so that at least one token is left to compute (the caller needs
  // its logits), and allocates blocks for the rest of the prompt. Returns how
  // many leading tokens already have KV (a multiple of block_size); the caller
  // computes the others and append()s them. With reuse_prefix false nothing
  // is reused (for callers that need every prompt token's output) and no hit
  // or miss is counted; the prompt's blocks still enter the cache as usual.
  // Error when the pool cannot hold the prompt: nothing changed, the sequence
  // does not exist.
  // REQUIRES: !has_sequence(seq)
  Expected<int32_t> add_sequence(SeqId seq, std::span<const int32_t> prompt,
                                 bool reuse_prefix = true);

  // The tokens of `prompt` that add_sequence(reuse_prefix) would take from
  // the prefix cache now (whole blocks, at most all but the last token).
  // Changes nothing, counts no hit.
  int32_t cached_prefix(std::span<const int32_t> prompt) const;

  // Makes room for n more tokens after the appended ones, allocating blocks
  // (evicting cached blocks when the free list is empty). false when the pool
  // cannot: nothing changed.
  // REQUIRES: has_sequence(seq), n >= 0
  bool reserve(SeqId seq, int32_t n);

  // Records that `tokens` were appended and their KV written. Each block that
  // becomes full enters the prefix cache; if an identical block (same prefix,
  // same tokens) is already there, in use or not, the sequence takes that one
  // instead and its own block is freed, so identical beams and requests
  // converge on one copy (the table changes: read it again).
  // REQUIRES: has_sequence(seq), n_tokens(seq) + tokens.size() <= capacity(seq)
  void append(SeqId seq, std::span<const int32_t> tokens);

  // Keeps the first n tokens' KV (rolling back speculative or rejected tokens)
  // and releases every block past them, reserved ones included. A cut inside a
  // block shared with another sequence cannot keep that block (it is about to
  // be written), so the sequence then keeps only the tokens before it, fewer
  // than n; the caller recomputes the rest. Never allocates, never fails.
  // Returns n_tokens(seq) afterwards.
  // REQUIRES: has_sequence(seq), 0 <= n <= n_tokens(seq)
  int32_t truncate(SeqId seq, int32_t n);

  // `child` gets `parent`'s tokens: it shares all full blocks and gets a copy
  // of the partial last block, if any. Returns the copies to perform (none or
  // one). Error when no block is left for the copy: nothing changed.
  // REQUIRES: has_sequence(parent), !has_sequence(child)
  Expected<std::vector<BlockCopy>> fork(SeqId parent, SeqId child);

  // Releases the sequence's blocks, last block first: registered blocks stay
  // cached (evictable, the end of a prefix before its start), others are freed.
  // With `drop` (a pruned beam: nobody will ask for its tokens again) the
  // blocks no other sequence holds are freed and leave the prefix cache.
  // REQUIRES: has_sequence(seq)
  void free_sequence(SeqId seq, bool drop = false);

  // The registered blocks of the sequence's table from the one holding token
  // `from` on (a job's own tokens: what nobody else may have asked for).
  // REQUIRES: has_sequence(seq), from >= 0
  std::vector<CachedBlock> registered_from(SeqId seq, int32_t from) const;
  // Frees those of `blocks` that are still cached with that content and no
  // sequence holds (KvBlockPool::discard); returns how many.
  int32_t discard(std::span<const CachedBlock> blocks);

  // REQUIRES: has_sequence(seq) for these three
  std::span<const int32_t> block_table(SeqId seq) const;
  int32_t n_tokens(SeqId seq) const;  // tokens whose KV is written (appended)
  int32_t capacity(SeqId seq) const;  // tokens its blocks can hold
  bool has_sequence(SeqId seq) const { return seqs_.count(seq) != 0; }
  // Whether the sequence's table names a block id >= first (it pins a shrink).
  // REQUIRES: has_sequence(seq)
  bool holds_block_from(SeqId seq, int32_t first) const;

  // Grows or shrinks the pool to n_blocks without moving a block: new blocks
  // are free; on a shrink the cached blocks above the cut are evicted and the
  // blocks below keep their contents and prefix-cache entries.
  // REQUIRES: n_blocks > 0, and when shrinking no sequence holds a block
  // >= n_blocks (holds_block_from).
  void resize(int32_t n_blocks);

  int32_t block_size() const { return pool_.block_size(); }
  int32_t n_blocks() const { return pool_.n_blocks(); }  // the current size
  int32_t blocks_needed(int32_t n_tokens) const { return (n_tokens + block_size() - 1) / block_size(); }
  int32_t ref_count(int32_t block) const { return pool_.ref_count(block); }
  KvCacheStats stats() const;

  // Drops every unreferenced cached block (blocks in use stay registered).
  void clear_prefix_cache() { pool_.drop_cached(); }
  void reset_needed_peak() { pool_.reset_needed_peak(); }

  // Checks that ref counts match the block tables, that the pool's state is
  // consistent, and that every registered block in a table holds that
  // sequence's tokens under the right parent. O(blocks + tokens); for tests.
  Status check_invariants() const;

 private:
  struct Sequence {
    std::vector<int32_t> tokens;  // (n_tokens) appended tokens
    std::vector<int32_t> table;   // block ids; covers tokens, then reserved blocks
  };

  KvCache(int32_t n_blocks, int32_t block_size) : pool_(n_blocks, block_size) {}
  Sequence& get(SeqId seq);
  const Sequence& get(SeqId seq) const;
  void seal_block(Sequence& s, int32_t index);  // the block at `index` just became full

  KvBlockPool pool_;
  std::unordered_map<SeqId, Sequence> seqs_;
  int64_t hit_blocks_ = 0;
  int64_t miss_blocks_ = 0;
  int64_t deduplicated_blocks_ = 0;
  int64_t recomputed_blocks_ = 0;
};

// Tokens of `seq` that add_sequence could take from the KV of `other` once
// that is computed: whole blocks of their common prefix, at most all but
// seq's last token (add_sequence always leaves one token to compute).
// REQUIRES: !seq.empty().
int32_t shareable_prefix_tokens(std::span<const int32_t> seq, std::span<const int32_t> other, int32_t block_size);

}  // namespace flashtts
