// The gateway's routes that run work: POST /v1/solve and the OpenAI routes
// (docs/http.md). Each leases a Client, sends its protocol requests in an
// Exchange and answers one JSON body, or a Server-Sent Events stream whose
// status is decided by the first frame: an error before anything was
// streamed is answered with its HTTP status like a non-streaming request.
#include <cstdio>
#include <ctime>
#include <functional>
#include <variant>

#include "runtime/http_gateway_impl.h"

namespace flashtts {

using http::ExchangeFrame;
using http::HttpError;
using http::json;

namespace {

// Runs `ex` to its end, passing each frame to `on_frame`; the first error
// (the gateway's, or an error frame) ends it, the other requests cancelled.
std::optional<HttpError> run_to_end(http::Exchange& ex, const std::function<void(const ExchangeFrame&)>& on_frame) {
  while (!ex.done()) {
    auto f = ex.next();
    if (auto* e = std::get_if<HttpError>(&f)) return *e;
    auto& fr = std::get<ExchangeFrame>(f);
    if (fr.frame.type == "error") {
      ex.cancel_rest();
      return http::from_protocol(fr.frame.code, fr.frame.message);
    }
    on_frame(fr);
  }
  return std::nullopt;
}

// A stream in progress: what httplib's chunked content provider needs
// between its calls (all on the request's worker thread).
struct Stream {
  Stream(http::ClientPool::Lease l, const std::atomic<bool>* stopping, std::chrono::steady_clock::time_point deadline,
         std::unique_ptr<RequestRecord> r)
      : ex(std::move(l), stopping, deadline), rec(std::move(r)) {}

  http::Exchange ex;
  std::unique_ptr<RequestRecord> rec;
  std::optional<ExchangeFrame> pending;                       // the first frame, read before the headers
  std::function<std::string(const ExchangeFrame&)> on_frame;  // SSE text of a progress or result frame
  std::function<std::string()> on_end;                        // SSE text after the last result
  std::function<std::string(const HttpError&)> on_error;      // SSE text of an error mid-stream
  bool finished = false;

  // The SSE text of the next step; sets `finished` at the end.
  std::string step() {
    std::variant<ExchangeFrame, HttpError> f;
    if (pending) {
      f = std::move(*pending);
      pending.reset();
    } else {
      f = ex.next();
    }
    std::optional<HttpError> err;
    if (auto* e = std::get_if<HttpError>(&f)) err = *e;
    auto* fr = std::get_if<ExchangeFrame>(&f);
    if (fr && fr->frame.type == "error") {
      ex.cancel_rest();
      err = http::from_protocol(fr->frame.code, fr->frame.message);
    }
    if (err) {
      finished = true;
      rec->end(200, err->code);  // the status went out with the first event
      return on_error(*err);
    }
    std::string out = on_frame(*fr);
    if (ex.done()) {
      out += on_end();
      finished = true;
      rec->end(200, "ok");
    }
    return out;
  }
};

// Reads the stream's first frame: an error is answered as a plain HTTP
// error; otherwise the response becomes the event stream.
void start_stream(httplib::Response& res, std::shared_ptr<Stream> st) {
  auto f = st->ex.next();
  std::optional<HttpError> err;
  if (auto* e = std::get_if<HttpError>(&f)) err = *e;
  auto* fr = std::get_if<ExchangeFrame>(&f);
  if (fr && fr->frame.type == "error") {
    st->ex.cancel_rest();
    err = http::from_protocol(fr->frame.code, fr->frame.message);
  }
  if (err) return reply_error(res, *err, *st->rec);
  st->pending = std::move(*fr);
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        if (!st->finished) {
          std::string out = st->step();
          // A failed write: the client left; the releaser cancels the rest.
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        }
        if (st->finished) sink.done();
        return true;
      },
      [st](bool) {
        // Runs when the response goes, streamed to the end or not: cancel
        // what is still running and give the Client back now.
        if (!st->finished) st->ex.cancel_rest();
        st->rec.reset();
      });
}

}  // namespace

