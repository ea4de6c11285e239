// The engine through its public calls: paged KV, forks, prefix reuse, chunked
// prefill and mixed batches must all give the logits of a plain from-scratch
// computation of the same tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "gpu/engine.h"
#include "gpu/generate.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using test::randn;

// A small random Qwen2-shaped model held in memory: GQA, q/k/v bias, untied.
std::pair<ModelConfig, ModelWeights> tiny_model(uint32_t seed, PrmKind prm = PrmKind::None) {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 97;
  c.max_position = 512;
  c.rope_theta = 10000.0f;
  c.qkv_bias = true;
  c.prm.kind = prm;
  std::mt19937 rng(seed);
  const size_t h = c.hidden_size, f = c.intermediate_size, q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  ModelWeights w;
  w.tok_embd = randn(rng, c.vocab_size * h, 0.5f);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm = randn(rng, h, 0.1f, 1.0f);
    L.wq = randn(rng, q * h, 0.2f);
    L.bq = randn(rng, q, 0.1f);
    L.wk = randn(rng, kv * h, 0.2f);
    L.bk = randn(rng, kv, 0.1f);
    L.wv = randn(rng, kv * h, 0.2f);
    L.bv = randn(rng, kv, 0.1f);
    L.wo = randn(rng, h * q, 0.2f);
    L.ffn_norm = randn(rng, h, 0.1f, 1.0f);
    L.w_gate = randn(rng, f * h, 0.2f);
    L.w_up = randn(rng, f * h, 0.2f);
    L.w_down = randn(rng, h * f, 0.2f);
    w.layers.push_back(std::move(L));
  }
  w.final_norm = randn(rng, h, 0.1f, 1.0f);
  w.lm_head = randn(rng, c.vocab_size * h, 0.2f);
  if (prm == PrmKind::Classifier) {
    w.prm.w1 = randn(rng, h * h, 0.2f);
    w.prm.b1 = randn(rng, h, 0.1f);
    w.prm.w2 = randn(rng, 2 * h, 0.2f);
    w.prm.b2 = randn(rng, 2, 0.1f);
    c.prm.step_tag_ids = {5};
  }
  return {c, w};
}

std::unique_ptr<Engine> make_engine(uint32_t seed, size_t kv_bytes = 4 << 20, int32_t block_size = 16,
                                    PrmKind prm = PrmKind::None) {
  auto [c, w] = tiny_model(seed, prm);
  EngineOptions o;
  o.kv_bytes = kv_bytes;
  o.block_size = block_size;
  o.n_threads = 2;
  auto e = Engine::create(c, w, o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  return std::move(e).value();
}

std::vector<int32_t> tokens(uint32_t seed, size_t n, int32_t vocab = 97) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)(rng() % vocab);
  return t;
}

// Logits of every position of `toks`, computed in one prefill on a fresh engine.
std::vector<std::vector<float>> reference_logits(uint32_t model_seed, const std::vector<int32_t>& toks) {
  auto e = make_engine(model_seed);
  EXPECT_TRUE(e->add_sequence(1, toks, false).ok());
  RunItem it{1, RowSelect::Explicit, 0, {}};
  for (int32_t p = 0; p < (int32_t)toks.size(); ++p) it.positions.push_back(p);
  RunResult r;
  EXPECT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
  std::vector<std::vector<float>> out;
  for (int32_t i = 0; i < r.out.n_rows; ++i) out.emplace_back(r.out.row(i).begin(), r.out.row(i).end());
  return out;
}

// Exact by default: the CPU backend is batch-invariant (gpu/cpu/matmul.h), so
// a row's logits are the same bits whatever shared its pass.
void expect_close(std::span<const float> a, std::span<const float> b, float rel = 0.0f) {
  ASSERT_EQ(a.size(), b.size());
  float scale = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(b[i]));
    err = std::max(err, std::fabs(a[i] - b[i]));
  }
  EXPECT_LE(err, rel * std::max(scale, 1.0f)) << "max abs error " << err << " at scale " << scale;
}

