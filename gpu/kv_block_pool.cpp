#include "gpu/kv_block_pool.h"

#include <algorithm>
#include <cassert>
#include <functional>
#include <string>

namespace flashtts {

namespace {

// 64x64->128 multiply folded to 64 bits: the mixing step of wyhash.
inline uint64_t mum(uint64_t a, uint64_t b) {
  unsigned __int128 r = (unsigned __int128)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

constexpr uint64_t kSecret0 = 0xa0761d6478bd642full;
constexpr uint64_t kSecret1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kSecret2 = 0x8ebc6af09c88c6e3ull;

}  // namespace

uint64_t kv_block_hash(uint64_t parent_id, std::span<const int32_t> tokens) {
  uint64_t h = mum(parent_id ^ kSecret0, kSecret1);
  size_t i = 0;
  for (; i + 2 <= tokens.size(); i += 2) {
    uint64_t w = (uint64_t)(uint32_t)tokens[i] | (uint64_t)(uint32_t)tokens[i + 1] << 32;
    h = mum(w ^ kSecret1, h ^ kSecret2);
  }
  if (i < tokens.size()) h = mum((uint64_t)(uint32_t)tokens[i] ^ kSecret2, h ^ kSecret0);
  return mum(h ^ tokens.size(), kSecret1 ^ kSecret0);
}

KvBlockPool::KvBlockPool(int32_t n_blocks, int32_t block_size)
    : block_size_(block_size), blocks_(n_blocks), tokens_((size_t)n_blocks * block_size) {
  assert(n_blocks > 0 && block_size > 0);
  // Ascending ids are already a min-heap.
  free_.reserve(n_blocks);
  for (int32_t b = 0; b < n_blocks; ++b) free_.push_back(b);
  index_.reserve(n_blocks);
  renumber_slots();
}

int32_t KvBlockPool::allocate() {
  assert(available() > 0);
  if (free_.empty()) evict_counted(lru_head_);
  std::pop_heap(free_.begin(), free_.end(), std::greater<>());
  int32_t b = free_.back();
  free_.pop_back();
  blocks_[b].ref = 1;
  note_not_free();
  return b;
}

void KvBlockPool::grow(int32_t n_blocks) {
  assert(n_blocks >= this->n_blocks());
  const int32_t old = this->n_blocks();
  blocks_.resize(n_blocks);
  tokens_.resize((size_t)n_blocks * block_size_);
  for (int32_t b = old; b < n_blocks; ++b) free_push(b);
  renumber_slots();
  note_not_free();
}

void KvBlockPool::shrink(int32_t n_blocks) {
  assert(n_blocks > 0 && n_blocks <= this->n_blocks() && used_from(n_blocks) == 0);
  // Cached blocks above the cut are evicted (their content goes with their
  // memory); then nothing above it is left but free blocks, which go.
  for (int32_t b = n_blocks; b < this->n_blocks(); ++b)
    if (blocks_[b].id != 0) evict_counted(b);
  std::erase_if(free_, [n_blocks](int32_t b) { return b >= n_blocks; });
  std::make_heap(free_.begin(), free_.end(), std::greater<>());
  blocks_.resize(n_blocks);
  tokens_.resize((size_t)n_blocks * block_size_);
  renumber_slots();
  note_not_free();
}

int32_t KvBlockPool::used_from(int32_t first) const {
  int32_t n = 0;
  for (int32_t b = std::max(first, 0); b < n_blocks(); ++b) n += blocks_[b].ref > 0;
  return n;
}

void KvBlockPool::ref(int32_t block) {
  Block& b = blocks_[block];
  assert(b.ref > 0 || b.id != 0);  // not free
  if (b.ref++ > 0) return;
  // A hit on a cached block: LRU had to keep it, and every block in use or
  // cached after it, all the time it was cached.
  const int32_t older = slots_up_to(b.lru_slot) - 1;
  needed_peak_ = std::max(needed_peak_, most_not_free_since(b.cached_at, b.not_free_then) - older);
  lru_remove(block);
}

void KvBlockPool::unref(int32_t block, bool drop) {
  Block& b = blocks_[block];
  assert(b.ref > 0);
  if (--b.ref > 0) return;
  if (b.id != 0 && drop) {
    index_.erase(b.hash);
    b.id = 0, b.content = 0;
  }
  if (b.id != 0) {
    lru_push_back(block);
  } else {
    free_push(block);
    note_not_free();
  }
}

int32_t KvBlockPool::lookup(uint64_t hash, uint64_t parent_id,
                            std::span<const int32_t> tokens) const {
  auto it = index_.find(hash);
  if (it == index_.end()) return kNoBlock;
  int32_t b = it->second;
  if (blocks_[b].parent_id != parent_id) return kNoBlock;
  std::span<const int32_t> stored = this->tokens(b);
  if (!std::equal(stored.begin(), stored.end(), tokens.begin(), tokens.end())) return kNoBlock;
  return b;
}

bool KvBlockPool::register_block(int32_t block, uint64_t hash, uint64_t parent_id,
                                 std::span<const int32_t> tokens, uint64_t content) {
  Block& b = blocks_[block];
  assert(b.ref > 0 && b.id == 0 && (int32_t)tokens.size() == block_size_);
  if (!index_.try_emplace(hash, block).second) return false;
  b.id = next_id_++;
  b.hash = hash;
  b.parent_id = parent_id;
  b.content = content;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + (size_t)block * block_size_);
  return true;
}

void KvBlockPool::unregister(int32_t block) {
  Block& b = blocks_[block];
  assert(b.ref > 0 && b.id != 0);
  index_.erase(b.hash);
  b.id = 0, b.content = 0;
}

std::span<const int32_t> KvBlockPool::tokens(int32_t block) const {
  return {tokens_.data() + (size_t)block * block_size_, (size_t)block_size_};
}

void KvBlockPool::drop_cached() {
  while (lru_head_ != kNoBlock) evict(lru_head_);
}

void KvBlockPool::evict(int32_t block) {
  Block& b = blocks_[block];
  assert(b.ref == 0 && b.id != 0);
  lru_remove(block);
  index_.erase(b.hash);
  b.id = 0, b.content = 0;
  free_push(block);
  note_not_free();
}

void KvBlockPool::evict_counted(int32_t block) {
  ++evictions_;
  remember_evicted(blocks_[block].content);
  evict(block);
}

void KvBlockPool::discard(int32_t block) {
  remember_evicted(blocks_[block].content);
  evict(block);
}

void KvBlockPool::remember_evicted(uint64_t content) {
  if (content == 0) return;
  const size_t generation = std::max(kMinEvictedRemembered, 8 * blocks_.size());
  if (evicted_.size() >= generation) {
    evicted_before_ = std::move(evicted_);
    evicted_ = {};
  }
  evicted_.insert(content);
}

bool KvBlockPool::take_evicted(uint64_t content) {
  if (content == 0) return false;
  return evicted_.erase(content) + evicted_before_.erase(content) > 0;
}

void KvBlockPool::free_push(int32_t block) {
  free_.push_back(block);
  std::push_heap(free_.begin(), free_.end(), std::greater<>());
}

void KvBlockPool::slots_add(int32_t slot, int32_t n) {
  for (size_t i = (size_t)slot + 1; i < slots_.size(); i += i & (~i + 1)) slots_[i] += n;
}

int32_t KvBlockPool::slots_up_to(int32_t slot) const {
  int32_t n = 0;
  for (size_t i = (size_t)slot + 1; i > 0; i -= i & (~i + 1)) n += slots_[i];
  return n;
}

void KvBlockPool::note_not_free() {
  const int32_t x = n_blocks() - free_blocks();
  if (x == not_free_) return;
  not_free_ = x;
  ++not_free_clock_;
  while (!not_free_peaks_.empty() && not_free_peaks_.back().second <= x) not_free_peaks_.pop_back();
  not_free_peaks_.push_back({not_free_clock_, x});
  needed_peak_ = std::max(needed_peak_, used_blocks());
}

void KvBlockPool::reset_needed_peak() {
  needed_peak_ = used_blocks();
  reset_clock_ = ++not_free_clock_;
  not_free_at_reset_ = not_free_;
  not_free_peaks_.assign(1, {not_free_clock_, not_free_});
}

int32_t KvBlockPool::most_not_free_since(uint64_t clock, int32_t then) const {
  if (clock < reset_clock_) clock = reset_clock_, then = not_free_at_reset_;
  // Every change after `clock` is covered by the first entry after it: what
  // it popped was no more than it.
  auto it = std::upper_bound(not_free_peaks_.begin(), not_free_peaks_.end(), clock,
                             [](uint64_t c, const std::pair<uint64_t, int32_t>& e) { return c < e.first; });
  return it == not_free_peaks_.end() ? then : std::max(then, it->second);
}

void KvBlockPool::renumber_slots() {
  // Room for n_blocks more pushes before the next renumbering.
  slots_.assign(2 * blocks_.size() + 65, 0);
  next_slot_ = 0;
  for (int32_t b = lru_head_; b != kNoBlock; b = blocks_[b].lru_next) {
    blocks_[b].lru_slot = next_slot_++;
    slots_add(blocks_[b].lru_slot, 1);
  }
}

void KvBlockPool::lru_push_back(int32_t block) {
  if (next_slot_ + 1 >= (int32_t)slots_.size()) renumber_slots();
  Block& b = blocks_[block];
  b.lru_slot = next_slot_++;
  slots_add(b.lru_slot, 1);
  b.cached_at = not_free_clock_, b.not_free_then = not_free_;
  b.lru_prev = lru_tail_;
  b.lru_next = kNoBlock;
  if (lru_tail_ != kNoBlock) {
    blocks_[lru_tail_].lru_next = block;
  } else {
    lru_head_ = block;
  }
  lru_tail_ = block;
  ++n_cached_;
}

void KvBlockPool::lru_remove(int32_t block) {
  Block& b = blocks_[block];
  slots_add(b.lru_slot, -1);
  if (b.lru_prev != kNoBlock) {
    blocks_[b.lru_prev].lru_next = b.lru_next;
  } else {
    lru_head_ = b.lru_next;
  }
  if (b.lru_next != kNoBlock) {
    blocks_[b.lru_next].lru_prev = b.lru_prev;
  } else {
    lru_tail_ = b.lru_prev;
  }
  b.lru_prev = b.lru_next = kNoBlock;
  --n_cached_;
}

Status KvBlockPool::check_invariants() const {
  auto fail = [](const std::string& what) { return Status(make_error("kv pool: " + what)); };
  enum : uint8_t { kUnseen, kOnFree, kOnLru };
  std::vector<uint8_t> where(blocks_.size(), kUnseen);
  if (!std::is_heap(free_.begin(), free_.end(), std::greater<>())) return fail("free list is not a min-heap");
  for (int32_t b : free_) {
    if (b < 0 || b >= n_blocks()) return fail("free list holds a bad id");
    if (where[b] != kUnseen) return fail("block " + std::to_string(b) + " twice on the free list");
    where[b] = kOnFree;
    if (blocks_[b].ref != 0 || blocks_[b].id != 0)
      return fail("block " + std::to_string(b) + " on the free list is referenced or registered");
  }
  int32_t n_lru = 0, prev = kNoBlock;
  for (int32_t b = lru_head_; b != kNoBlock; prev = b, b = blocks_[b].lru_next) {
    if (where[b] != kUnseen) return fail("block " + std::to_string(b) + " on two lists");
    where[b] = kOnLru;
    if (blocks_[b].lru_prev != prev) return fail("LRU back link broken");
    if (blocks_[b].ref != 0 || blocks_[b].id == 0)
      return fail("block " + std::to_string(b) + " on the LRU list is referenced or unregistered");
    ++n_lru;
  }
  if (prev != lru_tail_ || n_lru != n_cached_) return fail("LRU tail or count wrong");
  int32_t last_slot = -1, rank = 0;
  for (int32_t b = lru_head_; b != kNoBlock; b = blocks_[b].lru_next) {
    if (blocks_[b].lru_slot <= last_slot || blocks_[b].lru_slot >= next_slot_)
      return fail("LRU slots out of order");
    if (slots_up_to(blocks_[b].lru_slot) != ++rank) return fail("LRU slot counts wrong");
    last_slot = blocks_[b].lru_slot;
  }
  if (slots_up_to((int32_t)slots_.size() - 2) != n_cached_) return fail("LRU slot counts do not add up");
  size_t n_registered = 0;
  for (int32_t b = 0; b < n_blocks(); ++b) {
    const Block& blk = blocks_[b];
    if (blk.ref == 0 && where[b] == kUnseen)
      return fail("unreferenced block " + std::to_string(b) + " is on no list");
    if (blk.ref < 0) return fail("negative ref count");
    if (blk.id == 0) continue;
    ++n_registered;
    auto it = index_.find(blk.hash);
    if (it == index_.end() || it->second != b)
      return fail("registered block " + std::to_string(b) + " is not in the index");
    if (blk.id >= next_id_ || blk.parent_id >= blk.id)
      return fail("block " + std::to_string(b) + " has a parent newer than itself");
  }
  if (n_registered != index_.size()) return fail("index holds unregistered blocks");
  return Status::success();
}

}  // namespace flashtts
