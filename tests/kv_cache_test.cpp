// The paged KV-cache block manager: budget arithmetic, block tables, forks,
// the prefix cache and its LRU eviction, exhaustion, and a randomized run
// against a simulated KV store.
#include "gpu/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <unordered_set>
#include <vector>

namespace flashtts {
namespace {

using Tokens = std::vector<int32_t>;

// A cache of exactly n_blocks blocks of `block_size` tokens.
KvCache make_cache(int32_t n_blocks, int32_t block_size = 4) {
  KvCacheOptions o;
  o.block_size = block_size;
  o.bytes_per_token = 1;
  o.byte_budget = (size_t)n_blocks * block_size;
  auto kv = KvCache::create(o);
  EXPECT_TRUE(kv.ok());
  return std::move(kv).value();
}

Tokens range(int32_t first, int32_t n) {
  Tokens t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

Tokens concat(Tokens a, const Tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Tokens table_of(const KvCache& kv, KvCache::SeqId seq) {
  auto t = kv.block_table(seq);
  return Tokens(t.begin(), t.end());
}

// add_sequence, then "compute" the rest of the prompt and append it.
int32_t add_computed(KvCache& kv, KvCache::SeqId seq, const Tokens& prompt) {
  auto cached = kv.add_sequence(seq, prompt);
  EXPECT_TRUE(cached.ok()) << (cached.ok() ? "" : cached.error().message);
  if (!cached.ok()) return -1;
  kv.append(seq, std::span<const int32_t>(prompt).subspan(*cached));
  return *cached;
}

void expect_same_stats(const KvCacheStats& a, const KvCacheStats& b) {
  EXPECT_EQ(a.hit_blocks, b.hit_blocks);
  EXPECT_EQ(a.miss_blocks, b.miss_blocks);
  EXPECT_EQ(a.evictions, b.evictions);
  EXPECT_EQ(a.deduplicated_blocks, b.deduplicated_blocks);
  EXPECT_EQ(a.free_blocks, b.free_blocks);
  EXPECT_EQ(a.cached_blocks, b.cached_blocks);
  EXPECT_EQ(a.used_blocks, b.used_blocks);
}

#define EXPECT_CONSISTENT(kv)                                          \
  do {                                                                 \
    Status st_ = (kv).check_invariants();                              \
    EXPECT_TRUE(st_.ok()) << (st_.ok() ? "" : st_.message());          \
  } while (0)

// --- construction -----------------------------------------------------------

TEST(KvCacheTest, TheByteBudgetDecidesTheNumberOfBlocks) {
  KvCacheOptions o;  // Qwen2.5-1.5B in bf16: 2 * 28 layers * 2 kv heads * 128 * 2 bytes
  o.bytes_per_token = 2 * 28 * 2 * 128 * 2;
  o.byte_budget = 1ull << 30;
  auto kv = KvCache::create(o);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->block_size(), 16);
  EXPECT_EQ(kv->n_blocks(), (int32_t)((1ull << 30) / (o.bytes_per_token * 16)));
  EXPECT_EQ(kv->n_blocks(), 2340);
  KvCacheStats st = kv->stats();
  EXPECT_EQ(st.free_blocks, 2340);
  EXPECT_EQ(st.cached_blocks + st.used_blocks, 0);
  EXPECT_EQ(kv->blocks_needed(0), 0);
  EXPECT_EQ(kv->blocks_needed(16), 1);
  EXPECT_EQ(kv->blocks_needed(17), 2);
}

TEST(KvCacheTest, ABudgetThatHoldsNoBlockIsAnError) {
  KvCacheOptions o;
  o.block_size = 16;
  o.bytes_per_token = 1000;
  o.byte_budget = 16 * 1000 - 1;
  auto kv = KvCache::create(o);
  ASSERT_FALSE(kv.ok());
  EXPECT_NE(kv.error().message.find("holds no block"), std::string::npos) << kv.error().message;
  o.byte_budget = 16 * 1000;
  EXPECT_TRUE(KvCache::create(o).ok());
}

TEST(KvCacheTest, ABudgetOfMoreBlocksThanACacheCanNumberAsksForALowerBudget) {
  KvCacheOptions o;
  o.block_size = 16;
  o.bytes_per_token = 512;
  o.byte_budget = size_t(1) << 60;  // 2^47 blocks
  auto kv = KvCache::create(o);
  ASSERT_FALSE(kv.ok());
  EXPECT_NE(kv.error().message.find("lower the KV budget"), std::string::npos) << kv.error().message;
  EXPECT_EQ(kv.error().message.find("raise block_size"), std::string::npos) << kv.error().message;
}

TEST(KvCacheTest, ABadBlockSizeOrTokenSizeIsAnError) {
  KvCacheOptions o;
  o.bytes_per_token = 8;
  o.byte_budget = 1 << 20;
  o.block_size = 0;
  EXPECT_FALSE(KvCache::create(o).ok());
  o.block_size = -4;
  EXPECT_FALSE(KvCache::create(o).ok());
  o.block_size = 16;
  o.bytes_per_token = 0;
  EXPECT_FALSE(KvCache::create(o).ok());
}

// --- block tables -----------------------------------------------------------

TEST(KvCacheTest, ReserveAndAppendCrossBlockBoundaries) {
  KvCache kv = make_cache(8);
  EXPECT_EQ(add_computed(kv, 1, range(0, 3)), 0);
  EXPECT_EQ(kv.n_tokens(1), 3);
  EXPECT_EQ(kv.capacity(1), 4);
  EXPECT_EQ(kv.block_table(1).size(), 1u);

  EXPECT_TRUE(kv.reserve(1, 0));
  EXPECT_TRUE(kv.reserve(1, 1));  // fits in the partial block
  EXPECT_EQ(kv.block_table(1).size(), 1u);
  EXPECT_TRUE(kv.reserve(1, 6));  // 3 + 6 = 9 tokens: 3 blocks
  EXPECT_EQ(kv.capacity(1), 12);
  kv.append(1, range(3, 6));
  EXPECT_EQ(kv.n_tokens(1), 9);
  EXPECT_EQ(kv.stats().used_blocks, 3);
  EXPECT_TRUE(kv.reserve(1, 3));  // still inside the third block
  EXPECT_EQ(kv.block_table(1).size(), 3u);
  EXPECT_CONSISTENT(kv);

  // Both blocks that became full are now in the prefix cache.
  EXPECT_EQ(add_computed(kv, 2, range(0, 9)), 8);
  EXPECT_EQ(Tokens(kv.block_table(2).begin(), kv.block_table(2).begin() + 2),
            Tokens(kv.block_table(1).begin(), kv.block_table(1).begin() + 2));
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, ForkSharesFullBlocksAndCopiesThePartialBlock) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 10));  // 2 full blocks + 2 tokens
  Tokens parent = table_of(kv, 1);
  auto copies = kv.fork(1, 2);
  ASSERT_TRUE(copies.ok());
  Tokens child = table_of(kv, 2);
  ASSERT_EQ(child.size(), 3u);
  EXPECT_EQ(child[0], parent[0]);
  EXPECT_EQ(child[1], parent[1]);
  EXPECT_NE(child[2], parent[2]);
  EXPECT_EQ(kv.ref_count(parent[0]), 2);
  EXPECT_EQ(kv.ref_count(parent[1]), 2);
  EXPECT_EQ(kv.ref_count(parent[2]), 1);
  EXPECT_EQ(kv.ref_count(child[2]), 1);
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].src, parent[2]);
  EXPECT_EQ((*copies)[0].dst, child[2]);
  EXPECT_EQ(kv.n_tokens(2), 10);
  EXPECT_CONSISTENT(kv);

  // Both go on writing their own partial block.
  ASSERT_TRUE(kv.reserve(1, 1) && kv.reserve(2, 1));
  kv.append(1, Tokens{100});
  kv.append(2, Tokens{200});
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, ForkOfABlockAlignedSequenceCopiesNothing) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 8));
  ASSERT_TRUE(kv.reserve(1, 4));  // a reserved, empty third block stays the parent's
  auto copies = kv.fork(1, 2);
  ASSERT_TRUE(copies.ok());
  EXPECT_TRUE(copies->empty());
  EXPECT_EQ(table_of(kv, 2), Tokens(kv.block_table(1).begin(), kv.block_table(1).begin() + 2));
  EXPECT_EQ(kv.capacity(2), 8);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, FreeingTheParentKeepsTheChildsBlocksValid) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 10));
  ASSERT_TRUE(kv.fork(1, 2).ok());
  Tokens child = table_of(kv, 2);
  kv.free_sequence(1);
  EXPECT_FALSE(kv.has_sequence(1));
  EXPECT_EQ(table_of(kv, 2), child);
  for (int32_t b : child) EXPECT_EQ(kv.ref_count(b), 1);
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.used_blocks, 3);
  EXPECT_EQ(st.free_blocks + st.cached_blocks, 5);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, ADroppedSequenceFreesWhatNoOtherHoldsAndLeavesTheCache) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 10));  // blocks a0 a1 and a partial one
  ASSERT_TRUE(kv.fork(1, 2).ok());
  ASSERT_TRUE(kv.reserve(2, 6));
  kv.append(2, range(100, 6));        // the fork's own step: fills its copy and one more block
  kv.free_sequence(2, /*drop=*/true);
  // Sequence 1 still holds a0 a1; the fork's own blocks are free, not cached.
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.used_blocks, 3);
  EXPECT_EQ(st.cached_blocks, 0);
  EXPECT_EQ(st.free_blocks, 5);
  EXPECT_CONSISTENT(kv);
  // Its tokens are no longer found; sequence 1's still are.
  EXPECT_EQ(add_computed(kv, 3, concat(range(0, 10), range(100, 7))), 8);
  kv.free_sequence(3);
  kv.free_sequence(1, /*drop=*/true);
  st = kv.stats();
  EXPECT_EQ(st.used_blocks, 0);
  EXPECT_EQ(st.cached_blocks, 2);  // sequence 3's own full blocks, freed without drop
  EXPECT_EQ(st.free_blocks, 6);
  EXPECT_CONSISTENT(kv);
}

