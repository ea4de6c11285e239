#include "gpu/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <system_error>

#include <nlohmann/json.hpp>

namespace flashtts {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The safetensors header is small; a huge length means a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

}  // namespace

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------
// MappedFile

Expected<MappedFile> MappedFile::open(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path.string() + ": not a regular file");
  }
  MappedFile m;
  m.size_ = size_t(st.st_size);
  if (m.size_ > 0) {
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return make_error(path.string() + ": mmap failed: " + std::strerror(err));
    }
    m.map_ = Mapping(p, m.size_);
  }
  ::close(fd);  // the map keeps the file alive
  return m;
}


// ---------------------------------------------------------------------------
// SafetensorsFile

namespace {

// Validates one header entry into *t; returns "" or what is wrong.
std::string parse_entry(const std::string& name, const json& v, uint64_t data_size, TensorInfo* t) {
  if (!v.is_object()) return "is not an object";
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) return "has no string \"dtype\"";
  t->name = name;
  t->dtype_str = dt->get<std::string>();
  t->dtype = dtype_from_name(t->dtype_str);
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) return "has no \"shape\" array";
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) return "has a shape entry that is not a non-negative integer";
    uint64_t x = d.get<uint64_t>();
    if (x > (1ull << 40) || __builtin_mul_overflow(numel, x, &numel)) return "has an absurd shape";
    t->shape.push_back(int64_t(x));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    return "has no \"data_offsets\" pair of non-negative integers";
  t->begin = (*off)[0].get<uint64_t>();
  t->end = (*off)[1].get<uint64_t>();
  if (t->begin > t->end) return "has data_offsets with begin > end";
  if (t->end > data_size)
    return "has data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) +
           "] beyond the end of the data (" + std::to_string(data_size) + " bytes; truncated file?)";
  if (t->dtype != DType::Unknown) {
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(t->dtype)), &bytes) || bytes != t->end - t->begin)
      return "holds " + std::to_string(t->end - t->begin) + " bytes but dtype " + t->dtype_str + " and shape " +
             shape_to_string(t->shape) + " need " + std::to_string(numel * dtype_size(t->dtype));
  }
  return "";
}

}  // namespace

Expected<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  auto m = MappedFile::open(path);
  if (!m.ok()) return m.error();
  SafetensorsFile f;
  f.path_ = path;
  f.map_ = std::make_shared<MappedFile>(std::move(m.value()));
  const std::string where = path.string();
  const size_t size = f.map_->size();
  if (size < 8) return make_error(where + ": truncated safetensors file (" + std::to_string(size) + " bytes, no header)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | f.map_->data()[i];
  if (n > size - 8)
    return make_error(where + ": header length " + std::to_string(n) + " is beyond the file size " +
                      std::to_string(size) + " (truncated or not a safetensors file)");
  if (n > kMaxHeaderBytes) return make_error(where + ": header length " + std::to_string(n) + " is absurd");
  const char* hb = reinterpret_cast<const char*>(f.map_->data() + 8);
  json header;
  try {
    header = json::parse(hb, hb + n);
  } catch (const json::parse_error& e) {
    return make_error(where + ": bad JSON header at byte " + std::to_string(e.byte) + ": " + e.what());
  }
  if (!header.is_object()) return make_error(where + ": the JSON header is not an object");
  f.data_section_ = f.map_->data() + 8 + n;
  const uint64_t data_size = size - 8 - n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return make_error(where + ": \"__metadata__\" is not an object");
      for (auto mt = it->begin(); mt != it->end(); ++mt)
        if (mt->is_string()) f.metadata_[mt.key()] = mt->get<std::string>();
      continue;
    }
    TensorInfo t;
    std::string why = parse_entry(it.key(), it.value(), data_size, &t);
    if (!why.empty()) return make_error(where + ": tensor '" + it.key() + "' " + why);
    f.by_name_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> SafetensorsFile::bytes(const TensorInfo& t) const {
  assert(map_ && t.end <= map_->size());
  return {data_section_ + t.begin, size_t(t.end - t.begin)};
}

Status SafetensorsFile::read_f32(const TensorInfo& t, std::span<float> out) const {
  assert(int64_t(out.size()) == t.numel());
  const uint8_t* p = data_section_ + t.begin;  // may be unaligned: memcpy
  const size_t n = out.size();
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out.data(), p, n * 4);
      return Status::success();
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = bf16_to_f32(v);
      }
      return Status::success();
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = f16_to_f32(v);
      }
      return Status::success();
    default:
      return make_error(path_.string() + ": tensor '" + t.name + "' has dtype " + t.dtype_str +
                        ", which is not supported (F32, F16 and BF16 are)");
  }
}

// ---------------------------------------------------------------------------
// Index and TensorStore

