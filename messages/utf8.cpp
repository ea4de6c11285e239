#include "messages/utf8.h"

#include <cstdint>

namespace flashtts::msg {

namespace {

// Length of the well-formed sequence at s[i], or 0 when s[i] starts none
// (RFC 3629's table: the second byte's range depends on the lead byte).
size_t sequence_at(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) len = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3;
  else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4;
  else return 0;
  if (b0 == 0xE0) lo = 0xA0;       // overlong
  else if (b0 == 0xED) hi = 0x9F;  // surrogates
  else if (b0 == 0xF0) lo = 0x90;  // overlong
  else if (b0 == 0xF4) hi = 0x8F;  // past U+10FFFF
  if (i + len > s.size()) return 0;
  const auto b1 = static_cast<uint8_t>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return 0;
  return len;
}

void append_hex(uint8_t b, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out->append("\\x");
  out->push_back(kHex[b >> 4]);
  out->push_back(kHex[b & 15]);
}

// Appends `s` with invalid bytes (and, when `controls`, control
// characters) escaped.
void escape(std::string_view s, bool controls, std::string* out) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = sequence_at(s, i);
    const auto b = static_cast<uint8_t>(s[i]);
    if (n == 0 || (controls && n == 1 && (b < 0x20 || b == 0x7F))) {
      append_hex(b, out);
      ++i;
    } else {
      out->append(s.substr(i, n));
      i += n;
    }
  }
}

}  // namespace

size_t invalid_utf8_offset(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = sequence_at(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

std::string escape_invalid_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  escape(s, /*controls=*/false, &out);
  return out;
}

std::string quote_client_bytes(std::string_view s, size_t max_bytes) {
  std::string_view head = s;
  bool cut = false;
  if (s.size() > max_bytes) {
    // Cut at a character boundary: never in the middle of a valid sequence.
    size_t end = 0;
    while (end < max_bytes) {
      const size_t n = sequence_at(s, end);
      if (n == 0) ++end;
      else if (end + n <= max_bytes) end += n;
      else break;
    }
    head = s.substr(0, end);
    cut = true;
  }
  std::string out;
  out.reserve(head.size() + 8);
  escape(head, /*controls=*/true, &out);
  if (cut) out.append("...");
  return out;
}

Status check_utf8(std::string_view name, std::string_view value) {
  const size_t at = invalid_utf8_offset(value);
  if (at == std::string_view::npos) return Status::success();
  std::string b;
  append_hex(static_cast<uint8_t>(value[at]), &b);
  return make_error(std::string(name) + " is not valid UTF-8 at byte offset " + std::to_string(at) + " (0x" +
                    b.substr(2) + "); strings must be UTF-8");
}

}  // namespace flashtts::msg