// --- prefix cache -----------------------------------------------------------

TEST(KvCacheTest, APromptReusesTheBlocksOfALiveSequence) {
  KvCache kv = make_cache(16);
  const Tokens prompt = range(0, 9);
  EXPECT_EQ(add_computed(kv, 1, prompt), 0);
  EXPECT_EQ(kv.stats().miss_blocks, 2);
  EXPECT_EQ(add_computed(kv, 2, prompt), 8);
  Tokens a = table_of(kv, 1), b = table_of(kv, 2);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_EQ(a[1], b[1]);
  EXPECT_NE(a[2], b[2]);  // the partial block is never shared
  EXPECT_EQ(kv.ref_count(a[0]), 2);
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.hit_blocks, 2);
  EXPECT_EQ(st.miss_blocks, 2);
  EXPECT_DOUBLE_EQ(st.hit_rate(), 0.5);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, APromptReusesTheBlocksOfAFreedSequence) {
  KvCache kv = make_cache(16);
  const Tokens prompt = range(0, 9);
  add_computed(kv, 1, prompt);
  Tokens first = table_of(kv, 1);
  kv.free_sequence(1);
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.cached_blocks, 2);
  EXPECT_EQ(st.used_blocks, 0);

  // A later request with the same start gets the very same blocks back.
  EXPECT_EQ(add_computed(kv, 2, concat(range(0, 8), {42, 43})), 8);
  Tokens second = table_of(kv, 2);
  EXPECT_EQ(second[0], first[0]);
  EXPECT_EQ(second[1], first[1]);
  st = kv.stats();
  EXPECT_EQ(st.cached_blocks, 0);  // revived blocks leave the LRU list
  EXPECT_EQ(st.used_blocks, 3);
  EXPECT_EQ(st.hit_blocks, 2);
  EXPECT_EQ(st.miss_blocks, 2);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, AtLeastOnePromptTokenIsAlwaysLeftToCompute) {
  KvCache kv = make_cache(16);
  add_computed(kv, 1, range(0, 8));  // exactly two full blocks
  kv.free_sequence(1);
  // The same 8 tokens: only the first block may be reused.
  auto cached = kv.add_sequence(2, range(0, 8));
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(*cached, 4);
  EXPECT_EQ(kv.n_tokens(2), 4);
  EXPECT_EQ(kv.capacity(2), 8);
  EXPECT_EQ(kv.stats().hit_blocks, 1);
  // A block-sized prompt reuses nothing; an empty one needs no block.
  EXPECT_EQ(*kv.add_sequence(3, range(0, 4)), 0);
  EXPECT_EQ(*kv.add_sequence(4, Tokens{}), 0);
  EXPECT_EQ(kv.capacity(4), 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, APromptAddedWithoutReuseGetsFreshBlocksButIsCachedItself) {
  KvCache kv = make_cache(16);
  add_computed(kv, 1, range(0, 9));
  kv.free_sequence(1);
  const KvCacheStats before = kv.stats();
  ASSERT_EQ(*kv.add_sequence(2, range(0, 9), /*reuse_prefix=*/false), 0);
  EXPECT_EQ(kv.stats().hit_blocks, before.hit_blocks);
  EXPECT_EQ(kv.stats().miss_blocks, before.miss_blocks);
  EXPECT_EQ(kv.stats().cached_blocks, 2);  // sequence 1's blocks are not taken
  kv.append(2, range(0, 9));  // its full blocks equal the cached ones: shared
  EXPECT_EQ(kv.stats().deduplicated_blocks, 2);
  EXPECT_EQ(kv.stats().cached_blocks, 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, ReuseStopsAtTheFirstBlockThatDiffers) {
  KvCache kv = make_cache(16);
  add_computed(kv, 1, concat(range(0, 8), {9}));
  // Same second block, other first block: the chain differs, nothing matches.
  EXPECT_EQ(add_computed(kv, 2, concat(concat(range(100, 4), range(4, 4)), {9})), 0);
  // Same first block, other second block: one block matches.
  EXPECT_EQ(add_computed(kv, 3, concat(concat(range(0, 4), range(200, 4)), {9})), 4);
  EXPECT_EQ(kv.stats().hit_blocks, 1);
  EXPECT_EQ(kv.stats().miss_blocks, 5);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, AppendSharesAnIdenticalCachedBlockAndFreesItsOwn) {
  KvCache kv = make_cache(16);
  const Tokens prompt = range(0, 9);
  // Both admitted before either computed its prompt: no hits, own blocks.
  ASSERT_EQ(*kv.add_sequence(1, prompt), 0);
  ASSERT_EQ(*kv.add_sequence(2, prompt), 0);
  Tokens before = table_of(kv, 2);
  kv.append(1, prompt);
  kv.append(2, prompt);  // its two full blocks equal sequence 1's
  Tokens a = table_of(kv, 1), b = table_of(kv, 2);
  EXPECT_EQ(b[0], a[0]);
  EXPECT_EQ(b[1], a[1]);
  EXPECT_EQ(b[2], before[2]);
  EXPECT_EQ(kv.ref_count(a[0]), 2);
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.deduplicated_blocks, 2);
  EXPECT_EQ(st.used_blocks, 4);
  EXPECT_EQ(st.free_blocks, 12);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, EvictionTakesTheLeastRecentlyUsedCachedBlockFirst) {
  KvCache kv = make_cache(6);
  add_computed(kv, 1, range(0, 8));
  Tokens a = table_of(kv, 1);
  kv.free_sequence(1);  // LRU: a1 a0
  add_computed(kv, 2, range(100, 8));
  Tokens b = table_of(kv, 2);
  kv.free_sequence(2);  // LRU: a1 a0 b1 b0
  EXPECT_EQ(kv.stats().cached_blocks, 4);
  EXPECT_EQ(kv.stats().free_blocks, 2);

  // Four blocks: the two free ones, then a1 and a0 are evicted (tail of a chain first).
  ASSERT_TRUE(kv.add_sequence(3, range(200, 16)).ok());
  Tokens c = table_of(kv, 3);
  EXPECT_EQ(c[2], a[1]);
  EXPECT_EQ(c[3], a[0]);
  EXPECT_EQ(kv.stats().evictions, 2);
  EXPECT_EQ(kv.stats().cached_blocks, 2);
  kv.free_sequence(3);  // unwritten blocks go back to the free list, not the cache

  // b survived, a did not.
  EXPECT_EQ(*kv.add_sequence(4, range(100, 9)), 8);
  EXPECT_EQ(*kv.add_sequence(5, range(0, 9)), 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, ACacheHitMakesABlockRecentlyUsedAgain) {
  KvCache kv = make_cache(5);
  add_computed(kv, 1, range(0, 8));
  Tokens a = table_of(kv, 1);
  kv.free_sequence(1);
  add_computed(kv, 2, range(100, 8));
  Tokens b = table_of(kv, 2);
  kv.free_sequence(2);  // LRU: a1 a0 b1 b0
  add_computed(kv, 3, range(0, 9));  // revives a0 a1
  kv.free_sequence(3);  // LRU: b1 b0 a1 a0
  EXPECT_EQ(kv.stats().cached_blocks, 4);
  ASSERT_TRUE(kv.add_sequence(4, range(300, 12)).ok());  // 1 free + 2 evicted
  Tokens c = table_of(kv, 4);
  EXPECT_EQ(std::set<int32_t>(c.begin() + 1, c.end()), (std::set<int32_t>{b[0], b[1]}));
  EXPECT_EQ(kv.stats().evictions, 2);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, APromptThatReusesCachedBlocksCannotAlsoEvictThem) {
  KvCache kv = make_cache(3);
  add_computed(kv, 1, range(0, 8));
  kv.free_sequence(1);  // 2 cached, 1 free
  // 2 hits + 2 new blocks: the cached hits are not available for the new ones.
  KvCacheStats before = kv.stats();
  EXPECT_FALSE(kv.add_sequence(2, range(0, 16)).ok());
  expect_same_stats(before, kv.stats());
  // 2 hits + 1 new block fits.
  EXPECT_EQ(*kv.add_sequence(2, range(0, 12)), 8);
  EXPECT_EQ(kv.stats().evictions, 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, ClearPrefixCacheDropsOnlyUnreferencedBlocks) {
  KvCache kv = make_cache(16);
  add_computed(kv, 1, range(0, 9));
  add_computed(kv, 2, range(100, 9));
  kv.free_sequence(2);
  EXPECT_EQ(kv.stats().cached_blocks, 2);
  kv.clear_prefix_cache();
  EXPECT_EQ(kv.stats().cached_blocks, 0);
  EXPECT_EQ(kv.stats().evictions, 0);
  EXPECT_EQ(*kv.add_sequence(3, range(100, 9)), 0);
  EXPECT_EQ(*kv.add_sequence(4, range(0, 9)), 8);  // sequence 1's blocks stay findable
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, KvComputedAgainAfterItsEvictionIsCountedAsRecomputed) {
  KvCache kv = make_cache(4);
  add_computed(kv, 1, range(0, 9));  // two full blocks and a partial one
  kv.free_sequence(1);
  add_computed(kv, 2, range(0, 9));  // both full blocks hit: nothing computed again
  kv.free_sequence(2);
  EXPECT_EQ(kv.stats().recomputed_tokens, 0);
  add_computed(kv, 3, range(100, 16));  // evicts both
  EXPECT_EQ(kv.stats().evictions, 2);
  EXPECT_EQ(kv.stats().recomputed_tokens, 0);  // first computed here
  kv.free_sequence(3);
  // Computed again: the second block counts too, although its parent has a
  // new cache id; the partial block is not counted.
  add_computed(kv, 4, range(0, 9));
  EXPECT_EQ(kv.stats().recomputed_tokens, 8);
  kv.free_sequence(4);
  add_computed(kv, 5, range(0, 9));  // a hit again
  EXPECT_EQ(kv.stats().recomputed_tokens, 8);
  kv.free_sequence(5);
  // Decoded rather than prefilled, the same content counts the same way.
  add_computed(kv, 6, range(200, 16));  // evicts every block
  kv.free_sequence(6);
  const int64_t before = kv.stats().recomputed_tokens;
  ASSERT_TRUE(kv.add_sequence(7, range(0, 1)).ok());
  ASSERT_TRUE(kv.reserve(7, 7));
  for (int32_t t = 0; t < 8; ++t) kv.append(7, range(t, 1));
  EXPECT_EQ(kv.stats().recomputed_tokens - before, 8);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, KvDroppedOnPurposeIsNotCountedWhenComputedAgain) {
  KvCache kv = make_cache(4);
  add_computed(kv, 1, range(0, 8));
  kv.free_sequence(1, /*drop=*/true);
  add_computed(kv, 2, range(0, 8));
  kv.free_sequence(2);
  kv.clear_prefix_cache();
  add_computed(kv, 3, range(0, 8));
  EXPECT_EQ(kv.stats().recomputed_tokens, 0);
  EXPECT_EQ(kv.stats().evictions, 0);
  EXPECT_CONSISTENT(kv);
}

// A dead beam's blocks (policies.eviction = "pruned"): only those still
// cached with the recorded content are freed; a block a sequence holds, or
// one since evicted and given other content, is left alone. Computing a
// discarded block again counts as recomputed (the discard was a mistake).
TEST(KvCacheTest, DiscardFreesOnlyBlocksStillCachedWithTheirContent) {
  KvCache kv = make_cache(6);
  add_computed(kv, 1, range(0, 9));    // blocks: [0..3] [4..7] and a partial one
  const std::vector<CachedBlock> own = kv.registered_from(1, 4);  // from the block holding token 4
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(kv.registered_from(1, 0).size(), 2u);
  EXPECT_EQ(kv.discard(own), 0) << "a sequence holds it";
  kv.free_sequence(1);
  add_computed(kv, 2, range(0, 5));    // holds the first block again, not the second
  EXPECT_EQ(kv.stats().cached_blocks, 1);
  EXPECT_EQ(kv.discard(kv.registered_from(2, 0)), 0) << "in use";
  EXPECT_EQ(kv.discard(own), 1);
  EXPECT_EQ(kv.discard(own), 0) << "already gone";
  EXPECT_EQ(kv.stats().cached_blocks, 0);
  EXPECT_EQ(kv.stats().evictions, 0) << "a discard is not an eviction";
  kv.free_sequence(2);
  add_computed(kv, 3, range(0, 9));    // the first block hits, the second is computed again
  EXPECT_EQ(kv.stats().recomputed_tokens, 4);
  kv.free_sequence(3);
  // A block id reused for other content since: its cache id differs.
  KvCache small = make_cache(2);
  add_computed(small, 1, range(0, 4));
  const std::vector<CachedBlock> first = small.registered_from(1, 0);
  small.free_sequence(1);
  add_computed(small, 2, range(50, 8));  // evicts it and reuses its id
  small.free_sequence(2);
  EXPECT_EQ(small.discard(first), 0);
  EXPECT_EQ(small.stats().cached_blocks, 2);
  EXPECT_CONSISTENT(kv);
  EXPECT_CONSISTENT(small);
}

TEST(KvCacheTest, ThePoolNeededForEveryReuseKeepsEveryHitAndOneBlockLessLosesOne) {
  auto run = [](int32_t n_blocks) {
    KvCache kv = make_cache(n_blocks);
    add_computed(kv, 1, range(0, 9));  // a0 a1 and a partial block
    kv.free_sequence(1);
    add_computed(kv, 2, range(100, 9));  // three blocks while a0 a1 wait in the cache
    kv.free_sequence(2);
    add_computed(kv, 3, range(0, 9));  // reuses a0 a1
    return kv.stats();
  };
  const KvCacheStats ample = run(16);
  EXPECT_EQ(ample.hit_blocks, 2);
  // a0 and a1 cached and sequence 2's three blocks in use.
  EXPECT_EQ(ample.needed_peak_blocks, 5);
  EXPECT_EQ(run(5).hit_blocks, 2);
  EXPECT_EQ(run(4).hit_blocks, 1) << "a1, the end of the chain, evicted";
}

TEST(KvCacheTest, RandomWorkOnThePoolItNeededGetsEveryHitItGotOnAnAmplePool) {
  std::mt19937 rng(7);
  struct Op {
    bool add;
    int32_t seq;
    Tokens prompt;
  };
  std::vector<Op> ops;
  std::vector<Tokens> prefixes;
  for (int k = 0; k < 6; ++k) prefixes.push_back(range(1000 * (k + 1), 6 + 5 * k));
  std::vector<int32_t> live;
  for (int32_t i = 0, next = 1; i < 400; ++i) {
    if (live.size() < 4 && (live.empty() || rng() % 2)) {
      Tokens p = prefixes[rng() % prefixes.size()];
      const int32_t tail = (int32_t)(rng() % 12);
      for (int32_t t = 0; t < tail; ++t) p.push_back((int32_t)(rng() % 50));
      ops.push_back({true, next, p});
      live.push_back(next++);
    } else {
      const size_t k = rng() % live.size();
      ops.push_back({false, live[k], {}});
      live.erase(live.begin() + (ptrdiff_t)k);
    }
  }
  auto run = [&](int32_t n_blocks) {
    KvCache kv = make_cache(n_blocks);
    for (const Op& op : ops) {
      if (op.add) add_computed(kv, op.seq, op.prompt);
      else kv.free_sequence(op.seq);
    }
    EXPECT_CONSISTENT(kv);
    return kv.stats();
  };
  const KvCacheStats ample = run(512);
  ASSERT_EQ(ample.evictions, 0);
  ASSERT_GT(ample.hit_blocks, 50);
  const int32_t need = ample.needed_peak_blocks;
  EXPECT_LT(need, 512);
  const KvCacheStats tight = run(need);
  EXPECT_EQ(tight.hit_blocks, ample.hit_blocks) << need << " blocks";
  EXPECT_GT(tight.evictions, 0) << "blocks never reused were evicted";
  EXPECT_LT(run(need * 3 / 4).hit_blocks, ample.hit_blocks);
}

// --- exhaustion -------------------------------------------------------------

TEST(KvCacheTest, ExhaustionChangesNothingAndPassesOnceBlocksAreFreed) {
  KvCache kv = make_cache(4);
  add_computed(kv, 1, range(0, 11));  // 3 blocks, the last partial
  add_computed(kv, 2, range(100, 4));  // 1 block: the pool is full
  const Tokens t1 = table_of(kv, 1), t2 = table_of(kv, 2);
  const KvCacheStats before = kv.stats();
  EXPECT_EQ(before.free_blocks + before.cached_blocks, 0);

  EXPECT_FALSE(kv.add_sequence(3, range(200, 2)).ok());
  EXPECT_FALSE(kv.has_sequence(3));
  EXPECT_FALSE(kv.reserve(2, 1));
  EXPECT_FALSE(kv.reserve(1, 2));
  EXPECT_TRUE(kv.reserve(1, 1));  // room left in its partial block
  EXPECT_FALSE(kv.fork(1, 4).ok());
  EXPECT_FALSE(kv.has_sequence(4));
  expect_same_stats(before, kv.stats());
  EXPECT_EQ(table_of(kv, 1), t1);
  EXPECT_EQ(table_of(kv, 2), t2);
  EXPECT_EQ(kv.n_tokens(1), 11);
  EXPECT_EQ(kv.n_tokens(2), 4);
  EXPECT_CONSISTENT(kv);

  kv.free_sequence(2);  // its full block stays cached, so it is evicted for the fork
  auto copies = kv.fork(1, 4);
  ASSERT_TRUE(copies.ok());
  EXPECT_EQ(copies->size(), 1u);
  EXPECT_EQ(kv.stats().evictions, 1);
  EXPECT_CONSISTENT(kv);
}

// --- truncate ---------------------------------------------------------------

TEST(KvCacheTest, TruncateReleasesBlocksPastTheKeptTokens) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 10));
  ASSERT_TRUE(kv.reserve(1, 8));  // 5 blocks
  const Tokens before = table_of(kv, 1);
  EXPECT_EQ(kv.truncate(1, 5), 5);
  EXPECT_EQ(kv.n_tokens(1), 5);
  EXPECT_EQ(table_of(kv, 1), Tokens(before.begin(), before.begin() + 2));
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.used_blocks, 2);
  EXPECT_EQ(st.free_blocks, 6);  // the cut block was its own: written on in place, unregistered
  EXPECT_CONSISTENT(kv);

  ASSERT_TRUE(kv.reserve(1, 3));
  kv.append(1, Tokens{50, 51, 52});
  EXPECT_CONSISTENT(kv);
  // The old second block is gone from the cache; the new one is there.
  EXPECT_EQ(*kv.add_sequence(2, range(0, 9)), 4);
  EXPECT_EQ(*kv.add_sequence(3, concat(range(0, 5), {50, 51, 52, 7})), 8);
  EXPECT_CONSISTENT(kv);

  EXPECT_EQ(kv.truncate(1, 0), 0);
  EXPECT_EQ(kv.capacity(1), 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheTest, TruncateInsideASharedBlockGivesThatBlockUp) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 10));
  ASSERT_TRUE(kv.fork(1, 2).ok());
  const Tokens shared = table_of(kv, 1);
  // At a block boundary the shared full blocks are simply kept.
  EXPECT_EQ(kv.truncate(2, 8), 8);
  EXPECT_EQ(table_of(kv, 2), Tokens(shared.begin(), shared.begin() + 2));
  // Inside a shared block: that block cannot be written, so it is given up.
  EXPECT_EQ(kv.truncate(2, 6), 4);
  EXPECT_EQ(kv.n_tokens(2), 4);
  EXPECT_EQ(table_of(kv, 2), Tokens{shared[0]});
  EXPECT_EQ(kv.ref_count(shared[1]), 1);
  EXPECT_EQ(kv.n_tokens(1), 10);  // the parent is untouched
  EXPECT_CONSISTENT(kv);
}

