// The HTTP gateway (runtime/http_gateway.h, docs/http.md) against a real
// pipeline of the tiny random-weight models, over real sockets: the gateway
// reaches the intake over ipc:// like any client, and the test speaks HTTP
// to it with cpp-httplib's client. Health before and after a server
// answers, solve (plain and streamed), the OpenAI routes (plain, search,
// streamed; fields left out take the server's defaults), the Prometheus metrics parsed and moving with requests, bad
// input answered with OpenAI error objects and the mapped HTTP status, and
// a streaming client that leaves has its work cancelled on the server.
#include <gtest/gtest.h>

#include <httplib.h>

#include <arpa/inet.h>
#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <sys/socket.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "messages/requests.h"
#include "runtime/client.h"
#include "runtime/http_gateway.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using test::ipc_endpoint;
using test::Pipeline;

std::unique_ptr<HttpGateway> start_gateway(zmq::context_t& ctx, const std::string& endpoint, LogSink& logs) {
  GatewayOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.endpoint = endpoint;
  o.threads = 4;
  auto g = HttpGateway::start(ctx, o, logs.make("http"));
  if (!g) throw std::runtime_error(g.error().message);
  return std::move(*g);
}

// A pipeline and a gateway in front of it.
struct Served {
  Pipeline p;
  std::unique_ptr<HttpGateway> gw;
  explicit Served(const std::string& tag) : Served(test::tiny_pipeline_config(ipc_endpoint(tag))) {}
  explicit Served(Config cfg) : p(std::move(cfg)) {
    gw = start_gateway(p.ctx, p.cfg.endpoints.clients.front(), p.logs);
  }
  ~Served() { gw->stop(); }  // before the pipeline and its context go
  httplib::Client http() const {
    httplib::Client c("127.0.0.1", gw->port());
    c.set_read_timeout(60, 0);
    return c;
  }
};

json post_json(httplib::Client& c, const std::string& path, const json& body, int want_status = 200) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r) << "no HTTP response to POST " << path;
  if (!r) return json();
  EXPECT_EQ(r->status, want_status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  return json::parse(r->body);
}

// The events of a Server-Sent Events body: (event name, data) in order.
std::vector<std::pair<std::string, std::string>> parse_sse(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(body);
  std::string line, event, data;
  while (std::getline(in, line)) {
    if (line.empty()) {
      if (!data.empty() || !event.empty()) out.emplace_back(event, data);
      event.clear();
      data.clear();
    } else if (line.rfind("event: ", 0) == 0) {
      event = line.substr(7);
    } else if (line.rfind("data: ", 0) == 0) {
      data += line.substr(6);
    } else {
      EXPECT_EQ(line[0], ':') << "a line that is no SSE field nor comment: " << line;
    }
  }
  EXPECT_TRUE(event.empty() && data.empty()) << "the stream ended inside an event";
  return out;
}

// POSTs `body` and collects the streamed response; `chunks` counts the
// pieces that arrived.
std::string post_stream(httplib::Client& c, const std::string& path, const json& body, int* chunks = nullptr,
                        std::string* content_type = nullptr) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = {{"Content-Type", "application/json"}};
  req.body = body.dump();
  std::string got;
  int n = 0;
  req.content_receiver = [&](const char* d, size_t len, uint64_t, uint64_t) {
    got.append(d, len);
    ++n;
    return true;
  };
  auto r = c.send(req);
  EXPECT_TRUE(r) << "no HTTP response to POST " << path;
  if (r) {
    EXPECT_EQ(r->status, 200);
    if (content_type) *content_type = r->get_header_value("Content-Type");
  }
  if (chunks) *chunks = n;
  return got;
}

