#include "messages/msgpack_io.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "messages/utf8.h"

namespace flashtts::msg {

// ---------------------------------------------------------------- writer

MapWriter::MapWriter(const MapWriter& o) : pk_(&body_), n_(o.n_) { body_.write(o.body_.data(), o.body_.size()); }

MapWriter& MapWriter::operator=(const MapWriter& o) {
  if (this == &o) return *this;
  body_.clear();
  body_.write(o.body_.data(), o.body_.size());
  n_ = o.n_;
  return *this;
}

void MapWriter::key(std::string_view k) {
  pk_.pack_str(uint32_t(k.size()));
  pk_.pack_str_body(k.data(), uint32_t(k.size()));
  ++n_;
}

MapWriter& MapWriter::put(std::string_view k, std::string_view v) {
  key(k);
  pk_.pack_str(uint32_t(v.size()));
  pk_.pack_str_body(v.data(), uint32_t(v.size()));
  return *this;
}
MapWriter& MapWriter::put(std::string_view k, bool v) { key(k); v ? pk_.pack_true() : pk_.pack_false(); return *this; }
MapWriter& MapWriter::put(std::string_view k, int64_t v) { key(k); pk_.pack_int64(v); return *this; }
MapWriter& MapWriter::put(std::string_view k, uint64_t v) { key(k); pk_.pack_uint64(v); return *this; }
MapWriter& MapWriter::put(std::string_view k, double v) { key(k); pk_.pack_double(v); return *this; }
MapWriter& MapWriter::put_nil(std::string_view k) { key(k); pk_.pack_nil(); return *this; }

MapWriter& MapWriter::put(std::string_view k, const std::vector<int32_t>& v) {
  key(k);
  pk_.pack_array(uint32_t(v.size()));
  for (int32_t x : v) pk_.pack_int32(x);
  return *this;
}
MapWriter& MapWriter::put(std::string_view k, const std::vector<uint64_t>& v) {
  key(k);
  pk_.pack_array(uint32_t(v.size()));
  for (uint64_t x : v) pk_.pack_uint64(x);
  return *this;
}
MapWriter& MapWriter::put(std::string_view k, const std::vector<float>& v) {
  key(k);
  pk_.pack_array(uint32_t(v.size()));
  for (float x : v) pk_.pack_double(x);  // doubles: clients' numbers stay exact
  return *this;
}
MapWriter& MapWriter::put(std::string_view k, const std::vector<std::string>& v) {
  key(k);
  pk_.pack_array(uint32_t(v.size()));
  for (const auto& s : v) {
    pk_.pack_str(uint32_t(s.size()));
    pk_.pack_str_body(s.data(), uint32_t(s.size()));
  }
  return *this;
}
MapWriter& MapWriter::put(std::string_view k, const MapWriter& child) { return put_raw(k, child.bytes()); }
MapWriter& MapWriter::put(std::string_view k, const std::vector<MapWriter>& children) {
  key(k);
  pk_.pack_array(uint32_t(children.size()));
  for (const auto& c : children) {
    std::string b = c.bytes();
    body_.write(b.data(), b.size());
  }
  return *this;
}
MapWriter& MapWriter::put_raw(std::string_view k, std::string_view packed) {
  key(k);
  body_.write(packed.data(), packed.size());
  return *this;
}

MapWriter& MapWriter::merge(const MapWriter& other) {
  body_.write(other.body_.data(), other.body_.size());
  n_ += other.n_;
  return *this;
}

std::string MapWriter::bytes() const {
  msgpack::sbuffer head;
  msgpack::packer<msgpack::sbuffer> hp(&head);
  hp.pack_map(n_);
  std::string out(head.data(), head.size());
  out.append(body_.data(), body_.size());
  return out;
}

// ---------------------------------------------------------------- reader

const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "extension";
  }
  return "unknown";
}

namespace {

// Rejects nesting deeper than the limit (msgpack-c bounds counts, not depth
// in every version's object conversion).
bool depth_ok(const msgpack::object& o, size_t depth_left) {
  if (o.type == msgpack::type::ARRAY) {
    if (depth_left == 0) return false;
    for (uint32_t i = 0; i < o.via.array.size; ++i)
      if (!depth_ok(o.via.array.ptr[i], depth_left - 1)) return false;
  } else if (o.type == msgpack::type::MAP) {
    if (depth_left == 0) return false;
    for (uint32_t i = 0; i < o.via.map.size; ++i)
      if (!depth_ok(o.via.map.ptr[i].key, depth_left - 1) || !depth_ok(o.via.map.ptr[i].val, depth_left - 1))
        return false;
  }
  return true;
}

bool as_int64(const msgpack::object& o, int64_t* out) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > uint64_t(std::numeric_limits<int64_t>::max())) return false;
    *out = int64_t(o.via.u64);
    return true;
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    *out = o.via.i64;
    return true;
  }
  return false;
}

