#include "actors/context_windows.h"

#include <cassert>

#include "gpu/sample_hash.h"

namespace flashtts {

void ContextWindows::enter(Counts& c, const Job& j) {
  for (uint64_t b : j.blocks) ++c.refs[b];
  c.tail_tokens += j.tail, c.ctx_tokens += j.tokens, ++c.jobs;
}

void ContextWindows::leave(Counts& c, const Job& j) {
  for (uint64_t b : j.blocks) {
    auto it = c.refs.find(b);
    assert(it != c.refs.end());
    if (--it->second == 0) c.refs.erase(it);
  }
  c.tail_tokens -= j.tail, c.ctx_tokens -= j.tokens, --c.jobs;
}

void ContextWindows::add(std::span<const int32_t> tokens, int32_t block_size, std::span<const int32_t> more) {
  assert(block_size > 0);
  block_size_ = block_size;
  Job j;
  const size_t n = tokens.size() + more.size();
  j.tokens = (int32_t)n;
  j.blocks.reserve(n / (size_t)block_size);
  uint64_t key = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; ++i) {
    key = mix64(key ^ (uint32_t)(i < tokens.size() ? tokens[i] : more[i - tokens.size()]));
    if ((i + 1) % (size_t)block_size == 0) j.blocks.push_back(key);
  }
  j.tail = (int32_t)(n % (size_t)block_size);
  jobs_.push_back(std::move(j));
  // The new job enters every window; the one k jobs back leaves window k.
  for (size_t w = 0; w < kSizes.size(); ++w) {
    enter(counts_[w], jobs_.back());
    if (jobs_.size() > (size_t)kSizes[w]) leave(counts_[w], jobs_[jobs_.size() - 1 - (size_t)kSizes[w]]);
  }
  if (jobs_.size() > (size_t)kSizes.back()) jobs_.pop_front();
}

std::array<ContextWindows::Window, ContextWindows::kSizes.size()> ContextWindows::windows() const {
  std::array<Window, kSizes.size()> out;
  for (size_t w = 0; w < kSizes.size(); ++w) {
    const Counts& c = counts_[w];
    out[w].jobs = c.jobs;
    out[w].ctx_tokens = c.ctx_tokens;
    out[w].unique_tokens = (int64_t)c.refs.size() * block_size_ + c.tail_tokens;
  }
  return out;
}

}  // namespace flashtts
