#include "messages/envelope.h"

namespace flashtts::msg {

Expected<Envelope> open(std::string_view bytes, const DecodeLimits& limits) {
  auto r = MapReader::parse(bytes, limits);
  if (!r.ok()) return r.error();
  Envelope e;
  e.fields = std::move(r.value());
  if (e.fields.has("v")) {
    int64_t v = 0;
    FLASHTTS_TRY(e.fields.get("v", &v));
    if (v != kProtocolVersion)
      return make_error("protocol version " + std::to_string(v) + " is not supported; this server speaks version " +
                        std::to_string(kProtocolVersion));
  }
  FLASHTTS_TRY(e.fields.get("type", &e.type));
  return e;
}

}  // namespace flashtts::msg
