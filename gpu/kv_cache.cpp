#include "gpu/kv_cache.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <string>

namespace flashtts {

double KvCacheStats::hit_rate() const {
  int64_t total = hit_blocks + miss_blocks;
  return total == 0 ? 0.0 : (double)hit_blocks / (double)total;
}

Expected<KvCache> KvCache::create(const KvCacheOptions& o) {
  if (o.block_size <= 0)
    return make_error("kv cache: block_size must be positive, got " + std::to_string(o.block_size));
  if (o.bytes_per_token == 0) return make_error("kv cache: bytes_per_token must be positive");
  if (o.bytes_per_token > std::numeric_limits<size_t>::max() / (size_t)o.block_size)
    return make_error("kv cache: bytes_per_token * block_size overflows");
  const size_t block_bytes = o.bytes_per_token * (size_t)o.block_size;
  const size_t n_blocks = o.byte_budget / block_bytes;
  if (n_blocks == 0)
    return make_error("kv cache: a budget of " + std::to_string(o.byte_budget) +
                      " bytes holds no block of " + std::to_string(block_bytes) +
                      " bytes (" + std::to_string(o.block_size) + " tokens of " +
                      std::to_string(o.bytes_per_token) + " bytes); raise the KV budget");
  if (n_blocks > (size_t)std::numeric_limits<int32_t>::max())
    return make_error("kv cache: a budget of " + std::to_string(o.byte_budget) + " bytes makes " +
                      std::to_string(n_blocks) + " blocks of " + std::to_string(block_bytes) +
                      " bytes, more than the 2147483647 a cache can number; lower the KV budget");
  return KvCache((int32_t)n_blocks, o.block_size);
}

KvCache::Sequence& KvCache::get(SeqId seq) {
  auto it = seqs_.find(seq);
  assert(it != seqs_.end() && "unknown sequence");
  return it->second;
}

const KvCache::Sequence& KvCache::get(SeqId seq) const {
  auto it = seqs_.find(seq);
  assert(it != seqs_.end() && "unknown sequence");
  return it->second;
}

int32_t KvCache::cached_prefix(std::span<const int32_t> prompt) const {
  const int32_t bs = block_size();
  const int32_t reusable = prompt.empty() ? 0 : ((int32_t)prompt.size() - 1) / bs;
  uint64_t parent = 0;
  int32_t hits = 0;
  for (; hits < reusable; ++hits) {
    std::span<const int32_t> block_tokens = prompt.subspan((size_t)hits * bs, bs);
    int32_t b = pool_.lookup(kv_block_hash(parent, block_tokens), parent, block_tokens);
    if (b == KvBlockPool::kNoBlock) break;
    parent = pool_.cache_id(b);
  }
  return hits * bs;
}

Expected<int32_t> KvCache::add_sequence(SeqId seq, std::span<const int32_t> prompt,
                                        bool reuse_prefix) {
  assert(!has_sequence(seq));
  const int32_t bs = block_size();
  const int32_t n = (int32_t)prompt.size();
  // At least one token is left to compute.
  const int32_t reusable = reuse_prefix && n > 0 ? (n - 1) / bs : 0;

  // Walk the chain first without touching anything, so a failure changes nothing.
  Sequence s;
  s.table.reserve(blocks_needed(n));
  int32_t revived = 0;  // hits that are cached now: taking them makes them unevictable
  uint64_t parent = 0;
  for (int32_t i = 0; i < reusable; ++i) {
    std::span<const int32_t> block_tokens = prompt.subspan((size_t)i * bs, bs);
    int32_t b = pool_.lookup(kv_block_hash(parent, block_tokens), parent, block_tokens);
    if (b == KvBlockPool::kNoBlock) break;
    if (pool_.ref_count(b) == 0) ++revived;
    s.table.push_back(b);
    parent = pool_.cache_id(b);
  }
  const int32_t hits = (int32_t)s.table.size();
  const int32_t fresh = blocks_needed(n) - hits;
  const int32_t available = pool_.available() - revived;
  if (fresh > available)
    return make_error("kv cache: a prompt of " + std::to_string(n) + " tokens needs " +
                      std::to_string(fresh) + " new blocks, " + std::to_string(available) +
                      " available; preempt a sequence and retry");

  for (int32_t b : s.table) pool_.ref(b);  // before allocating, so no hit gets evicted
  for (int32_t k = 0; k < fresh; ++k) s.table.push_back(pool_.allocate());
  s.tokens.assign(prompt.begin(), prompt.begin() + (size_t)hits * bs);
  hit_blocks_ += hits;
  miss_blocks_ += reusable - hits;
  seqs_.emplace(seq, std::move(s));
  return hits * bs;
}

bool KvCache::reserve(SeqId seq, int32_t n) {
  assert(n >= 0);
  Sequence& s = get(seq);
  const int32_t more = blocks_needed((int32_t)s.tokens.size() + n) - (int32_t)s.table.size();
  if (more <= 0) return true;
  if (more > pool_.available()) return false;
  for (int32_t k = 0; k < more; ++k) s.table.push_back(pool_.allocate());
  return true;
}

void KvCache::append(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = get(seq);
  assert(s.tokens.size() + tokens.size() <= s.table.size() * (size_t)block_size());
  const int32_t full_before = (int32_t)s.tokens.size() / block_size();
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  const int32_t full_after = (int32_t)s.tokens.size() / block_size();
  for (int32_t i = full_before; i < full_after; ++i) seal_block(s, i);
}

void KvCache::seal_block(Sequence& s, int32_t index) {
  const int32_t bs = block_size();
  const int32_t b = s.table[index];
  assert(pool_.ref_count(b) == 1 && pool_.cache_id(b) == 0);
  uint64_t parent = 0, parent_content = 0;
  if (index > 0) {
    parent = pool_.cache_id(s.table[index - 1]);
    // The block before lost a hash collision and stayed private: no key can
    // name this prefix, so the rest of the sequence stays private too.
    if (parent == 0) return;
    parent_content = pool_.content(s.table[index - 1]);
  }
  std::span<const int32_t> block_tokens =
      std::span<const int32_t>(s.tokens).subspan((size_t)index * bs, bs);
  const uint64_t hash = kv_block_hash(parent, block_tokens);
  const int32_t twin = pool_.lookup(hash, parent, block_tokens);
  if (twin != KvBlockPool::kNoBlock) {
    // Same prefix, same tokens: the same KV. Keep one copy.
    pool_.ref(twin);
    pool_.unref(b);
    s.table[index] = twin;
    ++deduplicated_blocks_;
    return;
  }
  // Its content, whatever the cache ids of its prefix: found among those
  // evicted, this block is KV computed again.
  const uint64_t content = kv_block_hash(parent_content, block_tokens);
  if (pool_.take_evicted(content)) ++recomputed_blocks_;
  pool_.register_block(b, hash, parent, block_tokens, content);  // false on a collision: stays private
}

int32_t KvCache::truncate(SeqId seq, int32_t n) {
  Sequence& s = get(seq);
  assert(n >= 0 && n <= (int32_t)s.tokens.size());
  const int32_t bs = block_size();
  if (n % bs != 0) {
    const int32_t b = s.table[n / bs];  // becomes the partial last block
    if (pool_.ref_count(b) > 1) {
      n -= n % bs;  // shared: it will not be written, so the sequence gives it up
    } else if (pool_.cache_id(b) != 0) {
      pool_.unregister(b);  // ours alone: write on in place, but no lookup may find it
    }
  }
  const int32_t keep_blocks = blocks_needed(n);
  for (int32_t k = (int32_t)s.table.size() - 1; k >= keep_blocks; --k) pool_.unref(s.table[k]);
  s.table.resize(keep_blocks);
  s.tokens.resize(n);
  return n;
}

Expected<std::vector<BlockCopy>> KvCache::fork(SeqId parent, SeqId child) {
  assert(parent != child && !has_sequence(child));
  const Sequence& p = get(parent);
  const int32_t n_full = (int32_t)p.tokens.size() / block_size();
  const bool partial = (int32_t)p.tokens.size() % block_size() != 0;
  if (partial && pool_.available() == 0)
    return make_error("kv cache: no block left to copy the partial block of a fork; "
                      "preempt a sequence and retry");

  Sequence c;
  c.tokens = p.tokens;
  c.table.reserve(n_full + 1);
  for (int32_t i = 0; i < n_full; ++i) {
    pool_.ref(p.table[i]);
    c.table.push_back(p.table[i]);
  }
  std::vector<BlockCopy> copies;
  if (partial) {
    const int32_t dst = pool_.allocate();
    copies.push_back({p.table[n_full], dst});
    c.table.push_back(dst);
  }
  seqs_.emplace(child, std::move(c));
  return copies;
}

void KvCache::free_sequence(SeqId seq, bool drop) {
  Sequence& s = get(seq);
  // Last block first: the LRU then evicts the end of a cached prefix before
  // its start, which keeps the rest of the chain reachable.
  for (auto it = s.table.rbegin(); it != s.table.rend(); ++it) pool_.unref(*it, drop);
  seqs_.erase(seq);
}

std::vector<CachedBlock> KvCache::registered_from(SeqId seq, int32_t from) const {
  const Sequence& s = get(seq);
  std::vector<CachedBlock> out;
  for (size_t i = (size_t)from / block_size(); i < s.table.size(); ++i)
    if (const uint64_t id = pool_.cache_id(s.table[i]); id != 0) out.push_back({s.table[i], id});
  return out;
}

int32_t KvCache::discard(std::span<const CachedBlock> blocks) {
  int32_t n = 0;
  for (const CachedBlock& b : blocks) {
    if (b.block >= n_blocks() || pool_.cache_id(b.block) != b.id || pool_.ref_count(b.block) != 0) continue;
    pool_.discard(b.block);
    ++n;
  }
  return n;
}

bool KvCache::holds_block_from(SeqId seq, int32_t first) const {
  const Sequence& s = get(seq);
  return std::any_of(s.table.begin(), s.table.end(), [first](int32_t b) { return b >= first; });
}

void KvCache::resize(int32_t n_blocks) {
  if (n_blocks >= this->n_blocks()) {
    pool_.grow(n_blocks);
  } else {
    pool_.shrink(n_blocks);
  }
}

std::span<const int32_t> KvCache::block_table(SeqId seq) const { return get(seq).table; }

int32_t KvCache::n_tokens(SeqId seq) const { return (int32_t)get(seq).tokens.size(); }

int32_t KvCache::capacity(SeqId seq) const { return (int32_t)get(seq).table.size() * block_size(); }

KvCacheStats KvCache::stats() const {
  KvCacheStats st;
  st.hit_blocks = hit_blocks_;
  st.miss_blocks = miss_blocks_;
  st.evictions = pool_.evictions();
  st.deduplicated_blocks = deduplicated_blocks_;
  st.recomputed_tokens = recomputed_blocks_ * block_size();
  st.needed_peak_blocks = pool_.needed_peak();
  st.n_blocks = pool_.n_blocks();
  st.free_blocks = pool_.free_blocks();
  st.cached_blocks = pool_.cached_blocks();
  st.used_blocks = pool_.used_blocks();
  return st;
}

Status KvCache::check_invariants() const {
  FLASHTTS_TRY(pool_.check_invariants());
  const int32_t bs = block_size();
  std::vector<int32_t> refs(n_blocks(), 0);
  std::vector<size_t> seen_in(n_blocks(), 0);  // 1 + index of the last sequence holding it
  size_t seq_index = 0;
  for (const auto& [id, s] : seqs_) {
    ++seq_index;
    auto fail = [id = id](const std::string& what) {
      return Status(make_error("kv cache: sequence " + std::to_string(id) + ": " + what));
    };
    if (s.tokens.size() > s.table.size() * (size_t)bs) return fail("tokens past its blocks");
    for (size_t i = 0; i < s.table.size(); ++i) {
      const int32_t b = s.table[i];
      if (b < 0 || b >= n_blocks()) return fail("bad block id");
      if (seen_in[b] == seq_index) return fail("block " + std::to_string(b) + " twice in its table");
      seen_in[b] = seq_index;
      ++refs[b];
      const bool full = (i + 1) * bs <= s.tokens.size();
      if (!full) {
        if (pool_.ref_count(b) != 1 || pool_.cache_id(b) != 0)
          return fail("partial or reserved block " + std::to_string(b) + " is shared or registered");
        continue;
      }
      if (pool_.cache_id(b) == 0) continue;
      const uint64_t parent = i == 0 ? 0 : pool_.cache_id(s.table[i - 1]);
      if (pool_.parent_id(b) != parent) return fail("block " + std::to_string(b) + " has another parent");
      std::span<const int32_t> stored = pool_.tokens(b);
      if (!std::equal(stored.begin(), stored.end(), s.tokens.begin() + i * bs))
        return fail("block " + std::to_string(b) + " holds other tokens");
    }
  }
  for (int32_t b = 0; b < n_blocks(); ++b)
    if (refs[b] != pool_.ref_count(b))
      return Status(make_error("kv cache: block " + std::to_string(b) + " has ref " +
                               std::to_string(pool_.ref_count(b)) + " but " +
                               std::to_string(refs[b]) + " table entries"));
  return Status::success();
}

int32_t shareable_prefix_tokens(std::span<const int32_t> seq, std::span<const int32_t> other, int32_t block_size) {
  assert(!seq.empty() && block_size > 0);
  size_t n = std::min(seq.size() - 1, other.size());
  size_t lcp = std::mismatch(seq.begin(), seq.begin() + n, other.begin()).first - seq.begin();
  return int32_t(lcp / block_size) * block_size;
}

}  // namespace flashtts