// ------------------------------------------------------------ Prometheus text

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the text format strictly: every sample belongs to a family that
// has # HELP and # TYPE lines before it.
std::vector<Sample> parse_prometheus(const std::string& text) {
  std::vector<Sample> out;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  static const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (std::regex_match(line, m, help)) continue;
    if (std::regex_match(line, m, type)) {
      EXPECT_FALSE(types.count(m[1])) << "family declared twice: " << line;
      types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, sample)) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    Sample s;
    s.name = m[1];
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string sx = suffix;
      if (!types.count(family) && family.size() > sx.size() && family.compare(family.size() - sx.size(), sx.size(), sx) == 0)
        family = family.substr(0, family.size() - sx.size());
    }
    EXPECT_TRUE(types.count(family)) << "sample of an undeclared family: " << line;
    std::string labels = m[3];
    for (std::sregex_iterator it(labels.begin(), labels.end(), label), end; it != end; ++it)
      s.labels[(*it)[1]] = (*it)[2];
    std::string v = m[4];
    s.value = v == "+Inf" ? INFINITY : std::stod(v);
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the sample `name` whose labels include `want` (-1 if none).
double value_of(const std::vector<Sample>& ss, const std::string& name, const std::map<std::string, std::string>& want = {}) {
  for (const auto& s : ss) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : want) ok = ok && s.labels.count(k) && s.labels.at(k) == v;
    if (ok) return s.value;
  }
  return -1;
}

std::vector<Sample> scrape(httplib::Client& c) {
  auto r = c.Get("/metrics");
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return parse_prometheus(r->body);
}

// ------------------------------------------------------------------ tests

TEST(HttpGateway, HealthIs503UntilAServerAnswersItsPingAnd200After) {
  std::string ep = ipc_endpoint("http-health");
  zmq::context_t ctx;
  LogSink logs(spdlog::level::warn);
  auto gw = start_gateway(ctx, ep, logs);
  httplib::Client c("127.0.0.1", gw->port());
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  json j = json::parse(r->body);
  EXPECT_EQ(j["status"], "unavailable");
  EXPECT_EQ(j["error"]["code"], "unavailable");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("no flashtts server answers at " + ep), std::string::npos);
  // Work is refused at once too, not left waiting for a server.
  auto t0 = std::chrono::steady_clock::now();
  auto w = c.Post("/v1/completions", R"({"prompt": "Hi"})", "application/json");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->status, 503);
  EXPECT_EQ(json::parse(w->body)["error"]["type"], "server_error");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);

  Pipeline p(test::tiny_pipeline_config(ep));
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    auto h = c.Get("/health");
    ASSERT_TRUE(h);
    status = h->status;
    if (status == 200) {
      json ok = json::parse(h->body);
      EXPECT_EQ(ok["status"], "ok");
      EXPECT_EQ(ok["server"], "flashtts");
    }
  }
  EXPECT_EQ(status, 200);
  gw->stop();
}

// A gateway whose listening socket fails says so (flashtts serve's loop then
// exits, and systemd starts it again); one that was stopped does not.
TEST(HttpGateway, SaysWhenItsListeningSocketFailed) {
  zmq::context_t ctx;
  LogSink logs(spdlog::level::warn);
  GatewayOptions o;
  o.port = 0;
  o.endpoint = ipc_endpoint("http-listen-fails");
  auto gw = HttpGateway::start(ctx, o, logs.make("http"));
  ASSERT_TRUE(gw.ok()) << gw.error().message;
  EXPECT_FALSE((*gw)->failed());
  // The process's socket bound to the gateway's port, shut down from outside.
  int listening = -1;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(e.path().filename().string());
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    if (getsockname(fd, (sockaddr*)&a, &n) != 0 || a.ss_family != AF_INET) continue;
    if (ntohs(((sockaddr_in*)&a)->sin_port) == (*gw)->port()) listening = fd;
  }
  ASSERT_GE(listening, 0);
  ASSERT_EQ(::shutdown(listening, SHUT_RDWR), 0);
  std::optional<std::string> why;
  for (int i = 0; i < 500 && !why; ++i) {
    std::this_thread::sleep_for(10ms);
    why = (*gw)->failed();
  }
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("stopped listening at " + (*gw)->url()), std::string::npos) << *why;
  (*gw)->stop();

  auto again = HttpGateway::start(ctx, o, logs.make("http"));
  ASSERT_TRUE(again.ok()) << again.error().message;
  (*again)->stop();
  EXPECT_FALSE((*again)->failed());
}

