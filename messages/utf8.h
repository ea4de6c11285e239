// UTF-8 at the protocol's edge. msgpack `str` must be UTF-8 and strict
// decoders refuse anything else, so every string the server sends has to be
// valid: text fields of a request are checked (and refused when invalid), and
// client bytes echoed into an error sentence are escaped first.
//
// Well-formed means RFC 3629: no overlong forms, no surrogates (U+D800..DFFF),
// nothing past U+10FFFF. (gpu/unicode.h replaces bad bytes with U+FFFD for
// model text; this layer shows them to people instead, and depends on nothing
// below it.)
//
// Thread contract: pure functions; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace flashtts::msg {

// Byte offset of the first byte of `s` that is not part of a well-formed
// UTF-8 sequence, or std::string_view::npos when `s` is valid UTF-8.
size_t invalid_utf8_offset(std::string_view s);
inline bool is_valid_utf8(std::string_view s) { return invalid_utf8_offset(s) == std::string_view::npos; }

// `s` with every byte that is not part of a well-formed sequence written as
// \xNN: valid UTF-8 whatever `s` holds, and `s` itself when it was valid.
std::string escape_invalid_utf8(std::string_view s);

// Client bytes for quoting in a sentence: invalid bytes and control
// characters (U+0000..001F, U+007F) as \xNN; when `s` is longer than
// `max_bytes`, its first characters up to that many bytes and "...".
std::string quote_client_bytes(std::string_view s, size_t max_bytes = 64);

// Success when `value` is valid UTF-8; else an error naming the field
// (`name` as the sentence should show it, e.g. "'problem'") and the byte
// offset of the first invalid byte.
Status check_utf8(std::string_view name, std::string_view value);

}  // namespace flashtts::msg