// --- hashing ----------------------------------------------------------------

TEST(KvBlockPoolTest, AHashCollisionNeverMatchesOtherTokensOrAnotherParent) {
  KvBlockPool pool(4, 2);
  const Tokens mine = {1, 2}, other = {1, 3};
  int32_t a = pool.allocate();
  ASSERT_TRUE(pool.register_block(a, /*hash=*/42, /*parent_id=*/0, mine));
  EXPECT_EQ(pool.lookup(42, 0, mine), a);
  EXPECT_EQ(pool.lookup(42, 0, other), KvBlockPool::kNoBlock);
  EXPECT_EQ(pool.lookup(42, pool.cache_id(a), mine), KvBlockPool::kNoBlock);
  // A colliding block cannot take the slot; it stays private.
  int32_t b = pool.allocate();
  EXPECT_FALSE(pool.register_block(b, 42, 0, other));
  EXPECT_EQ(pool.cache_id(b), 0u);
  pool.unref(b);
  EXPECT_EQ(pool.free_blocks(), 3);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(KvBlockPoolTest, TheBlockHashSeparatesTokensParentsAndOrder) {
  std::mt19937_64 rng(7);
  std::unordered_set<uint64_t> seen;
  Tokens t(16);
  for (int i = 0; i < 200000; ++i) {
    for (auto& x : t) x = (int32_t)(rng() % 152000);
    seen.insert(kv_block_hash(rng() % 1000, t));
  }
  EXPECT_EQ(seen.size(), 200000u);
  const Tokens a = {1, 2, 3}, b = {2, 1, 3}, c = {1, 2, 3, 0};
  EXPECT_NE(kv_block_hash(0, a), kv_block_hash(0, b));
  EXPECT_NE(kv_block_hash(0, a), kv_block_hash(1, a));
  EXPECT_NE(kv_block_hash(0, a), kv_block_hash(0, c));
}

// --- elastic pools ----------------------------------------------------------

TEST(KvBlockPoolTest, TheEvictedContentIsRememberedForAtLeastTheLastGeneration) {
  KvBlockPool pool(2, 1);
  const int32_t kGeneration = (int32_t)KvBlockPool::kMinEvictedRemembered;
  const int32_t kEvictions = 2 * kGeneration + 10;
  // Block contents 1, 2, ...; each allocation past the first two evicts one.
  for (int32_t i = 1; i <= kEvictions + 2; ++i) {
    const int32_t b = pool.allocate();
    const int32_t tok[1] = {i};
    ASSERT_TRUE(pool.register_block(b, kv_block_hash(0, tok), 0, tok, (uint64_t)i));
    pool.unref(b);
  }
  ASSERT_EQ(pool.evictions(), kEvictions);
  for (int32_t i = kEvictions - kGeneration + 1; i <= kEvictions; ++i)
    ASSERT_TRUE(pool.take_evicted((uint64_t)i)) << i;
  EXPECT_FALSE(pool.take_evicted((uint64_t)kEvictions));  // once
  EXPECT_FALSE(pool.take_evicted(1));  // more than two generations back
  EXPECT_FALSE(pool.take_evicted((uint64_t)kEvictions + 1));  // still cached
  EXPECT_FALSE(pool.take_evicted(0));  // no content
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(KvBlockPoolTest, AllocationTakesTheLowestFreeBlock) {
  KvBlockPool pool(6, 2);
  for (int32_t b = 0; b < 4; ++b) EXPECT_EQ(pool.allocate(), b);
  pool.unref(3);
  pool.unref(1);
  pool.unref(2);
  EXPECT_EQ(pool.allocate(), 1);  // not 2, the most recently freed
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), 4);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(KvBlockPoolTest, GrowingAddsFreeBlocksAtTheTop) {
  KvBlockPool pool(3, 2);
  for (int32_t b = 0; b < 3; ++b) pool.allocate();
  EXPECT_EQ(pool.available(), 0);
  pool.grow(3);  // the same size: nothing changes
  EXPECT_EQ(pool.n_blocks(), 3);
  pool.grow(5);
  EXPECT_TRUE(pool.check_invariants().ok());
  EXPECT_EQ(pool.n_blocks(), 5);
  EXPECT_EQ(pool.free_blocks(), 2);
  EXPECT_EQ(pool.used_blocks(), 3);
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), 4);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(KvBlockPoolTest, UsedFromCountsTheUsedBlocksAtOrAboveAnId) {
  KvBlockPool pool(6, 2);
  for (int32_t b = 0; b < 6; ++b) pool.allocate();
  pool.unref(1);
  pool.unref(4);
  pool.ref(5);  // twice used still counts once
  EXPECT_EQ(pool.used_from(0), 4);
  EXPECT_EQ(pool.used_from(2), 3);
  EXPECT_EQ(pool.used_from(4), 1);
  EXPECT_EQ(pool.used_from(5), 1);
  EXPECT_EQ(pool.used_from(6), 0);
}