TEST(Engine, DecodingTokenByTokenGivesThePrefillLogits) {
  auto toks = tokens(1, 40);
  auto ref = reference_logits(7, toks);
  auto e = make_engine(7);
  ASSERT_TRUE(e->add_sequence(1, std::span(toks).first(1)).ok());
  RunResult r;
  for (size_t p = 0; p < toks.size(); ++p) {
    if (p > 0) e->append(1, std::span(toks).subspan(p, 1));
    RunItem it{1, RowSelect::Last, 0, {}};
    ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
    ASSERT_EQ(r.out.n_rows, 1);
    expect_close(r.out.row(0), ref[p]);
  }
}

TEST(Engine, ChunkedPrefillGivesTheSameLogitsAsOneChunk) {
  auto toks = tokens(2, 53);
  auto ref = reference_logits(7, toks);
  auto e = make_engine(7, 4 << 20, 8);
  ASSERT_TRUE(e->add_sequence(1, toks).ok());
  RunResult r;
  for (int32_t done = 0; done < 53;) {
    RunItem it{1, RowSelect::Last, 11, {}};
    ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
    done = e->n_computed(1);
    expect_close(r.out.row(0), ref[done - 1]);
  }
}

TEST(Engine, AForkedSequenceMatchesTheSameTokensComputedFromScratch) {
  auto prefix = tokens(3, 37);  // two full blocks and a partial one
  auto e = make_engine(7);
  ASSERT_TRUE(e->add_sequence(1, prefix).ok());
  RunItem it{1, RowSelect::Last, 0, {}};
  RunResult r;
  ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
  ASSERT_TRUE(e->fork(1, 2).ok());
  // Parent and child continue differently; each must equal its own from-scratch run.
  std::vector<int32_t> tail_a = tokens(4, 20), tail_b = tokens(5, 20);
  e->append(1, tail_a);
  e->append(2, tail_b);
  std::vector<RunItem> items = {{1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}};
  ASSERT_TRUE(e->run(items, OutputKind::Logits, &r).ok());
  auto full_a = prefix, full_b = prefix;
  full_a.insert(full_a.end(), tail_a.begin(), tail_a.end());
  full_b.insert(full_b.end(), tail_b.begin(), tail_b.end());
  expect_close(r.out.row(0), reference_logits(7, full_a).back());
  expect_close(r.out.row(1), reference_logits(7, full_b).back());
  // Full blocks were shared, not copied.
  EXPECT_EQ(e->kv().block_table(1)[0], e->kv().block_table(2)[0]);
  EXPECT_EQ(e->kv().block_table(1)[1], e->kv().block_table(2)[1]);
}

TEST(Engine, APrefixCacheHitGivesTheSameLogitsAsComputingEverything) {
  auto toks = tokens(6, 50);
  auto e = make_engine(7);
  ASSERT_TRUE(e->add_sequence(1, toks).ok());
  RunItem it{1, RowSelect::Last, 0, {}};
  RunResult first;
  ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &first).ok());
  e->release(1);
  auto cached = e->add_sequence(2, toks);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(*cached, 48);  // three full blocks reused, the last token recomputed
  it.seq = 2;
  RunResult second;
  ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &second).ok());
  expect_close(second.out.row(0), first.out.row(0));
  EXPECT_GT(e->kv_stats().hit_blocks, 0);
}

TEST(Engine, AMixedBatchOfPrefillAndDecodeMatchesEachSequenceAlone) {
  auto a = tokens(8, 30), b = tokens(9, 21), c = tokens(10, 5);
  auto e = make_engine(7);
  ASSERT_TRUE(e->add_sequence(2, std::span(b).first(20)).ok());
  RunItem warm{2, RowSelect::None, 0, {}};
  RunResult r;
  ASSERT_TRUE(e->run(std::span<const RunItem>(&warm, 1), OutputKind::Logits, &r).ok());
  e->append(2, std::span(b).subspan(20, 1));                 // decode one token
  ASSERT_TRUE(e->add_sequence(1, a).ok());                  // prefill 30
  ASSERT_TRUE(e->add_sequence(3, c).ok());                  // prefill 5
  std::vector<RunItem> items = {{1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}, {3, RowSelect::Last, 0, {}}};
  ASSERT_TRUE(e->run(items, OutputKind::Logits, &r).ok());
  ASSERT_EQ(r.out.n_rows, 3);
  expect_close(r.out.row(0), reference_logits(7, a).back());
  expect_close(r.out.row(1), reference_logits(7, b).back());
  expect_close(r.out.row(2), reference_logits(7, c).back());
}

