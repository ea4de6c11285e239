// The blocks of one model's paged KV cache: reference counts, the free list,
// and the prefix cache (full blocks findable by content, kept while
// unreferenced and evicted least recently used first). Pure bookkeeping: the
// K/V numbers live in a backend's storage, indexed by block id. KvCache builds
// sequences on top of this.
//
// The pool grows and shrinks at its top without moving a block, so ids stay
// valid; allocation takes the lowest free id so that live blocks gather at the
// bottom and a shrink rarely finds one in its way.
//
// Thread contract: owned by one KvCache, hence by the one actor that owns that;
// not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace flashtts {

// Hash of a full block's cache key: the cache id of the block before it in its
// sequence (0 for the first block) and the block's token ids. Chaining through
// the parent's id makes the key stand for the whole prefix.
uint64_t kv_block_hash(uint64_t parent_id, std::span<const int32_t> tokens);

// Every block is in exactly one state:
//   free   - ref 0, unregistered, on the free list (a min-heap of ids);
//   cached - ref 0, registered, on the LRU list (reusable by a lookup, or evictable);
//   used   - ref > 0, registered or not.
// A registered block has a cache id, unique for the life of the pool (never
// reused), and is found by lookup() under its key (parent id, tokens). The
// hash only picks the candidate; the full key is compared, so a hash
// collision can cost a miss but never returns a block with other content.
class KvBlockPool {
 public:
  static constexpr int32_t kNoBlock = -1;

  // REQUIRES: n_blocks > 0, block_size > 0
  KvBlockPool(int32_t n_blocks, int32_t block_size);

  int32_t n_blocks() const { return (int32_t)blocks_.size(); }
  int32_t block_size() const { return block_size_; }
  int32_t free_blocks() const { return (int32_t)free_.size(); }
  int32_t cached_blocks() const { return n_cached_; }
  int32_t used_blocks() const { return n_blocks() - free_blocks() - cached_blocks(); }
  // Blocks allocate() can hand out now: free ones, then evicted cached ones.
  int32_t available() const { return free_blocks() + cached_blocks(); }
  int64_t evictions() const { return evictions_; }

  // Content hashes of recently evicted blocks (those counted in
  // evictions()), so that computing one of them again can be counted as a
  // recomputation: at least the last max(kMinEvictedRemembered, 8 x
  // n_blocks) evictions are remembered, at most twice that.
  static constexpr size_t kMinEvictedRemembered = 65536;
  // True, once, when a block with this content was evicted and not computed
  // again since: the caller is computing it again.
  bool take_evicted(uint64_t content);

  // The fewest blocks a pool with this one's LRU eviction needs to have done
  // the same work without evicting a block it reused (the KV working set
  // counted with its reuse), since the pool was made or
  // reset_needed_peak(): the most blocks used at once, and at each cache
  // hit, what keeping the block hit took while it was cached: the blocks
  // in use and cached (not free), less the cached ones older than it. Its
  // most not-free blocks over that time less those older at the hit: exact
  // while no older block left the cache in between, else a little over.
  int32_t needed_peak() const { return needed_peak_; }
  void reset_needed_peak();

  // Returns an unregistered block with ref 1: the lowest-numbered free one,
  // or else the least recently used cached block, evicted (unregistered).
  // O(log n_blocks). REQUIRES: available() > 0
  int32_t allocate();

  // Adds blocks n_blocks(), ..., n_blocks - 1, free.
  // REQUIRES: n_blocks >= n_blocks()
  void grow(int32_t n_blocks);
  // Drops the blocks from n_blocks up: cached ones are evicted (counted in
  // evictions()), free ones leave the free list. O(n_blocks()).
  // REQUIRES: 0 < n_blocks <= n_blocks(), used_from(n_blocks) == 0
  void shrink(int32_t n_blocks);
  // Used blocks whose id is >= first. O(n_blocks() - first).
  int32_t used_from(int32_t first) const;

  // REQUIRES: the block is used or cached. A cached block leaves the LRU list.
  void ref(int32_t block);
  // REQUIRES: ref_count(block) > 0. At zero a registered block joins the LRU
  // list as the most recently used; an unregistered one, or any with `drop`
  // (content nobody will ask for again), goes to the free list.
  void unref(int32_t block, bool drop = false);
  int32_t ref_count(int32_t block) const { return blocks_[block].ref; }

  // The registered block with key (parent_id, tokens), or kNoBlock.
  int32_t lookup(uint64_t hash, uint64_t parent_id, std::span<const int32_t> tokens) const;