TEST(HttpGateway, SolveAnswersTheProtocolsResultMap) {
  Served s("http-solve");
  auto c = s.http();
  json r = post_json(c, "/v1/solve", {{"problem", "What is 2 + 3?"}, {"n", 2}, {"seed", 1}, {"return_completions", true}});
  EXPECT_EQ(r["strategy"], "best_of_n");
  EXPECT_EQ(r["n"], 2);
  EXPECT_TRUE(r["answer"].is_string());
  EXPECT_TRUE(r["steps"].is_array());
  EXPECT_EQ(r["completions"].size(), 2u);
  EXPECT_GT(r["stats"]["policy_tokens"].get<int64_t>(), 0);
  // The same seed gives the same result through the gateway.
  json again = post_json(c, "/v1/solve", {{"problem", "What is 2 + 3?"}, {"n", 2}, {"seed", 1}, {"return_completions", true}});
  EXPECT_EQ(again["text"], r["text"]);
}

TEST(HttpGateway, AStreamedSolveSendsEveryProgressEventThenTheResult) {
  Served s("http-solve-stream");
  auto c = s.http();
  int chunks = 0;
  std::string type;
  std::string body = post_stream(c, "/v1/solve", {{"problem", "What is 2 + 3?"}, {"n", 3}, {"stream", true}}, &chunks, &type);
  EXPECT_EQ(type, "text/event-stream");
  auto events = parse_sse(body);
  // best_of_n: a generated and a completed event per sample, then the result.
  ASSERT_EQ(events.size(), 7u) << body;
  int generated = 0, completed = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].first, "progress");
    json e = json::parse(events[i].second);
    generated += e["kind"] == "generated";
    completed += e["kind"] == "completed";
  }
  EXPECT_EQ(generated, 3);
  EXPECT_EQ(completed, 3);
  EXPECT_EQ(events.back().first, "result");
  json res = json::parse(events.back().second);
  EXPECT_EQ(res["n"], 3);
  EXPECT_GT(chunks, 1) << "the events came as one piece, not as a stream";
}