TEST(Engine, RunningOutOfBlocksStarvesASequenceInsteadOfCrashing) {
  // 2 layers * 2 kv heads * 8 dims * 2 (K,V) * 4 bytes = 256 B per token; 4 blocks of 16.
  auto e = make_engine(7, 256 * 16 * 4);
  ASSERT_TRUE(e->add_sequence(1, tokens(11, 40)).ok());  // 3 blocks
  auto too_big = e->add_sequence(2, tokens(12, 40));
  EXPECT_FALSE(too_big.ok());
  EXPECT_FALSE(e->has(2));
  RunItem it{1, RowSelect::Last, 0, {}};
  RunResult r;
  ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
  e->append(1, tokens(13, 30));  // needs 5 blocks in all
  ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
  ASSERT_EQ(r.starved.size(), 1u);
  EXPECT_EQ(r.starved[0], 1);
  EXPECT_EQ(e->n_computed(1), 40);  // nothing was half-done
}

TEST(Engine, BadInputIsAnErrorNotACrash) {
  auto e = make_engine(7);
  std::vector<int32_t> bad = {1, 2, 500};
  ASSERT_TRUE(e->add_sequence(1, bad).ok());
  RunItem it{1, RowSelect::Last, 0, {}};
  RunResult r;
  Status st = e->run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("500"), std::string::npos);
  Status not_prm = e->run(std::span<const RunItem>(&it, 1), OutputKind::Score, &r);
  EXPECT_FALSE(not_prm.ok());
}

TEST(Engine, ScoresComeFromTheStepTagPositions) {
  auto e = make_engine(7, 4 << 20, 16, PrmKind::Classifier);
  std::vector<int32_t> toks = {3, 9, 5, 11, 12, 5, 40, 41, 42, 5};
  auto scores = score_positions(*e, toks, std::vector<int32_t>{2, 5, 9});
  ASSERT_TRUE(scores.ok()) << scores.error().message;
  ASSERT_EQ(scores->size(), 3u);
  for (float s : *scores) {
    EXPECT_GT(s, 0.0f);
    EXPECT_LT(s, 1.0f);
  }
  // The same three positions through RowSelect::StepTags (tag id 5).
  ASSERT_TRUE(e->add_sequence(9, toks, false).ok());
  RunItem it{9, RowSelect::StepTags, 0, {}};
  RunResult r;
  ASSERT_TRUE(e->run(std::span<const RunItem>(&it, 1), OutputKind::Score, &r).ok());
  ASSERT_EQ(r.out.n_rows, 3);
  EXPECT_EQ(r.row_position, (std::vector<int32_t>{2, 5, 9}));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(r.out.data[i], (*scores)[i], 1e-6);
}

TEST(Engine, GenerationIsIndependentOfWhatElseIsInTheBatch) {
  auto e = make_engine(7);
  GenerateRequest q;
  q.prompt = tokens(14, 12);
  q.sampling = {0.9f, 0.95f, 0, 42};
  q.max_tokens = 24;
  q.seq_id = 3;
  auto alone = generate(*e, std::span<const GenerateRequest>(&q, 1));
  ASSERT_TRUE(alone.ok());
  std::vector<GenerateRequest> batch(4, q);
  for (int i = 0; i < 4; ++i) {
    if (i != 2) {
      batch[i].prompt = tokens(20 + i, 5 + 7 * i);
      batch[i].seq_id = 100 + i;
    }
  }
  auto together = generate(*e, batch);
  ASSERT_TRUE(together.ok());
  EXPECT_EQ((*together)[2].tokens, (*alone)[0].tokens);
}

// --- elastic KV pools ---------------------------------------------------------

// tiny_model's KV per block of 16 tokens: 2 layers * 2 KV heads * 8 dims * 2 (K, V) * 4 bytes * 16.
constexpr size_t kTinyBlockBytes = 256 * 16;