TEST(KvBlockPoolTest, ShrinkingEvictsCachedBlocksAboveAndKeepsThoseBelowFindable) {
  KvBlockPool pool(8, 2);
  std::vector<Tokens> keys;
  for (int32_t b = 0; b < 8; ++b) {
    ASSERT_EQ(pool.allocate(), b);
    keys.push_back({b, b + 100});
    ASSERT_TRUE(pool.register_block(b, kv_block_hash(0, keys[b]), 0, keys[b]));
  }
  // 0, 1 stay used; 2, 3, 6, 7 become cached; 4, 5 free.
  for (int32_t b : {2, 3, 6, 7}) pool.unref(b);
  for (int32_t b : {4, 5}) pool.unref(b, /*drop=*/true);
  ASSERT_TRUE(pool.check_invariants().ok());
  ASSERT_EQ(pool.used_from(4), 0);

  pool.shrink(4);
  EXPECT_TRUE(pool.check_invariants().ok());
  EXPECT_EQ(pool.n_blocks(), 4);
  EXPECT_EQ(pool.evictions(), 2);  // 6 and 7; the free 4 and 5 are not evictions
  EXPECT_EQ(pool.cached_blocks(), 2);
  EXPECT_EQ(pool.free_blocks(), 0);
  EXPECT_EQ(pool.used_blocks(), 2);
  for (int32_t b = 0; b < 4; ++b) EXPECT_EQ(pool.lookup(kv_block_hash(0, keys[b]), 0, keys[b]), b);
  for (int32_t b = 6; b < 8; ++b)
    EXPECT_EQ(pool.lookup(kv_block_hash(0, keys[b]), 0, keys[b]), KvBlockPool::kNoBlock);

  // Growing back brings empty blocks, not the evicted contents.
  pool.grow(8);
  EXPECT_TRUE(pool.check_invariants().ok());
  EXPECT_EQ(pool.free_blocks(), 4);
  EXPECT_EQ(pool.lookup(kv_block_hash(0, keys[7]), 0, keys[7]), KvBlockPool::kNoBlock);
  EXPECT_EQ(pool.allocate(), 4);
  EXPECT_EQ(pool.cache_id(4), 0u);
  EXPECT_TRUE(pool.check_invariants().ok());
}

