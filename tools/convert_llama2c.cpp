// flashtts-convert-llama2c: converts a llama2.c legacy (v0) checkpoint into a
// Hugging Face LlamaForCausalLM folder (float32).
//
// Checkpoint layout (llama2.c run.c):
//   7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
//              (negative = unshared classifier), seq_len
//   then float32, every matrix (out, in) row-major:
//   token_embedding (V, dim)  rms_att (L, dim)  wq (L, dim, dim)
//   wk (L, kv_dim, dim)  wv (L, kv_dim, dim)  wo (L, dim, dim)  rms_ffn (L, dim)
//   w1 (L, hidden, dim)  w2 (L, dim, hidden)  w3 (L, hidden, dim)  rms_final (dim)
//   freq_cis_real (seq_len, hs/2)  freq_cis_imag (seq_len, hs/2)  [wcls (V, dim)]
// with kv_dim = dim * n_kv_heads / n_heads, hs = dim / n_heads.
//
// llama2.c rotates interleaved pairs (x[2i], x[2i+1]); HF Llama rotates halves
// (x[i], x[i + hs/2]). Rows of wq and wk are therefore permuted within each
// head exactly like transformers' convert_llama_weights_to_hf.py `permute`:
//   hf_row[h*hs + p*hs/2 + i] = l2c_row[h*hs + 2*i + p]   (p in {0,1})
// w1 = gate_proj, w3 = up_proj, w2 = down_proj.
//
// The optional tokenizer.bin (int32 max_token_length; per token: float score,
// int32 len, bytes) is a SentencePiece-style vocabulary, not byte-level BPE:
// it is written as llama2c_vocab.json for reference only.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gpu/model_loader.h"
#include "gpu/safetensors.h"
#include "gpu/safetensors_writer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace flashtts;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "flashtts-convert-llama2c: %s\n", msg.c_str());
  return 1;
}

bool write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text << "\n";
  return bool(f);
}

// Permutes the rows of one (n_heads * hs, dim) matrix from interleaved-pair
// RoPE order to rotate-half order.
std::vector<float> permute_rope_rows(const float* w, int64_t n_heads, int64_t hs, int64_t dim) {
  std::vector<float> out(size_t(n_heads * hs * dim));
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < hs / 2; ++i)
      for (int64_t p = 0; p < 2; ++p)
        std::memcpy(&out[size_t((h * hs + p * (hs / 2) + i) * dim)], &w[(h * hs + 2 * i + p) * dim],
                    size_t(dim) * sizeof(float));
  return out;
}

