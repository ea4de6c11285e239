#include "gpu/engine.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <string>

#include "gpu/sim/sim_backend.h"

#include "gpu/cuda_plugin.h"

namespace flashtts {

size_t kv_bytes_per_token_on(const ModelConfig& c, const DeviceContext* device) {
  if (device && device->simulated()) return (size_t)sim_kv_bytes_per_token(c);
  // A CUDA context exists only once the backend library loaded.
  if (device && device->kind() == DeviceKind::Cuda) return load_cuda_plugin(nullptr)->kv_bytes_per_token(c);
  return kv_bytes_per_token_f32(c);
}

int64_t workspace_bytes_on(const ModelConfig& c, const DeviceContext* device) {
  if (!device || device->simulated() || device->kind() != DeviceKind::Cuda) return 0;
  // The pool's size is not known yet; it moves the estimate only past 2^16
  // blocks (the block tables' share of the metadata, under a MiB).
  return (int64_t)load_cuda_plugin(nullptr)->workspace_bytes(c, BackendOptions{}, *device);
}

int64_t weight_bytes_on(const ModelConfig& c, const ModelWeights& w, const DeviceContext* device) {
  if (device && device->simulated()) return sim_weight_bytes(c);
  if (device && device->kind() == DeviceKind::Cuda) return (int64_t)load_cuda_plugin(nullptr)->weight_bytes(c, w);
  return w.bytes();
}

Expected<std::unique_ptr<Engine>> Engine::create(ModelConfig config, ModelWeights weights,
                                                 const EngineOptions& o) {
  const bool on_cuda = o.device && o.device->kind() == DeviceKind::Cuda;
  KvCacheOptions ko;
  ko.block_size = o.block_size;
  ko.bytes_per_token = kv_bytes_per_token_on(config, o.device.get());
  ko.byte_budget = o.kv_bytes;
  auto kv = KvCache::create(ko);
  if (!kv) return make_error("engine: " + kv.error().message);
  const size_t block_bytes = ko.bytes_per_token * (size_t)o.block_size;  // KvCache::create checked the product
  const size_t max_blocks = o.kv_bytes_max == 0 ? (size_t)kv->n_blocks() : o.kv_bytes_max / block_bytes;
  if (max_blocks < (size_t)kv->n_blocks())
    return make_error("engine: kv_bytes_max (" + std::to_string(o.kv_bytes_max) + ") is below kv_bytes (" +
                      std::to_string(o.kv_bytes) + ")");
  if (max_blocks > (size_t)std::numeric_limits<int32_t>::max())
    return make_error("engine: kv_bytes_max of " + std::to_string(o.kv_bytes_max) + " bytes makes " +
                      std::to_string(max_blocks) + " blocks, more than the 2147483647 a cache can number");
  BackendOptions bo;
  bo.n_blocks = kv->n_blocks();
  bo.max_blocks = (int32_t)max_blocks;
  bo.block_size = o.block_size;
  bo.n_threads = o.n_threads;
  bo.sample_ids = o.sample_ids;
  std::unique_ptr<Backend> backend;
  if (o.device && o.device->simulated()) backend = make_sim_backend(std::move(config), bo, *o.device);
  if (on_cuda) {
    auto b = load_cuda_plugin(nullptr)->make_backend(std::move(config), std::move(weights), bo, *o.device);
    if (!b) return make_error("engine: " + b.error().message);
    backend = std::move(b).value();
  }
  if (!backend) {
    auto b = make_cpu_backend(std::move(config), std::move(weights), bo);
    if (!b) return make_error("engine: " + b.error().message);
    backend = std::move(b).value();
  }
  return std::unique_ptr<Engine>(new Engine(std::move(backend), std::move(kv).value(), block_bytes, (int32_t)max_blocks));
}

Status Engine::resize_kv(size_t kv_bytes) {
  const size_t n = kv_bytes / kv_block_bytes_;
  if (n < 1)
    return make_error("engine: a KV pool of " + std::to_string(kv_bytes) + " bytes holds no block of " +
                      std::to_string(kv_block_bytes_) + " bytes");
  if (n > (size_t)max_kv_blocks_)
    return make_error("engine: a KV pool of " + std::to_string(kv_bytes) + " bytes makes " + std::to_string(n) +
                      " blocks, more than the " + std::to_string(max_kv_blocks_) +
                      " reserved (EngineOptions::kv_bytes_max)");
  const int32_t blocks = (int32_t)n, old = kv_.n_blocks();
  if (blocks > old) {
    // The backend first: the cache must never name a block the backend lacks.
    FLASHTTS_TRY(backend_->resize_kv(blocks));
    kv_.resize(blocks);
    return Status::success();
  }
  if (blocks == old) return Status::success();
  int32_t pinned = 0;
  for (const auto& [seq, s] : seqs_) pinned += kv_.holds_block_from(seq, blocks);
  if (pinned > 0)
    return make_error("engine: cannot shrink the KV pool to " + std::to_string(blocks) + " blocks: " +
                      std::to_string(pinned) + (pinned == 1 ? " sequence holds" : " sequences hold") +
                      " blocks at or above block " + std::to_string(blocks) +
                      "; release or preempt them first");
  // A backend that cannot resize refuses even its current size: ask before
  // the cache evicts anything.
  FLASHTTS_TRY(backend_->resize_kv(old));
  // The cache first, so that it never names a block the backend lacks.
  kv_.resize(blocks);
  return backend_->resize_kv(blocks);
}

Engine::Sequence& Engine::get(int64_t seq) {
  auto it = seqs_.find(seq);
  assert(it != seqs_.end());
  return it->second;
}

const Engine::Sequence& Engine::get(int64_t seq) const {
  auto it = seqs_.find(seq);
  assert(it != seqs_.end());
  return it->second;
}

Expected<int32_t> Engine::add_sequence(int64_t seq, std::span<const int32_t> tokens, bool reuse_prefix) {
  assert(!has(seq));
  if (tokens.empty()) return make_error("engine: a sequence needs at least one token");
  auto cached = kv_.add_sequence(seq, tokens, reuse_prefix);
  if (!cached) return cached.error();
  seqs_[seq].tokens.assign(tokens.begin(), tokens.end());
  return *cached;
}

void Engine::append(int64_t seq, std::span<const int32_t> tokens) {
  auto& s = get(seq);
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
}

Status Engine::fork(int64_t parent, int64_t child) {
  assert(has(parent) && !has(child));
  auto copies = kv_.fork(parent, child);
  if (!copies) return copies.error();
  backend_->copy_blocks(*copies);
  seqs_[child] = get(parent);
  return Status::success();
}

void Engine::truncate(int64_t seq, int32_t n) {
  auto& s = get(seq);
  assert(n >= 0 && n <= (int32_t)s.tokens.size());
  s.tokens.resize(n);
  if (kv_.n_tokens(seq) > n) kv_.truncate(seq, n);
}

void Engine::release(int64_t seq, bool drop) {
  if (!has(seq)) return;
  kv_.free_sequence(seq, drop);
  seqs_.erase(seq);
}

std::span<const int32_t> Engine::tokens(int64_t seq) const { return get(seq).tokens; }
int32_t Engine::n_computed(int64_t seq) const { return kv_.n_tokens(seq); }
int32_t Engine::n_pending(int64_t seq) const { return (int32_t)get(seq).tokens.size() - kv_.n_tokens(seq); }

Status Engine::run(std::span<const RunItem> items, OutputKind kind, RunResult* r) {
  *r = RunResult{};
  const int32_t step_tag = config().prm.step_tag_ids.empty() ? -1 : config().prm.step_tag_ids.back();

  // Reserve KV for every item first; the ones that cannot be served starve.
  struct Planned {
    size_t item;
    int32_t n_past, n_new;
    std::vector<int32_t> rows;
  };
  std::vector<Planned> plan;
  plan.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const RunItem& it = items[i];
    const Sequence& s = get(it.seq);
    int32_t n_past = kv_.n_tokens(it.seq);
    int32_t n_new = (int32_t)s.tokens.size() - n_past;
    if (it.max_tokens > 0) n_new = std::min(n_new, it.max_tokens);
    if (n_new <= 0) continue;
    if (!kv_.reserve(it.seq, n_new)) {
      r->starved.push_back(it.seq);
      continue;
    }
    Planned p{i, n_past, n_new, {}};
    if (it.rows == RowSelect::Last) {
      p.rows.push_back(n_new - 1);
    } else if (it.rows == RowSelect::StepTags) {
      if (step_tag < 0) return make_error("engine: StepTags rows asked of a model with no step tag");
      for (int32_t k = 0; k < n_new; ++k)
        if (s.tokens[n_past + k] == step_tag) p.rows.push_back(k);
    } else if (it.rows == RowSelect::Explicit) {
      for (int32_t pos : it.positions)
        if (pos >= n_past && pos < n_past + n_new) p.rows.push_back(pos - n_past);
      std::sort(p.rows.begin(), p.rows.end());
      p.rows.erase(std::unique(p.rows.begin(), p.rows.end()), p.rows.end());
    }
    plan.push_back(std::move(p));
  }