// Random allocate / ref / unref / register / unregister / grow / shrink /
// drop_cached against a model of the reference counts: every invariant
// holds after every step, allocation takes the lowest free id, and a shrink
// evicts exactly the cached blocks above its cut.
TEST(KvBlockPoolTest, RandomChurnWithResizesKeepsEveryInvariant) {
  constexpr int32_t kMaxBlocks = 48, kBlockSize = 2;
  std::mt19937_64 rng(11);
  KvBlockPool pool(16, kBlockSize);
  std::vector<int32_t> refs(kMaxBlocks, 0);
  int64_t grows = 0, shrinks = 0;
  auto pick = [&](auto&& want) {  // a random block satisfying want(b), or -1
    std::vector<int32_t> c;
    for (int32_t b = 0; b < pool.n_blocks(); ++b)
      if (want(b)) c.push_back(b);
    return c.empty() ? -1 : c[rng() % c.size()];
  };
  for (int step = 0; step < 20000; ++step) {
    switch (rng() % 9) {
      case 0: case 1: {
        if (pool.available() == 0) break;
        int32_t lowest_free = -1;
        for (int32_t b = 0; b < pool.n_blocks() && lowest_free < 0; ++b)
          if (refs[b] == 0 && pool.cache_id(b) == 0) lowest_free = b;
        const int32_t b = pool.allocate();
        ASSERT_TRUE(lowest_free < 0 || b == lowest_free) << "step " << step << ": got " << b;
        ASSERT_EQ(refs[b], 0);
        refs[b] = 1;
        break;
      }
      case 2: {
        const int32_t b = pick([&](int32_t b) { return refs[b] > 0 || pool.cache_id(b) != 0; });
        if (b < 0) break;
        pool.ref(b);
        ++refs[b];
        break;
      }
      case 3: case 4: {
        const int32_t b = pick([&](int32_t b) { return refs[b] > 0; });
        if (b < 0) break;
        pool.unref(b, rng() % 4 == 0);
        --refs[b];
        break;
      }
      case 5: {
        const int32_t b = pick([&](int32_t b) { return refs[b] > 0 && pool.cache_id(b) == 0; });
        if (b < 0) break;
        const Tokens t = {(int32_t)(rng() % 4), (int32_t)(rng() % 4)};  // few keys: duplicates happen
        pool.register_block(b, kv_block_hash(0, t), 0, t);
        break;
      }
      case 6: {
        const int32_t b = pick([&](int32_t b) { return refs[b] > 0 && pool.cache_id(b) != 0; });
        if (b >= 0) pool.unregister(b);
        break;
      }
      case 7: {
        if (rng() % 2 == 0) {
          pool.grow(pool.n_blocks() + (int32_t)(rng() % (kMaxBlocks - pool.n_blocks() + 1)));
          ++grows;
          break;
        }
        int32_t top_used = -1;
        for (int32_t b = 0; b < pool.n_blocks(); ++b)
          if (refs[b] > 0) top_used = b;
        ASSERT_TRUE(top_used < 0 || pool.used_from(top_used) == 1);
        const int32_t lowest = std::max(top_used + 1, 1);
        const int32_t n = lowest + (int32_t)(rng() % (pool.n_blocks() - lowest + 1));
        ASSERT_EQ(pool.used_from(n), 0);
        int32_t cached_above = 0;
        for (int32_t b = n; b < pool.n_blocks(); ++b) cached_above += pool.cache_id(b) != 0;
        const int64_t evictions = pool.evictions();
        pool.shrink(n);
        ASSERT_EQ(pool.evictions() - evictions, cached_above);
        ++shrinks;
        break;
      }
      case 8:
        if (rng() % 8 == 0) pool.drop_cached();
        break;
    }
    Status st = pool.check_invariants();
    ASSERT_TRUE(st.ok()) << "step " << step << ": " << st.message();
    for (int32_t b = 0; b < pool.n_blocks(); ++b) ASSERT_EQ(pool.ref_count(b), refs[b]) << "block " << b;
    for (int32_t b = pool.n_blocks(); b < kMaxBlocks; ++b) ASSERT_EQ(refs[b], 0);
  }
  EXPECT_GT(grows, 100);
  EXPECT_GT(shrinks, 100);
  EXPECT_GT(pool.evictions(), 0);
}

