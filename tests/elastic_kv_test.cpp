// Elastic KV pools below the engine's bookkeeping: the host arena the CPU
// backend keeps its pool in (released pages leave memory and read back as
// zeros, the rest stays put), and the simulated device's pool, whose size is
// only the bound forward() checks block ids against. The pool's and the CPU
// engine's side are in kv_cache_test.cpp and engine_test.cpp.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gpu/cpu/host_arena.h"
#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "gpu/sim/sim_backend.h"

namespace flashtts {
namespace {

size_t page_size() { return (size_t)::sysconf(_SC_PAGESIZE); }

// Residency of each page of the arena, as mincore() reports it.
std::vector<bool> resident_pages(const HostArena& a) {
  std::vector<unsigned char> v((a.size() + page_size() - 1) / page_size());
  EXPECT_EQ(::mincore(a.data(), a.size(), v.data()), 0) << std::strerror(errno);
  std::vector<bool> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = v[i] & 1;
  return r;
}

TEST(HostArena, UntouchedPagesTakeNoMemory) {
  auto a = HostArena::create(64 * page_size());
  ASSERT_TRUE(a.ok()) << a.error().message;
  for (bool r : resident_pages(*a)) EXPECT_FALSE(r);
  static_cast<char*>(a->data())[5 * page_size()] = 1;
  auto r = resident_pages(*a);
  EXPECT_TRUE(r[5]);
  EXPECT_FALSE(r[4]);
  EXPECT_FALSE(r[6]);
}

TEST(HostArena, ReleaseGivesBackTheWholePagesInsideTheRangeAndNothingElse) {
  const size_t page = page_size(), n = 16 * page;
  auto a = HostArena::create(n);
  ASSERT_TRUE(a.ok()) << a.error().message;
  unsigned char* p = static_cast<unsigned char*>(a->data());
  for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(1 + i % 251);
  for (bool r : resident_pages(*a)) ASSERT_TRUE(r);

  // From inside page 3 to inside page 10: pages 4..9 go, 3 and 10 stay whole.
  a->release(3 * page + 100, 7 * page);
  auto r = resident_pages(*a);
  for (size_t k = 0; k < 16; ++k) EXPECT_EQ(r[k], k < 4 || k > 9) << "page " << k;
  for (size_t i = 0; i < n; ++i) {
    const size_t k = i / page;
    ASSERT_EQ(p[i], k >= 4 && k <= 9 ? 0 : (unsigned char)(1 + i % 251)) << "byte " << i;
  }
  p[6 * page] = 7;  // released pages are writable again
  EXPECT_EQ(p[6 * page], 7);
  // A range holding no whole page changes nothing.
  a->release(0, page - 1);
  EXPECT_EQ(p[0], 1);
}

TEST(HostArena, MovesOwnership) {
  auto a = HostArena::create(4 * page_size());
  ASSERT_TRUE(a.ok());
  void* data = a->data();
  HostArena b = std::move(a).value();
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.size(), 4 * page_size());
  HostArena c;
  c = std::move(b);
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(b.data(), nullptr);  // a moved-from arena owns nothing
}

// A small model in a simulated card's sizes.
ModelConfig small_config() {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = 256, c.intermediate_size = 512, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 2;
  c.head_dim = 64, c.vocab_size = 1000, c.max_position = 4096, c.tie_embeddings = true;
  return c;
}

TEST(SimBackend, ForwardAcceptsTheBlockIdsOfTheCurrentPoolSizeOnly) {
  auto dev = DeviceContext::open("sim:rtx4090");
  ASSERT_TRUE(dev.ok()) << dev.error().message;
  BackendOptions bo;
  bo.n_blocks = 4;
  bo.max_blocks = 8;
  auto be = make_sim_backend(small_config(), bo, **dev);
  const std::vector<int32_t> toks = {1, 2, 3}, rows = {2}, table = {5};
  BatchEntry entry;
  entry.tokens = toks, entry.block_table = table, entry.out_rows = rows;
  ForwardOutput out;
  Status st = be->forward(std::span(&entry, 1), OutputKind::Tokens, &out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("block id 5 out of range"), std::string::npos) << st.message();
  ASSERT_TRUE(be->resize_kv(8).ok());
  EXPECT_TRUE(be->forward(std::span(&entry, 1), OutputKind::Tokens, &out).ok());
  ASSERT_TRUE(be->resize_kv(5).ok());
  EXPECT_FALSE(be->forward(std::span(&entry, 1), OutputKind::Tokens, &out).ok());
  EXPECT_FALSE(be->resize_kv(9).ok());
  EXPECT_FALSE(be->resize_kv(0).ok());
}

TEST(SimBackend, AnEngineOnASimulatedCardGrowsAndShrinksItsPool) {
  auto dev = DeviceContext::open("sim:rtx4090");
  ASSERT_TRUE(dev.ok()) << dev.error().message;
  const ModelConfig c = small_config();
  const size_t block_bytes = 16 * kv_bytes_per_token_on(c, dev->get());
  EngineOptions eo;
  eo.device = *dev;
  eo.kv_bytes = 4 * block_bytes;
  eo.kv_bytes_max = 12 * block_bytes;
  auto created = Engine::create(c, ModelWeights{}, eo);
  ASSERT_TRUE(created.ok()) << created.error().message;
  Engine& e = **created;
  EXPECT_EQ(e.max_kv_blocks(), 12);
  const std::vector<int32_t> a(40, 3), b(80, 4);  // 3 and 5 blocks
  ASSERT_TRUE(e.add_sequence(1, a, false).ok());
  EXPECT_FALSE(e.add_sequence(2, b, false).ok());
  ASSERT_TRUE(e.resize_kv(12 * block_bytes).ok());
  ASSERT_TRUE(e.add_sequence(2, b, false).ok());  // blocks 3..7
  std::vector<RunItem> items{{1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}};
  RunResult r;
  ASSERT_TRUE(e.run(items, OutputKind::Tokens, &r).ok());
  EXPECT_TRUE(r.starved.empty());
  EXPECT_TRUE(e.holds_block_from(2, 7));
  EXPECT_FALSE(e.resize_kv(6 * block_bytes).ok());
  e.release(2);
  ASSERT_TRUE(e.resize_kv(3 * block_bytes).ok());
  EXPECT_EQ(e.kv_stats().n_blocks, 3);
  // Sequence 1 runs on in its blocks; the pool is full again.
  e.append(1, std::vector<int32_t>(8, 5));
  ASSERT_TRUE(e.run(std::span<const RunItem>(items.data(), 1), OutputKind::Tokens, &r).ok());
  EXPECT_TRUE(r.starved.empty());
  e.append(1, std::vector<int32_t>(1, 5));
  ASSERT_TRUE(e.run(std::span<const RunItem>(items.data(), 1), OutputKind::Tokens, &r).ok());
  EXPECT_EQ(r.starved.size(), 1u);
}

}  // namespace
}  // namespace flashtts