Status convert_tokenizer(const fs::path& tok, int32_t vocab, const fs::path& out) {
  auto m = MappedFile::open(tok);
  if (!m.ok()) return m.error();
  const uint8_t* p = m->data();
  const size_t size = m->size();
  size_t pos = 0;
  auto read = [&](void* dst, size_t n) {
    if (size - pos < n) return false;
    std::memcpy(dst, p + pos, n);
    pos += n;
    return true;
  };
  int32_t max_len = 0;
  if (!read(&max_len, 4)) return make_error(tok.string() + ": truncated (no max_token_length)");
  json pieces = json::array(), scores = json::array();
  for (int32_t i = 0; i < vocab; ++i) {
    float score;
    int32_t len;
    if (!read(&score, 4) || !read(&len, 4) || len < 0 || size_t(len) > size - pos)
      return make_error(tok.string() + ": truncated at token " + std::to_string(i) + " of " + std::to_string(vocab));
    pieces.push_back(std::string(reinterpret_cast<const char*>(p + pos), size_t(len)));
    pos += size_t(len);
    scores.push_back(score);
  }
  json j;
  j["format"] = "llama2.c tokenizer.bin (SentencePiece-style; reference only, not used by flashtts)";
  j["max_token_length"] = max_len;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["pieces"] = pieces;  // id -> piece (invalid UTF-8 replaced by U+FFFD)
  j["scores"] = scores;
  if (!write_text(out, j.dump(1, ' ', false, json::error_handler_t::replace)))
    return make_error(out.string() + ": write failed");
  return Status::success();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Converts a llama2.c (v0) checkpoint to a Hugging Face LlamaForCausalLM folder",
               "flashtts-convert-llama2c"};
  std::string checkpoint, tokenizer, out;
  app.add_option("--checkpoint", checkpoint, "llama2.c model .bin")->required();
  app.add_option("--tokenizer", tokenizer, "llama2.c tokenizer.bin (written as llama2c_vocab.json)");
  app.add_option("--out", out, "Output folder (created)")->required();
  CLI11_PARSE(app, argc, argv);

  auto m = MappedFile::open(checkpoint);
  if (!m.ok()) return fail(m.error().message);
  if (m->size() < 28) return fail(checkpoint + ": truncated (no 28-byte header)");
  int32_t hdr[7];
  std::memcpy(hdr, m->data(), sizeof hdr);
  const int64_t dim = hdr[0], hidden = hdr[1], L = hdr[2], nh = hdr[3], nkv = hdr[4], seq = hdr[6];
  const bool shared = hdr[5] > 0;
  const int64_t V = shared ? hdr[5] : -int64_t(hdr[5]);
  if (dim <= 0 || hidden <= 0 || L <= 0 || nh <= 0 || nkv <= 0 || V <= 0 || seq <= 0 || dim % nh != 0 ||
      nh % nkv != 0 || (dim / nh) % 2 != 0 || dim > (1 << 20) || hidden > (1 << 22) || L > 4096 || V > (1 << 24) ||
      seq > (1 << 24))
    return fail(checkpoint + ": header (dim " + std::to_string(dim) + ", hidden_dim " + std::to_string(hidden) +
                ", n_layers " + std::to_string(L) + ", n_heads " + std::to_string(nh) + ", n_kv_heads " +
                std::to_string(nkv) + ", vocab_size " + std::to_string(hdr[5]) + ", seq_len " + std::to_string(seq) +
                ") is not a llama2.c v0 checkpoint");
  const int64_t hs = dim / nh, kv_dim = hs * nkv;

  // Offsets (in floats) of every block, in file order.
  int64_t at = 0;
  auto take = [&](int64_t n) {
    int64_t o = at;
    at += n;
    return o;
  };
  const int64_t o_emb = take(V * dim), o_rms_att = take(L * dim), o_wq = take(L * dim * dim),
                o_wk = take(L * kv_dim * dim), o_wv = take(L * kv_dim * dim), o_wo = take(L * dim * dim),
                o_rms_ffn = take(L * dim), o_w1 = take(L * hidden * dim), o_w2 = take(L * dim * hidden),
                o_w3 = take(L * hidden * dim), o_rms_final = take(dim);
  take(seq * hs / 2);  // freq_cis_real: unused, HF recomputes RoPE from rope_theta
  take(seq * hs / 2);  // freq_cis_imag
  const int64_t o_wcls = shared ? -1 : take(V * dim);
  const uint64_t need = 28 + uint64_t(at) * 4;
  if (m->size() != need)
    return fail(checkpoint + ": size is " + std::to_string(m->size()) + " bytes, the header implies " +
                std::to_string(need) + (m->size() < need ? " (truncated)" : " (not a v0 checkpoint?)"));
  // The weights start at byte 28: copy out rather than alias unaligned floats.
  auto block = [&](int64_t off, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), m->data() + 28 + off * 4, size_t(n) * 4);
    return v;
  };

  ModelConfig c;
  c.arch = Arch::Llama;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = int32_t(dim);
  c.intermediate_size = int32_t(hidden);
  c.n_layers = int32_t(L);
  c.n_heads = int32_t(nh);
  c.n_kv_heads = int32_t(nkv);
  c.head_dim = int32_t(hs);
  c.vocab_size = int32_t(V);
  c.max_position = int32_t(seq);
  c.tie_embeddings = shared;

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return fail("cannot create " + out + ": " + ec.message());
  const fs::path dir = out;

  json cfg;
  cfg["architectures"] = {"LlamaForCausalLM"};
  cfg["attention_bias"] = false;
  cfg["attention_dropout"] = 0.0;
  cfg["bos_token_id"] = 1;
  cfg["eos_token_id"] = 2;
  cfg["hidden_act"] = "silu";
  cfg["hidden_size"] = dim;
  cfg["initializer_range"] = 0.02;
  cfg["intermediate_size"] = hidden;
  cfg["max_position_embeddings"] = seq;
  cfg["mlp_bias"] = false;
  cfg["model_type"] = "llama";
  cfg["num_attention_heads"] = nh;
  cfg["num_hidden_layers"] = L;
  cfg["num_key_value_heads"] = nkv;
  cfg["pretraining_tp"] = 1;
  cfg["rms_norm_eps"] = 1e-05;
  cfg["rope_scaling"] = nullptr;
  cfg["rope_theta"] = 10000.0;
  cfg["tie_word_embeddings"] = shared;
  cfg["torch_dtype"] = "float32";
  cfg["transformers_version"] = "4.44.2";
  cfg["use_cache"] = true;
  cfg["vocab_size"] = V;
  if (!write_text(dir / "config.json", cfg.dump(2))) return fail("cannot write config.json");
  json gen = {{"bos_token_id", 1}, {"eos_token_id", 2}, {"transformers_version", "4.44.2"}};
  if (!write_text(dir / "generation_config.json", gen.dump(2))) return fail("cannot write generation_config.json");

  // One tensor at a time, in the loader's order.
  std::vector<TensorSlot> slots = model_tensor_slots(c, nullptr);
  std::vector<TensorSpec> specs;
  for (const auto& s : slots) specs.push_back({s.name, DType::F32, s.shape});
  auto w = SafetensorsWriter::create(dir / "model.safetensors", specs, {{"source", "llama2.c v0 checkpoint"}});
  if (!w.ok()) return fail(w.error().message);
  for (const auto& s : slots) {
    std::vector<float> v;
    const std::string& n = s.name;
    if (n == "model.embed_tokens.weight") {
      v = block(o_emb, V * dim);
    } else if (n == "model.norm.weight") {
      v = block(o_rms_final, dim);
    } else if (n == "lm_head.weight") {
      v = block(o_wcls, V * dim);
    } else {
      int64_t l = std::stoll(n.substr(std::strlen("model.layers.")));
      auto is = [&](const char* suffix) { return n.ends_with(suffix); };
      if (is("input_layernorm.weight")) v = block(o_rms_att + l * dim, dim);
      else if (is("post_attention_layernorm.weight")) v = block(o_rms_ffn + l * dim, dim);
      else if (is("q_proj.weight")) v = permute_rope_rows(block(o_wq + l * dim * dim, dim * dim).data(), nh, hs, dim);
      else if (is("k_proj.weight"))
        v = permute_rope_rows(block(o_wk + l * kv_dim * dim, kv_dim * dim).data(), nkv, hs, dim);
      else if (is("v_proj.weight")) v = block(o_wv + l * kv_dim * dim, kv_dim * dim);
      else if (is("o_proj.weight")) v = block(o_wo + l * dim * dim, dim * dim);
      else if (is("gate_proj.weight")) v = block(o_w1 + l * hidden * dim, hidden * dim);
      else if (is("down_proj.weight")) v = block(o_w2 + l * dim * hidden, dim * hidden);
      else if (is("up_proj.weight")) v = block(o_w3 + l * hidden * dim, hidden * dim);
    }
    assert((int64_t(v.size()) == TensorSpec{n, DType::F32, s.shape}.numel()) && "every slot is mapped");
    if (auto st = w->write(n, v); !st.ok()) return fail(st.message());
  }
  if (auto st = w->finish(); !st.ok()) return fail(st.message());

  if (!tokenizer.empty())
    if (auto st = convert_tokenizer(tokenizer, int32_t(V), dir / "llama2c_vocab.json"); !st.ok())
      return fail(st.message());
  std::printf("flashtts-convert-llama2c: wrote %s (LlamaForCausalLM, dim %lld, %lld layers, vocab %lld, %s)\n",
              dir.c_str(), (long long)dim, (long long)L, (long long)V, shared ? "tied" : "untied");
  return 0;
}
