// The stable error codes of the client protocol (docs/protocol.md). Clients
// branch on these strings; the sentence next to them is for people (always
// valid UTF-8: client bytes in it are escaped, messages/utf8.h).
//
// Bad input answers bad_request or too_large, whichever stage finds it (the
// intake's checks, the beam manager's tokenized prompt, a GPU actor's
// limits); internal is kept for faults of the server itself.
//
// Thread contract: constants only.
#pragma once

namespace flashtts::msg::code {

inline constexpr const char* kBadMessage = "bad_message";          // not msgpack, not one map, several frames
inline constexpr const char* kBadRequest = "bad_request";          // a field missing, mistyped, out of range, not UTF-8
inline constexpr const char* kUnknownType = "unknown_type";        // "type" names no request
inline constexpr const char* kUnsupportedVersion = "unsupported_version";
// A frame or problem over a [limits] size, or its tokens over what a model
// holds: max_position_embeddings, or the KV pool.
inline constexpr const char* kTooLarge = "too_large";
inline constexpr const char* kDuplicateId = "duplicate_id";        // the id names a request still in flight
inline constexpr const char* kNotFound = "not_found";              // cancel of an id not in flight
inline constexpr const char* kOverloaded = "overloaded";           // too many requests in flight
inline constexpr const char* kCancelled = "cancelled";
inline constexpr const char* kDeadlineExceeded = "deadline_exceeded";
inline constexpr const char* kShuttingDown = "shutting_down";
inline constexpr const char* kServerFailure = "server_failure";    // an actor failed (the server stops), or one in another process is lost
// A job of a valid request failed in the engine: a server fault, never bad
// input. The server goes on.
inline constexpr const char* kInternal = "internal";

}  // namespace flashtts::msg::code
