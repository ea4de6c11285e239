// The OpenAI-compatible routes of the HTTP gateway, `POST /v1/completions`
// and `POST /v1/chat/completions`, mapped onto the protocol (docs/http.md):
//
// - a plain request becomes one `generate` per choice (`n` of them, seeds
//   seed, seed+1, ...; chat requests with `"chat": true`, so the server's
//   chat template and system prompt apply); temperature, top_p, top_k and
//   max_tokens go only when the body has them, so the server's generate
//   defaults (the policy's generation_config.json) fill the rest;
// - a request that names a search with the extra field `strategy` (as vLLM
//   takes extra fields) becomes one `solve` with `n` samples, and answers
//   one choice, the chosen solution, with the whole solve result under
//   "flashtts".
//
// plan_openai() checks the body and builds the protocol requests;
// OpenAiReply turns their frames into the response: one JSON body, or the
// Server-Sent Events of OpenAI's stream ending in `data: [DONE]`.
//
// Thread contract: plain values; an OpenAiReply belongs to one thread.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "runtime/client.h"
#include "runtime/http_json.h"

namespace flashtts::http {

enum class OpenAiApi { kCompletions, kChat };

// What one OpenAI request asks of the server.
struct OpenAiPlan {
  OpenAiApi api = OpenAiApi::kCompletions;
  std::string model;           // echoed in the response
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool search = false;         // a solve instead of generates
  std::string type;            // "generate" | "solve"
  std::vector<msg::MapWriter> requests;  // one per protocol request, in choice order
};

// Most choices (`n`) of a plain request.
inline constexpr int kMaxChoices = 64;

// The plan for `body`, or a 400 naming the field at fault. `random_seed` is
// the seed used when the request has none (OpenAI samples differently each
// time unless a seed is given).
std::variant<OpenAiPlan, HttpError> plan_openai(OpenAiApi api, const json& body, uint64_t random_seed);

// Builds the response from the frames of the plan's requests.
class OpenAiReply {
 public:
  // `id` is the response id ("cmpl-..." / "chatcmpl-..."), `created` Unix seconds.
  OpenAiReply(const OpenAiPlan& plan, std::string id, int64_t created);

  // A frame of request `index`. Streaming: returns the SSE text to send
  // (possibly empty); otherwise it is kept for body().
  std::string add(size_t index, const ServerFrame& frame);
  // Streaming: the events after the last final frame (the usage chunk when
  // asked for, then `data: [DONE]`).
  std::string stream_end() const;
  // Streaming: an error after the stream began, as OpenAI sends it
  // (`data: {"error": ...}`), then `data: [DONE]`.
  static std::string stream_error(const HttpError& e);
  // Not streaming: the response body. REQUIRES: every request's result added.
  json body() const;

  // Tokens so far: the prompt's (counted once per request) and generated.
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t completion_tokens() const { return completion_tokens_; }

 private:
  // One streamed chunk of choice `index`: `text` added, `finish` (null
  // while it goes on), with the chat role the first time.
  json chunk(size_t index, const std::string& text, const json& finish);
  // The choice of request `index` from its result.
  json choice(size_t index, const json& result) const;
  json usage() const;
  // Counts the tokens of a result.
  void count(const json& result);

  OpenAiApi api_;
  bool stream_, include_usage_, search_;
  std::string id_, model_;
  int64_t created_;
  std::vector<std::string> streamed_;  // per choice: the text sent so far
  std::vector<bool> role_sent_;        // chat: the first chunk carried the role
  std::vector<json> results_;          // per request: its result (null until it comes)
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, prm_tokens_ = 0;
};

}  // namespace flashtts::http
