// flashtts-convert-llama2c on the shared aidreams260K checkpoint: the folder
// loads, its config matches the header, and the weights match the raw file,
// with wq/wk rows permuted from interleaved-pair to rotate-half RoPE order.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gpu/model_loader.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;

struct Raw {
  int32_t hdr[7];
  std::vector<float> w;  // every float after the header
};

Raw read_raw(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  Raw r;
  f.read(reinterpret_cast<char*>(r.hdr), sizeof r.hdr);
  std::string rest(std::istreambuf_iterator<char>(f), {});
  r.w.resize(rest.size() / 4);
  std::memcpy(r.w.data(), rest.data(), r.w.size() * 4);
  return r;
}

fs::path checkpoint() { return test::testdata_dir() / "models/aidreams260K/aidreams260K.bin"; }

fs::path convert(const std::string& tag, std::string* out) {
  fs::path dir = test::scratch_dir(tag);
  std::string cmd = (test::binary_dir() / "flashtts-convert-llama2c").string() + " --checkpoint " +
                    checkpoint().string() + " --tokenizer " +
                    (test::testdata_dir() / "models/aidreams260K/tok512.bin").string() + " --out " + dir.string() +
                    " 2>&1";
  EXPECT_EQ(test::run_command(cmd, out), 0) << *out;
  return dir;
}

TEST(ConvertLlama2c, TheAidreamsCheckpointBecomesALoadableTiedLlamaFolder) {
  FLASHTTS_REQUIRE_TESTDATA();
  std::string out;
  fs::path dir = convert("l2c_cfg", &out);
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.n_layers, 4);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position, 128);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_TRUE(m->weights.lm_head.empty());

  std::ifstream vf(dir / "llama2c_vocab.json");
  auto vocab = nlohmann::json::parse(vf);
  ASSERT_EQ(vocab["pieces"].size(), 512u);
  EXPECT_EQ(vocab["pieces"][1], "\n<s>\n");
  EXPECT_EQ(vocab["scores"].size(), 512u);
}

TEST(ConvertLlama2c, WeightsMatchTheRawFileWithQAndKRowsPermutedPerHead) {
  FLASHTTS_REQUIRE_TESTDATA();
  std::string out;
  fs::path dir = convert("l2c_w", &out);
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const Raw r = read_raw(checkpoint());
  const int64_t dim = 64, hidden = 172, L = 4, nh = 4, hs = 16, V = 512;
  // Offsets in floats, llama2.c order.
  const int64_t emb = 0, rms_att = emb + V * dim, wq = rms_att + L * dim, wk = wq + L * dim * dim,
                wv = wk + L * dim * dim, wo = wv + L * dim * dim, rms_ffn = wo + L * dim * dim,
                w1 = rms_ffn + L * dim, w2 = w1 + L * hidden * dim, w3 = w2 + L * dim * hidden,
                rms_final = w3 + L * hidden * dim;
  const ModelWeights& w = m->weights;
  auto same = [&](const WeightMatrix& got, int64_t off, int64_t n, const char* what) {
    ASSERT_EQ(int64_t(got.size()), n) << what;
    ASSERT_EQ(got.dtype, DType::F32) << what;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got.at(size_t(i)), r.w[size_t(off + i)]) << what << " at " << i;
  };
  same(w.tok_embd, emb, V * dim, "token_embedding");
  same(w.final_norm, rms_final, dim, "rms_final");
  for (int64_t l : {0, 3}) {
    const LayerWeights& lw = w.layers[size_t(l)];
    same(lw.attn_norm, rms_att + l * dim, dim, "rms_att");
    same(lw.ffn_norm, rms_ffn + l * dim, dim, "rms_ffn");
    same(lw.wv, wv + l * dim * dim, dim * dim, "wv");
    same(lw.wo, wo + l * dim * dim, dim * dim, "wo");
    same(lw.w_gate, w1 + l * hidden * dim, hidden * dim, "w1 -> gate");
    same(lw.w_down, w2 + l * dim * hidden, dim * hidden, "w2 -> down");
    same(lw.w_up, w3 + l * hidden * dim, hidden * dim, "w3 -> up");
    // hf_row[h*hs + p*hs/2 + i] = l2c_row[h*hs + 2*i + p]
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t i = 0; i < hs / 2; ++i)
        for (int64_t p = 0; p < 2; ++p)
          for (int64_t j = 0; j < dim; ++j) {
            const size_t hf = size_t((h * hs + p * hs / 2 + i) * dim + j);
            const size_t l2c = size_t((h * hs + 2 * i + p) * dim + j);
            ASSERT_EQ(lw.wq.at(hf), r.w[size_t(wq + l * dim * dim) + l2c]) << "wq layer " << l;
            ASSERT_EQ(lw.wk.at(hf), r.w[size_t(wk + l * dim * dim) + l2c]) << "wk layer " << l;
          }
  }
  // The permutation really moves rows (row 1 of head 0 comes from row 2).
  EXPECT_NE(w.layers[0].wq.at(1 * dim), r.w[size_t(wq + 1 * dim)]);
}

TEST(ConvertLlama2c, ATruncatedCheckpointIsRefusedWithItsSizes) {
  FLASHTTS_REQUIRE_TESTDATA();
  fs::path dir = test::scratch_dir("l2c_trunc");
  std::string bytes;
  {
    std::ifstream f(checkpoint(), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  for (size_t cut : {size_t(0), size_t(27), size_t(28), bytes.size() / 2, bytes.size() - 4}) {
    {
      std::ofstream f(dir / "cut.bin", std::ios::binary);
      f << bytes.substr(0, cut);
    }
    std::string out;
    std::string cmd = (test::binary_dir() / "flashtts-convert-llama2c").string() + " --checkpoint " +
                      (dir / "cut.bin").string() + " --out " + (dir / "out").string() + " 2>&1";
    EXPECT_EQ(test::run_command(cmd, &out), 1) << cut << ": " << out;
    EXPECT_NE(out.find("cut.bin"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace flashtts