  // Registers a used block under `hash` with key (parent_id, tokens), giving it
  // a new cache id. Returns false, and leaves it unregistered, when another
  // block already holds `hash` (a duplicate or a collision).
  // REQUIRES: ref_count(block) > 0, cache_id(block) == 0, tokens.size() == block_size()
  // `content` names the block's content whatever its cache ids (a chain of
  // kv_block_hash over the content hashes; 0 = none): an eviction remembers it.
  bool register_block(int32_t block, uint64_t hash, uint64_t parent_id,
                      std::span<const int32_t> tokens, uint64_t content = 0);
  // Makes a used block unfindable (its contents are about to change).
  // REQUIRES: ref_count(block) > 0, cache_id(block) != 0
  void unregister(int32_t block);

  uint64_t cache_id(int32_t block) const { return blocks_[block].id; }  // 0: unregistered
  // REQUIRES: cache_id(block) != 0
  uint64_t parent_id(int32_t block) const { return blocks_[block].parent_id; }
  // REQUIRES: cache_id(block) != 0
  uint64_t content(int32_t block) const { return blocks_[block].content; }
  std::span<const int32_t> tokens(int32_t block) const;

  // Returns every cached block to the free list (not counted as evictions).
  void drop_cached();

  // Frees a cached block whose content nobody is expected to ask for again (a
  // pruned beam's). Not counted in evictions(); its content is remembered as
  // an eviction's is, so computing it again still counts.
  // REQUIRES: ref_count(block) == 0, cache_id(block) != 0
  void discard(int32_t block);

  // Checks the state partition, the free heap and LRU list, and the index.
  // O(n_blocks); for tests and debugging.
  Status check_invariants() const;

 private:
  struct Block {
    int32_t ref = 0;
    int32_t lru_prev = kNoBlock;  // toward the least recently used, while cached
    int32_t lru_next = kNoBlock;  // toward the most recently used, while cached
    uint64_t id = 0;              // cache id while registered, else 0
    uint64_t hash = 0;            // key of index_ while registered
    uint64_t parent_id = 0;       // while registered
    uint64_t content = 0;         // while registered (register_block)
    int32_t lru_slot = 0;         // while cached: its place in the LRU order
    uint64_t cached_at = 0;       // while cached: the not-free clock when it was cached
    int32_t not_free_then = 0;    // and the not-free blocks then
  };

  void lru_push_back(int32_t block);
  void lru_remove(int32_t block);
  void evict(int32_t block);  // cached -> free
  // evict(), counted in evictions() and its content remembered (take_evicted).
  void evict_counted(int32_t block);
  void remember_evicted(uint64_t content);  // take_evicted() finds it
  // The cached blocks by LRU slot, a Fenwick tree of counts (slots ascend
  // with recency; renumbered when they run out).
  void slots_add(int32_t slot, int32_t n);
  int32_t slots_up_to(int32_t slot) const;  // cached blocks in slots <= slot
  void renumber_slots();
  // After any change of the blocks not free: a tick of the clock, and the
  // suffix maxima (not_free_peaks_) kept.
  void note_not_free();
  int32_t most_not_free_since(uint64_t clock, int32_t then) const;
  void free_push(int32_t block);

  int32_t block_size_;
  std::vector<Block> blocks_;                    // (n_blocks)
  std::vector<int32_t> tokens_;                  // (n_blocks, block_size) of registered blocks
  std::vector<int32_t> free_;                    // a min-heap of ids (std::greater)
  int32_t lru_head_ = kNoBlock;                  // least recently used cached block
  int32_t lru_tail_ = kNoBlock;                  // most recently used cached block
  int32_t n_cached_ = 0;
  std::unordered_map<uint64_t, int32_t> index_;  // hash -> registered block
  uint64_t next_id_ = 1;
  int64_t evictions_ = 0;
  // Content of evicted blocks: the newer generation, and the one before it
  // (dropped when the newer fills).
  std::unordered_set<uint64_t> evicted_, evicted_before_;
  std::vector<int32_t> slots_;  // Fenwick tree over LRU slots (1-based inside)
  int32_t next_slot_ = 0;
  int32_t needed_peak_ = 0;
  // (clock, not-free blocks) at each change: the most since each entry's
  // time, strictly falling (so at most n_blocks + 1 entries).
  std::vector<std::pair<uint64_t, int32_t>> not_free_peaks_;
  uint64_t not_free_clock_ = 0;
  int32_t not_free_ = 0;
  uint64_t reset_clock_ = 0;  // of the last reset_needed_peak(): nothing before it counts
  int32_t not_free_at_reset_ = 0;
};

}  // namespace flashtts