TEST(HttpGateway, CompletionsAnswerNChoicesWithUsageAndASeedRepeats) {
  Served s("http-completions");
  auto c = s.http();
  json req = {{"model", "tiny"}, {"prompt", "Once upon a time"}, {"max_tokens", 5}, {"n", 2}, {"seed", 11}};
  json r = post_json(c, "/v1/completions", req);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_EQ(r["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  ASSERT_EQ(r["choices"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(r["choices"][i]["index"], i);
    EXPECT_TRUE(r["choices"][i]["text"].is_string());
    EXPECT_TRUE(r["choices"][i]["finish_reason"] == "length" || r["choices"][i]["finish_reason"] == "stop");
  }
  const json& u = r["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int64_t>(), 0);
  EXPECT_GT(u["completion_tokens"].get<int64_t>(), 0);
  EXPECT_LE(u["completion_tokens"].get<int64_t>(), 10);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int64_t>() + u["completion_tokens"].get<int64_t>());
  json again = post_json(c, "/v1/completions", req);
  EXPECT_EQ(again["choices"][0]["text"], r["choices"][0]["text"]);
  EXPECT_EQ(again["choices"][1]["text"], r["choices"][1]["text"]);
}

TEST(HttpGateway, ChatCompletionsAnswerAnAssistantMessageAndAStrategyRunsASearch) {
  Served s("http-chat");
  auto c = s.http();
  json r = post_json(c, "/v1/chat/completions",
                     {{"messages", {{{"role", "user"}, {"content", "What is 2 + 3?"}}}}, {"max_tokens", 6},
                      {"temperature", 0}});
  EXPECT_EQ(r["object"], "chat.completion");
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(r["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");  // the random policy's greedy text never ends
  EXPECT_EQ(r["usage"]["completion_tokens"], 6);
  EXPECT_FALSE(r.contains("flashtts"));

  json sr = post_json(c, "/v1/chat/completions",
                      {{"messages", {{{"role", "user"}, {"content", "What is 2 + 3?"}}}}, {"n", 2},
                       {"strategy", "best_of_n"}, {"seed", 4}});
  ASSERT_EQ(sr["choices"].size(), 1u);
  EXPECT_EQ(sr["flashtts"]["strategy"], "best_of_n");
  EXPECT_EQ(sr["flashtts"]["n"], 2);
  EXPECT_EQ(sr["choices"][0]["message"]["content"], sr["flashtts"]["text"]);
  EXPECT_GT(sr["usage"]["prm_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(sr["usage"]["completion_tokens"], sr["flashtts"]["stats"]["policy_tokens"]);
}

// A plain request that leaves temperature, top_p and top_k out sends none
// of them, so the server's generate defaults apply: here the served
// folder's generation_config.json, which asks for temperature 0. Choices of
// different seeds then agree, on both routes, and equal an explicitly
// greedy request's; a request's own temperature still wins.
TEST(HttpGateway, APlainRequestWithoutSamplingFieldsTakesTheServedModelsGenerationConfig) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("http-gc"));
  cfg.models.policy =
      test::model_with_generation_config(test::tiny_models() / "policy", "http-gc", R"({"temperature": 0})");
  Served s(std::move(cfg));
  auto c = s.http();
  const json req = {{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"n", 2}, {"seed", 3}};
  json r = post_json(c, "/v1/completions", req);
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][0]["text"], r["choices"][1]["text"]) << "seeds 3 and 4 sampled: the folder's temperature 0 "
                                                                 "did not apply";
  json greedy = req;
  greedy["temperature"] = 0;
  EXPECT_EQ(post_json(c, "/v1/completions", greedy)["choices"][0]["text"], r["choices"][0]["text"]);
  json hot = req;
  hot["temperature"] = 1.5;
  json h = post_json(c, "/v1/completions", hot);
  ASSERT_EQ(h["choices"].size(), 2u);
  EXPECT_NE(h["choices"][0]["text"], h["choices"][1]["text"]) << "the request's temperature 1.5 did not win";

  json chat = {{"messages", {{{"role", "user"}, {"content", "What is 2 + 3?"}}}}, {"max_tokens", 12}, {"n", 2},
               {"seed", 3}};
  json cr = post_json(c, "/v1/chat/completions", chat);
  ASSERT_EQ(cr["choices"].size(), 2u);
  EXPECT_EQ(cr["choices"][0]["message"]["content"], cr["choices"][1]["message"]["content"]);
  chat["temperature"] = 1.5;
  json ch = post_json(c, "/v1/chat/completions", chat);
  ASSERT_EQ(ch["choices"].size(), 2u);
  EXPECT_NE(ch["choices"][0]["message"]["content"], ch["choices"][1]["message"]["content"]);
}

// max_tokens left out is the server's generate default (the protocol's 256
// tokens) on both routes, not OpenAI's 16: a reasoning model's answer does
// not fit in 16. The random policy's greedy text never ends by itself.
TEST(HttpGateway, MaxTokensLeftOutIsTheServersGenerateDefault) {
  Served s("http-max-tokens");
  auto c = s.http();
  const int64_t want = msg::GenerateParams{}.max_tokens;
  json r = post_json(c, "/v1/completions", {{"prompt", "Count:"}, {"temperature", 0}});
  EXPECT_EQ(r["usage"]["completion_tokens"], want);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  json cr = post_json(c, "/v1/chat/completions",
                      {{"messages", {{{"role", "user"}, {"content", "Count:"}}}}, {"temperature", 0}});
  EXPECT_EQ(cr["usage"]["completion_tokens"], want);
  EXPECT_EQ(cr["choices"][0]["finish_reason"], "length");
}

