// The frame every message travels in: one msgpack map holding the protocol
// version "v", the message "type" and the type's own named fields. encode()
// and open() are the only ways actors and clients turn messages into bytes
// and back.
//
// Thread contract: plain functions and values.
#pragma once

#include <string>
#include <string_view>

#include "messages/msgpack_io.h"

namespace flashtts::msg {

inline constexpr int64_t kProtocolVersion = 1;

// A received frame: its type and the map to read the fields from.
struct Envelope {
  std::string type;
  MapReader fields;
};

// Error when the bytes are not a map, carry no string "type", or name a
// protocol version other than kProtocolVersion ("v" absent means 1).
Expected<Envelope> open(std::string_view bytes, const DecodeLimits& limits = {});

// M has `static constexpr const char* kType` and `void write(MapWriter&) const`.
template <class M>
std::string encode(const M& m) {
  MapWriter w;
  w.put("v", kProtocolVersion);
  w.put("type", M::kType);
  m.write(w);
  return w.bytes();
}

// M has `Status read(const MapReader&)`.
template <class M>
Expected<M> decode(const Envelope& e) {
  M m;
  Status s = m.read(e.fields);
  if (!s.ok()) return make_error(std::string(M::kType) + ": " + s.message());
  return m;
}

}  // namespace flashtts::msg