Expected<std::map<std::string, std::string>> read_safetensors_index(const fs::path& index_path) {
  auto m = MappedFile::open(index_path);
  if (!m.ok()) return m.error();
  const char* b = reinterpret_cast<const char*>(m->data());
  json j;
  try {
    j = json::parse(b, b + m->size());
  } catch (const json::parse_error& e) {
    return make_error(index_path.string() + ": bad JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return make_error(index_path.string() + ": key 'weight_map' is missing or not an object");
  std::map<std::string, std::string> out;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it->is_string())
      return make_error(index_path.string() + ": weight_map entry '" + it.key() + "' is not a file name");
    std::string file = it->get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      return make_error(index_path.string() + ": weight_map entry '" + it.key() + "' names a bad shard '" + file + "'");
    out.emplace(it.key(), std::move(file));
  }
  return out;
}

Expected<TensorStore> TensorStore::open(const fs::path& dir) {
  TensorStore s;
  std::error_code ec;
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(index, ec)) {
    s.where_ = index;
    auto map = read_safetensors_index(index);
    if (!map.ok()) return map.error();
    std::map<std::string, size_t> shard_ids;
    for (const auto& [name, file] : *map) {
      if (!shard_ids.count(file)) {
        const fs::path p = dir / file;
        if (!fs::exists(p, ec))
          return make_error(index.string() + ": shard file '" + file + "' (holding tensor '" + name + "') is missing");
        auto f = SafetensorsFile::open(p);
        if (!f.ok()) return f.error();
        shard_ids[file] = s.files_.size();
        s.files_.push_back(std::move(f.value()));
      }
      size_t id = shard_ids[file];
      if (!s.files_[id].find(name))
        return make_error(index.string() + ": tensor '" + name + "' is listed in shard '" + file +
                          "' but that file does not hold it");
      s.file_of_.emplace(name, id);
    }
    return s;
  }
  std::vector<fs::path> paths;
  if (fs::exists(single, ec)) {
    paths.push_back(single);
  } else {
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".safetensors") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
  }
  if (paths.empty())
    return make_error(dir.string() + ": no model.safetensors, model.safetensors.index.json or *.safetensors file "
                      "(PyTorch .bin checkpoints are not supported; convert them to safetensors)");
  s.where_ = paths.size() == 1 ? paths[0] : dir;
  for (const auto& p : paths) {
    auto f = SafetensorsFile::open(p);
    if (!f.ok()) return f.error();
    for (const auto& t : f->tensors()) {
      auto [it, fresh] = s.file_of_.emplace(t.name, s.files_.size());
      if (!fresh)
        return make_error(p.string() + ": tensor '" + t.name + "' is also in " + s.files_[it->second].path().string());
    }
    s.files_.push_back(std::move(f.value()));
  }
  return s;
}

bool TensorStore::has(std::string_view name) const { return file_of_.find(name) != file_of_.end(); }

const TensorInfo* TensorStore::find(std::string_view name) const {
  auto it = file_of_.find(name);
  return it == file_of_.end() ? nullptr : files_[it->second].find(name);
}

fs::path TensorStore::file_of(std::string_view name) const {
  auto it = file_of_.find(name);
  return it == file_of_.end() ? where_ : files_[it->second].path();
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> v;
  for (const auto& [n, _] : file_of_) v.push_back(n);
  return v;
}

Expected<const TensorInfo*> TensorStore::checked(std::string_view name, std::span<const int64_t> expected,
                                                 size_t* file) const {
  auto it = file_of_.find(name);
  if (it == file_of_.end()) return make_error(where_.string() + ": missing tensor '" + std::string(name) + "'");
  const SafetensorsFile& f = files_[it->second];
  const TensorInfo* t = f.find(name);
  assert(t);
  if (!std::equal(t->shape.begin(), t->shape.end(), expected.begin(), expected.end()))
    return make_error(f.path().string() + ": tensor '" + t->name + "' has shape " + shape_to_string(t->shape) +
                      ", expected " + shape_to_string(expected));
  if (!dtype_converts_to_f32(t->dtype))
    return make_error(f.path().string() + ": tensor '" + t->name + "' has dtype " + t->dtype_str +
                      ", which is not supported (F32, F16 and BF16 are)");
  *file = it->second;
  return t;
}

Expected<std::vector<float>> TensorStore::load_f32(std::string_view name, std::span<const int64_t> expected) const {
  size_t file = 0;
  auto t = checked(name, expected, &file);
  if (!t.ok()) return t.error();
  std::vector<float> out(size_t((*t)->numel()));
  FLASHTTS_TRY(files_[file].read_f32(**t, out));
  return out;
}

Expected<WeightMatrix> TensorStore::load_matrix(std::string_view name, std::span<const int64_t> expected) const {
  size_t file = 0;
  auto t = checked(name, expected, &file);
  if (!t.ok()) return t.error();
  const TensorInfo& info = **t;
  if (info.dtype == DType::F32) {
    std::vector<float> out(size_t(info.numel()));
    FLASHTTS_TRY(files_[file].read_f32(info, out));
    return WeightMatrix(std::move(out));
  }
  // F16 / BF16: the bytes as they are (little-endian, as safetensors stores them).
  std::span<const uint8_t> raw = files_[file].bytes(info);
  std::vector<uint16_t> bits(size_t(info.numel()));
  std::memcpy(bits.data(), raw.data(), raw.size());
  return WeightMatrix(info.dtype, std::move(bits));
}

void TensorStore::release() {
  files_.clear();
  file_of_.clear();
}

}  // namespace flashtts
