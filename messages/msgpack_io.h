// Reading and writing msgpack maps with named fields: the one encoding of
// every message flashtts sends, inside a process or over the wire. Readers
// turn bad input (not msgpack, not a map, a field missing or of the wrong
// type) into errors that name the field, never into exceptions or crashes.
//
// Thread contract: plain values; a reader or writer is used by one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include "runtime/base/status.h"

namespace flashtts::msg {

// A map under construction. Fields are written in call order; a nested map
// or a list of maps is written from finished writers.
class MapWriter {
 public:
  MapWriter() : pk_(&body_) {}
  MapWriter(const MapWriter& o);
  MapWriter& operator=(const MapWriter& o);

  MapWriter& put(std::string_view key, std::string_view v);
  MapWriter& put(std::string_view key, const char* v) { return put(key, std::string_view(v)); }
  MapWriter& put(std::string_view key, const std::string& v) { return put(key, std::string_view(v)); }
  MapWriter& put(std::string_view key, bool v);
  MapWriter& put(std::string_view key, int64_t v);
  MapWriter& put(std::string_view key, uint64_t v);
  MapWriter& put(std::string_view key, int32_t v) { return put(key, int64_t(v)); }
  MapWriter& put(std::string_view key, uint32_t v) { return put(key, uint64_t(v)); }
  MapWriter& put(std::string_view key, double v);
  MapWriter& put(std::string_view key, float v) { return put(key, double(v)); }
  MapWriter& put_nil(std::string_view key);
  MapWriter& put(std::string_view key, const std::vector<int32_t>& v);
  MapWriter& put(std::string_view key, const std::vector<uint64_t>& v);
  MapWriter& put(std::string_view key, const std::vector<float>& v);
  MapWriter& put(std::string_view key, const std::vector<std::string>& v);
  MapWriter& put(std::string_view key, const MapWriter& child);
  MapWriter& put(std::string_view key, const std::vector<MapWriter>& children);
  // A value already encoded as msgpack (e.g. forwarded unchanged).
  MapWriter& put_raw(std::string_view key, std::string_view packed);
  // Every field of `other`, after this one's.
  MapWriter& merge(const MapWriter& other);

  size_t size() const { return n_; }
  std::string bytes() const;  // the whole map, header included

 private:
  void key(std::string_view k);
  msgpack::sbuffer body_;
  msgpack::packer<msgpack::sbuffer> pk_;
  uint32_t n_ = 0;
};

// Limits applied while decoding untrusted bytes.
struct DecodeLimits {
  size_t max_bytes = 1u << 20;
  size_t max_items = 1u << 16;  // elements of one array or map
  size_t max_depth = 8;
};

// A decoded map. Getters return an error naming `path.key` when the field is
// missing (required) or has the wrong type; optional getters leave *out
// untouched when the field is absent or nil.
class MapReader {
 public:
  // Error when `bytes` is not exactly one msgpack map.
  static Expected<MapReader> parse(std::string_view bytes, const DecodeLimits& limits = {});

  bool has(std::string_view key) const;
  std::vector<std::string> keys() const;
  const std::string& path() const { return path_; }

  Status get(std::string_view key, std::string* out) const;
  Status get(std::string_view key, bool* out) const;
  Status get(std::string_view key, int64_t* out) const;
  Status get(std::string_view key, uint64_t* out) const;
  Status get(std::string_view key, int32_t* out) const;
  Status get(std::string_view key, double* out) const;
  Status get(std::string_view key, float* out) const;
  Status get(std::string_view key, std::vector<int32_t>* out) const;
  Status get(std::string_view key, std::vector<uint64_t>* out) const;
  Status get(std::string_view key, std::vector<float>* out) const;
  Status get(std::string_view key, std::vector<std::string>* out) const;
  Status get(std::string_view key, MapReader* out) const;
  Status get(std::string_view key, std::vector<MapReader>* out) const;

  template <typename T>
  Status get_opt(std::string_view key, T* out) const {
    if (!has(key) || is_nil(key)) return Status::success();
    return get(key, out);
  }

  bool is_nil(std::string_view key) const;
  // The msgpack type name of a field ("string", "integer", ...), "" if absent.
  std::string type_of(std::string_view key) const;
  // The field's value re-encoded as msgpack ("" if absent).
  std::string raw(std::string_view key) const;
  // The whole map re-encoded.
  std::string bytes() const;

  // Error naming the first key not in `allowed`.
  Status only_keys(const std::vector<std::string_view>& allowed) const;

 private:
  const msgpack::object* find(std::string_view key) const;
  Status wrong_type(std::string_view key, const char* want) const;
  std::string field(std::string_view key) const;

  std::shared_ptr<msgpack::object_handle> handle_;  // keeps the zone alive
  const msgpack::object* map_ = nullptr;
  std::string path_;
};

const char* type_name(const msgpack::object& o);

}  // namespace flashtts::msg
