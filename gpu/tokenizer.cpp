#include "gpu/tokenizer.h"

#include <algorithm>
#include <cassert>
#include <climits>
#include <optional>
#include <queue>

#include "gpu/tokenizer_impl.h"
#include "gpu/unicode.h"

namespace flashtts {

// ---------------------------------------------------------------- MergeTable

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  keys_.assign(cap, kEmpty);
  vals_.assign(cap, Merge{});
  mask_ = cap - 1;
  size_ = 0;
}

void MergeTable::insert(int32_t left, int32_t right, Merge m) {
  assert(2 * (size_ + 1) <= keys_.size() && "MergeTable::reserve() first");
  const uint64_t key = pack(left, right);
  size_t h = mix(key) & mask_;
  while (keys_[h] != kEmpty && keys_[h] != key) h = (h + 1) & mask_;
  if (keys_[h] == kEmpty) ++size_;
  keys_[h] = key;
  vals_[h] = m;
}

// ----------------------------------------------------------------- WordCache

bool WordCache::find(std::string_view word, std::vector<int32_t>* out) const {
  Shard& s = shards_[StringHash{}(word) % kShards];
  std::lock_guard lock(s.mu);
  auto it = s.map.find(word);
  if (it == s.map.end()) return false;
  out->insert(out->end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::insert(std::string_view word, const std::vector<int32_t>& ids) const {
  Shard& s = shards_[StringHash{}(word) % kShards];
  std::lock_guard lock(s.mu);
  if (s.map.size() >= kMaxPerShard) s.map.clear();
  s.map.emplace(std::string(word), ids);
}

// ---------------------------------------------------------------------- BPE
namespace {

// Merges `sym` in place: always the lowest-ranked adjacent pair next, the
// leftmost on ties (HF's Word::merge_all order). Quadratic-free for short words.
void merge_short(const MergeTable& merges, std::vector<int32_t>* sym) {
  auto& s = *sym;
  std::vector<int32_t> rank(s.size(), INT_MAX);  // rank[p]: pair (p, p+1)
  auto rank_at = [&](size_t p) {
    const auto* m = merges.find(s[p], s[p + 1]);
    return m ? m->rank : INT_MAX;
  };
  for (size_t p = 0; p + 1 < s.size(); ++p) rank[p] = rank_at(p);
  while (s.size() > 1) {
    size_t best = 0;
    for (size_t p = 1; p + 1 < s.size(); ++p)
      if (rank[p] < rank[best]) best = p;
    if (rank[best] == INT_MAX) break;
    s[best] = merges.find(s[best], s[best + 1])->id;
    s.erase(s.begin() + best + 1);
    rank.erase(rank.begin() + best + 1);
    if (best + 1 < s.size()) rank[best] = rank_at(best); else rank[best] = INT_MAX;
    if (best > 0) rank[best - 1] = rank_at(best - 1);
  }
}

// The same order with a heap over a linked list, for long words.
void merge_long(const MergeTable& merges, std::vector<int32_t>* sym) {
  struct Node {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = static_cast<int32_t>(sym->size());
  std::vector<Node> nodes(n);
  for (int32_t i = 0; i < n; ++i) nodes[i] = {(*sym)[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || nodes[pos].next < 0) return;
    if (const auto* m = merges.find(nodes[pos].id, nodes[nodes[pos].next].id)) heap.push({m->rank, pos, m->id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Node& left = nodes[c.pos];
    if (!left.alive || left.next < 0) continue;
    // Stale entry: one side changed since it was pushed.
    const auto* m = merges.find(left.id, nodes[left.next].id);
    if (!m || m->id != c.id) continue;
    Node& right = nodes[left.next];
    left.id = c.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) nodes[right.next].prev = c.pos;
    push(left.prev);
    push(c.pos);
  }
  sym->clear();
  for (int32_t i = 0; i >= 0 && i < n; i = nodes[i].next) sym->push_back(nodes[i].id);
}

constexpr size_t kShortWord = 48;

// Scratch buffers of one encode call.
struct Scratch {
  std::vector<unicode::CodePoint> cps;
  std::vector<std::pair<uint32_t, uint32_t>> pieces;
  std::vector<int32_t> sym;
  std::string mapped;
};

void bpe_word(const Tokenizer::Impl& t, std::string_view word, Scratch* s, std::vector<int32_t>* ids) {
  if (word.size() == 1) {
    const int32_t id = t.byte_id[static_cast<uint8_t>(word[0])];
    if (id >= 0) ids->push_back(id);
    return;
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable && t.cache.find(word, ids)) return;
  if (t.ignore_merges) {
    s->mapped.clear();
    for (char c : word) s->mapped += t.byte_char[static_cast<uint8_t>(c)];
    if (auto it = t.vocab.find(s->mapped); it != t.vocab.end()) {
      ids->push_back(it->second);
      if (cacheable) t.cache.insert(word, {it->second});
      return;
    }
  }
  s->sym.clear();
  for (char c : word) {
    // A byte the vocab cannot spell is dropped (HF would need an unk token).
    const int32_t id = t.byte_id[static_cast<uint8_t>(c)];
    if (id >= 0) s->sym.push_back(id);
  }
  if (s->sym.size() <= kShortWord) merge_short(t.merges, &s->sym); else merge_long(t.merges, &s->sym);
  ids->insert(ids->end(), s->sym.begin(), s->sym.end());
  if (cacheable) t.cache.insert(word, s->sym);
}

// Text outside added tokens: normalize, split, BPE each piece.
void encode_plain(const Tokenizer::Impl& t, std::string_view text, Scratch* s, std::vector<int32_t>* ids) {
  if (text.empty()) return;
  std::string normalized;
  if (t.nfc && !unicode::nfc_trivially(text)) {
    normalized = unicode::nfc(text);
    text = normalized;
  }
  split_pretokens(t.pre, text, &s->cps, &s->pieces);
  for (const auto& [b, e] : s->pieces) bpe_word(t, text.substr(b, e - b), s, ids);
}

bool word_char(char32_t c) { return c == '_' || unicode::is_letter(c) || unicode::is_number(c); }

// Where a run of whitespace ending at `end` begins (not before `floor`).
size_t space_before(std::string_view text, size_t end, size_t floor) {
  size_t len = 0;
  while (end > floor && unicode::is_space(unicode::decode_before(text, end, &len)) && end - len >= floor) end -= len;
  return end;
}

// Where a run of whitespace starting at `begin` ends.
size_t space_after(std::string_view text, size_t begin) {
  size_t len = 0;
  while (begin < text.size() && unicode::is_space(unicode::decode_at(text, begin, &len))) begin += len;
  return begin;
}

bool word_char_before(std::string_view text, size_t pos) {
  size_t len = 0;
  return pos > 0 && word_char(unicode::decode_before(text, pos, &len));
}

bool word_char_after(std::string_view text, size_t pos) {
  size_t len = 0;
  return pos < text.size() && word_char(unicode::decode_at(text, pos, &len));
}

struct AddedMatch {
  size_t begin, end;  // bytes the token takes, stripped whitespace included
  int32_t id;
};

// The longest added token that starts at `pos`, if any. `floor` is where the
// current stretch of plain text begins (lstrip never reaches past it).
std::optional<AddedMatch> match_added(const Tokenizer::Impl& t, std::string_view text, size_t pos, size_t floor,
                                      bool parse_special) {
  for (uint32_t k : t.added_by_first_byte[static_cast<uint8_t>(text[pos])]) {
    const AddedToken& a = t.added[k];
    if (a.special && !parse_special) continue;
    if (text.compare(pos, a.content.size(), a.content) != 0) continue;
    size_t end = pos + a.content.size();
    if (a.single_word && (word_char_before(text, pos) || word_char_after(text, end))) continue;
    size_t begin = pos;
    if (a.lstrip) begin = space_before(text, pos, floor);
    if (a.rstrip) end = space_after(text, end);
    return AddedMatch{begin, end, a.id};
  }
  return std::nullopt;
}

}  // namespace

// ------------------------------------------------------------------ Tokenizer

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  const Impl& t = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  Scratch s;
  if (t.added.empty()) {
    encode_plain(t, text, &s, &ids);
    return ids;
  }
  size_t plain_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    const auto m = t.added_by_first_byte[static_cast<uint8_t>(text[pos])].empty()
                       ? std::nullopt
                       : match_added(t, text, pos, plain_begin, parse_special);
    if (!m) {
      ++pos;
      continue;
    }
    encode_plain(t, text.substr(plain_begin, m->begin - plain_begin), &s, &ids);
    ids.push_back(m->id);
    plain_begin = pos = m->end;
  }
  encode_plain(t, text.substr(plain_begin), &s, &ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (skip_special && impl_->special[id]) continue;
    out += impl_->bytes[id];
  }
  return unicode::to_valid_utf8(out);
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return impl_->bytes[id];
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return -1;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return impl_->tokens[id];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->tokens.size()); }

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && impl_->special[id]; }

PreTokenizer Tokenizer::pretokenizer() const { return impl_->pre; }

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }

// -------------------------------------------------------------- StreamDecoder

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(&tok), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_->is_special(id)) return {};
  pending_ += tok_->token_bytes(id);
  const size_t n = unicode::complete_utf8_prefix(pending_);
  std::string out = unicode::to_valid_utf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = unicode::to_valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace flashtts