TEST(KvCacheTest, ASequenceBelowTheCutSurvivesAShrinkAndTheCacheBelowStaysFindable) {
  KvCache kv = make_cache(8);
  add_computed(kv, 1, range(0, 10));   // blocks 0, 1, 2
  add_computed(kv, 2, range(100, 9));  // blocks 3, 4, 5
  const Tokens t1 = table_of(kv, 1);
  EXPECT_EQ(t1, (Tokens{0, 1, 2}));
  EXPECT_TRUE(kv.holds_block_from(1, 2));
  EXPECT_FALSE(kv.holds_block_from(1, 3));
  EXPECT_TRUE(kv.holds_block_from(2, 5));
  EXPECT_FALSE(kv.holds_block_from(2, 6));
  kv.free_sequence(2);  // its two full blocks stay cached, above the cut to come
  EXPECT_EQ(kv.stats().cached_blocks, 2);

  kv.resize(3);
  EXPECT_CONSISTENT(kv);
  KvCacheStats st = kv.stats();
  EXPECT_EQ(st.n_blocks, 3);
  EXPECT_EQ(st.evictions, 2);
  EXPECT_EQ(st.cached_blocks, 0);
  EXPECT_EQ(st.used_blocks, 3);
  EXPECT_EQ(st.free_blocks, 0);
  EXPECT_EQ(table_of(kv, 1), t1);
  EXPECT_EQ(kv.cached_prefix(range(0, 9)), 8);      // sequence 1's blocks, below the cut
  EXPECT_EQ(kv.cached_prefix(range(100, 9)), 0);    // sequence 2's, evicted
  EXPECT_FALSE(kv.reserve(1, 3));                   // a full pool

  kv.resize(5);
  EXPECT_CONSISTENT(kv);
  EXPECT_EQ(kv.stats().n_blocks, 5);
  EXPECT_EQ(kv.stats().free_blocks, 2);
  ASSERT_TRUE(kv.reserve(1, 3));
  kv.append(1, range(10, 3));
  EXPECT_EQ(table_of(kv, 1), (Tokens{0, 1, 2, 3}));
  EXPECT_TRUE(kv.holds_block_from(1, 3));
  EXPECT_EQ(add_computed(kv, 3, range(0, 9)), 8);  // shares 0 and 1, takes block 4
  EXPECT_EQ(table_of(kv, 3), (Tokens{0, 1, 4}));
  EXPECT_CONSISTENT(kv);
}

