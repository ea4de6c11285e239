#include "gpu/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

namespace flashtts {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Expected<SafetensorsWriter> SafetensorsWriter::create(const fs::path& path, std::vector<TensorSpec> specs,
                                                      const std::map<std::string, std::string>& metadata) {
  ordered_json header = ordered_json::object();
  ordered_json meta = ordered_json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const auto& s : specs) {
    assert(s.dtype == DType::F32 || s.dtype == DType::F16 || s.dtype == DType::BF16);
    if (!seen.insert(s.name).second) return make_error(path.string() + ": tensor '" + s.name + "' declared twice");
    header[s.name] = {{"dtype", dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + s.nbytes()}}};
    offset += s.nbytes();
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';  // keeps the data section 8-byte aligned

  SafetensorsWriter w;
  w.path_ = path;
  w.specs_ = std::move(specs);
  w.f_ = std::fopen(path.c_str(), "wb");
  if (!w.f_) return make_error(path.string() + ": cannot create: " + std::strerror(errno));
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  if (std::fwrite(len, 1, 8, w.f_) != 8 || std::fwrite(text.data(), 1, text.size(), w.f_) != text.size())
    return make_error(path.string() + ": write failed: " + std::strerror(errno));
  // Skip tensors with no elements so that `current_` always has work left.
  while (w.current_ < w.specs_.size() && w.specs_[w.current_].numel() == 0) ++w.current_;
  return w;
}

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& o) noexcept
    : path_(std::move(o.path_)), f_(o.f_), specs_(std::move(o.specs_)), current_(o.current_), written_(o.written_) {
  o.f_ = nullptr;
}

SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&& o) noexcept {
  if (this != &o) {
    if (f_) std::fclose(f_);
    path_ = std::move(o.path_);
    f_ = o.f_;
    specs_ = std::move(o.specs_);
    current_ = o.current_;
    written_ = o.written_;
    o.f_ = nullptr;
  }
  return *this;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (f_) std::fclose(f_);
}

Status SafetensorsWriter::write(std::string_view name, std::span<const float> values) {
  assert(f_);
  if (current_ >= specs_.size())
    return make_error(path_.string() + ": tensor '" + std::string(name) + "' written after the last declared tensor");
  const TensorSpec& s = specs_[current_];
  if (name != s.name)
    return make_error(path_.string() + ": tensor '" + std::string(name) + "' written while '" + s.name +
                      "' is incomplete (tensors must come in declaration order)");
  if (int64_t(values.size()) > s.numel() - written_)
    return make_error(path_.string() + ": too many values for tensor '" + s.name + "'");
  const size_t esz = dtype_size(s.dtype);
  buf_.resize(values.size() * esz);
  if (s.dtype == DType::F32) {
    std::memcpy(buf_.data(), values.data(), values.size() * 4);
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t h = s.dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(buf_.data() + 2 * i, &h, 2);
    }
  }
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
    return make_error(path_.string() + ": write failed: " + std::strerror(errno));
  written_ += int64_t(values.size());
  while (current_ < specs_.size() && written_ == specs_[current_].numel()) {
    ++current_;
    written_ = 0;
  }
  return Status::success();
}

Status SafetensorsWriter::finish() {
  assert(f_);
  if (current_ < specs_.size())
    return make_error(path_.string() + ": tensor '" + specs_[current_].name + "' was not written completely");
  int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) return make_error(path_.string() + ": close failed: " + std::strerror(errno));
  return Status::success();
}

Status write_safetensors(const fs::path& path, const std::vector<TensorData>& tensors) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) {
    assert(int64_t(t.values.size()) == t.spec.numel());
    specs.push_back(t.spec);
  }
  auto w = SafetensorsWriter::create(path, std::move(specs));
  if (!w.ok()) return w.error();
  for (const auto& t : tensors)
    if (!t.values.empty()) FLASHTTS_TRY(w->write(t.spec.name, t.values));
  return w->finish();
}

}  // namespace flashtts
