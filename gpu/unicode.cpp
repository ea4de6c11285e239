#include "gpu/unicode.h"

#include <cstdlib>

#include <utf8proc.h>

namespace flashtts::unicode {
namespace {

// Length of the sequence a lead byte announces, 0 for a byte that leads none.
int sequence_length(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether `b` may follow `lead` as the second byte (the RFC 3629 table that
// rules out overlong forms, surrogates and code points past U+10FFFF).
bool valid_second(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// How many bytes from `i` belong to the (possibly incomplete) sequence that
// starts there, and whether it is complete. At least one byte is consumed.
struct Scan {
  int used;
  bool complete;
};

Scan scan_sequence(std::string_view s, size_t i) {
  const auto lead = static_cast<uint8_t>(s[i]);
  const int len = sequence_length(lead);
  if (len == 1) return {1, true};
  if (len == 0) return {1, false};
  int used = 1;
  while (used < len && i + used < s.size()) {
    const auto b = static_cast<uint8_t>(s[i + used]);
    if (used == 1 ? !valid_second(lead, b) : !is_continuation(b)) break;
    ++used;
  }
  return {used, used == len};
}

}  // namespace

void decode_utf8(std::string_view text, std::vector<CodePoint>* out) {
  out->clear();
  out->reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<uint8_t>(text[i]);
    if (lead < 0x80) {
      out->push_back({lead, static_cast<uint32_t>(i)});
      ++i;
      continue;
    }
    // An invalid byte becomes its own kInvalid entry: every byte stays reachable for BPE.
    size_t len = 0;
    const char32_t cp = decode_at(text, i, &len);
    out->push_back({cp, static_cast<uint32_t>(i)});
    i += len;
  }
}

char32_t decode_at(std::string_view text, size_t pos, size_t* len) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  const Scan sc = scan_sequence(text, pos);
  if (!sc.complete) {
    *len = 1;
    return kInvalid;
  }
  *len = static_cast<size_t>(sc.used);
  if (sc.used == 1) return lead;
  char32_t cp = lead & (0xFF >> (sc.used + 1));
  for (int k = 1; k < sc.used; ++k) cp = (cp << 6) | (static_cast<uint8_t>(text[pos + k]) & 0x3F);
  return cp;
}

char32_t decode_before(std::string_view text, size_t end, size_t* len) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && is_continuation(static_cast<uint8_t>(text[b]))) --b;
  size_t n = 0;
  const char32_t cp = decode_at(text, b, &n);
  if (b + n == end) {
    *len = n;
    return cp;
  }
  *len = 1;
  return kInvalid;
}

void append_utf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t complete_utf8_prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  // Walk back over at most 3 continuation bytes to the last lead byte.
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const size_t p = n - k;
    const auto b = static_cast<uint8_t>(bytes[p]);
    if (is_continuation(b)) continue;
    const int len = sequence_length(b);
    if (len <= static_cast<int>(k)) return n;  // complete, ASCII, or invalid
    const Scan sc = scan_sequence(bytes, p);
    // Hold back only a tail that more bytes could still complete.
    return sc.used == static_cast<int>(k) ? p : n;
  }
  return n;
}

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const Scan sc = scan_sequence(bytes, i);
    if (sc.complete) {
      out.append(bytes.substr(i, sc.used));
    } else {
      out.append("\xEF\xBF\xBD");
    }
    i += sc.used;
  }
  return out;
}

bool nfc_trivially(std::string_view text) {
  // U+0300 is CC 80 in UTF-8: every lead byte below 0xCC encodes < U+0300.
  for (char c : text)
    if (static_cast<uint8_t>(c) >= 0xCC) return false;
  return true;
}

std::string nfc(std::string_view text) {
  if (nfc_trivially(text)) return std::string(text);
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
      &mapped, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::string(text);
  std::string out(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
  std::free(mapped);
  return out;
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace flashtts::unicode
