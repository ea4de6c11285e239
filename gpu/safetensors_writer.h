// Writing a single .safetensors file from float32 values, streamed tensor by
// tensor, so that a 7B model never has to sit in memory. Used by the tools
// (flashtts-mkmodel, flashtts-convert-llama2c) and by tests.
//
// The header needs every tensor's offsets, so all tensors are declared up
// front; their values then arrive in declaration order, in chunks of any size.
// The file carries __metadata__ {"format": "pt"}, which transformers requires.
//
// Thread contract: one thread owns a writer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/safetensors.h"
#include "runtime/base/status.h"

namespace flashtts {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;    // F32, F16 or BF16 (F16/BF16 round to nearest even)
  std::vector<int64_t> shape;
  int64_t numel() const;
  uint64_t nbytes() const { return uint64_t(numel()) * dtype_size(dtype); }
};

class SafetensorsWriter {
 public:
  // Creates `path` and writes the header. REQUIRES: names unique, dtypes in
  // {F32, F16, BF16}.
  static Expected<SafetensorsWriter> create(const std::filesystem::path& path, std::vector<TensorSpec> specs,
                                            const std::map<std::string, std::string>& metadata = {});
  SafetensorsWriter() = default;
  SafetensorsWriter(SafetensorsWriter&& o) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&& o) noexcept;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();  // closes; an unfinished file is left incomplete

  // Appends values of tensor `name`, which must be the current one (the first
  // declared tensor not yet complete); moves on when it is complete.
  Status write(std::string_view name, std::span<const float> values);
  // Checks that every tensor was written completely and closes the file.
  Status finish();

 private:
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
  std::vector<TensorSpec> specs_;
  size_t current_ = 0;        // index into specs_
  int64_t written_ = 0;       // elements of specs_[current_] written
  std::vector<uint8_t> buf_;  // conversion scratch
};

// Convenience for small files: one call, every tensor in memory.
struct TensorData {
  TensorSpec spec;
  std::vector<float> values;  // (numel)
};
Status write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors);

}  // namespace flashtts
