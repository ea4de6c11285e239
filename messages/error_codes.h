// The stable error codes of the client protocol (docs/protocol.md). Clients
// branch on these strings; the sentence next to them is for people.
//
// Thread contract: constants only.
#pragma once

namespace flashtts::msg::code {

inline constexpr const char* kBadMessage = "bad_message";          // not msgpack, not one map, several frames
inline constexpr const char* kBadRequest = "bad_request";          // a field missing, mistyped or out of range
inline constexpr const char* kUnknownType = "unknown_type";        // "type" names no request
inline constexpr const char* kUnsupportedVersion = "unsupported_version";
inline constexpr const char* kTooLarge = "too_large";              // frame or problem over a limit
inline constexpr const char* kDuplicateId = "duplicate_id";        // the id names a request still in flight
inline constexpr const char* kNotFound = "not_found";              // cancel of an id not in flight
inline constexpr const char* kOverloaded = "overloaded";           // too many requests in flight
inline constexpr const char* kCancelled = "cancelled";
inline constexpr const char* kDeadlineExceeded = "deadline_exceeded";
inline constexpr const char* kShuttingDown = "shutting_down";
inline constexpr const char* kServerFailure = "server_failure";    // an actor failed; the server stops
inline constexpr const char* kInternal = "internal";               // a job failed inside the engine (incl. too big for its KV or positions)

}  // namespace flashtts::msg::code