// --- randomized -------------------------------------------------------------

// A simulated backend: every KV slot holds a fingerprint of the exact prefix
// its token was computed from. Any wrong reuse, sharing or overwrite shows up
// as a slot whose fingerprint differs from what its sequence expects.
// With max_blocks the pool also grows and shrinks, up to max_blocks.
class Simulation {
 public:
  Simulation(int32_t n_blocks, int32_t block_size, uint64_t seed, int32_t max_blocks = 0)
      : kv_(make_cache(n_blocks, block_size)), max_blocks_(max_blocks),
        slots_((size_t)std::max(n_blocks, max_blocks) * block_size, 0), rng_(seed) {}

  void step() {
    switch (rng_() % (max_blocks_ > 0 ? 7 : 6)) {
      case 0: case 1: add(); break;
      case 2: extend(); break;
      case 3: fork(); break;
      case 4: truncate(); break;
      case 5: release(); break;
      case 6: resize(); break;
    }
  }

  void check() {
    Status st = kv_.check_invariants();
    ASSERT_TRUE(st.ok()) << st.message();
    std::map<int32_t, int32_t> refs;
    for (const auto& [seq, tokens] : seqs_) {
      ASSERT_EQ(kv_.n_tokens(seq), (int32_t)tokens.size());
      auto table = kv_.block_table(seq);
      ASSERT_GE(kv_.capacity(seq), (int32_t)tokens.size());
      for (int32_t b : table) ++refs[b];
      uint64_t fp = 0;
      for (size_t pos = 0; pos < tokens.size(); ++pos) {
        fp = fingerprint(fp, tokens[pos]);
        ASSERT_EQ(slot(table, (int32_t)pos), fp) << "sequence " << seq << " position " << pos;
      }
    }
    KvCacheStats s = kv_.stats();
    ASSERT_EQ(s.free_blocks + s.cached_blocks + s.used_blocks, s.n_blocks);
    ASSERT_EQ(s.used_blocks, (int32_t)refs.size());
    for (int32_t b = 0; b < kv_.n_blocks(); ++b)
      ASSERT_EQ(kv_.ref_count(b), refs.count(b) ? refs[b] : 0) << "block " << b;
  }

  const KvCache& kv() const { return kv_; }

