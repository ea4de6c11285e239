#include "messages/protocol.h"

#include "messages/envelope.h"
#include "messages/error_codes.h"
#include "messages/utf8.h"

namespace flashtts::msg {

namespace {

constexpr size_t kMaxIdBytes = 256;

// Reads an id field ("id" or "target"): a string of at most 256 bytes of
// UTF-8 (every frame about the request echoes it) or an integer. Returns its
// msgpack encoding.
Expected<std::string> read_id(const MapReader& r, std::string_view key) {
  std::string t = r.type_of(key);
  if (t.empty()) return make_error("missing field '" + std::string(key) + "' (a string or an integer)");
  if (t == "string") {
    std::string s;
    FLASHTTS_TRY(r.get(key, &s));
    if (s.size() > kMaxIdBytes)
      return make_error("field '" + std::string(key) + "' is longer than " + std::to_string(kMaxIdBytes) + " bytes");
    FLASHTTS_TRY(check_utf8("field '" + std::string(key) + "'", s));
  } else if (t != "integer") {
    return make_error("field '" + std::string(key) + "' must be a string or an integer, not " + t);
  }
  return r.raw(key);
}

template <class P>
Status read_params(const MapReader& r, P* p, const Limits& l) {
  std::vector<std::string_view> allowed = {"v", "type", "id"};
  allowed.insert(allowed.end(), P::fields().begin(), P::fields().end());
  FLASHTTS_TRY(r.only_keys(allowed));
  FLASHTTS_TRY(p->read(r));
  return p->validate(l);
}

}  // namespace

std::variant<ClientRequest, RequestError> parse_request(std::string_view bytes, const Limits& limits,
                                                        const RequestDefaults& defaults) {
  if ((int64_t)bytes.size() > limits.max_message_bytes)
    return RequestError{code::kTooLarge,
                        "message of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                            std::to_string(limits.max_message_bytes) + " bytes",
                        ""};
  DecodeLimits dl;
  dl.max_bytes = size_t(limits.max_message_bytes);
  // Every element takes at least one byte, so the frame size bounds the
  // counts; field limits (steps, ...) are then checked with the id known.
  dl.max_items = size_t(limits.max_message_bytes);
  auto r = MapReader::parse(bytes, dl);
  if (!r) return RequestError{code::kBadMessage, r.error().message, ""};

  ClientRequest q;
  auto id = read_id(*r, "id");
  if (!id) return RequestError{code::kBadRequest, id.error().message, ""};
  q.id = *id;
  auto fail = [&](const char* c, const std::string& m) { return RequestError{c, m, q.id}; };

  if (r->has("v")) {
    int64_t v = 0;
    if (Status s = r->get("v", &v); !s.ok()) return fail(code::kBadRequest, s.message());
    if (v != kProtocolVersion)
      return fail(code::kUnsupportedVersion, "protocol version " + std::to_string(v) +
                                                 " is not supported; this server speaks version " +
                                                 std::to_string(kProtocolVersion));
  }
  if (Status s = r->get("type", &q.type); !s.ok()) return fail(code::kBadRequest, s.message());

  Status s;
  if (q.type == "solve") {
    q.solve = defaults.solve;
    s = read_params(*r, &q.solve, limits);
  } else if (q.type == "generate") {
    q.generate = defaults.generate;
    s = read_params(*r, &q.generate, limits);
  } else if (q.type == "score") {
    q.score = defaults.score;
    s = read_params(*r, &q.score, limits);
  } else if (q.type == "cancel") {
    s = r->only_keys({"v", "type", "id", "target"});
    if (s.ok()) {
      auto t = read_id(*r, "target");
      if (!t) return fail(code::kBadRequest, t.error().message);
      q.target = *t;
    }
  } else if (q.type == "ping") {
    s = r->only_keys({"v", "type", "id"});
  } else if (q.type == "stats") {
    s = r->only_keys({"v", "type", "id", "reset_peaks"});
    if (s.ok()) s = r->get_opt("reset_peaks", &q.reset_peaks);
  } else {
    return fail(code::kUnknownType, "unknown request type '" + quote_client_bytes(q.type) +
                                        "' (known: solve, generate, score, cancel, ping, stats)");
  }
  if (!s.ok()) {
    bool too_large = s.message().find("bytes; the limit") != std::string::npos;
    return fail(too_large ? code::kTooLarge : code::kBadRequest, q.type + ": " + s.message());
  }
  return q;
}

namespace {

void put_id(MapWriter& w, std::string_view id) {
  if (id.empty()) w.put_nil("id");
  else w.put_raw("id", id);
}

}  // namespace

std::string encode_result(std::string_view id, std::string_view request_type, std::string_view result_map) {
  MapWriter w;
  w.put("v", kProtocolVersion).put("type", "result");
  put_id(w, id);
  w.put("request", request_type);
  if (result_map.empty()) w.put("result", MapWriter());
  else w.put_raw("result", result_map);
  return w.bytes();
}

std::string encode_error(std::string_view id, std::string_view code, std::string_view message) {
  MapWriter w;
  w.put("v", kProtocolVersion).put("type", "error");
  put_id(w, id);
  // The safety net: whatever a sentence picked up on its way (client bytes
  // some check forgot to quote), the frame stays decodable.
  w.put("code", escape_invalid_utf8(code)).put("message", escape_invalid_utf8(message));
  return w.bytes();
}

std::string encode_progress(std::string_view id, std::string_view event_map) {
  MapWriter w;
  w.put("v", kProtocolVersion).put("type", "progress");
  put_id(w, id);
  w.put_raw("event", event_map);
  return w.bytes();
}

std::string id_text(std::string_view packed_id) {
  if (packed_id.empty()) return "nil";
  try {
    auto h = msgpack::unpack(packed_id.data(), packed_id.size());
    const auto& o = h.get();
    if (o.type == msgpack::type::STR)
      return "'" + quote_client_bytes(std::string_view(o.via.str.ptr, o.via.str.size), kMaxIdBytes) + "'";
    if (o.type == msgpack::type::POSITIVE_INTEGER) return std::to_string(o.via.u64);
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return std::to_string(o.via.i64);
  } catch (const std::exception&) {
  }
  return "?";
}

}  // namespace flashtts::msg
