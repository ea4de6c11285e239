#include "runtime/http_gateway.h"

#include <csignal>
#include <pthread.h>

#include "runtime/http_gateway_impl.h"

namespace flashtts {

using http::HttpError;
using http::json;

RequestRecord::RequestRecord(http::GatewayMetrics& m, std::string route, std::string type)
    : m_(m), route_(std::move(route)), type_(std::move(type)), t0_(std::chrono::steady_clock::now()) {
  m_.started();
}

RequestRecord::~RequestRecord() {
  if (!ended_) end(499, "disconnected");  // 499: nginx's "client closed request"
  m_.ended();
}

void RequestRecord::end(int status, const std::string& outcome) {
  if (ended_) return;
  ended_ = true;
  m_.record(route_, type_, status, outcome,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
}

void reply_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(http::dump(j), "application/json");
}

void reply_error(httplib::Response& res, const HttpError& e, RequestRecord& rec) {
  reply_json(res, e.status, http::error_body(e));
  rec.end(e.status, e.code);
}

uint64_t HttpGateway::Impl::random() {
  std::lock_guard lock(rng_mu_);
  return rng();
}

std::variant<http::ClientPool::Lease, HttpError> HttpGateway::Impl::lease_for_work() {
  auto lease = pool.acquire();
  if (!lease) return HttpError{503, "unavailable", lease.error().message, ""};
  auto pong = (*lease)->ping(o.ping_timeout);
  if (!pong) return HttpError{503, "unavailable", pong.error().message, ""};
  return std::move(*lease);
}

Expected<std::pair<std::string, int>> parse_http_address(const std::string& addr) {
  auto bad = [&](const std::string& why) {
    return make_error("--http '" + addr + "': " + why + " (expected HOST:PORT, e.g. 127.0.0.1:8080; port 0 = any free port)");
  };
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return bad("no host");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return bad("the port is not a number");
  int p = std::stoi(port);
  if (p > 65535) return bad("the port is over 65535");
  return std::make_pair(host, p);
}

void HttpGateway::Impl::health(const httplib::Request&, httplib::Response& res) {
  RequestRecord rec(metrics, "/health", "ping");
  auto lease = pool.acquire();
  if (!lease) return reply_error(res, HttpError{503, "unavailable", lease.error().message, ""}, rec);
  auto pong = (*lease)->ping(o.ping_timeout);
  if (!pong) {
    json j = http::error_body(HttpError{503, "unavailable", pong.error().message, ""});
    j["status"] = "unavailable";
    reply_json(res, 503, j);
    rec.end(503, "unavailable");
    return;
  }
  reply_json(res, 200, {{"status", "ok"}, {"server", pong->server}, {"protocol", pong->protocol},
                        {"uptime_ms", pong->uptime_ms}});
  rec.end(200, "ok");
}

void HttpGateway::Impl::metrics_text(const httplib::Request&, httplib::Response& res) {
  RequestRecord rec(metrics, "/metrics", "stats");
  prom::PromText out;
  std::string outcome = "ok";
  auto lease = pool.acquire();
  if (lease) {
    auto st = (*lease)->call("stats", msg::MapWriter(), o.stats_timeout);
    if (st) {
      http::write_server_stats(out, http::to_json(st->body));
    } else {
      http::write_server_down(out);
      outcome = "unavailable";
      log->warn("metrics: no stats from the server: {}", st.error().message);
    }
  } else {
    http::write_server_down(out);
    outcome = "unavailable";
  }
  rec.end(200, outcome);  // counted before it is written, so a scrape sees itself
  metrics.write(out);
  res.status = 200;
  res.set_content(out.text(), "text/plain; version=0.0.4; charset=utf-8");
}

void HttpGateway::Impl::models(const httplib::Request&, httplib::Response& res) {
  RequestRecord rec(metrics, "/v1/models", "");
  json m = {{"id", o.model}, {"object", "model"}, {"created", 0}, {"owned_by", "flashtts"}};
  reply_json(res, 200, {{"object", "list"}, {"data", json::array({m})}});
  rec.end(200, "ok");
}

void HttpGateway::Impl::add_routes() {
  srv.Get("/health", [this](const httplib::Request& q, httplib::Response& r) { health(q, r); });
  srv.Get("/metrics", [this](const httplib::Request& q, httplib::Response& r) { metrics_text(q, r); });
  srv.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) { models(q, r); });
  // POST bodies are read through a content reader: httplib would otherwise
  // parse a body sent as form data (curl -d without -H) and refuse one over
  // 8 KiB with 413; here any Content-Type is taken as JSON.
  auto post = [this](const char* route, std::function<void(const std::string&, httplib::Response&)> fn) {
    srv.Post(route, [this, route, fn](const httplib::Request&, httplib::Response& r,
                                      const httplib::ContentReader& read) {
      std::string body;
      bool ok = read([&](const char* d, size_t n) {
        body.append(d, n);
        return true;
      });
      if (!ok) {
        RequestRecord rec(metrics, route, "");
        HttpError e = r.status == 413 ? HttpError{413, "too_large",
                                                  "the body is over " + std::to_string(o.max_body_bytes) + " bytes", ""}
                                      : http::bad_input("the body could not be read");
        return reply_error(r, e, rec);
      }
      fn(body, r);
    });
  };
  post("/v1/solve", [this](const std::string& b, httplib::Response& r) { solve(b, r); });
  post("/v1/completions",
       [this](const std::string& b, httplib::Response& r) { openai(http::OpenAiApi::kCompletions, b, r); });
  post("/v1/chat/completions",
       [this](const std::string& b, httplib::Response& r) { openai(http::OpenAiApi::kChat, b, r); });
  // Errors httplib answers itself (no route, a body over the limit) get a
  // JSON error body too.
  srv.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    HttpError e{r.status, "bad_request", "bad HTTP request", ""};
    if (r.status == 404) {
      e.code = "not_found";
      e.message = "no route " + q.method + " " + q.path +
                  " (routes: POST /v1/solve, POST /v1/completions, POST /v1/chat/completions, GET /v1/models, "
                  "GET /health, GET /metrics)";
    } else if (r.status == 413) {
      e.code = "too_large";
      e.message = "the body is over " + std::to_string(o.max_body_bytes) + " bytes";
    }
    r.set_content(http::dump(http::error_body(e)), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  srv.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    r.status = 500;
    r.set_content(http::dump(http::error_body(HttpError{500, "internal", "the gateway failed: " + what, ""})),
                  "application/json");
  });
}