void HttpGateway::Impl::solve(const std::string& req_body, httplib::Response& res) {
  auto rec = std::make_unique<RequestRecord>(metrics, "/v1/solve", "solve");
  auto body = http::parse_object(req_body);
  if (!body) return reply_error(res, http::bad_input(body.error().message), *rec);
  for (const char* k : {"type", "id", "v"})
    if (body->contains(k))
      return reply_error(res,
                         http::bad_input(std::string("field '") + k + "' is set by the gateway; leave it out", k),
                         *rec);
  bool stream = false;
  if (body->contains("stream") && !(*body)["stream"].is_null()) {
    if (!(*body)["stream"].is_boolean())
      return reply_error(
          res, http::bad_input(std::string("field 'stream' must be a boolean, not ") + (*body)["stream"].type_name(),
                               "stream"),
          *rec);
    stream = (*body)["stream"].get<bool>();
  }
  msg::MapWriter fields = http::to_fields(*body, {"stream"});
  fields.put("stream", stream);
  auto leased = lease_for_work();
  if (auto* e = std::get_if<HttpError>(&leased)) return reply_error(res, *e, *rec);
  auto& lease = std::get<http::ClientPool::Lease>(leased);

  if (!stream) {
    http::Exchange ex(std::move(lease), &stopping, deadline());
    ex.send("solve", fields);
    json result;
    auto err = run_to_end(ex, [&](const ExchangeFrame& f) {
      if (f.final()) result = http::to_json(f.frame.body);
    });
    if (err) return reply_error(res, *err, *rec);
    reply_json(res, 200, result);
    rec->end(200, "ok");
    return;
  }
  auto st = std::make_shared<Stream>(std::move(lease), &stopping, deadline(), std::move(rec));
  st->ex.send("solve", fields);
  st->on_frame = [](const ExchangeFrame& f) {
    json j = http::to_json(f.frame.body);
    return http::sse_event(f.final() ? "result" : "progress", http::dump(j));
  };
  st->on_end = [] { return std::string(); };
  st->on_error = [](const HttpError& e) { return http::sse_event("error", http::dump(http::error_body(e))); };
  start_stream(res, std::move(st));
}

void HttpGateway::Impl::openai(http::OpenAiApi api, const std::string& req_body, httplib::Response& res) {
  const char* route = api == http::OpenAiApi::kCompletions ? "/v1/completions" : "/v1/chat/completions";
  auto rec = std::make_unique<RequestRecord>(metrics, route, "");
  auto body = http::parse_object(req_body);
  if (!body) return reply_error(res, http::bad_input(body.error().message), *rec);
  auto planned = http::plan_openai(api, *body, random() >> 1);
  if (auto* e = std::get_if<HttpError>(&planned)) return reply_error(res, *e, *rec);
  auto& plan = std::get<http::OpenAiPlan>(planned);
  if (plan.model.empty()) plan.model = o.model;
  rec->set_type(plan.type);
  auto leased = lease_for_work();
  if (auto* e = std::get_if<HttpError>(&leased)) return reply_error(res, *e, *rec);
  auto& lease = std::get<http::ClientPool::Lease>(leased);

  char idbuf[40];
  std::snprintf(idbuf, sizeof idbuf, "%s-%016llx", api == http::OpenAiApi::kCompletions ? "cmpl" : "chatcmpl",
                (unsigned long long)random());
  auto reply = std::make_shared<http::OpenAiReply>(plan, idbuf, int64_t(std::time(nullptr)));

  if (!plan.stream) {
    http::Exchange ex(std::move(lease), &stopping, deadline());
    for (const auto& r : plan.requests) ex.send(plan.type, r);
    auto err = run_to_end(ex, [&](const ExchangeFrame& f) { reply->add(f.index, f.frame); });
    if (err) return reply_error(res, *err, *rec);
    reply_json(res, 200, reply->body());
    rec->end(200, "ok");
    return;
  }
  auto st = std::make_shared<Stream>(std::move(lease), &stopping, deadline(), std::move(rec));
  for (const auto& r : plan.requests) st->ex.send(plan.type, r);
  st->on_frame = [reply](const ExchangeFrame& f) { return reply->add(f.index, f.frame); };
  st->on_end = [reply] { return reply->stream_end(); };
  st->on_error = [](const HttpError& e) { return http::OpenAiReply::stream_error(e); };
  start_stream(res, std::move(st));
}

}  // namespace flashtts
