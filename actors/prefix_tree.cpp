#include "actors/prefix_tree.h"

#include <cassert>
#include <vector>

namespace flashtts {

PrefixTree::Node* PrefixTree::acquire(std::span<const Chunk> path) {
  Node* n = &root_;
  ++n->refs;
  for (const Chunk& c : path) {
    std::unique_ptr<Node>& child = n->children[c.key];
    if (!child) {
      child = std::make_unique<Node>();
      child->parent = n, child->key = c.key, child->tokens = c.tokens;
      ++nodes_;
    }
    n = child.get();
    ++n->refs;
  }
  return n;
}

void PrefixTree::retain(Node* end) {
  for (Node* n = end; n; n = n->parent) ++n->refs;
}

void PrefixTree::release(Node* end) {
  for (Node* n = end; n;) {
    Node* p = n->parent;
    assert(n->refs > 0);
    if (--n->refs == 0 && p) {
      // Every path below n passes through n: nothing below is left.
      assert(n->children.empty() && n->own.empty() && n->held == 0);
      p->children.erase(n->key);  // deletes n
      --nodes_;
    }
    n = p;
  }
}

void PrefixTree::enqueue(Node* end, Rank r) {
  end->own.insert(r);
  refresh(end);
}

void PrefixTree::dequeue(Node* end, Rank r) {
  [[maybe_unused]] size_t erased = end->own.erase(r);
  assert(erased == 1);
  refresh(end);
}

void PrefixTree::refresh(Node* n) {
  while (n) {
    std::optional<Rank> b;
    if (!n->own.empty()) b = *n->own.begin();
    if (!n->kids.empty() && (!b || n->kids.begin()->first < *b)) b = n->kids.begin()->first;
    if (b == n->best) return;
    Node* p = n->parent;
    if (p) {
      if (n->best) p->kids.erase({*n->best, n});
      if (b) p->kids.insert({*b, n});
    }
    n->best = b;
    n = p;
  }
}

std::optional<PrefixTree::Rank> PrefixTree::nearest(const Node* from) const {
  // Every queued job below an ancestor of `from` shares that ancestor's whole
  // path with it; below the deepest ancestor holding any, they all tie.
  for (const Node* n = from ? from : &root_; n; n = n->parent)
    if (n->best) return n->best;
  return std::nullopt;
}

std::optional<PrefixTree::Rank> PrefixTree::farthest(const Node* from) const {
  std::vector<const Node*> path;
  for (const Node* n = from ? from : &root_; n; n = n->parent) path.push_back(n);
  // From the root down: the first node with a queued job off the way to
  // `from` gives the jobs that share the least with it.
  for (size_t i = path.size(); i-- > 0;) {
    const Node* a = path[i];
    const Node* next = i > 0 ? path[i - 1] : nullptr;
    std::optional<Rank> b;
    if (!a->own.empty()) b = *a->own.begin();
    for (const auto& [rank, kid] : a->kids) {
      if (kid == next) continue;
      if (!b || rank < *b) b = rank;
      break;  // kids are ordered: the first other one is the best
    }
    if (b) return b;
  }
  return std::nullopt;
}

int64_t PrefixTree::unheld_tokens(const Node* end) const {
  int64_t t = 0;
  for (const Node* n = end; n; n = n->parent)
    if (n->held == 0) t += n->tokens;
  return t;
}

void PrefixTree::hold(Node* end) {
  for (Node* n = end; n; n = n->parent)
    if (n->held++ == 0) held_tokens_ += n->tokens;
}

void PrefixTree::unhold(Node* end) {
  for (Node* n = end; n; n = n->parent) {
    assert(n->held > 0);
    if (--n->held == 0) held_tokens_ -= n->tokens;
  }
}

}  // namespace flashtts
