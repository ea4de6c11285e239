#include "gpu/gguf_vocab.h"

#include <fstream>

namespace flashtts {
namespace {

// GGUF metadata value types.
enum ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

int scalar_size(uint32_t type) {
  switch (type) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

// Little-endian reads from the file; the first failure sticks and is reported once.
class Reader {
 public:
  explicit Reader(std::ifstream& in) : in_(in) {}
  bool ok() const { return ok_; }

  template <class T>
  T scalar() {
    T v{};
    if (ok_ && !in_.read(reinterpret_cast<char*>(&v), sizeof(T))) ok_ = false;
    return v;
  }
  std::string string() {
    const uint64_t n = scalar<uint64_t>();
    if (!ok_ || n > (1u << 30)) { ok_ = false; return {}; }
    std::string s(n, '\0');
    if (n && !in_.read(s.data(), static_cast<std::streamsize>(n))) ok_ = false;
    return s;
  }
  void skip(uint64_t bytes) {
    if (ok_ && !in_.seekg(static_cast<std::streamoff>(bytes), std::ios::cur)) ok_ = false;
  }
  // Skips one value of `type` (arrays included).
  void skip_value(uint32_t type) {
    if (type == kString) { skip(scalar<uint64_t>()); return; }
    if (type == kArray) {
      const uint32_t elem = scalar<uint32_t>();
      const uint64_t count = scalar<uint64_t>();
      if (elem == kString || elem == kArray) {
        for (uint64_t i = 0; i < count && ok_; ++i) skip_value(elem);
      } else if (scalar_size(elem)) {
        skip(count * scalar_size(elem));
      } else {
        ok_ = false;
      }
      return;
    }
    if (!scalar_size(type)) { ok_ = false; return; }
    skip(scalar_size(type));
  }
  // Reads any integer scalar as int64.
  int64_t integer(uint32_t type) {
    switch (type) {
      case kU8: return scalar<uint8_t>();
      case kI8: return scalar<int8_t>();
      case kU16: return scalar<uint16_t>();
      case kI16: return scalar<int16_t>();
      case kU32: return scalar<uint32_t>();
      case kI32: return scalar<int32_t>();
      case kU64: return static_cast<int64_t>(scalar<uint64_t>());
      case kI64: return scalar<int64_t>();
      default: ok_ = false; return 0;
    }
  }

 private:
  std::ifstream& in_;
  bool ok_ = true;
};

}  // namespace

Expected<GgufVocab> read_gguf_vocab(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(file.string() + ": cannot open the GGUF file");
  Reader r(in);
  const auto magic = r.scalar<uint32_t>();
  if (!r.ok() || magic != 0x46554747u)  // "GGUF" little-endian
    return make_error(file.string() + ": not a GGUF file (bad magic)");
  const auto version = r.scalar<uint32_t>();
  if (version < 2 || version > 3)
    return make_error(file.string() + ": GGUF version " + std::to_string(version) + " is not supported (2 or 3)");
  r.scalar<uint64_t>();  // tensor count: tensors are not read
  const auto n_kv = r.scalar<uint64_t>();
  if (!r.ok()) return make_error(file.string() + ": truncated GGUF header");

  GgufVocab v;
  auto wrong_type = [&](const std::string& key) {
    return make_error(file.string() + ": GGUF key " + key + " has an unexpected type");
  };
  for (uint64_t k = 0; k < n_kv && r.ok(); ++k) {
    const std::string key = r.string();
    const auto type = r.scalar<uint32_t>();
    if (!r.ok()) break;
    if (key == "tokenizer.ggml.model" || key == "tokenizer.ggml.pre") {
      if (type != kString) return wrong_type(key);
      (key == "tokenizer.ggml.model" ? v.model : v.pre) = r.string();
    } else if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.merges") {
      if (type != kArray) return wrong_type(key);
      const auto elem = r.scalar<uint32_t>();
      const auto count = r.scalar<uint64_t>();
      if (elem != kString || count > (1u << 24)) return wrong_type(key);
      auto& dst = key == "tokenizer.ggml.tokens" ? v.tokens : v.merges;
      dst.reserve(count);
      for (uint64_t i = 0; i < count && r.ok(); ++i) dst.push_back(r.string());
    } else if (key == "tokenizer.ggml.token_type") {
      if (type != kArray) return wrong_type(key);
      const auto elem = r.scalar<uint32_t>();
      const auto count = r.scalar<uint64_t>();
      if (elem != kI32 || count > (1u << 24)) return wrong_type(key);
      v.token_types.resize(count);
      for (uint64_t i = 0; i < count && r.ok(); ++i) v.token_types[i] = r.scalar<int32_t>();
    } else if (key == "tokenizer.ggml.bos_token_id" || key == "tokenizer.ggml.eos_token_id") {
      if (!scalar_size(type) || type == kF32 || type == kF64 || type == kBool) return wrong_type(key);
      (key == "tokenizer.ggml.bos_token_id" ? v.bos_id : v.eos_id) = static_cast<int32_t>(r.integer(type));
    } else {
      r.skip_value(type);
    }
  }
  if (!r.ok()) return make_error(file.string() + ": truncated or corrupt GGUF metadata");
  if (v.tokens.empty()) return make_error(file.string() + ": GGUF file has no tokenizer.ggml.tokens");
  if (!v.token_types.empty() && v.token_types.size() != v.tokens.size())
    return make_error(file.string() + ": tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length");
  return v;
}

}  // namespace flashtts