bool as_double(const msgpack::object& o, double* out) {
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) {
    *out = o.via.f64;
    return true;
  }
  int64_t i;
  if (as_int64(o, &i)) {
    *out = double(i);
    return true;
  }
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    *out = double(o.via.u64);
    return true;
  }
  return false;
}

std::string pack_object(const msgpack::object& o) {
  msgpack::sbuffer b;
  msgpack::pack(b, o);
  return std::string(b.data(), b.size());
}

}  // namespace

Expected<MapReader> MapReader::parse(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.size() > limits.max_bytes)
    return make_error("message of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                      std::to_string(limits.max_bytes) + " bytes");
  if (bytes.empty()) return make_error("empty message: expected a msgpack map");
  auto handle = std::make_shared<msgpack::object_handle>();
  size_t off = 0;
  try {
    uint32_t n = uint32_t(std::min<size_t>(limits.max_items, std::numeric_limits<uint32_t>::max()));
    msgpack::unpack_limit lim(n, n, uint32_t(limits.max_bytes), uint32_t(limits.max_bytes), uint32_t(limits.max_bytes),
                              uint32_t(limits.max_depth + 1));
    msgpack::unpack(*handle, bytes.data(), bytes.size(), off, nullptr, nullptr, lim);
  } catch (const msgpack::insufficient_bytes&) {
    return make_error("message is not valid msgpack: it ends in the middle of a value");
  } catch (const std::exception& e) {
    return make_error(std::string("message is not valid msgpack (") + e.what() + ")");
  }
  if (off != bytes.size())
    return make_error("message has " + std::to_string(bytes.size() - off) +
                      " trailing bytes after the msgpack map; send one map per frame");
  const msgpack::object& o = handle->get();
  if (o.type != msgpack::type::MAP)
    return make_error(std::string("message is a msgpack ") + type_name(o) + ", expected a map");
  if (!depth_ok(o, limits.max_depth)) return make_error("message nests deeper than " + std::to_string(limits.max_depth) + " levels");
  for (uint32_t i = 0; i < o.via.map.size; ++i)
    if (o.via.map.ptr[i].key.type != msgpack::type::STR)
      return make_error(std::string("message map has a ") + type_name(o.via.map.ptr[i].key) + " key; keys must be strings");
  MapReader r;
  r.handle_ = std::move(handle);
  r.map_ = &r.handle_->get();
  return r;
}

const msgpack::object* MapReader::find(std::string_view key) const {
  if (!map_) return nullptr;
  const msgpack::object* hit = nullptr;
  for (uint32_t i = 0; i < map_->via.map.size; ++i) {
    const auto& kv = map_->via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      hit = &kv.val;  // the last duplicate wins, as in most decoders
  }
  return hit;
}

bool MapReader::has(std::string_view key) const { return find(key) != nullptr; }
bool MapReader::is_nil(std::string_view key) const {
  const auto* o = find(key);
  return o && o->type == msgpack::type::NIL;
}

std::vector<std::string> MapReader::keys() const {
  std::vector<std::string> out;
  if (!map_) return out;
  for (uint32_t i = 0; i < map_->via.map.size; ++i)
    out.emplace_back(map_->via.map.ptr[i].key.via.str.ptr, map_->via.map.ptr[i].key.via.str.size);
  return out;
}

std::string MapReader::type_of(std::string_view key) const {
  const auto* o = find(key);
  return o ? type_name(*o) : "";
}

std::string MapReader::raw(std::string_view key) const {
  const auto* o = find(key);
  return o ? pack_object(*o) : std::string();
}

std::string MapReader::bytes() const { return map_ ? pack_object(*map_) : std::string("\x80", 1); }

std::string MapReader::field(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

Status MapReader::wrong_type(std::string_view key, const char* want) const {
  const auto* o = find(key);
  if (!o) return make_error("missing field '" + field(key) + "' (" + want + ")");
  return make_error("field '" + field(key) + "' must be " + want + ", not " + type_name(*o));
}

Status MapReader::only_keys(const std::vector<std::string_view>& allowed) const {
  for (const auto& k : keys())
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      // The key is the client's: quoted, since the sentence goes back to it.
      return make_error("unknown field '" + field(quote_client_bytes(k)) + "' (known fields: " + list + ")");
    }
  return Status::success();
}

Status MapReader::get(std::string_view key, std::string* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::STR) return wrong_type(key, "a string");
  out->assign(o->via.str.ptr, o->via.str.size);
  return Status::success();
}