// An engine of `blocks` KV blocks that resize_kv() may grow to `max_blocks`.
std::unique_ptr<Engine> make_elastic_engine(uint32_t seed, int32_t blocks, int32_t max_blocks) {
  auto [c, w] = tiny_model(seed);
  EngineOptions o;
  o.kv_bytes = blocks * kTinyBlockBytes;
  o.kv_bytes_max = max_blocks * kTinyBlockBytes;
  o.n_threads = 2;
  auto e = Engine::create(c, w, o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  return std::move(e).value();
}

// Appends `toks` to `seq` and computes its pending tokens: the next-token
// logits, or nothing when the pass starved it.
std::vector<float> next_logits(Engine& e, int64_t seq, std::span<const int32_t> toks = {}) {
  e.append(seq, toks);
  RunItem it{seq, RowSelect::Last, 0, {}};
  RunResult r;
  Status st = e.run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r);
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.message());
  if (r.out.n_rows == 0) return {};
  return {r.out.row(0).begin(), r.out.row(0).end()};
}

void compute_all(Engine& e, int64_t seq) {
  RunItem it{seq, RowSelect::None, 0, {}};
  RunResult r;
  ASSERT_TRUE(e.run(std::span<const RunItem>(&it, 1), OutputKind::Logits, &r).ok());
  ASSERT_TRUE(r.starved.empty());
}

TEST(Engine, ASequenceContinuedAcrossAGrowAndAShrinkKeepsTheLogitsOfAnEngineThatNeverResized) {
  auto e = make_elastic_engine(7, 8, 32);
  auto ref = make_engine(7);
  EXPECT_EQ(e->max_kv_blocks(), 32);
  EXPECT_EQ(e->kv_block_bytes(), kTinyBlockBytes);
  // Decodes `n` tokens of sequence 1 on both engines; the logits must be the same bits.
  auto decode_both = [&](uint32_t seed, int n) {
    const auto toks = tokens(seed, n);
    for (int i = 0; i < n; ++i) {
      auto got = next_logits(*e, 1, std::span(toks).subspan(i, 1));
      ASSERT_FALSE(got.empty()) << "token " << i << " starved";
      ASSERT_EQ(got, next_logits(*ref, 1, std::span(toks).subspan(i, 1))) << "token " << i;
    }
  };

  const auto a = tokens(30, 20);
  ASSERT_TRUE(e->add_sequence(1, a).ok());
  ASSERT_TRUE(ref->add_sequence(1, a).ok());
  ASSERT_EQ(next_logits(*e, 1), next_logits(*ref, 1));  // blocks 0, 1
  ASSERT_TRUE(e->add_sequence(2, tokens(31, 96)).ok());  // blocks 2..7: the pool is full
  compute_all(*e, 2);
  decode_both(32, 12);  // 32 tokens: block 1 is full

  // The next token needs a block: starved, then served once the pool grows.
  const std::vector<int32_t> one = {5};
  EXPECT_TRUE(next_logits(*e, 1, one).empty());
  ASSERT_TRUE(e->resize_kv(16 * kTinyBlockBytes).ok());
  EXPECT_EQ(e->kv_stats().n_blocks, 16);
  EXPECT_EQ(next_logits(*e, 1), next_logits(*ref, 1, one));
  EXPECT_EQ(e->kv().block_table(1).back(), 8);  // the lowest of the grown blocks
  decode_both(33, 40);  // 73 tokens: blocks 0, 1, 8, 9, 10

  ASSERT_TRUE(e->add_sequence(3, tokens(34, 40)).ok());  // blocks 11, 12, 13
  compute_all(*e, 3);
  e->release(3);  // 11, 12 stay cached
  e->release(2);  // 2..7 stay cached
  ASSERT_FALSE(e->resize_kv(10 * kTinyBlockBytes).ok());  // sequence 1 holds block 10
  ASSERT_TRUE(e->resize_kv(11 * kTinyBlockBytes).ok());
  KvCacheStats st = e->kv_stats();
  EXPECT_EQ(st.n_blocks, 11);
  EXPECT_EQ(st.evictions, 2);
  EXPECT_EQ(st.cached_blocks, 6);
  // Sequence 1 goes on in its blocks and then in sequence 2's evicted ones.
  decode_both(35, 40);
  EXPECT_EQ(e->kv().block_table(1).size(), 8u);
  EXPECT_FALSE(e->holds_block_from(1, 11));
}

