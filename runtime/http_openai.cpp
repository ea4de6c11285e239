#include "runtime/http_openai.h"

#include <algorithm>
#include <set>

namespace flashtts::http {

namespace {

// The solve fields a search request may carry besides `n` (docs/protocol.md).
const std::set<std::string> kSearchFields = {"strategy",          "beam_width",      "max_steps",
                                             "max_tokens_per_step", "aggregation",   "selection",
                                             "lookahead",         "filter_duplicates", "sort_completed",
                                             "answer_marker",     "return_completions"};

const std::set<std::string> kCommonFields = {
    "model", "max_tokens", "temperature", "top_p", "top_k", "seed", "n", "stream", "stream_options", "user",
    "stop", "logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "deadline_ms"};

std::string field_list(OpenAiApi api) {
  std::set<std::string> all = kCommonFields;
  all.insert(kSearchFields.begin(), kSearchFields.end());
  if (api == OpenAiApi::kCompletions) {
    all.insert({"prompt", "echo", "best_of", "suffix"});
  } else {
    all.insert({"messages", "max_completion_tokens", "top_logprobs"});
  }
  std::string s;
  for (const auto& k : all) s += (s.empty() ? "" : ", ") + k;
  return s;
}

bool known_field(OpenAiApi api, const std::string& k) {
  if (kCommonFields.count(k) || kSearchFields.count(k)) return true;
  if (api == OpenAiApi::kCompletions) return k == "prompt" || k == "echo" || k == "best_of" || k == "suffix";
  return k == "messages" || k == "max_completion_tokens" || k == "top_logprobs";
}

bool present(const json& b, const char* k) { return b.contains(k) && !b[k].is_null(); }

std::optional<HttpError> want_int(const json& b, const char* k, int64_t lo, int64_t hi) {
  if (!present(b, k)) return std::nullopt;
  const json& v = b[k];
  if (!v.is_number_integer())
    return bad_input(std::string("'") + k + "' must be an integer, not " + v.type_name(), k);
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(hi) : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
    return bad_input(std::string("'") + k + "' = " + v.dump() + " is out of range [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]",
                     k);
  return std::nullopt;
}

std::optional<HttpError> want_number(const json& b, const char* k) {
  if (present(b, k) && !b[k].is_number())
    return bad_input(std::string("'") + k + "' must be a number, not " + b[k].type_name(), k);
  return std::nullopt;
}

std::optional<HttpError> want_bool(const json& b, const char* k) {
  if (present(b, k) && !b[k].is_boolean())
    return bad_input(std::string("'") + k + "' must be a boolean, not " + b[k].type_name(), k);
  return std::nullopt;
}

// A field this server cannot honour unless it has its neutral value.
std::optional<HttpError> only_neutral(const json& b, const char* k, const std::string& why) {
  if (!present(b, k)) return std::nullopt;
  const json& v = b[k];
  bool neutral = (v.is_boolean() && !v.get<bool>()) || (v.is_number() && v.get<double>() == 0) ||
                 (v.is_array() && v.empty()) || (v.is_object() && v.empty()) || (v.is_string() && v.empty());
  if (std::string(k) == "best_of" && v.is_number_integer() && v.get<int64_t>() == 1) neutral = true;
  if (neutral) return std::nullopt;
  return bad_input(std::string("'") + k + "' is not supported by this server (" + why + ")", k);
}

// The text of a message's content: a string, or an array of text parts.
std::variant<std::string, HttpError> content_text(const json& m, size_t i) {
  std::string where = "messages[" + std::to_string(i) + "].content";
  if (!m.contains("content") || m["content"].is_null()) return bad_input("missing field '" + where + "'", where);
  const json& c = m["content"];
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) return bad_input("'" + where + "' must be a string or an array of text parts", where);
  std::string text;
  for (const auto& part : c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      return bad_input("'" + where + "' may hold only {\"type\": \"text\", \"text\": string} parts", where);
    text += part["text"].get<std::string>();
  }
  return text;
}

// The prompt of a completions request, or the user message of a chat one.
std::variant<std::string, HttpError> prompt_of(OpenAiApi api, const json& b) {
  if (api == OpenAiApi::kCompletions) {
    if (!present(b, "prompt")) return bad_input("missing field 'prompt' (a string)", "prompt");
    const json& p = b["prompt"];
    if (p.is_string()) return p.get<std::string>();
    if (p.is_array() && p.size() == 1 && p[0].is_string()) return p[0].get<std::string>();
    return bad_input("'prompt' must be a string (or an array of one string; token arrays are not supported)",
                     "prompt");
  }
  if (!present(b, "messages")) return bad_input("missing field 'messages' (an array of messages)", "messages");
  const json& ms = b["messages"];
  if (!ms.is_array() || ms.empty()) return bad_input("'messages' must be a non-empty array", "messages");
  std::optional<std::string> user;
  for (size_t i = 0; i < ms.size(); ++i) {
    const json& m = ms[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return bad_input("'" + where + "' must be an object with a string 'role'", where + ".role");
    std::string role = m["role"].get<std::string>();
    if (role == "system" || role == "developer")
      return bad_input("'" + where + "': " + role +
                           " messages are not supported; the server's configuration sets the system prompt "
                           "([models] system_prompt)",
                       where + ".role");
    if (role != "user")
      return bad_input("'" + where + "': role '" + role +
                           "' is not supported; a request holds one user message (no conversation history)",
                       where + ".role");
    if (user) return bad_input("a request holds one user message; '" + where + "' is a second one", where);
    auto t = content_text(m, i);
    if (auto* e = std::get_if<HttpError>(&t)) return *e;
    user = std::get<std::string>(t);
  }
  return *user;
}

}  // namespace

std::variant<OpenAiPlan, HttpError> plan_openai(OpenAiApi api, const json& b, uint64_t random_seed) {
  for (const auto& [k, v] : b.items())
    if (!known_field(api, k))
      return bad_input("unknown field '" + k + "' (known fields: " + field_list(api) + ")", k);
  OpenAiPlan p;
  p.api = api;
  if (present(b, "model")) {
    if (!b["model"].is_string()) return bad_input("'model' must be a string", "model");
    p.model = b["model"].get<std::string>();
  }
  for (const char* k : {"stream", "echo", "filter_duplicates", "sort_completed", "return_completions"})
    if (auto e = want_bool(b, k)) return *e;
  for (const char* k : {"temperature", "top_p", "presence_penalty", "frequency_penalty"})
    if (auto e = want_number(b, k)) return *e;
  if (auto e = want_int(b, "n", 1, 1 << 20)) return *e;
  if (auto e = want_int(b, "max_tokens", 1, int64_t(1) << 31)) return *e;
  if (auto e = want_int(b, "max_completion_tokens", 1, int64_t(1) << 31)) return *e;
  if (auto e = want_int(b, "seed", 0, INT64_MAX)) return *e;
  if (present(b, "user") && !b["user"].is_string()) return bad_input("'user' must be a string", "user");
  if (auto e = only_neutral(b, "stop", "the policy stops at EOS or max_tokens")) return *e;
  for (const char* k : {"logprobs", "top_logprobs", "echo", "suffix", "presence_penalty", "frequency_penalty",
                        "logit_bias", "best_of"})
    if (auto e = only_neutral(b, k, "not implemented")) return *e;
  p.stream = present(b, "stream") && b["stream"].get<bool>();
  if (present(b, "stream_options")) {
    const json& so = b["stream_options"];
    if (!so.is_object() || (so.contains("include_usage") && !so["include_usage"].is_boolean()))
      return bad_input("'stream_options' must be an object like {\"include_usage\": true}", "stream_options");
    p.include_usage = so.value("include_usage", false);
  }

  auto prompt = prompt_of(api, b);
  if (auto* e = std::get_if<HttpError>(&prompt)) return *e;
  int64_t n = present(b, "n") ? b["n"].get<int64_t>() : 1;

  p.search = present(b, "strategy");
  for (const auto& k : kSearchFields)
    if (!p.search && present(b, k.c_str()))
      return bad_input("'" + k + "' is a search field; name the search with 'strategy' (best_of_n, beam_search, dvts)",
                       k);

  // Fields passed to the protocol unchanged; the server checks their values.
  auto pass = [&](msg::MapWriter& w, const char* k) {
    if (!present(b, k)) return;
    std::vector<uint8_t> packed = json::to_msgpack(b[k]);
    w.put_raw(k, std::string_view(reinterpret_cast<const char*>(packed.data()), packed.size()));
  };
  if (p.search) {
    p.type = "solve";
    msg::MapWriter w;
    w.put("problem", std::get<std::string>(prompt));
    for (const auto& k : kSearchFields) pass(w, k.c_str());
    for (const char* k : {"n", "temperature", "top_p", "top_k", "seed", "deadline_ms"}) pass(w, k);
    w.put("stream", p.stream);
    p.requests.push_back(std::move(w));
    return p;
  }
  if (n > kMaxChoices)
    return bad_input("'n' = " + std::to_string(n) + " is over " + std::to_string(kMaxChoices) +
                         " choices (a search with 'strategy' takes up to the server's max_n)",
                     "n");
  p.type = "generate";
  uint64_t seed = present(b, "seed") ? b["seed"].get<uint64_t>() : random_seed;
  for (int64_t i = 0; i < n; ++i) {
    msg::MapWriter w;
    w.put("prompt", std::get<std::string>(prompt));
    if (api == OpenAiApi::kChat) w.put("chat", true);
    // A field the body leaves out is left out here too, so the server's
    // generate defaults apply (OpenAI's temperature 1.0 and max_tokens 16 do
    // not): the policy's generation_config.json sampling keys, else greedy,
    // and the protocol's max_tokens (runtime/generation_defaults.h).
    const char* max_key = present(b, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (present(b, max_key)) w.put("max_tokens", b[max_key].get<int64_t>());
    for (const char* k : {"temperature", "top_p", "top_k", "deadline_ms"}) pass(w, k);
    w.put("seed", uint64_t(seed + uint64_t(i)));
    w.put("stream", p.stream);
    p.requests.push_back(std::move(w));
  }
  return p;
}

OpenAiReply::OpenAiReply(const OpenAiPlan& plan, std::string id, int64_t created)
    : api_(plan.api),
      stream_(plan.stream),
      include_usage_(plan.include_usage),
      search_(plan.search),
      id_(std::move(id)),
      model_(plan.model.empty() ? "flashtts" : plan.model),
      created_(created),
      streamed_(plan.requests.size()),
      role_sent_(plan.requests.size(), false),
      results_(plan.requests.size()) {}

json OpenAiReply::chunk(size_t index, const std::string& text, const json& finish) {
  json c = {{"index", index}, {"logprobs", nullptr}, {"finish_reason", finish}};
  if (api_ == OpenAiApi::kCompletions) {
    c["text"] = text;
  } else {
    json delta = json::object();
    if (!role_sent_[index]) {
      delta["role"] = "assistant";
      role_sent_[index] = true;
    }
    if (!text.empty() || finish.is_null()) delta["content"] = text;
    c["delta"] = std::move(delta);
  }
  return json{{"id", id_},
              {"object", api_ == OpenAiApi::kCompletions ? "text_completion" : "chat.completion.chunk"},
              {"created", created_},
              {"model", model_},
              {"choices", json::array({std::move(c)})}};
}

namespace {

std::string finish_reason(const json& result, bool search) {
  if (search) return "stop";
  std::string f = result.value("finish", "");
  return f == "length" ? "length" : "stop";  // eos and the step delimiter both stop
}

}  // namespace

void OpenAiReply::count(const json& r) {
  if (search_) {
    const json& st = r.contains("stats") ? r["stats"] : json::object();
    prompt_tokens_ += st.value("prompt_tokens", int64_t(0));
    completion_tokens_ += st.value("policy_tokens", int64_t(0));
    prm_tokens_ += st.value("prm_tokens", int64_t(0));
  } else {
    prompt_tokens_ += r.value("n_prompt", int64_t(0));
    completion_tokens_ += r.contains("tokens") && r["tokens"].is_array() ? int64_t(r["tokens"].size()) : 0;
  }
}

json OpenAiReply::usage() const {
  json u = {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", completion_tokens_},
            {"total_tokens", prompt_tokens_ + completion_tokens_}};
  if (search_) u["prm_tokens"] = prm_tokens_;
  return u;
}

std::string OpenAiReply::add(size_t index, const ServerFrame& frame) {
  json body = to_json(frame.body);
  if (frame.type == "progress") {
    if (!stream_) return "";
    // A solve's events carry no text: they go out as SSE comments, which
    // OpenAI's clients skip and a person with curl can read.
    if (search_) return sse_comment("progress " + dump(body));
    if (body.value("kind", "") != "text") return "";
    std::string t = body.value("text", "");
    streamed_[index] += t;
    return sse_data(dump(chunk(index, t, nullptr)));
  }
  // The result: the text not streamed yet, and the finish reason.
  count(body);
  results_[index] = body;
  if (!stream_) return "";
  std::string text = body.value("text", "");
  std::string rest;
  // Progress text is the beginning of the result's; the rest comes now.
  if (text.compare(0, streamed_[index].size(), streamed_[index]) == 0) rest = text.substr(streamed_[index].size());
  std::string out;
  if (search_) {
    json c = chunk(index, rest, finish_reason(body, true));
    c["flashtts"] = body;
    out = sse_data(dump(c));
  } else {
    out = sse_data(dump(chunk(index, rest, finish_reason(body, false))));
  }
  return out;
}

std::string OpenAiReply::stream_end() const {
  std::string out;
  if (include_usage_) {
    json u = {{"id", id_},
              {"object", api_ == OpenAiApi::kCompletions ? "text_completion" : "chat.completion.chunk"},
              {"created", created_},
              {"model", model_},
              {"choices", json::array()},
              {"usage", usage()}};
    out += sse_data(dump(u));
  }
  return out + sse_data("[DONE]");
}

std::string OpenAiReply::stream_error(const HttpError& e) { return sse_data(dump(error_body(e))) + sse_data("[DONE]"); }

json OpenAiReply::choice(size_t index, const json& r) const {
  json c = {{"index", index}, {"logprobs", nullptr}, {"finish_reason", finish_reason(r, search_)}};
  std::string text = r.value("text", "");
  if (api_ == OpenAiApi::kCompletions) c["text"] = text;
  else c["message"] = {{"role", "assistant"}, {"content", text}};
  return c;
}

json OpenAiReply::body() const {
  json choices = json::array();
  for (size_t i = 0; i < results_.size(); ++i) choices.push_back(choice(i, results_[i]));
  json out = {{"id", id_},
              {"object", api_ == OpenAiApi::kCompletions ? "text_completion" : "chat.completion"},
              {"created", created_},
              {"model", model_},
              {"choices", std::move(choices)},
              {"usage", usage()}};
  if (search_ && !results_.empty()) out["flashtts"] = results_[0];
  return out;
}

}  // namespace flashtts::http