 private:
  static uint64_t fingerprint(uint64_t fp, int32_t token) {  // splitmix64 of the running value
    uint64_t z = fp + 0x9e3779b97f4a7c15ull * (uint64_t)(token + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t& slot(std::span<const int32_t> table, int32_t pos) {
    const int32_t bs = kv_.block_size();
    return slots_[(size_t)table[pos / bs] * bs + pos % bs];
  }
  Tokens random_tokens(int32_t n) {
    Tokens t(n);
    for (auto& x : t) x = (int32_t)(rng_() % 3);  // a tiny vocabulary: prefixes repeat
    return t;
  }
  KvCache::SeqId pick() {
    auto it = seqs_.begin();
    std::advance(it, rng_() % seqs_.size());
    return it->first;
  }
  // What the engine does: write the KV of tokens [n_past, ...) through the
  // current table, then record them.
  void compute(KvCache::SeqId seq, std::span<const int32_t> fresh) {
    Tokens& tokens = seqs_[seq];
    uint64_t fp = 0;
    for (int32_t t : tokens) fp = fingerprint(fp, t);
    auto table = kv_.block_table(seq);
    for (int32_t t : fresh) {
      fp = fingerprint(fp, t);
      slot(table, (int32_t)tokens.size()) = fp;
      tokens.push_back(t);
    }
    kv_.append(seq, fresh);
  }
  void copy_blocks(const std::vector<BlockCopy>& copies) {
    const int32_t bs = kv_.block_size();
    for (const BlockCopy& c : copies)
      std::copy_n(slots_.begin() + (size_t)c.src * bs, bs, slots_.begin() + (size_t)c.dst * bs);
  }
  struct Snapshot {
    std::map<KvCache::SeqId, Tokens> tables;
    KvCacheStats stats;
  };
  Snapshot snapshot() const {
    Snapshot s{{}, kv_.stats()};
    for (const auto& [seq, t] : seqs_) s.tables[seq] = table_of(kv_, seq);
    return s;
  }
  void expect_unchanged(const Snapshot& before) {
    Snapshot now = snapshot();
    EXPECT_EQ(before.tables, now.tables);
    expect_same_stats(before.stats, now.stats);
  }

  void add() {
    if (seqs_.size() >= 12) return;
    static const Tokens bases[] = {{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0},
                                   {2, 2, 1, 1, 0, 0, 2, 2, 1, 1, 0, 0, 2, 2, 1, 1},
                                   {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0}};
    const Tokens& base = bases[rng_() % 3];
    Tokens prompt(base.begin(), base.begin() + rng_() % (base.size() + 1));
    prompt = concat(prompt, random_tokens((int32_t)(rng_() % 8)));
    const KvCache::SeqId seq = next_seq_++;
    Snapshot before = snapshot();
    auto cached = kv_.add_sequence(seq, prompt);
    if (!cached.ok()) {
      EXPECT_FALSE(kv_.has_sequence(seq));
      expect_unchanged(before);
      return;
    }
    ASSERT_EQ(*cached % kv_.block_size(), 0);
    ASSERT_TRUE(*cached < (int32_t)prompt.size() || prompt.empty());
    seqs_[seq] = Tokens(prompt.begin(), prompt.begin() + *cached);
    // The reused slots must hold exactly this prompt's KV.
    uint64_t fp = 0;
    for (int32_t pos = 0; pos < *cached; ++pos) {
      fp = fingerprint(fp, prompt[pos]);
      ASSERT_EQ(slot(kv_.block_table(seq), pos), fp);
    }
    compute(seq, std::span<const int32_t>(prompt).subspan(*cached));
  }
  void extend() {
    if (seqs_.empty()) return;
    const KvCache::SeqId seq = pick();
    if (seqs_[seq].size() > 48) return;
    const int32_t n = 1 + (int32_t)(rng_() % 6);
    Snapshot before = snapshot();
    if (!kv_.reserve(seq, n)) {
      expect_unchanged(before);
      return;
    }
    compute(seq, random_tokens(n));
  }
  void fork() {
    if (seqs_.empty() || seqs_.size() >= 12) return;
    const KvCache::SeqId parent = pick(), child = next_seq_++;
    Snapshot before = snapshot();
    auto copies = kv_.fork(parent, child);
    if (!copies.ok()) {
      EXPECT_FALSE(kv_.has_sequence(child));
      expect_unchanged(before);
      return;
    }
    copy_blocks(*copies);
    seqs_[child] = seqs_[parent];
  }
  void truncate() {
    if (seqs_.empty()) return;
    const KvCache::SeqId seq = pick();
    Tokens& tokens = seqs_[seq];
    const int32_t n = (int32_t)(rng_() % (tokens.size() + 1));
    const int32_t kept = kv_.truncate(seq, n);
    ASSERT_LE(kept, n);
    ASSERT_GT(kept, n - kv_.block_size());
    tokens.resize(kept);
  }
  void release() {
    if (seqs_.empty()) return;
    const KvCache::SeqId seq = pick();
    kv_.free_sequence(seq, /*drop=*/rng_() % 4 == 0);
    seqs_.erase(seq);
  }
  // Grows, or shrinks as far as the live sequences allow. The dropped blocks'
  // slots are wiped, as the CPU backend's released pages read back as zeros.
  void resize() {
    const int32_t old = kv_.n_blocks(), bs = kv_.block_size();
    if (rng_() % 2 == 0) {
      kv_.resize(old + (int32_t)(rng_() % (max_blocks_ - old + 1)));
      return;
    }
    int32_t lowest = 1;
    for (const auto& [seq, tokens] : seqs_)
      for (int32_t b : kv_.block_table(seq)) lowest = std::max(lowest, b + 1);
    const int32_t n = lowest + (int32_t)(rng_() % (old - lowest + 1));
    bool pinned = false;  // some sequence holds block lowest - 1
    for (const auto& [seq, tokens] : seqs_) {
      ASSERT_FALSE(kv_.holds_block_from(seq, n));
      pinned = pinned || kv_.holds_block_from(seq, lowest - 1);
    }
    ASSERT_TRUE(lowest == 1 || pinned);
    kv_.resize(n);
    std::fill(slots_.begin() + (size_t)n * bs, slots_.begin() + (size_t)old * bs, 0);
  }

  KvCache kv_;
  int32_t max_blocks_;            // 0: a fixed pool
  std::vector<uint64_t> slots_;  // (max(n_blocks, max_blocks), block_size) simulated KV
  std::map<KvCache::SeqId, Tokens> seqs_;
  KvCache::SeqId next_seq_ = 1;
  std::mt19937_64 rng_;
};

TEST(KvCacheTest, RandomOperationsKeepEveryInvariantAndTheRightKv) {
  int64_t hits = 0, evictions = 0, dedups = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Simulation sim(/*n_blocks=*/40, /*block_size=*/4, seed);
    for (int i = 0; i < 3000; ++i) {
      sim.step();
      sim.check();
      if (::testing::Test::HasFailure()) FAIL() << "seed " << seed << " step " << i;
    }
    hits += sim.kv().stats().hit_blocks;
    evictions += sim.kv().stats().evictions;
    dedups += sim.kv().stats().deduplicated_blocks;
  }
  // The run did exercise reuse, eviction and deduplication.
  EXPECT_GT(hits, 0);
  EXPECT_GT(evictions, 0);
  EXPECT_GT(dedups, 0);
}

TEST(KvCacheTest, RandomOperationsWithResizesKeepEveryInvariantAndTheRightKv) {
  int64_t hits = 0, evictions = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Simulation sim(/*n_blocks=*/24, /*block_size=*/4, seed, /*max_blocks=*/64);
    for (int i = 0; i < 3000; ++i) {
      sim.step();
      sim.check();
      if (::testing::Test::HasFailure()) FAIL() << "seed " << seed << " step " << i;
    }
    hits += sim.kv().stats().hit_blocks;
    evictions += sim.kv().stats().evictions;
  }
  EXPECT_GT(hits, 0);
  EXPECT_GT(evictions, 0);
}

#ifndef NDEBUG
TEST(KvCacheDeathTest, AnUnknownSequenceIsACallerBug) {
  KvCache kv = make_cache(4);
  EXPECT_DEATH(kv.n_tokens(99), "unknown sequence");
}
#endif

}  // namespace
}  // namespace flashtts