TEST(HttpGateway, MaxTokensLeftOutIsTheConfigurationsGenerateMaxTokens) {
  Config cfg = test::tiny_pipeline_config(ipc_endpoint("http-generate-max"));
  cfg.defaults.generate.max_tokens = 40;
  Served s(std::move(cfg));
  auto c = s.http();
  json r = post_json(c, "/v1/completions", {{"prompt", "Count:"}, {"temperature", 0}});
  EXPECT_EQ(r["usage"]["completion_tokens"], 40);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  json asked = post_json(c, "/v1/completions", {{"prompt", "Count:"}, {"temperature", 0}, {"max_tokens", 7}});
  EXPECT_EQ(asked["usage"]["completion_tokens"], 7);  // the request's wins
}

TEST(HttpGateway, StreamedCompletionsJoinToTheSameTextAndEndWithDone) {
  Served s("http-stream");
  auto c = s.http();
  json req = {{"prompt", "Count:"}, {"max_tokens", 30}, {"temperature", 0}};
  json plain = post_json(c, "/v1/completions", req);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  int chunks = 0;
  auto events = parse_sse(post_stream(c, "/v1/completions", req, &chunks));
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back().second, "[DONE]");
  std::string text;
  json last_choice, usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].first, "");
    json e = json::parse(events[i].second);
    EXPECT_EQ(e["object"], "text_completion");
    if (e.contains("usage")) {
      usage = e["usage"];
      EXPECT_TRUE(e["choices"].empty());
      continue;
    }
    text += e["choices"][0]["text"].get<std::string>();
    last_choice = e["choices"][0];
  }
  EXPECT_EQ(text, plain["choices"][0]["text"]);
  EXPECT_EQ(last_choice["finish_reason"], "length");
  EXPECT_EQ(usage["completion_tokens"], 30);
  EXPECT_GT(chunks, 2);

  // Chat: the first chunk carries the role, deltas join to the message.
  json chat = {{"messages", {{{"role", "user"}, {"content", "Count:"}}}}, {"max_tokens", 20}, {"temperature", 0}};
  json chat_plain = post_json(c, "/v1/chat/completions", chat);
  chat["stream"] = true;
  auto cev = parse_sse(post_stream(c, "/v1/chat/completions", chat));
  ASSERT_GE(cev.size(), 2u);
  EXPECT_EQ(cev.back().second, "[DONE]");
  json first = json::parse(cev.front().second);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string content;
  for (size_t i = 0; i + 1 < cev.size(); ++i) {
    json d = json::parse(cev[i].second)["choices"][0]["delta"];
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  EXPECT_EQ(content, chat_plain["choices"][0]["message"]["content"]);
}