TEST(Engine, AShrinkBelowALiveSequencesBlocksIsRefusedAndChangesNothing) {
  auto e = make_elastic_engine(7, 4, 8);
  for (size_t bytes : {size_t(0), kTinyBlockBytes - 1, 9 * kTinyBlockBytes}) {
    Status st = e->resize_kv(bytes);
    EXPECT_FALSE(st.ok()) << bytes;
  }
  ASSERT_TRUE(e->resize_kv(8 * kTinyBlockBytes + 100).ok());  // whole blocks: 8
  EXPECT_EQ(e->kv().n_blocks(), 8);

  ASSERT_TRUE(e->add_sequence(1, tokens(40, 40)).ok());  // blocks 0, 1, 2
  ASSERT_TRUE(e->add_sequence(2, tokens(41, 40)).ok());  // blocks 3, 4, 5
  compute_all(*e, 1);
  compute_all(*e, 2);
  EXPECT_TRUE(e->holds_block_from(2, 5));
  EXPECT_FALSE(e->holds_block_from(1, 3));
  const KvCacheStats before = e->kv_stats();
  const std::vector<int32_t> t1(e->kv().block_table(1).begin(), e->kv().block_table(1).end());
  Status one = e->resize_kv(5 * kTinyBlockBytes);
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.message().find("1 sequence holds"), std::string::npos) << one.message();
  Status two = e->resize_kv(2 * kTinyBlockBytes);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.message().find("2 sequences hold"), std::string::npos) << two.message();
  const KvCacheStats after = e->kv_stats();
  EXPECT_EQ(after.n_blocks, before.n_blocks);
  EXPECT_EQ(after.free_blocks, before.free_blocks);
  EXPECT_EQ(after.cached_blocks, before.cached_blocks);
  EXPECT_EQ(after.evictions, before.evictions);
  EXPECT_EQ(std::vector<int32_t>(e->kv().block_table(1).begin(), e->kv().block_table(1).end()), t1);

  e->release(2);
  ASSERT_TRUE(e->resize_kv(3 * kTinyBlockBytes).ok());
  EXPECT_EQ(e->kv().n_blocks(), 3);
  EXPECT_TRUE(e->kv().check_invariants().ok());
}

TEST(Engine, AMaximumBelowTheBudgetIsAnError) {
  auto [c, w] = tiny_model(7);
  EngineOptions o;
  o.kv_bytes = 8 * kTinyBlockBytes;
  o.kv_bytes_max = 4 * kTinyBlockBytes;
  auto e = Engine::create(c, w, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("kv_bytes_max"), std::string::npos) << e.error().message;
  o.kv_bytes_max = 0;  // = kv_bytes: a pool that can only shrink
  auto fixed = Engine::create(c, w, o);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ((*fixed)->max_kv_blocks(), 8);
  EXPECT_FALSE((*fixed)->resize_kv(9 * kTinyBlockBytes).ok());
  EXPECT_TRUE((*fixed)->resize_kv(2 * kTinyBlockBytes).ok());
}

TEST(CpuBackend, ForwardAcceptsTheBlockIdsOfTheCurrentPoolSizeOnly) {
  auto [c, w] = tiny_model(7);
  BackendOptions bo;
  bo.n_blocks = 4;
  bo.max_blocks = 8;
  bo.n_threads = 1;
  auto be = make_cpu_backend(c, w, bo);
  ASSERT_TRUE(be.ok()) << be.error().message;
  const std::vector<int32_t> toks = {1, 2, 3}, rows = {2};
  std::vector<int32_t> table = {5};
  BatchEntry entry;
  entry.tokens = toks, entry.block_table = table, entry.out_rows = rows;
  ForwardOutput out;
  Status st = (*be)->forward(std::span(&entry, 1), OutputKind::Logits, &out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("block id 5 out of range"), std::string::npos) << st.message();
  ASSERT_TRUE((*be)->resize_kv(8).ok());
  ASSERT_TRUE((*be)->forward(std::span(&entry, 1), OutputKind::Logits, &out).ok());
  ASSERT_TRUE((*be)->resize_kv(5).ok());
  EXPECT_FALSE((*be)->forward(std::span(&entry, 1), OutputKind::Logits, &out).ok());
  EXPECT_FALSE((*be)->resize_kv(9).ok());
  EXPECT_FALSE((*be)->resize_kv(0).ok());
  bo.max_blocks = 3;  // below n_blocks
  EXPECT_FALSE(make_cpu_backend(c, w, bo).ok());
}

}  // namespace
}  // namespace flashtts
