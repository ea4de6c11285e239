// The client protocol, version 1 (docs/protocol.md): what a client may send
// to the intake and how the server's replies are framed. One msgpack map per
// ZeroMQ message. Requests carry "type" and a client-chosen "id" (a string
// or an integer); every request id gets exactly one final "result" or
// "error", and "progress" events before it when the request asked to stream.
//
// Thread contract: pure functions; any thread.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "messages/requests.h"

namespace flashtts::msg {

struct ClientRequest {
  std::string type;     // "solve" | "generate" | "score" | "cancel" | "ping" | "stats"
  std::string id;       // the id as the client sent it, msgpack-encoded
  SolveParams solve;    // type == "solve" (server defaults filled in)
  GenerateParams generate;
  ScoreParams score;
  std::string target;   // type == "cancel": the id of the request to cancel, msgpack-encoded
  bool reset_peaks = false;  // type == "stats": start the actors' peak figures afresh after this report
};

// A request the server refuses. `id` is "" when the request's id could not
// be read (the error then carries a nil id).
struct RequestError {
  std::string code;
  std::string message;
  std::string id;
};

std::variant<ClientRequest, RequestError> parse_request(std::string_view bytes, const Limits& limits,
                                                        const RequestDefaults& defaults);

// Server -> client frames. `id` is msgpack-encoded ("" encodes nil).
std::string encode_result(std::string_view id, std::string_view request_type, std::string_view result_map);
std::string encode_error(std::string_view id, std::string_view code, std::string_view message);
std::string encode_progress(std::string_view id, std::string_view event_map);

// A readable form of a msgpack-encoded id, for logs and messages.
std::string id_text(std::string_view packed_id);

}  // namespace flashtts::msg