TEST(HttpGateway, MetricsAreValidPrometheusTextAndMoveWithRequests) {
  Served s("http-metrics");
  auto c = s.http();
  auto before = scrape(c);
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(value_of(before, "flashtts_server_up"), 1);
  for (const char* a : {"intake", "beam_manager", "scheduler", "generator", "verifier", "memory_arbiter"})
    EXPECT_EQ(value_of(before, "flashtts_actor_up", {{"actor", a}}), 1) << a;
  for (const char* m : {"policy", "prm"})
    for (const char* st : {"used", "free", "cached"})
      EXPECT_GE(value_of(before, "flashtts_kv_blocks", {{"model", m}, {"state", st}}), 0) << m << " " << st;
  EXPECT_GT(value_of(before, "flashtts_kv_blocks", {{"model", "policy"}, {"state", "free"}}), 0);
  EXPECT_GE(value_of(before, "flashtts_queue_depth", {{"queue", "scheduler"}, {"model", "policy"}}), 0);
  EXPECT_GE(value_of(before, "flashtts_preemptions_total", {{"model", "policy"}}), 0);
  for (const char* m : {"policy", "prm"})
    EXPECT_GE(value_of(before, "flashtts_kv_recomputed_tokens_total", {{"model", m}}), 0) << m;
  EXPECT_GE(value_of(before, "flashtts_spec_tokens_total"), 0);
  double tokens0 = value_of(before, "flashtts_policy_tokens_total");
  double prm0 = value_of(before, "flashtts_prm_tokens_total");
  ASSERT_GE(tokens0, 0);
  ASSERT_GE(prm0, 0);
  std::map<std::string, std::string> ok = {{"route", "/v1/completions"}, {"type", "generate"}, {"outcome", "ok"}};
  double n0 = std::max(0.0, value_of(before, "flashtts_http_requests_total", ok));

  post_json(c, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 7}, {"temperature", 0}});
  post_json(c, "/v1/solve", {{"problem", "What is 1 + 1?"}, {"n", 2}});
  post_json(c, "/v1/completions", {{"prompt", 3}}, 400);

  auto after = scrape(c);
  EXPECT_EQ(value_of(after, "flashtts_http_requests_total", ok), n0 + 1);
  EXPECT_EQ(value_of(after, "flashtts_http_requests_total",
                     {{"route", "/v1/completions"}, {"status", "400"}, {"outcome", "bad_request"}}),
            1);
  EXPECT_EQ(value_of(after, "flashtts_http_requests_total", {{"route", "/v1/solve"}, {"outcome", "ok"}}), 1);
  EXPECT_GE(value_of(after, "flashtts_policy_tokens_total"), tokens0 + 7);
  EXPECT_GT(value_of(after, "flashtts_prm_tokens_total"), prm0);
  // The latency histogram: one observation, buckets cumulative up to +Inf.
  std::map<std::string, std::string> lat = {{"route", "/v1/solve"}, {"type", "solve"}};
  EXPECT_EQ(value_of(after, "flashtts_http_request_duration_seconds_count", lat), 1);
  EXPECT_GT(value_of(after, "flashtts_http_request_duration_seconds_sum", lat), 0);
  double prev = 0;
  int buckets = 0;
  for (const auto& smp : after) {
    if (smp.name != "flashtts_http_request_duration_seconds_bucket" || smp.labels.at("route") != "/v1/solve") continue;
    EXPECT_GE(smp.value, prev);
    prev = smp.value;
    ++buckets;
    if (smp.labels.at("le") == "+Inf") {
      EXPECT_EQ(smp.value, 1);
    }
  }
  EXPECT_GT(buckets, 5);
}

