// Reading .safetensors files: a memory map, the JSON header, and conversion of
// F32 / F16 / BF16 tensors to float32. A TensorStore finds tensors by name in
// a model folder (one model.safetensors, or shards listed by
// model.safetensors.index.json).
//
// File layout: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ..,
//    "__metadata__": {"format": "pt"}}
// then the data section; offsets are relative to its start.
//
// Thread contract: a SafetensorsFile / TensorStore is built by one thread;
// once open, its const methods may be called from any number of threads.
// Every fault in a file is an Error naming the file and the tensor; no input
// makes these classes crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/dtype.h"
#include "gpu/mapping.h"
#include "gpu/weights.h"
#include "runtime/base/status.h"

namespace flashtts {

std::string shape_to_string(std::span<const int64_t> shape);  // "[3, 4]"

struct TensorInfo {
  std::string name;
  DType dtype = DType::Unknown;
  std::string dtype_str;        // as written in the header (for Unknown)
  std::vector<int64_t> shape;   // empty = scalar
  uint64_t begin = 0, end = 0;  // byte range in the data section
  int64_t numel() const;
};

// A read-only memory map of a whole file. Move-only; unmaps on destruction.
class MappedFile {
 public:
  static Expected<MappedFile> open(const std::filesystem::path& path);

  const uint8_t* data() const { return static_cast<const uint8_t*>(map_.data()); }
  size_t size() const { return size_; }

 private:
  Mapping map_;     // none for an empty file
  size_t size_ = 0;
};

// One .safetensors file, header parsed and validated: every tensor's byte
// range lies inside the file and matches its dtype and shape.
class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;

  // The raw bytes of t. REQUIRES: t comes from this file.
  std::span<const uint8_t> bytes(const TensorInfo& t) const;
  // Converts t to float32 into out. Fails (naming file and tensor) for a dtype
  // other than F32/F16/BF16. REQUIRES: out.size() == t.numel().
  Status read_f32(const TensorInfo& t, std::span<float> out) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> map_;  // shared so that the class stays movable cheaply
  const uint8_t* data_section_ = nullptr;
  std::vector<TensorInfo> tensors_;  // in header order
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Parses model.safetensors.index.json: tensor name -> shard file name.
Expected<std::map<std::string, std::string>> read_safetensors_index(const std::filesystem::path& index_path);

// All tensors of a model folder, by name, across shards.
class TensorStore {
 public:
  // Opens dir/model.safetensors, or the shards named by
  // dir/model.safetensors.index.json (which wins when both exist), or, when
  // neither exists, every *.safetensors file in dir.
  static Expected<TensorStore> open(const std::filesystem::path& dir);

  bool has(std::string_view name) const;
  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;
  // The file holding `name` (for messages); the index / folder when absent.
  std::filesystem::path file_of(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted

  // The tensor as float32, after checking presence, dtype and exact shape.
  // Errors name the file and the tensor.
  Expected<std::vector<float>> load_f32(std::string_view name, std::span<const int64_t> expected_shape) const;
  // The same checks; F32 / F16 / BF16 stay in their dtype (the bits copied).
  Expected<WeightMatrix> load_matrix(std::string_view name, std::span<const int64_t> expected_shape) const;

  // Drops every map; the store is empty afterwards.
  void release();

 private:
  std::filesystem::path where_;  // index file or model file, for messages
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t, std::less<>> file_of_;  // name -> index in files_

  // The tensor `name` after the presence, shape and dtype checks.
  Expected<const TensorInfo*> checked(std::string_view name, std::span<const int64_t> expected, size_t* file) const;
};

}  // namespace flashtts