  std::vector<BatchEntry> batch;
  batch.reserve(plan.size());
  r->item_first_row.assign(items.size(), 0);
  r->item_n_rows.assign(items.size(), 0);
  int32_t row = 0;
  for (const Planned& p : plan) {
    const RunItem& it = items[p.item];
    BatchEntry e;
    e.tokens = std::span<const int32_t>(get(it.seq).tokens).subspan(p.n_past, p.n_new);
    e.n_past = p.n_past;
    e.block_table = kv_.block_table(it.seq);
    e.out_rows = p.rows;
    batch.push_back(e);
    r->item_first_row[p.item] = row;
    r->item_n_rows[p.item] = (int32_t)p.rows.size();
    for (int32_t k : p.rows) r->row_position.push_back(p.n_past + k);
    row += (int32_t)p.rows.size();
  }
  for (size_t i = 0; i < items.size(); ++i)
    if (r->item_n_rows[i] == 0) r->item_first_row[i] = row;
  if (batch.empty()) {
    r->out.width = kind == OutputKind::Logits ? config().vocab_size
                   : kind == OutputKind::Hidden ? config().hidden_size : 1;
    return Status::success();
  }

  if (kind == OutputKind::Tokens) {
    for (size_t b = 0; b < batch.size(); ++b) {
      batch[b].sampling = items[plan[b].item].sampling;
      batch[b].sample_id = items[plan[b].item].sample_id;
    }
  }
  if (kind == OutputKind::Tokens && !backend_->samples_tokens()) {
    ForwardOutput logits;
    FLASHTTS_TRY(backend_->forward(batch, OutputKind::Logits, &logits));
    r->out.n_rows = logits.n_rows;
    r->out.width = 1;
    r->out.data.resize(logits.n_rows);
    int32_t k = 0;
    for (const BatchEntry& e : batch)
      for (size_t j = 0; j < e.out_rows.size(); ++j, ++k)
        r->out.data[k] = (float)sample_token(logits.row(k), e.sampling, e.sample_id,
                                             (uint64_t)r->row_position[k] + 1);
  } else {
    FLASHTTS_TRY(backend_->forward(batch, kind, &r->out));
  }
  r->shape = pass_shape_of(config(), batch, kind);
  for (const Planned& p : plan) {
    const RunItem& it = items[p.item];
    kv_.append(it.seq, std::span<const int32_t>(get(it.seq).tokens).subspan(p.n_past, p.n_new));
  }
  return Status::success();
}

}  // namespace flashtts