Status MapReader::get(std::string_view key, bool* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::BOOLEAN) return wrong_type(key, "a boolean");
  *out = o->via.boolean;
  return Status::success();
}

Status MapReader::get(std::string_view key, int64_t* out) const {
  const auto* o = find(key);
  if (!o || !as_int64(*o, out)) return wrong_type(key, "an integer");
  return Status::success();
}

Status MapReader::get(std::string_view key, uint64_t* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::POSITIVE_INTEGER) {
    if (o && o->type == msgpack::type::NEGATIVE_INTEGER)
      return make_error("field '" + field(key) + "' must not be negative");
    return wrong_type(key, "a non-negative integer");
  }
  *out = o->via.u64;
  return Status::success();
}

Status MapReader::get(std::string_view key, int32_t* out) const {
  int64_t v = 0;
  FLASHTTS_TRY(get(key, &v));
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    return make_error("field '" + field(key) + "' = " + std::to_string(v) + " is out of the 32-bit range");
  *out = int32_t(v);
  return Status::success();
}

Status MapReader::get(std::string_view key, double* out) const {
  const auto* o = find(key);
  if (!o || !as_double(*o, out)) return wrong_type(key, "a number");
  if (!std::isfinite(*out)) return make_error("field '" + field(key) + "' must be a finite number");
  return Status::success();
}

Status MapReader::get(std::string_view key, float* out) const {
  double d = 0;
  FLASHTTS_TRY(get(key, &d));
  *out = float(d);
  return Status::success();
}

Status MapReader::get(std::string_view key, std::vector<int32_t>* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::ARRAY) return wrong_type(key, "an array of integers");
  out->clear();
  out->reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    int64_t v;
    if (!as_int64(o->via.array.ptr[i], &v) || v < std::numeric_limits<int32_t>::min() ||
        v > std::numeric_limits<int32_t>::max())
      return make_error("field '" + field(key) + "[" + std::to_string(i) + "]' must be a 32-bit integer");
    out->push_back(int32_t(v));
  }
  return Status::success();
}

Status MapReader::get(std::string_view key, std::vector<uint64_t>* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::ARRAY) return wrong_type(key, "an array of non-negative integers");
  out->clear();
  out->reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    const msgpack::object& x = o->via.array.ptr[i];
    if (x.type != msgpack::type::POSITIVE_INTEGER)
      return make_error("field '" + field(key) + "[" + std::to_string(i) + "]' must be a non-negative integer");
    out->push_back(x.via.u64);
  }
  return Status::success();
}

Status MapReader::get(std::string_view key, std::vector<float>* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::ARRAY) return wrong_type(key, "an array of numbers");
  out->clear();
  out->reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    double v;
    if (!as_double(o->via.array.ptr[i], &v))
      return make_error("field '" + field(key) + "[" + std::to_string(i) + "]' must be a number");
    out->push_back(float(v));
  }
  return Status::success();
}

Status MapReader::get(std::string_view key, std::vector<std::string>* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::ARRAY) return wrong_type(key, "an array of strings");
  out->clear();
  out->reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    const auto& e = o->via.array.ptr[i];
    if (e.type != msgpack::type::STR)
      return make_error("field '" + field(key) + "[" + std::to_string(i) + "]' must be a string, not " + type_name(e));
    out->emplace_back(e.via.str.ptr, e.via.str.size);
  }
  return Status::success();
}

Status MapReader::get(std::string_view key, MapReader* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::MAP) return wrong_type(key, "a map");
  for (uint32_t i = 0; i < o->via.map.size; ++i)
    if (o->via.map.ptr[i].key.type != msgpack::type::STR)
      return make_error("field '" + field(key) + "' has a non-string key");
  out->handle_ = handle_;
  out->map_ = o;
  out->path_ = field(key);
  return Status::success();
}

Status MapReader::get(std::string_view key, std::vector<MapReader>* out) const {
  const auto* o = find(key);
  if (!o || o->type != msgpack::type::ARRAY) return wrong_type(key, "an array of maps");
  out->clear();
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    const auto& e = o->via.array.ptr[i];
    std::string name = field(key) + "[" + std::to_string(i) + "]";
    if (e.type != msgpack::type::MAP) return make_error("field '" + name + "' must be a map, not " + type_name(e));
    for (uint32_t j = 0; j < e.via.map.size; ++j)
      if (e.via.map.ptr[j].key.type != msgpack::type::STR)
        return make_error("field '" + name + "' has a non-string key");
    MapReader r;
    r.handle_ = handle_;
    r.map_ = &e;
    r.path_ = name;
    out->push_back(std::move(r));
  }
  return Status::success();
}

}  // namespace flashtts::msg