TEST(HttpGateway, BadInputGetsAnOpenAiErrorObjectAndTheMappedStatus) {
  Served s("http-errors");
  auto c = s.http();
  auto expect_error = [&](const std::string& path, const std::string& body, int status, const std::string& code,
                          const std::string& in_message, const char* param = nullptr) {
    auto r = c.Post(path.c_str(), body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    json e = json::parse(r->body)["error"];
    EXPECT_EQ(e["code"], code) << r->body;
    EXPECT_EQ(e["type"], status < 500 ? "invalid_request_error" : "server_error");
    EXPECT_NE(e["message"].get<std::string>().find(in_message), std::string::npos) << e["message"];
    if (param) {
      EXPECT_EQ(e["param"], param);
    }
  };
  expect_error("/v1/solve", "{\"problem\": ", 400, "bad_request", "not valid JSON");
  expect_error("/v1/completions", "[1, 2]", 400, "bad_request", "must be a JSON object");
  expect_error("/v1/solve", R"({"n": 2})", 400, "bad_request", "missing field 'problem'");
  expect_error("/v1/solve", R"({"problem": "p", "n": "2"})", 400, "bad_request", "'n' must be an integer");
  expect_error("/v1/solve", R"({"problem": "p", "n": 0})", 400, "bad_request", "out of range");
  expect_error("/v1/solve", R"({"problem": "p", "stream": 1})", 400, "bad_request", "'stream' must be a boolean",
               "stream");
  expect_error("/v1/solve", R"({"problem": "p", "id": 5})", 400, "bad_request", "set by the gateway", "id");
  expect_error("/v1/completions", R"({"max_tokens": 3})", 400, "bad_request", "missing field 'prompt'", "prompt");
  expect_error("/v1/completions", R"({"prompt": "p", "max_tokens": 2.5})", 400, "bad_request",
               "'max_tokens' must be an integer", "max_tokens");
  expect_error("/v1/completions", R"({"prompt": "p", "temperature": "hot"})", 400, "bad_request",
               "'temperature' must be a number", "temperature");
  expect_error("/v1/completions", R"({"prompt": "p", "nonsense": 1})", 400, "bad_request", "unknown field 'nonsense'",
               "nonsense");
  expect_error("/v1/completions", R"({"prompt": "p", "max_tokens": 100000})", 400, "bad_request", "'max_tokens'");
  expect_error("/v1/chat/completions", R"({"messages": []})", 400, "bad_request", "non-empty array", "messages");
  expect_error("/v1/chat/completions", R"({"messages": [{"role": "user"}]})", 400, "bad_request",
               "missing field 'messages[0].content'");
  expect_error("/v1/chat/completions", R"({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]})",
               400, "bad_request", "system_prompt");
  expect_error("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "strategy": "magic"})", 400,
               "bad_request", "magic");
  // Over the server's max_problem_bytes (16384): too_large, 413.
  json big = {{"problem", std::string(20000, 'x')}};
  expect_error("/v1/solve", big.dump(), 413, "too_large", "16384");
  // A body sent as form data (curl -d without a Content-Type) is JSON too.
  auto form = c.Post("/v1/solve", big.dump(), "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 413);
  auto none = c.Get("/v1/nothing");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "not_found");
  // The server's deadline: 504.
  expect_error("/v1/completions", R"({"prompt": "p", "max_tokens": 4000, "deadline_ms": 1, "n": 8})", 504,
               "deadline_exceeded", "deadline");
}

TEST(HttpGateway, AStreamingClientThatLeavesHasItsWorkCancelledOnTheServer) {
  Served s("http-leave");
  auto c = s.http();
  Client proto = s.p.client();
  auto count = [&](const char* key) {
    auto st = proto.call("stats", msg::MapWriter(), 10s);
    EXPECT_TRUE(st.ok());
    msg::MapReader actors, bm;
    int64_t n = -1;
    if (st && st->body.get("actors", &actors).ok() && actors.get("beam_manager", &bm).ok()) {
      EXPECT_TRUE(bm.get(key, &n).ok());
    }
    return n;
  };
  int64_t cancelled0 = count("cancelled"), completed0 = count("completed");
  // 8 long generations streamed; the client reads the first event and hangs up.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = json{{"prompt", "Count:"}, {"max_tokens", 4000}, {"n", 8}, {"temperature", 0}, {"stream", true}}.dump();
  req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return false; };
  auto r = c.send(req);
  EXPECT_FALSE(r);  // cancelled by the receiver
  int64_t cancelled = cancelled0;
  for (int i = 0; i < 100 && cancelled < cancelled0 + 8; ++i) {
    std::this_thread::sleep_for(50ms);
    cancelled = count("cancelled");
  }
  EXPECT_EQ(cancelled, cancelled0 + 8);
  EXPECT_EQ(count("completed"), completed0);
  EXPECT_EQ(count("live_requests"), 0);
}

TEST(HttpGateway, ParsesHttpAddresses) {
  auto a = parse_http_address("127.0.0.1:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 0);
  auto v6 = parse_http_address("[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 8080);
  for (const char* bad : {"8080", ":8080", "host:", "host:http", "host:70000"}) {
    auto b = parse_http_address(bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.error().message.find(bad), std::string::npos);
  }
}

}  // namespace
}  // namespace flashtts