HttpGateway::HttpGateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpGateway::~HttpGateway() { stop(); }

Expected<std::unique_ptr<HttpGateway>> HttpGateway::start(zmq::context_t& ctx, GatewayOptions o, Logger log) {
  if (o.endpoint.empty()) return make_error("the HTTP gateway needs the intake's client endpoint");
  if (o.threads < 1) return make_error("the HTTP gateway needs at least one worker thread");
  auto impl = std::make_unique<Impl>(ctx, std::move(o), std::move(log));
  Impl& g = *impl;
  size_t threads = size_t(g.o.threads);
  g.srv.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  g.srv.set_payload_max_length(g.o.max_body_bytes);
  g.srv.set_keep_alive_timeout(3);
  g.add_routes();
  int port = g.o.port == 0 ? g.srv.bind_to_any_port(g.o.host) : (g.srv.bind_to_port(g.o.host, g.o.port) ? g.o.port : -1);
  if (port < 0)
    return make_error("cannot listen for HTTP at " + g.o.host + ":" + std::to_string(g.o.port) +
                      " (address in use, or not an address of this machine)");
  g.port = port;

  // The server's threads (and its workers, which it starts) take no SIGINT
  // or SIGTERM: the owner's thread handles them.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  g.thread = std::thread([&g] {
    g.srv.listen_after_bind();
    g.listen_ended = true;
  });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  // stop() is a no-op until the server runs; wait for it so that stop()
  // right after start() still ends the thread.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!g.srv.is_running() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  g.log->info("HTTP gateway at http://{}:{}, to the intake at {}", g.o.host, port, g.o.endpoint);
  return std::unique_ptr<HttpGateway>(new HttpGateway(std::move(impl)));
}

int HttpGateway::port() const { return impl_->port; }

std::string HttpGateway::url() const {
  const std::string& h = impl_->o.host;
  bool v6 = h.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(impl_->port);
}

std::optional<std::string> HttpGateway::failed() const {
  if (!impl_->listen_ended || impl_->stopping) return std::nullopt;
  return "the HTTP gateway stopped listening at " + url() + " (its listening socket failed)";
}

void HttpGateway::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->stopping = true;
  impl_->srv.stop();
  impl_->thread.join();
  impl_->pool.close();
}

}  // namespace flashtts
